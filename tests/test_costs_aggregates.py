"""The costs page from the aggregate tables equals the page computed from the raw events.

A real store (DuckDB file, chDB directory): the real Claude Code samples ingested (priced
from the offline price table, response ids linking calls to tools), plus a hand-made
batch with the cases the per-(session, model) and per-(session, agent) tables and the
MCP shortcut must get right:

* session ``long``: model ``m-a``, from 2026-03-01 22:10 to 03-02 01:50 UTC (four hours,
  two days), llm_calls with costs 0.1, 0.2, 0.4 and one with ``cost_usd`` NULL; events
  without a model (tool calls) take the session's model; a subagent ``helper`` runs one
  call of model ``m-b`` (cost 0.25);
* session ``short``: no session model, one hour, one call of ``m-b`` (0.5) and one of an
  unpriced model ``m-unpriced`` (NULL cost, 1,000 prompt tokens);
* price versions: ``long``'s calls are ``priced`` by ``v1`` and ``v2``, ``short``'s
  ``m-b`` call is a ``source`` cost;
* tools: ``mcp__github__search`` (server ``github``) twice in ``long`` (one failed run),
  ``mcp__jira__get`` (``jira``) once in ``short``, and ``Bash``/``Read`` (no server).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agentkpi import ingestion, views
from agentkpi.kpis import aggregates
from agentkpi.kpis.sql import Dim, KpiQuery, build
from agentkpi.model import CanonicalBatch
from agentkpi.queries import DIMENSIONS
from agentkpi.store import DuckDBStore
from agentkpi.store.base import Store
from agentkpi.store.clickhouse import ClickHouseStore

from .conftest import SHARED

CLAUDE = SHARED / "data" / "realworld" / "claude-code"
DAY = datetime(2026, 3, 1)


def _batch() -> CanonicalBatch:
    b = CanonicalBatch()
    b.add_session(session_id="long", start_ts=datetime(2026, 3, 1, 22, 10),
                  end_ts=datetime(2026, 3, 2, 1, 50), model="m-a", agent="main",
                  source="test", source_path="/t/long.jsonl", turns=3)
    b.add_session(session_id="short", start_ts=datetime(2026, 3, 1, 23, 5),
                  end_ts=datetime(2026, 3, 1, 23, 40), source="test",
                  source_path="/t/short.jsonl", turns=1)
    seq = iter(range(1, 1000))

    def ev(session: str, ts: datetime, kind: str, **values: Any) -> None:
        b.add_event(session_id=session, seq=next(seq), ts=ts, event_type=kind,
                    file=f"/t/{session}.jsonl", **values)

    t = datetime
    ev("long", t(2026, 3, 1, 22, 10), "llm_call", model="m-a", prompt_tokens=100,
       completion_tokens=10, cost_usd=0.1, cost_source="priced", price_version="v1",
       response_id="r1")
    ev("long", t(2026, 3, 1, 22, 11), "tool_call", tool="mcp__github__search",
       mcp_server="github", response_id="r1")
    ev("long", t(2026, 3, 1, 22, 12), "tool_output", tool="mcp__github__search",
       mcp_server="github", success=True)
    ev("long", t(2026, 3, 1, 23, 20), "llm_call", model="m-a", prompt_tokens=200,
       completion_tokens=20, cost_usd=0.2, cost_source="priced", price_version="v2",
       response_id="r2")
    ev("long", t(2026, 3, 1, 23, 21), "tool_call", tool="Bash", response_id="r2")
    ev("long", t(2026, 3, 1, 23, 21), "tool_call", tool="mcp__github__search",
       mcp_server="github", response_id="r2")
    ev("long", t(2026, 3, 1, 23, 22), "tool_output", tool="mcp__github__search",
       mcp_server="github", success=False)
    ev("long", t(2026, 3, 1, 23, 23), "tool_output", tool="Bash", success=True)
    ev("long", t(2026, 3, 2, 0, 30), "llm_call", model="m-b", agent="helper",
       prompt_tokens=50, completion_tokens=5, cost_usd=0.25, cost_source="priced",
       price_version="v2")
    ev("long", t(2026, 3, 2, 0, 31), "llm_call", model="m-a", prompt_tokens=70,
       completion_tokens=7)  # no cost, no price: NULL
    ev("long", t(2026, 3, 2, 1, 45), "llm_call", model="m-a", prompt_tokens=400,
       completion_tokens=40, cost_usd=0.4, cost_source="priced", price_version="v1",
       response_id="r3")
    ev("long", t(2026, 3, 2, 1, 46), "tool_call", tool="Read", response_id="r3")
    ev("short", t(2026, 3, 1, 23, 6), "llm_call", model="m-b", prompt_tokens=30,
       completion_tokens=3, cost_usd=0.5, cost_source="source", response_id="s1")
    ev("short", t(2026, 3, 1, 23, 7), "tool_call", tool="mcp__jira__get",
       mcp_server="jira", response_id="s1")
    ev("short", t(2026, 3, 1, 23, 8), "tool_output", tool="mcp__jira__get",
       mcp_server="jira", success=True)
    ev("short", t(2026, 3, 1, 23, 30), "llm_call", model="m-unpriced", prompt_tokens=1000,
       completion_tokens=0)
    return b


@pytest.fixture(scope="module", params=["duckdb", "clickhouse"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Store]:
    tmp = tmp_path_factory.mktemp(f"costs-{request.param}")
    st: Store = (DuckDBStore(str(tmp / "s.duckdb")) if request.param == "duckdb"
                 else ClickHouseStore(f"chdb://{tmp / 'ch'}"))
    try:
        ingestion.ingest(str(CLAUDE), st, fmt="claude-code", workers=1)
        b = _batch()
        st.write_batch(b.session_table(), b.event_table(),
                       [{"path": f"/t/{s}.jsonl", "fingerprint": "x", "source": "test",
                         "status": "ok"} for s in ("long", "short")], replace_sessions=True)
        assert st.aggregates == frozenset(aggregates.ALL_TABLES)
        yield st
    finally:
        st.close()


def _same(fast: dict[str, Any], slow: dict[str, Any]) -> None:
    """Equal pages. The cost split over requested tools reads the events on both paths,
    and its float sums are unordered (ClickHouse's threads may add them in another
    order from one run to the next): equal up to rounding."""
    split = fast.pop("by_requested_tool"), slow.pop("by_requested_tool")
    assert fast == slow
    assert [{**r, "cost_usd": pytest.approx(r["cost_usd"])} for r in split[0]] == split[1]


def _raw(st: Store, fn: Any) -> Any:
    saved, st.aggregates = st.aggregates, frozenset()  # type: ignore[misc]
    try:
        return fn()
    finally:
        st.aggregates = saved  # type: ignore[misc]


#: Whole data, the hand-made day alone, ranges that cut ``long`` (it starts before or
#: ends after them) and one inside one of its hours.
RANGES = [(None, None), (DAY, datetime(2026, 3, 3)),
          (datetime(2026, 3, 1, 23), datetime(2026, 3, 2, 1)),
          (datetime(2026, 3, 2), datetime(2026, 3, 2, 3)),
          (datetime(2026, 3, 1, 23), datetime(2026, 3, 2))]


@pytest.mark.parametrize("start,end", RANGES)
@pytest.mark.parametrize("grain,tz", [("hour", "UTC"), ("day", "UTC"), ("day", "Europe/Paris"),
                                      ("week", "UTC")])
def test_the_costs_page_from_aggregates_equals_the_raw_events(
        store: Store, start: datetime | None, end: datetime | None, grain: str,
        tz: str) -> None:
    fast = views.costs(store, start, end, grain=grain, tz=tz)
    slow = _raw(store, lambda: views.costs(store, start, end, grain=grain, tz=tz))
    _same(fast, slow)
    assert fast["by_model"] and fast["by_agent"]


@pytest.mark.parametrize("filters", [{"user": "(none)"}, {"model": "m-a"},
                                     {"mcp_server": "github"}, {"agent": "helper"}])
def test_filtered_costs_pages_equal_the_raw_events(store: Store,
                                                   filters: dict[str, str]) -> None:
    fast = views.costs(store, DAY, datetime(2026, 3, 3), filters=filters)
    slow = _raw(store, lambda: views.costs(store, DAY, datetime(2026, 3, 3),
                                           filters=filters))
    _same(fast, slow)


def test_the_hand_made_day_by_hand(store: Store) -> None:
    page = views.costs(store, DAY, datetime(2026, 3, 3), grain="day")
    models = {r["model"]: r for r in page["by_model"]}
    # m-a: 0.1 + 0.2 + 0.4 (the call without a cost adds nothing); m-b: long's subagent
    # call 0.25 and short's 0.5
    assert models["m-a"]["cost_usd"] == pytest.approx(0.7)
    assert models["m-a"]["llm_calls"] == 4
    assert models["m-b"]["cost_usd"] == pytest.approx(0.75)
    assert models["m-b"]["llm_calls"] == 2
    assert models["m-unpriced"]["unpriced_tokens"] == 1000
    assert models["m-unpriced"]["cost_usd"] == 0
    # long's call without a cost has 70 + 7 tokens no price covers
    assert page["unpriced"] == [{"model": "m-a", "unpriced_tokens": 77},
                                {"model": "m-unpriced", "unpriced_tokens": 1000}]
    agents = {r["agent"]: r for r in page["by_agent"]}
    assert agents["helper"]["cost_usd"] == pytest.approx(0.25)
    assert agents["main"]["cost_usd"] == pytest.approx(0.7)
    assert agents["(none)"]["cost_usd"] == pytest.approx(0.5)  # short has no agent
    assert [agents[a]["sessions"] for a in ("main", "helper", "(none)")] == [1, 1, 1]
    mcp = {r["mcp_server"]: r for r in page["by_mcp_server"]}
    assert set(mcp) == {"github", "jira"}
    assert (mcp["github"]["tool_calls_total"], mcp["github"]["tool_calls_failed"],
            mcp["github"]["sessions"]) == (2, 1, 1)
    assert (mcp["jira"]["tool_calls_total"], mcp["jira"]["tool_calls_failed"]) == (1, 0)
    versions = {(v["cost_source"], v["price_version"]): v["calls"]
                for v in page["price_versions"]}
    assert versions == {("priced", "v1"): 2, ("priced", "v2"): 2, ("source", None): 1,
                        ("unpriced", None): 2}
    series = {r["bucket"][:10]: r for r in page["by_model_series"]}
    # long's cost by UTC day: 0.1 + 0.2 on the 1st, 0.25 + 0.4 on the 2nd
    assert series["2026-03-01"]["m-a"] == pytest.approx(0.3)
    assert series["2026-03-02"]["m-a"] == pytest.approx(0.4)
    assert series["2026-03-01"]["m-b"] == pytest.approx(0.5)
    tools = {r["tool"]: r["cost_usd"] for r in page["by_requested_tool"]}
    assert tools["mcp__github__search"] == pytest.approx(0.1 + 0.2 / 2)
    assert tools["Bash"] == pytest.approx(0.1) and tools["Read"] == pytest.approx(0.4)


def test_the_costs_queries_read_the_session_tables(store: Store) -> None:
    """Whole sessions come from the per-(session, value) tables, the others from their
    hours: ``long`` is cut by the range, ``short`` lies inside it."""
    lo, hi = datetime(2026, 3, 1, 23), datetime(2026, 3, 2)
    for dim, table in (("model", "agg_session_model"), ("agent", "agg_session_agent")):
        d = DIMENSIONS[dim]
        for grain in (None, "day"):
            q = KpiQuery(start=lo, end=hi, kpis=["cost_usd", "sessions"], grain=grain,
                         by=[Dim(dim, d.expr, d.level)])
            main, _ = build(store.dialect, q, store.aggregates)
            assert f"FROM {table} a" in main and "FROM events" not in main
        # a filter on the dimension alone may keep several rows of a session: its hours
        q = KpiQuery(start=lo, end=hi, kpis=["cost_usd"], grain=None, by=[],
                     where=[f"{d.expr} = 'm-a'"])
        assert f"FROM {table}" not in build(store.dialect, q, store.aggregates)[0]


def test_a_session_row_changed_alone_refreshes_the_session_tables(tmp_path: Path) -> None:
    """The per-model table holds the session's model for events without one: a batch
    that only changes the session row recomputes it."""
    with DuckDBStore(str(tmp_path / "s.duckdb")) as st:
        b = _batch()
        st.write_batch(b.session_table(), b.event_table(), [], replace_sessions=False)
        again = CanonicalBatch()
        again.add_session(session_id="short", model="m-late")
        st.write_batch(again.session_table(), again.event_table(), [],
                       replace_sessions=False)
        def rows(sql: str) -> list[str]:
            return sorted(repr(tuple(sorted(v) if isinstance(v, list) else v for v in r))
                          for r in st.con.execute(sql).fetchall())

        for table in aggregates.ALL_TABLES:
            assert rows(f"SELECT * FROM {table}") == rows(
                aggregates.table_sql(st.dialect, table)), table
        page = views.costs(st, DAY, datetime(2026, 3, 3))
        assert any(r["model"] == "m-late" for r in page["by_model"])
        _same(page, _raw(st, lambda: views.costs(st, DAY, datetime(2026, 3, 3))))
