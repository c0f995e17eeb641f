"""Claude Code transcripts: real samples with hand-checked totals, and every trap built.

Real files (../shared/data/realworld/claude-code/, provenance in its README):
* agent-aac57f5.jsonl — a subagent file: 15 usage lines, 3 unique responses;
  13,844 + 17,765 + 18,894 = 50,503 tokens (a naive sum of the lines is 240,157).
* tool_heavy.jsonl — a main transcript: 9 usage lines, 4 responses (msg …BN5jdsym
  streams 25 -> 173 output tokens); prompt 3+1+3+47 = 54, cache write
  7,883+208+8,490+1,115 = 17,696 (all 1-hour), cache read 17,915+25,798+18,014+26,504 =
  88,231, output 27+1+11+173 = 212; 6 tool calls, 6 results; 2 typed prompts.
* chat.jsonl — ccusage's minimal records with legacy costUSD 0.12 + 0.34 + 0.56.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agentkpi import pricing
from agentkpi.cli import main
from agentkpi.ingestion import ingest
from agentkpi.quality import Quality
from agentkpi.sources import by_name, claude_code
from agentkpi.store.duckdb import DuckDBStore as Store

from .conftest import SHARED

REAL = SHARED / "data" / "realworld" / "claude-code"
SUB_SESSION = "ae4a77f8-aedd-4bc1-888f-c94edc91af04"
MAIN_SESSION = "d6e0bada-1959-4eec-a9d2-0bfade768d8f"


def _tokens(rows: list[dict[str, Any]]) -> int:
    return sum((r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0)
               + (r["cache_read_tokens"] or 0) + (r["cache_creation_tokens"] or 0)
               for r in rows if r["event_type"] == "llm_call")


def _parse(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Quality]:
    q = Quality()
    b = claude_code.parse_file(str(path), path.read_bytes(), q)
    return b.event_table().to_pylist(), b.session_table().to_pylist(), q


def test_real_subagent_file_three_responses_50503_tokens_not_240157() -> None:
    ev, sess, q = _parse(REAL / "agent-aac57f5.jsonl")
    calls = [e for e in ev if e["event_type"] == "llm_call"]
    assert len(calls) == 3
    assert _tokens(ev) == 50_503
    assert q.audit["lines:assistant"] == 15 and q.audit["usage_lines_merged"] == 12
    assert {c["agent"] for c in calls} == {"aac57f5"}
    assert {c["session_id"] for c in calls} == {SUB_SESSION}
    # the main transcript is not in the sample, so the subagent is its own parent link
    assert {e["parent_id"] for e in ev} == {"aac57f5"}
    assert [c["cache_creation_tokens"] for c in calls] == [13_838, 1_598, 3_378]
    assert [c["cache_creation_1h_tokens"] for c in calls] == [0, 0, 0]
    tools = [e for e in ev if e["event_type"] == "tool_call"]
    outs = [e for e in ev if e["event_type"] == "tool_output"]
    assert sorted(t["tool"] for t in tools) == ["WebFetch"] * 6 + ["WebSearch"] * 6
    assert {o["tool_call_id"] for o in outs} == {t["tool_call_id"] for t in tools}
    assert all(o["success"] is True and o["tool"] in ("WebFetch", "WebSearch") for o in outs)
    # a subagent file adds to its parent's session without speaking for it
    assert sess[0]["session_id"] == SUB_SESSION and sess[0]["turns"] is None
    assert q.data_errors == 0


def test_real_main_transcript_buckets_tools_and_turns() -> None:
    ev, sess, q = _parse(REAL / "tool_heavy.jsonl")
    calls = [e for e in ev if e["event_type"] == "llm_call"]
    assert len(calls) == 4
    assert sum(c["prompt_tokens"] for c in calls) == 54
    assert sum(c["cache_creation_tokens"] for c in calls) == 17_696
    assert sum(c["cache_creation_1h_tokens"] for c in calls) == 17_696
    assert sum(c["cache_read_tokens"] for c in calls) == 88_231
    assert sum(c["completion_tokens"] for c in calls) == 212
    streamed = [c for c in calls if "BN5jdsym" in c["event_key"]]
    assert [c["completion_tokens"] for c in streamed] == [173]  # the largest snapshot
    assert all(c["cost_usd"] is None for c in calls)  # no cost in the file: ingest prices
    assert q.audit["usage_lines_merged"] == 5 and q.audit["lines_read"] == 39
    assert q.audit["lines:file-history-snapshot"] == 3
    tools = {e["tool_call_id"]: e["tool"] for e in ev if e["event_type"] == "tool_call"}
    assert sorted(tools.values()) == ["Bash", "Bash", "Glob", "Read", "WebFetch", "WebSearch"]
    outs = [e for e in ev if e["event_type"] == "tool_output"]
    assert len(outs) == 6 and all(o["tool"] == tools[o["tool_call_id"]] for o in outs)
    assert all(o["duration_ms"] is not None and o["duration_ms"] >= 0 for o in outs)
    assert {e["agent"] for e in ev} == {"main"} and {e["parent_id"] for e in ev} == {None}
    assert sess == [{
        "session_id": MAIN_SESSION, "user_id": None,
        "start_ts": sess[0]["start_ts"], "end_ts": sess[0]["end_ts"],
        "model": "claude-opus-4-6", "turns": 2, "project": "/home/marco/projects/spotter",
        "agent": "claude-code", "source": "claude-code",
        "source_path": str(REAL / "tool_heavy.jsonl"),
        "extra": '{"version":"2.1.38","branch":"master"}', "machine": None}]


def test_real_legacy_cost_is_the_sources(tmp_path: Path) -> None:
    tree = tmp_path / ".claude" / "projects" / "-p"
    tree.mkdir(parents=True)
    shutil.copy(REAL / "chat.jsonl", tree / "chat.jsonl")
    st = Store(tmp_path / "s.duckdb")
    r = ingest(str(tmp_path / ".claude"), st, fmt="claude_code", workers=1, machine="m1")
    rows = st.sql("SELECT cost_usd, cost_source FROM events ORDER BY ts").to_pylist()
    st.close()
    assert [x["cost_usd"] for x in rows] == [0.12, 0.34, 0.56]
    assert {x["cost_source"] for x in rows} == {"source"}
    assert r.quality.audit["source_cost_calls"] == 3


def _tree(tmp: Path, name: str = ".claude") -> Path:
    """A Claude Code config dir with the two real files where Claude Code puts them."""
    proj = tmp / name / "projects" / "-home-marco-projects-spotter"
    (proj / SUB_SESSION / "subagents").mkdir(parents=True)
    shutil.copy(REAL / "tool_heavy.jsonl", proj / f"{MAIN_SESSION}.jsonl")
    shutil.copy(REAL / "agent-aac57f5.jsonl",
                proj / SUB_SESSION / "subagents" / "agent-aac57f5.jsonl")
    return tmp / name


def _totals(st: Store) -> dict[str, Any]:
    return st.sql(
        "SELECT count(*) FILTER (WHERE event_type = 'llm_call') AS calls, "
        "sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0) + "
        "coalesce(cache_read_tokens, 0) + coalesce(cache_creation_tokens, 0)) AS tokens, "
        "count(*) FILTER (WHERE event_type = 'tool_output') AS outputs, "
        "round(sum(cost_usd), 9) AS cost FROM events").to_pylist()[0]


def test_tree_ingest_is_detected_priced_and_idempotent(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    st = Store(tmp_path / "s.duckdb")
    r = ingest(str(root), st, workers=1, machine="laptop")
    assert r.format == "claude-code" and r.files_read == 2
    t = _totals(st)
    assert t["calls"] == 7 and t["tokens"] == 106_193 + 50_503 and t["outputs"] == 18
    # every call priced from the table and stamped with its version
    assert st.sql("SELECT DISTINCT cost_source, price_version FROM events WHERE "
                  "event_type = 'llm_call'").to_pylist() == [
        {"cost_source": "priced", "price_version": pricing.PRICE_VERSION}]
    one = st.sql("SELECT cost_usd FROM events WHERE event_key = "
                 "'claude:msg_01NUXWeNeduGBJVib8gyo9kz'").column(0).to_pylist()
    # 1 in, 208 written (1 h), 25,798 read, 1 out on opus-4-6 ($5, $10, $0.50, $25 per MTok):
    # 5 + 2,080 + 12,899 + 25 = 15,009 -> $0.015009
    assert one == [pytest.approx(0.015009, abs=1e-12)]
    assert r.machines_seen == ["laptop"]
    assert r.quality.audit["usage_lines_merged"] == 17 and r.quality.audit["files"] == 2
    # a second run reads nothing and changes nothing
    r2 = ingest(str(root), st, workers=1, machine="laptop")
    assert r2.files_read == 0 and _totals(st) == t
    audit = st.sql("SELECT kind, sum(n) AS n FROM import_audit GROUP BY kind").to_pylist()
    assert {"kind": "usage_lines_merged", "n": 17} in audit
    st.close()


def test_two_machines_copies_count_once_and_deleted_files_stay(tmp_path: Path) -> None:
    a, b = _tree(tmp_path / "m1"), _tree(tmp_path / "m2")
    st = Store(tmp_path / "s.duckdb")
    ingest(str(a), st, workers=1, machine="m1")
    once = _totals(st)
    r = ingest(str(b), st, workers=1, machine="m2")
    assert _totals(st) == once
    assert r.quality.audit["duplicate_events_merged"] == 7 + 18 + 18  # calls, uses, results
    # machine 1 deletes its transcripts (Claude Code's 30-day cleanup); nothing is lost
    shutil.rmtree(a)
    shutil.rmtree(b)
    ingest(str(tmp_path), st, fmt="claude-code", workers=1, machine="m3")
    assert _totals(st) == once
    st.close()


def _line(**kw: Any) -> str:
    return json.dumps(kw, separators=(",", ":"))


def _assistant(mid: str | None, rid: str | None, out: int, *, ts: str = "2026-03-01T10:00:00Z",
               sid: str = "s1", blocks: list[Any] | None = None, model: str = "claude-opus-4-6",
               side: bool = False, **kw: Any) -> str:
    msg: dict[str, Any] = {"model": model, "role": "assistant",
                           "content": blocks or [{"type": "text", "text": "x"}],
                           "usage": {"input_tokens": 10, "output_tokens": out,
                                     "cache_read_input_tokens": 100,
                                     "cache_creation_input_tokens": 20,
                                     "cache_creation": {"ephemeral_5m_input_tokens": 15,
                                                        "ephemeral_1h_input_tokens": 5}}}
    if mid:
        msg["id"] = mid
    rec: dict[str, Any] = {"type": "assistant", "sessionId": sid, "timestamp": ts,
                           "cwd": "/w", "isSidechain": side, "message": msg, **kw}
    if rid:
        rec["requestId"] = rid
    return _line(**rec)


def _result(tid: str, error: bool | None = None, ts: str = "2026-03-01T10:00:02Z",
            sid: str = "s1") -> str:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tid, "content": "ok"}
    if error is not None:
        block["is_error"] = error
    return _line(type="user", sessionId=sid, timestamp=ts,
                 message={"role": "user", "content": [block]})


def _write(tmp: Path, rel: str, lines: list[str], tail: str = "\n") -> Path:
    p = tmp / ".claude" / "projects" / "-w" / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines) + tail)
    return p


def test_traps_in_one_file(tmp_path: Path) -> None:
    use = {"type": "tool_use", "id": "toolu_1", "name": "mcp__github__create_issue",
           "input": {}}
    use2 = {"type": "tool_use", "id": "toolu_2", "name": "Bash", "input": {}}
    p = _write(tmp_path, "s1.jsonl", [
        _line(type="user", sessionId="s1", timestamp="2026-03-01T09:59:59Z",
              message={"role": "user", "content": "fix it"}),
        _assistant("msg_a", "req_a", 3),                       # partial snapshot
        _assistant("msg_a", "req_a", 40, blocks=[use]),         # same response, full count
        _assistant("msg_a", "req_a", 40, blocks=[use]),         # the block line repeated
        _result("toolu_1", error=True),
        _assistant("msg_b", None, 7, blocks=[use2]),            # gateway: no requestId
        _assistant("msg_b", None, 7),
        _result("toolu_2", error=False),
        _assistant("msg_a", "req_replay", 40, side=True),       # sidechain replay of msg_a
        _assistant("msg_s", "req_s", 0, model="<synthetic>", isApiErrorMessage=True,
                   blocks=[{"type": "text", "text": "usage limit reached|1700000000"}]),
        _line(type="progress", sessionId="s1", timestamp="2026-03-01T10:00:03Z",
              data={"type": "agent_progress", "message": {"usage": {"input_tokens": 999}}}),
        "{not json",
        "[1, 2]",
        _assistant("msg_c", "req_c", 5, sid="s2"),              # a second session in the file
    ], tail='\n{"type":"assistant","sessionId":"s1","mess')  # torn last line
    ev, sess, q = _parse(p)
    calls = sorted((e for e in ev if e["event_type"] == "llm_call"), key=lambda e: e["seq"])
    assert [(c["event_key"], c["completion_tokens"], c["session_id"]) for c in calls] == [
        ("claude:msg_a", 40, "s1"), ("claude:msg_b", 7, "s1"), ("claude:msg_c", 5, "s2")]
    assert calls[0]["cache_creation_tokens"] == 20 and calls[0]["cache_creation_1h_tokens"] == 5
    assert q.audit["usage_lines_merged"] == 3 and q.audit["replays_merged"] == 1
    assert q.audit["synthetic_skipped"] == 1 and q.audit["usage_copies_ignored"] == 1
    assert q.audit["malformed_skipped"] == 3
    assert q.audit["malformed:bad_json"] == 2 and q.audit["malformed:not_object"] == 1
    assert q.audit["lines_read"] == 15
    outs = {e["tool_call_id"]: e for e in ev if e["event_type"] == "tool_output"}
    assert outs["toolu_1"]["success"] is False and outs["toolu_2"]["success"] is True
    assert outs["toolu_1"]["mcp_server"] == "github"
    assert outs["toolu_1"]["tool"] == "mcp__github__create_issue"
    assert outs["toolu_1"]["duration_ms"] == 2000.0
    calls_by_id = {e["tool_call_id"]: e for e in ev if e["event_type"] == "tool_call"}
    assert len(calls_by_id) == 2 and calls_by_id["toolu_2"]["mcp_server"] is None
    errors = [e for e in ev if e["event_type"] == "error"]
    assert len(errors) == 1 and "usage limit" in errors[0]["error_message"]
    assert {s["session_id"]: s["turns"] for s in sess} == {"s1": 1, "s2": 0}


def test_subagent_linked_to_its_task_call_and_a_replay_across_files(tmp_path: Path) -> None:
    main_lines = [
        _line(type="user", sessionId="s1", timestamp="2026-03-01T09:59:00Z",
              message={"role": "user", "content": "research"}),
        _assistant("msg_m", "req_m", 9, blocks=[{"type": "tool_use", "id": "toolu_task",
                                                  "name": "Task", "input": {}}]),
        _line(type="progress", sessionId="s1", timestamp="2026-03-01T10:00:01Z",
              parentToolUseID="toolu_task", data={"type": "agent_progress", "agentId": "abc"}),
    ]
    _write(tmp_path, "s1.jsonl", main_lines)
    _write(tmp_path, "s1/subagents/agent-abc.jsonl", [
        _assistant("msg_x", "req_x", 11, side=True, agentId="abc"),
        _assistant("msg_m", "req_replayed", 9, side=True, agentId="abc"),  # replay of main
    ])
    st = Store(tmp_path / "s.duckdb")
    ingest(str(tmp_path / ".claude"), st, workers=1)
    rows = st.sql("SELECT event_key, agent, parent_id, file FROM events WHERE event_type = "
                  "'llm_call' ORDER BY event_key").to_pylist()
    st.close()
    assert [(r["event_key"], r["agent"], r["parent_id"]) for r in rows] == [
        ("claude:msg_m", "main", None), ("claude:msg_x", "abc", "toolu_task")]
    assert rows[0]["file"].endswith("/s1.jsonl")  # the main agent's line won


def test_grown_file_is_reread_without_double_counting(tmp_path: Path) -> None:
    lines = [_assistant("msg_a", "req_a", 3)]
    p = _write(tmp_path, "s1.jsonl", lines)
    st = Store(tmp_path / "s.duckdb")
    ingest(str(tmp_path / ".claude"), st, workers=1)
    # the stream goes on: the same response's later line, then a new response
    with p.open("a") as fh:
        fh.write(_assistant("msg_a", "req_a", 30) + "\n" + _assistant("msg_b", "req_b", 4)
                 + "\n")
    r = ingest(str(tmp_path / ".claude"), st, workers=1)
    assert r.files_read == 1
    rows = st.sql("SELECT event_key, completion_tokens FROM events ORDER BY event_key"
                  ).to_pylist()
    st.close()
    assert rows == [{"event_key": "claude:msg_a", "completion_tokens": 30},
                    {"event_key": "claude:msg_b", "completion_tokens": 4}]


def test_huge_snapshot_lines_are_dropped_while_streaming(tmp_path: Path) -> None:
    big = '{"type":"file-history-snapshot","snapshot":"' + "x" * (3 << 20) + '"}'
    p = _write(tmp_path, "s1.jsonl", [big, _assistant("msg_a", "req_a", 3), big])
    ev, _sess, q = _parse(p)
    assert [e["event_key"] for e in ev] == ["claude:msg_a"]
    assert q.audit["lines:file-history-snapshot"] == 2 and q.audit["lines_read"] == 3


def test_unknown_model_unpriced_in_store_and_report(tmp_path: Path) -> None:
    _write(tmp_path, "s1.jsonl", [_assistant("msg_a", "req_a", 3, model="kimi-k2-gateway-x")])
    st = Store(tmp_path / "s.duckdb")
    r = ingest(str(tmp_path / ".claude"), st, workers=1)
    row = st.sql("SELECT cost_usd, cost_source FROM events").to_pylist()
    st.close()
    assert row == [{"cost_usd": None, "cost_source": None}]
    assert r.quality.audit["unpriced_tokens"] == 10 + 3 + 100 + 20
    assert r.to_dict()["issues"]["model_unpriced"] == 1


def test_format_names_and_default_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    assert by_name("claude_code") is by_name("claude-code") is claude_code
    a, b = _tree(tmp_path, "one"), tmp_path / "missing"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{a}, {b}")
    assert claude_code.default_roots() == [str(a), str(b)]
    store = tmp_path / "s.duckdb"
    res = CliRunner().invoke(main, ["ingest", "--format", "claude_code", "--store", str(store),
                                    "--machine", "box"])
    assert res.exit_code == 0, res.output
    assert "usage_lines_merged=17" in res.output
    st = Store(store, read_only=True)
    assert _totals(st)["tokens"] == 156_696
    assert st.sql("SELECT DISTINCT machine FROM sessions").column(0).to_pylist() == ["box"]
    st.close()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(b))
    res = CliRunner().invoke(main, ["ingest", "--format", "claude-code", "--store", str(store)])
    assert res.exit_code == 1 and "no claude-code data found" in res.output
    monkeypatch.delenv("CLAUDE_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert claude_code.default_roots() == [str(tmp_path / "home" / ".config" / "claude"),
                                           str(tmp_path / "home" / ".claude")]


def test_query_by_model_machine_agent_and_mcp_server(tmp_path: Path) -> None:
    import socket

    root = _tree(tmp_path)
    use = {"type": "tool_use", "id": "toolu_m", "name": "mcp__github__create_issue",
           "input": {}}
    _write(tmp_path, "s9.jsonl", [_assistant("msg_q", "req_q", 5, sid="s9", blocks=[use]),
                                  _result("toolu_m", error=True, sid="s9")])
    store = tmp_path / "s.duckdb"
    st = Store(store)
    r = ingest(str(root), st, workers=1)  # no --machine: the host name
    st.close()
    assert r.machines_seen == [socket.gethostname()]
    res = CliRunner().invoke(main, [
        "query", "--store", str(store), "--metrics", "llm_calls,cost_usd,unpriced_tokens",
        "--by", "model,machine", "--grain", "none", "--from", "2026-01-01", "--to",
        "2026-12-31", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    by_model = {x["model"]: x for x in rows}
    assert by_model["claude-opus-4-6"]["llm_calls"] == 5
    assert by_model["claude-sonnet-4-5-20250929"]["llm_calls"] == 3
    assert {x["machine"] for x in rows} == {socket.gethostname()}
    # (tool runs of the subagent's session, whose main file is not in the sample, have no model)
    assert all(x["unpriced_tokens"] == 0 and (x["cost_usd"] > 0) == (x["llm_calls"] > 0)
               for x in rows)
    res = CliRunner().invoke(main, [
        "query", "--store", str(store), "--metrics", "failure_count,tool_calls_total",
        "--by", "mcp_server", "--where", "mcp_server=github", "--grain", "none",
        "--from", "2026-01-01", "--to", "2026-12-31", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)[0]["failure_count"] == 1
    res = CliRunner().invoke(main, [
        "query", "--store", str(store), "--metrics", "llm_calls", "--by", "agent",
        "--grain", "none", "--from", "2026-01-01", "--to", "2026-12-31", "--format", "json"])
    assert {x["agent"]: x["llm_calls"] for x in json.loads(res.output)} == {
        "main": 5, "aac57f5": 3}


def test_run_report_carries_the_audit(tmp_path: Path) -> None:
    from agentkpi.rollups import rollup

    root = _tree(tmp_path)
    r = rollup(str(tmp_path / "out"), source=str(root), store=str(tmp_path / "s.duckdb"),
               daily="2026-02-10", workers=1, machine="ci-box")
    report = json.loads((tmp_path / "out" / "_reports" / "latest.json").read_text())
    ing = report["ingest"]
    assert ing["format"] == "claude-code" and ing["machine"] == "ci-box"
    assert ing["machines_seen"] == ["ci-box"] and ing["ran_at"]
    assert ing["audit"]["usage_lines_merged"] == 17 and ing["audit"]["lines_read"] == 79
    assert ing["audit"]["priced_calls"] == 7 and ing["price_version"] == pricing.PRICE_VERSION
    assert r.rows["2026-02-10"]["llm_calls"] == 4  # the subagent sample ran on 2026-02-12


@pytest.mark.clickhouse
def test_same_totals_on_clickhouse_and_copies_count_once(tmp_path: Path) -> None:
    from agentkpi.store.clickhouse import ClickHouseStore

    a, b = _tree(tmp_path / "m1"), _tree(tmp_path / "m2")
    with ClickHouseStore(f"chdb://{tmp_path / 'ch'}") as ch:
        ingest(str(a), ch, workers=1, machine="m1")
        r = ingest(str(b), ch, workers=1, machine="m2")
        got = ch.sql(
            "SELECT countIf(event_type = 'llm_call') AS calls, sum(coalesce(prompt_tokens, 0) "
            "+ coalesce(completion_tokens, 0) + coalesce(cache_read_tokens, 0) + "
            "coalesce(cache_creation_tokens, 0)) AS tokens, countIf(event_type = "
            "'tool_output') AS outputs, round(sum(cost_usd), 9) AS cost FROM events"
        ).to_pylist()[0]
    duck = Store(tmp_path / "s.duckdb")
    ingest(str(a), duck, workers=1, machine="m1")
    want = _totals(duck)
    duck.close()
    assert got == {**want, "calls": 7, "tokens": 156_696, "outputs": 18}
    assert r.quality.audit["duplicate_events_merged"] == 43


def test_subagent_linked_through_a_task_result_naming_it(tmp_path: Path) -> None:
    task = _line(type="user", sessionId="s1", timestamp="2026-03-01T10:00:05Z",
                 toolUseResult={"status": "completed", "agentId": "zz9"},
                 message={"role": "user", "content": [
                     {"type": "tool_result", "tool_use_id": "toolu_t2", "content": "done"}]})
    _write(tmp_path, "s1.jsonl", [_assistant("msg_m", "req_m", 9), task])
    for agent in ("zz9", "other"):
        _write(tmp_path, f"s1/subagents/agent-{agent}.jsonl",
               [_assistant(f"msg_{agent}", f"req_{agent}", 3, side=True, agentId=agent)])
    st = Store(tmp_path / "s.duckdb")
    ingest(str(tmp_path / ".claude"), st, workers=1)
    rows = st.sql("SELECT agent, parent_id FROM events WHERE agent <> 'main' ORDER BY agent"
                  ).to_pylist()
    st.close()
    assert rows == [{"agent": "other", "parent_id": "other"},
                    {"agent": "zz9", "parent_id": "toolu_t2"}]
