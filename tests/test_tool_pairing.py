"""A tool_output that names no tool or carries no duration is paired with its tool_call
by ``tool_call_id``.

In every importer (the ingest pairs the rows of every source): the output gets the
call's tool name, so the by-tool page counts its run and its success, and, when it
carries no duration, its output time minus its call time as ``duration_ms``. Seed 002
records no tool runs, so it has no case here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentkpi.ingestion import ingest
from agentkpi.queries import query
from agentkpi.store import DuckDBStore


def _session_dataset(root: Path) -> None:
    events = [
        {"timestamp": "2026-05-20T10:00:00Z", "event_type": "tool_call",
         "data": {"tool": "bash", "tool_call_id": "c1"}},
        {"timestamp": "2026-05-20T10:00:02.5Z", "event_type": "tool_output",
         "data": {"tool_call_id": "c1", "success": True}},
        {"timestamp": "2026-05-20T10:01:00Z", "event_type": "tool_call",
         "data": {"tool": "grep", "tool_call_id": "c2"}},
        {"timestamp": "2026-05-20T10:01:01Z", "event_type": "tool_output",
         "data": {"tool_call_id": "c2", "success": False, "duration_ms": 700.0}},
    ]
    day = root / "sessions" / "2026-05-20"
    day.mkdir(parents=True)
    (day / "s1.jsonl").write_text(json.dumps({
        "session_id": "s1", "session_start_time": "2026-05-20T09:59:00Z",
        "events": json.dumps(events)}) + "\n")


def _eventlog(root: Path) -> None:
    lines = [
        {"seq": 0, "ts": "2026-05-20T10:00:00Z", "session_id": "s1",
         "event_type": "tool_call", "data": {"tool": "bash", "tool_call_id": "c1"}},
        {"seq": 1, "ts": "2026-05-20T10:00:02.500000Z", "session_id": "s1",
         "event_type": "tool_output", "data": {"tool_call_id": "c1", "success": True}},
        {"seq": 2, "ts": "2026-05-20T10:01:00Z", "session_id": "s1",
         "event_type": "tool_call", "data": {"tool": "grep", "tool_call_id": "c2"}},
        {"seq": 3, "ts": "2026-05-20T10:01:01Z", "session_id": "s1",
         "event_type": "tool_output",
         "data": {"tool_call_id": "c2", "success": False, "duration_ms": 700.0}},
    ]
    root.mkdir(parents=True)
    (root / "events-20260520T100000-1-0.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in lines))


def _seed003(root: Path) -> None:
    lines = [
        {"id": "a", "timestamp": "2026-05-20T10:00:00+00:00", "type": "tool_call",
         "session_id": "s1", "user_id": "u", "data": {"tool_name": "bash", "tool_call_id": "c1"},
         "metadata": {}},
        {"id": "b", "timestamp": "2026-05-20T10:00:02.500000+00:00", "type": "tool_use",
         "session_id": "s1", "user_id": None, "data": {"tool_call_id": "c1", "success": True},
         "metadata": {}},
        {"id": "c", "timestamp": "2026-05-20T10:01:00+00:00", "type": "tool_call",
         "session_id": "s1", "user_id": None, "data": {"tool_name": "grep", "tool_call_id": "c2"},
         "metadata": {}},
        {"id": "d", "timestamp": "2026-05-20T10:01:01+00:00", "type": "tool_use",
         "session_id": "s1", "user_id": None,
         "data": {"tool_call_id": "c2", "success": False, "duration_ms": 700.0}, "metadata": {}},
    ]
    (root / "metrics").mkdir(parents=True)
    (root / "metrics" / "metrics_20260520_100000.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in lines))


def _codex(root: Path) -> None:
    from tests.test_sources_codex import call, meta, output, rollout, write

    write(rollout(root, "019c0000-0000-7000-8000-000000000001"), [
        meta("2026-05-20T10:00:00Z", "019c0000-0000-7000-8000-000000000001"),
        call("2026-05-20T10:00:00Z", "c1", name="bash"),
        output("2026-05-20T10:00:02.500Z", "c1", "done"),
        call("2026-05-20T10:01:00Z", "c2", name="grep"),
        output("2026-05-20T10:01:01Z", "c2",
               json.dumps({"output": "", "metadata": {"exit_code": 1,
                                                      "duration_seconds": 0.7}})),
    ])


def _claude_code(root: Path) -> None:
    from tests.test_claude_code import _assistant, _result

    lines = [
        _assistant("m1", "r1", 5, ts="2026-05-20T10:00:00Z", blocks=[
            {"type": "tool_use", "id": "c1", "name": "bash", "input": {}}]),
        _result("c1", ts="2026-05-20T10:00:02.500Z"),
        _assistant("m2", "r2", 5, ts="2026-05-20T10:01:00Z", blocks=[
            {"type": "tool_use", "id": "c2", "name": "grep", "input": {}}]),
        _result("c2", error=True, ts="2026-05-20T10:01:00.700Z"),
    ]
    p = root / "projects" / "-w" / "s1.jsonl"
    p.parent.mkdir(parents=True)
    p.write_text("\n".join(lines) + "\n")


def _gemini_cli(root: Path) -> None:
    from tests.test_sources_gemini_cli import chats, gemini, header, tool, write

    write(chats(root) / "session-2026-05-20T10-00-0f0e0d0c.jsonl", [
        header(),
        gemini("g1", "2026-05-20T10:00:00.000Z",
               tools=[tool("c1", "bash", "success", ts="2026-05-20T10:00:02.500Z")]),
        gemini("g2", "2026-05-20T10:01:00.000Z",
               tools=[tool("c2", "grep", "error", ts="2026-05-20T10:01:00.700Z")]),
    ])


def _otel(root: Path) -> None:
    from tests.otlp_build import request, span, span_id, trace_id

    t = trace_id(7)
    root_span = span_id()
    spans = [span(t, root_span, None, "invoke_agent a", start_ms=0, dur_ms=70_000),
             span(t, span_id(), root_span, "execute_tool bash", start_ms=0, dur_ms=2500,
                  gen_ai__operation__name="execute_tool", gen_ai__tool__name="bash",
                  gen_ai__tool__call__id="c1"),
             span(t, span_id(), root_span, "execute_tool grep", start_ms=60_000, dur_ms=700,
                  status=2, gen_ai__operation__name="execute_tool", gen_ai__tool__name="grep",
                  gen_ai__tool__call__id="c2")]
    root.mkdir(parents=True)
    (root / "trace.json").write_text(json.dumps(request(spans)))


WRITERS = {"session_dataset": _session_dataset, "eventlog": _eventlog, "seed003": _seed003,
           "codex": _codex, "claude-code": _claude_code, "gemini-cli": _gemini_cli,
           "otel": _otel}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_outputs_take_their_name_and_latency_from_their_call(tmp_path: Path, fmt: str
                                                             ) -> None:
    WRITERS[fmt](tmp_path / "src")
    store = tmp_path / "s.duckdb"
    with DuckDBStore(store) as st:
        ingest(str(tmp_path / "src"), st, fmt=fmt, workers=1)
        rows = st.sql("SELECT tool, duration_ms, success FROM events WHERE "
                      "event_type = 'tool_output' ORDER BY tool_call_id").to_pylist()
    # bash: no duration on the output, 2.5 s after its call; grep: its own 700 ms
    assert rows == [{"tool": "bash", "duration_ms": 2500.0, "success": True},
                    {"tool": "grep", "duration_ms": 700.0, "success": False}]
    t = query(metrics=["tool_calls_total", "tool_calls_succeeded"], grain=None, by=["tool"],
              start="2025-10-01", end="2026-06-01", store=str(store)).to_pylist()
    by_tool = {r["tool"]: (r["tool_calls_total"], r["tool_calls_succeeded"]) for r in t
               if r["tool"] is not None}  # (model calls, in the transcript formats)
    assert by_tool == {"bash": (1, 1), "grep": (1, 0)}
