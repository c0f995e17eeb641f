"""A tool_output that names no tool is paired with its tool_call by ``tool_call_id``.

In every importer (the ingest pairs the rows of every source): the output gets the
call's tool name, so the by-tool page counts its run and its success.
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


WRITERS = {"session_dataset": _session_dataset, "eventlog": _eventlog}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_outputs_take_their_name_from_their_call(tmp_path: Path, fmt: str) -> None:
    WRITERS[fmt](tmp_path / "src")
    store = tmp_path / "s.duckdb"
    with DuckDBStore(store) as st:
        ingest(str(tmp_path / "src"), st, fmt=fmt, workers=1)
        rows = st.sql("SELECT tool, duration_ms, success FROM events WHERE "
                      "event_type = 'tool_output' ORDER BY tool_call_id").to_pylist()
    assert rows == [{"tool": "bash", "duration_ms": None, "success": True},
                    {"tool": "grep", "duration_ms": 700.0, "success": False}]
    t = query(metrics=["tool_calls_total", "tool_calls_succeeded"], grain=None, by=["tool"],
              start="2026-05-20", end="2026-05-21", store=str(store)).to_pylist()
    by_tool = {r["tool"]: (r["tool_calls_total"], r["tool_calls_succeeded"]) for r in t}
    assert by_tool == {"bash": (1, 1), "grep": (1, 0)}
