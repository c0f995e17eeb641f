"""Cost by the tool the model called, on the real Claude Code samples.

``../shared/data/realworld/claude-code/tool_heavy.jsonl`` (session d6e0bada…) has four
priced responses of claude-opus-4-6, each with its tool_use blocks. Their costs, by hand
from the tokens at Opus 4.6 rates ($5 input, $25 output, $0.50 cache read, $10 1-hour
cache write per million; every write of this file is 1-hour):

=============================  =====  ======  ======  =====  ==========  ==================
message                        input  output  read    write  cost        tools asked
=============================  =====  ======  ======  =====  ==========  ==================
msg_0167kgZUrgcT7dg7uZK7hVSg   3      27      17,915  7,883  0.0884775   Bash
msg_01NUXWeNeduGBJVib8gyo9kz   1      1       25,798  208    0.015009    Bash
msg_01LbyjvsALGe2gMsTgDSj7e6   3      11      18,014  8,490  0.094197    WebSearch, Glob
msg_019BN3FRqb7NU4DgBN5jdsym   47     173     26,504  1,115  0.028962    Read, WebFetch
=============================  =====  ======  ======  =====  ==========  ==================

(e.g. 3*5 + 27*25 + 17915*0.5 + 7883*10 = 88,477.5 micro-dollars). Split evenly:
Bash 0.0884775 + 0.015009 = 0.1034865; WebSearch = Glob = 0.094197 / 2 = 0.0470985;
Read = WebFetch = 0.028962 / 2 = 0.014481; the four sum to the session's 0.2266455.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from agentkpi import views
from agentkpi.model import CanonicalBatch
from agentkpi.quality import Quality
from agentkpi.sources import claude_code, codex, gemini_cli, otel
from agentkpi.store import DuckDBStore
from agentkpi.web import create_app

from .conftest import SHARED, cli_ingest

CLAUDE = SHARED / "data" / "realworld" / "claude-code"
CODEX = Path(__file__).parent / "data" / "realworld" / "codex"
HEAVY = "d6e0bada-1959-4eec-a9d2-0bfade768d8f"
BY_HAND = {"Bash": (2, 2, 0.1034865), "WebSearch": (1, 1, 0.0470985),
           "Glob": (1, 1, 0.0470985), "Read": (1, 1, 0.014481), "WebFetch": (1, 1, 0.014481)}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cost-by-tool") / "store.duckdb"
    cli_ingest(CLAUDE, "--format", "claude-code", "--store", str(path))
    return path


def _rows(store_path: Path, **filters: str) -> dict[str, tuple[int, int, float | None]]:
    with DuckDBStore(str(store_path), read_only=True) as st:
        rows = views.cost_by_requested_tool(st, datetime(2026, 1, 1), datetime(2026, 3, 1),
                                            filters)
    return {r["tool"]: (r["llm_calls"], r["tool_calls"], r["cost_usd"]) for r in rows}


def test_a_sessions_cost_splits_evenly_over_the_tools_each_call_asked_for(
        store_path: Path) -> None:
    got = _rows(store_path, session=HEAVY)
    assert set(got) == set(BY_HAND)  # every call of this session asked for tools
    for tool, (calls, asked, cost) in BY_HAND.items():
        assert got[tool][:2] == (calls, asked)
        assert got[tool][2] == pytest.approx(cost, abs=1e-12)
    assert sum(c for _, _, c in got.values()) == pytest.approx(0.2266455, abs=1e-12)


def test_the_tool_costs_and_the_calls_without_tools_sum_to_the_total(
        store_path: Path) -> None:
    got = _rows(store_path)
    # The subagent file (agent-aac57f5) asked 6 WebSearch in one response (0.0519465)
    # and 6 WebFetch in another (0.0171669); its third response (0.0175503) asked for
    # nothing, nor did the 3 ccusage-fixture calls of chat.jsonl (0.12 + 0.34 + 0.56).
    assert got["WebSearch"][:2] == (2, 7)
    assert got["WebSearch"][2] == pytest.approx(0.0470985 + 0.0519465, abs=1e-12)
    assert got["WebFetch"][:2] == (2, 7)
    assert got["WebFetch"][2] == pytest.approx(0.014481 + 0.0171669, abs=1e-12)
    calls, asked, cost = got[views.NO_TOOL_ASKED]
    assert (calls, asked) == (4, 0) and cost == pytest.approx(0.0175503 + 1.02, abs=1e-12)
    total = 0.2266455 + 0.0519465 + 0.0171669 + 0.0175503 + 1.02
    assert sum(c or 0.0 for _, _, c in got.values()) == pytest.approx(total, abs=1e-12)
    assert views.NOT_LINKED not in got  # Claude Code links every call


def test_a_tool_filter_keeps_the_even_split(store_path: Path) -> None:
    assert _rows(store_path, tool="Glob", session=HEAVY) == {"Glob": (1, 1, pytest.approx(
        0.0470985, abs=1e-12))}
    main = _rows(store_path, agent="main", session=HEAVY)
    assert main["Bash"][2] == pytest.approx(0.1034865, abs=1e-12)


def test_the_costs_page_shows_it(store_path: Path) -> None:
    client = TestClient(create_app(str(store_path), poll=10, background=False))
    d = client.get(f"/api/costs?from=2026-02-10&to=2026-02-11&session={HEAVY}").json()
    assert {r["tool"]: round(r["cost_usd"], 7) for r in d["by_requested_tool"]} == {
        t: c for t, (_, _, c) in BY_HAND.items()}
    r = client.get(f"/api/costs?from=2026-02-10&to=2026-02-11&session={HEAVY}"
                   "&download=csv&table=by_requested_tool")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert r.status_code == 200 and rows[0] == ["tool", "llm_calls", "tool_calls", "cost_usd"]
    assert rows[1][:3] == ["Bash", "2", "2"] and float(rows[1][3]) == pytest.approx(0.1034865)


def test_unlinked_sources_count_apart(tmp_path: Path) -> None:
    """A source without the link (the session dataset) puts its calls in NOT_LINKED."""
    b = CanonicalBatch()
    b.add_session(session_id="s", start_ts=datetime(2026, 1, 1))
    b.add_event(session_id="s", seq=0, ts=datetime(2026, 1, 1, 1), event_type="llm_call",
                cost_usd=0.5, file="f")
    b.add_event(session_id="s", seq=1, ts=datetime(2026, 1, 1, 1), event_type="tool_call",
                tool="Bash", file="f")
    with DuckDBStore(str(tmp_path / "s.duckdb")) as st:
        st.write_batch(b.session_table(), b.event_table(), [], replace_sessions=False)
        rows = views.cost_by_requested_tool(st, datetime(2026, 1, 1), datetime(2026, 1, 2))
    assert rows == [{"tool": views.NOT_LINKED, "llm_calls": 1, "tool_calls": 0,
                     "cost_usd": 0.5}]


# ------------------------------------------------------------------ every importer links

def _links(batch: CanonicalBatch) -> list[tuple[str | None, str | None]]:
    ev = batch.events
    calls = [ev["response_id"][i] for i, t in enumerate(ev["event_type"]) if t == "llm_call"]
    assert len(set(calls)) == len(calls) and None not in calls
    return [(ev["tool"][i], ev["response_id"][i]) for i, t in enumerate(ev["event_type"])
            if t == "tool_call" and ev["response_id"][i] in calls] + [
        (ev["tool"][i], None) for i, t in enumerate(ev["event_type"])
        if t == "tool_call" and ev["response_id"][i] not in calls]


def test_claude_code_links_each_tool_use_to_its_message() -> None:
    path = CLAUDE / "tool_heavy.jsonl"
    links = _links(claude_code.parse_file(str(path), path.read_bytes(), Quality()))
    assert links == [("Bash", "msg_0167kgZUrgcT7dg7uZK7hVSg"),
                     ("Bash", "msg_01NUXWeNeduGBJVib8gyo9kz"),
                     ("WebSearch", "msg_01LbyjvsALGe2gMsTgDSj7e6"),
                     ("Glob", "msg_01LbyjvsALGe2gMsTgDSj7e6"),
                     ("Read", "msg_019BN3FRqb7NU4DgBN5jdsym"),
                     ("WebFetch", "msg_019BN3FRqb7NU4DgBN5jdsym")]


def test_codex_links_each_call_to_the_response_that_closes_it() -> None:
    """Real rollout: 5 function_call items, each followed by the token_count of its own
    response (then the re-emitted counter after the output): 5 calls, 5 responses."""
    (path,) = CODEX.glob("rollout-*20-34-25*.jsonl")
    batch = codex.parse_file(str(path), path.read_bytes(), Quality())
    links = _links(batch)
    assert len(links) == 5 and None not in {r for _, r in links}
    assert len({r for _, r in links}) == 5
    ev = batch.events
    order = sorted(range(len(ev["seq"])), key=lambda i: ev["seq"][i])
    for i in order:  # the asking response comes right after the call in the file
        if ev["event_type"][i] == "tool_call":
            nxt = next(j for j in order if ev["seq"][j] > ev["seq"][i]
                       and ev["event_type"][j] == "llm_call")
            assert ev["response_id"][nxt] == ev["response_id"][i]


def test_gemini_cli_links_tool_calls_to_their_message(tmp_path: Path) -> None:
    path = tmp_path / "session-1.jsonl"
    path.write_text(
        '{"sessionId":"g1","projectHash":"p","startTime":"2026-01-01T00:00:00Z","kind":"main"}\n'
        '{"id":"u1","timestamp":"2026-01-01T00:00:01Z","type":"user","content":"hi"}\n'
        '{"id":"m1","timestamp":"2026-01-01T00:00:02Z","type":"gemini","model":"gemini-2.5-pro",'
        '"tokens":{"input":10,"output":5,"cached":0,"thoughts":0,"tool":0,"total":15},'
        '"toolCalls":[{"id":"t1","name":"read_file","status":"success",'
        '"timestamp":"2026-01-01T00:00:03Z"},{"id":"t2","name":"glob","status":"error"}]}\n'
        '{"id":"m2","timestamp":"2026-01-01T00:00:04Z","type":"gemini","model":"gemini-2.5-pro",'
        '"tokens":{"input":20,"output":5,"cached":0,"thoughts":0,"tool":0,"total":25}}\n')
    batch = gemini_cli.parse_file(str(path), path.read_bytes(), Quality())
    assert _links(batch) == [("read_file", "m1"), ("glob", "m1")]


def test_otel_links_tools_by_output_ids_else_by_the_preceding_call() -> None:
    """The real any-agent trace: call_llm, get_current_time, call_llm, write_file,
    call_llm under one agent span; each tool follows the call that asked for it."""
    path = SHARED / "data" / "realworld" / "otel-genai-sdk-json" / "OPENAI_trace.json"
    batch = otel.parse_file(str(path), path.read_bytes(), Quality())
    ev = batch.events
    calls = sorted((ev["ts"][i], ev["response_id"][i]) for i, t in enumerate(ev["event_type"])
                   if t == "llm_call")
    links = dict(_links(batch))
    assert links == {"get_current_time": calls[0][1], "write_file": calls[1][1]}


def test_otel_output_messages_name_the_asking_call() -> None:
    def span(sid: str, name: str, start: int, end: int, **attrs: object) -> dict[str, object]:
        return {"traceId": "ab" * 16, "spanId": sid, "parentSpanId": "0" * 15 + "1",
                "name": name, "startTimeUnixNano": str(start), "endTimeUnixNano": str(end),
                "attributes": [{"key": k, "value": {"stringValue": v} if isinstance(v, str)
                                else {"intValue": str(v)}} for k, v in attrs.items()]}

    import json
    out = json.dumps([{"role": "assistant", "parts": [
        {"type": "tool_call", "id": "call_b", "name": "search"}]}])
    doc = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [
        span("a" * 16, "chat m", 10, 20, **{"gen_ai.operation.name": "chat",
                                            "gen_ai.usage.input_tokens": 5}),
        span("b" * 16, "chat m", 21, 30, **{"gen_ai.operation.name": "chat",
                                            "gen_ai.usage.input_tokens": 5,
                                            "gen_ai.output.messages": out}),
        # runs after both calls; the output of the *second* asked for call_b
        span("c" * 16, "execute_tool search", 40, 50, **{
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
            "gen_ai.tool.call.id": "call_b"}),
        # no id: the last call that ended before it started
        span("d" * 16, "execute_tool read", 25, 26, **{
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read"}),
    ]}]}]}
    raw = json.dumps(doc).encode()
    batch = otel.parse_file("t.json", raw, Quality())
    trace = "ab" * 16
    assert dict(_links(batch)) == {"search": f"{trace}:{'b' * 16}",
                                   "read": f"{trace}:{'a' * 16}"}


def test_clickhouse_attributes_the_same(store_path: Path, tmp_path: Path) -> None:
    from agentkpi.store.clickhouse import ClickHouseStore

    dsn = f"chdb://{tmp_path / 'ch'}"
    cli_ingest(CLAUDE, "--format", "claude-code", "--engine", "clickhouse", "--dsn", dsn)
    with ClickHouseStore(dsn, read_only=True) as st:
        rows = views.cost_by_requested_tool(st, datetime(2026, 1, 1), datetime(2026, 3, 1))
    got = {r["tool"]: (r["llm_calls"], r["tool_calls"], r["cost_usd"]) for r in rows}
    want = _rows(store_path)
    assert got.keys() == want.keys()
    for tool, (calls, asked, cost) in want.items():
        assert got[tool][:2] == (calls, asked)
        assert got[tool][2] == pytest.approx(cost, abs=1e-12)


@pytest.mark.browser
def test_the_costs_page_draws_the_tool_table_in_chromium(store_path: Path) -> None:
    from tests.test_web_browser import browser_page

    with browser_page(str(store_path)) as (url, page):
        page.goto(url + f"/costs?from=2026-02-10&to=2026-02-11&session={HEAVY}")
        page.wait_for_selector("#by-requested-tool")
        heads = page.locator("#by-requested-tool th").all_inner_texts()
        assert heads == ["Tool", "Cost (attributed)", "Model calls", "Times asked"]
        first = page.locator("#by-requested-tool tbody tr").first.locator("td")
        assert first.all_inner_texts() == ["Bash", "$0.10", "2", "2"]
        assert first.first.locator("a").get_attribute("href").startswith("/breakdown/tool?")


def test_a_store_not_yet_migrated_shows_its_calls_unlinked(tmp_path: Path) -> None:
    """The dashboard opens stores read-only: one written before schema 3 has no
    response_id column, and the costs page must still answer."""
    import duckdb

    path = tmp_path / "old.duckdb"
    b = CanonicalBatch()
    b.add_session(session_id="s", start_ts=datetime(2026, 1, 1))
    b.add_event(session_id="s", seq=0, ts=datetime(2026, 1, 1, 1), event_type="llm_call",
                cost_usd=0.25, file="f")
    with DuckDBStore(str(path)) as st:
        st.write_batch(b.session_table(), b.event_table(), [], replace_sessions=False)
    with duckdb.connect(str(path)) as con:  # back to schema version 2
        con.execute("ALTER TABLE events DROP COLUMN response_id")
        con.execute("DELETE FROM schema_migrations WHERE version >= 3")
    with DuckDBStore(str(path), read_only=True) as st:
        assert st.schema_version() == 2
        rows = views.cost_by_requested_tool(st, datetime(2026, 1, 1), datetime(2026, 1, 2))
        d = views.costs(st, datetime(2026, 1, 1), datetime(2026, 1, 2))
    assert rows == d["by_requested_tool"] == [
        {"tool": views.NOT_LINKED, "llm_calls": 1, "tool_calls": 0, "cost_usd": 0.25}]


def test_a_range_at_the_ends_of_time_still_answers(store_path: Path) -> None:
    with DuckDBStore(str(store_path), read_only=True) as st:
        rows = views.cost_by_requested_tool(st, datetime.min, datetime.max)
    got = {r["tool"]: (r["llm_calls"], r["tool_calls"], r["cost_usd"]) for r in rows}
    want = _rows(store_path)
    assert got.keys() == want.keys()
    assert all(got[t][:2] == want[t][:2] for t in want)


# ------------------------------------------------------- the split against a plain reference

_SIDS = ("s0", "s1")
_RIDS = (None, "r0", "r1", "r2")
_COSTS = (None, 0.1, 0.25, 1 / 3, 2.0)
_DAY = datetime(2026, 1, 1)
_RANGE = (datetime(2026, 1, 1, 1), datetime(2026, 1, 1, 3))  # calls at hour 0 or 3: outside


def _reference(calls: list[tuple[str, str | None, float | None, int]],
               tools: list[tuple[str, str | None, str | None, str | None, int]],
               only_tool: str | None = None) -> dict[str, tuple[int, int, float | None]]:
    """The documented split, call by call, in Python: a call's cost over the tool calls
    with its (session, response), by (tool, MCP server) group; two rows for the calls that
    asked for none and the calls without a response id (left out under a tool filter)."""
    start, end = _RANGE
    in_range = [c for c in calls if start <= _DAY.replace(hour=c[3]) < end]
    groups: dict[tuple[str, str], dict[tuple[str | None, str | None], int]] = {}
    for sid, rid, tool, mcp, _ in tools:  # every tool call is within a day of the range
        if rid is not None:
            g = groups.setdefault((sid, rid), {})
            g[(tool, mcp)] = g.get((tool, mcp), 0) + 1
    out: dict[str, list[Any]] = {}
    for sid, rid, cost, _ in in_range:
        g = groups.get((sid, rid)) if rid is not None else None
        for (tool, _mcp), n in (g or {}).items():
            if only_tool is not None and tool != only_tool:
                continue
            row = out.setdefault(views.NONE_LABEL if tool is None else tool, [0, 0, None])
            row[0] += 1
            row[1] += n
            if cost is not None:
                row[2] = (row[2] or 0.0) + cost * n / sum(g.values())
    if only_tool is None:
        for name, picked in (
                (views.NO_TOOL_ASKED, [c for c in in_range
                                       if c[1] is not None and (c[0], c[1]) not in groups]),
                (views.NOT_LINKED, [c for c in in_range if c[1] is None])):
            costs = [c[2] for c in picked if c[2] is not None]
            if picked:
                out[name] = [len(picked), 0, sum(costs) if costs else None]
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(calls=st.lists(st.tuples(st.sampled_from(_SIDS), st.sampled_from(_RIDS),
                                st.sampled_from(_COSTS), st.integers(0, 3)), max_size=8),
       tools=st.lists(st.tuples(st.sampled_from(_SIDS), st.sampled_from(_RIDS),
                                st.sampled_from((None, "Bash", "Read")),
                                st.sampled_from((None, "m")), st.integers(0, 3)), max_size=10))
def test_the_split_equals_a_call_by_call_reference(
        tmp_path_factory: pytest.TempPathFactory,
        calls: list[tuple[str, str | None, float | None, int]],
        tools: list[tuple[str, str | None, str | None, str | None, int]]) -> None:
    """Duplicate response ids, calls without an id or a price, tool calls without a name,
    one tool under two MCP servers, calls outside the range: the one-pass SQL split (both
    parts, and under a tool filter) equals the reference row for row."""
    path = tmp_path_factory.mktemp("split") / "s.duckdb"
    with DuckDBStore(str(path)) as store:
        _check_split(store, calls, tools)


def test_clickhouse_splits_as_the_reference(tmp_path: Path) -> None:
    from agentkpi.store.clickhouse import ClickHouseStore

    rnd = random.Random(7)
    calls = [(rnd.choice(_SIDS), rnd.choice(_RIDS), rnd.choice(_COSTS), rnd.randint(0, 3))
             for _ in range(30)]
    tools = [(rnd.choice(_SIDS), rnd.choice(_RIDS), rnd.choice((None, "Bash", "Read")),
              rnd.choice((None, "m")), rnd.randint(0, 3)) for _ in range(40)]
    with ClickHouseStore(f"chdb://{tmp_path / 'ch'}") as store:
        _check_split(store, calls, tools)


def _check_split(store: Any, calls: list[tuple[str, str | None, float | None, int]],
                 tools: list[tuple[str, str | None, str | None, str | None, int]]) -> None:
    b = CanonicalBatch()
    for sid in _SIDS:
        b.add_session(session_id=sid, start_ts=_DAY)
    seq = 0
    for sid, rid, cost, hour in calls:
        b.add_event(session_id=sid, seq=seq, ts=_DAY.replace(hour=hour), event_type="llm_call",
                    response_id=rid, cost_usd=cost, file="f")
        seq += 1
    for sid, rid, tool, mcp, hour in tools:
        b.add_event(session_id=sid, seq=seq, ts=_DAY.replace(hour=hour), event_type="tool_call",
                    response_id=rid, tool=tool, mcp_server=mcp, file="f")
        seq += 1
    store.write_batch(b.session_table(), b.event_table(), [], replace_sessions=False)
    for only in (None, "Bash"):
        rows = views.cost_by_requested_tool(store, *_RANGE, {"tool": only} if only else None)
        got = {r["tool"]: (r["llm_calls"], r["tool_calls"], r["cost_usd"]) for r in rows}
        want = _reference(calls, tools, only)
        assert got.keys() == want.keys()
        for k, (n, asked, cost) in want.items():
            assert got[k][:2] == (n, asked)
            assert got[k][2] == (None if cost is None else pytest.approx(cost, abs=1e-12))


def _far_batch(far_hours: int) -> CanonicalBatch:
    """A call at 01:10 that asked for Read at 01:11 and for Bash ``far_hours`` later."""
    b = CanonicalBatch()
    b.add_session(session_id="s", start_ts=_DAY)
    ts = _DAY.replace(hour=1)
    b.add_event(session_id="s", seq=0, ts=ts.replace(minute=10), event_type="llm_call",
                response_id="r", cost_usd=1.0, file="f")
    b.add_event(session_id="s", seq=1, ts=ts.replace(minute=11), event_type="tool_call",
                response_id="r", tool="Read", file="f")
    b.add_event(session_id="s", seq=2, ts=ts.replace(minute=12) + timedelta(hours=far_hours),
                event_type="tool_call", response_id="r", tool="Bash", file="f")
    return b


@pytest.mark.parametrize("engine", ["duckdb", "clickhouse"])
@pytest.mark.parametrize("far_hours,want", [
    (5, {"Read": (1, 1, 0.5), "Bash": (1, 1, 0.5)}),  # within a day of the range: both
    (72, {"Read": (1, 1, 1.0)}),  # three days later: not where the split looks
])
def test_the_kept_calls_split_as_the_events_and_only_where_they_agree(
        tmp_path: Path, engine: str, far_hours: int,
        want: dict[str, tuple[int, int, float]]) -> None:
    """Whole hours read the calls' requested tools kept by ingest (``agg_call_tools``);
    a range in which a kept call has a tool call further than a day away (which the
    events path does not match) reads the events instead, so both give the same rows."""
    from agentkpi.store.clickhouse import ClickHouseStore

    store: Any = (DuckDBStore(str(tmp_path / "s.duckdb")) if engine == "duckdb"
                  else ClickHouseStore(f"chdb://{tmp_path / 'ch'}"))
    with store:
        b = _far_batch(far_hours)
        store.write_batch(b.session_table(), b.event_table(), [], replace_sessions=False)
        seen: list[str] = []
        fetch = store.fetch
        store.fetch = lambda sql, *a, **k: (seen.append(sql), fetch(sql, *a, **k))[1]
        for start, end, kept in ((_DAY, _DAY.replace(hour=2), far_hours < 24),
                                 (_DAY.replace(minute=30), _DAY.replace(hour=2), False)):
            seen.clear()
            rows = views.cost_by_requested_tool(store, start, end)
            got = {r["tool"]: (r["llm_calls"], r["tool_calls"], r["cost_usd"]) for r in rows}
            assert got == want
            assert any("FROM agg_call_tools e WHERE" in s and "WITH x AS" in s
                       for s in seen) is kept
