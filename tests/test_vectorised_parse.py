"""The vectorised parse (Arrow, :class:`agentkpi.quality.EventArrays`) gives exactly the rows
and the issue counts of the row-by-row parse it replaces, for any events; a session that
does not convert goes the row-by-row way; and a failure there costs only its own file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentkpi import ingestion
from agentkpi.model import EVENT_SCHEMA, CanonicalBatch, pair_tool_calls
from agentkpi.quality import Quality
from agentkpi.sources import session_dataset

# Values near every edge the two paths could disagree on: the types each column takes as
# they are, those it coerces (numeric strings, floats for ints, bools), the 64-bit and
# 2**53 limits, empty strings, nested values, and the timestamps Arrow parses (3 or 6
# digits, Z, offsets) next to those only Python does (space separator, 1-digit fraction,
# hour 24, 30 February, year 0, offsets past midnight of year 1 / 9999).
_STAMPS = ["2026-05-20T14:00:00Z", "2026-05-20T14:00:00.123+02:00",
           "2026-05-20T14:00:00.123456-05:30", "2026-05-20T14:00:00", "2026-05-20T14:00:00.5",
           "2026-05-20 14:00:00", "2026-05-20T24:00:00", "2026-02-30T10:00:00Z",
           "0000-01-01T00:00:00", "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00",
           "2026-05-20T23:59:60Z", "2026-05-20T14:00:00+24:00", "not-a-date", "", "1779285600"]
_scalar = (st.none() | st.booleans() | st.sampled_from([0, 1, 2, -1, 2**53 + 1, 2**63 - 1, 2**63,
                                                        -(2**63), 10**30])
           | st.integers(min_value=-(10**6), max_value=10**6)
           | st.sampled_from([0.0, -0.5, 12.5, 1e20, 9.2e18, 2.0**63, 1e-300])
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from(["", "12", "1.5", "true", "no", "abc", "bash", "mcp__hub__search"])
           | st.text(max_size=6))
_value = _scalar | st.lists(_scalar, max_size=2) | st.dictionaries(
    st.sampled_from(["a", "tool"]), _scalar, max_size=2)
_KEYS = ["tool", "success", "model", "prompt_tokens", "completion_tokens", "cache_read_tokens",
         "cache_creation_tokens", "cost_usd", "latency_ms", "duration_ms", "flavor",
         "final_status", "status", "wall_time_s", "rating", "source", "hardware",
         "error_type", "type", "error", "message", "agent_id", "agent", "tool_call_id",
         "call_id", "tool_use_id", "response_id", "other"]
_data = (st.dictionaries(st.sampled_from(_KEYS), _value, max_size=6)
         | st.none() | st.just({}) | st.lists(_scalar, max_size=2) | st.text(max_size=3))
_event = st.fixed_dictionaries({}, optional={
    "timestamp": st.sampled_from(_STAMPS) | st.none() | st.integers(0, 2**31),
    "event_type": st.sampled_from(["llm_call", "tool_call", "tool_output", "error",
                                   "feedback", "hf_job_complete", "made_up", ""]) | _scalar,
    "data": _data})
# Clean sessions (the usual case, which Arrow converts) as well as dirty ones.
_clean_event = st.fixed_dictionaries({
    "timestamp": st.sampled_from(_STAMPS[:5]),
    "event_type": st.sampled_from(["llm_call", "tool_call", "tool_output", "error"]),
    "data": st.fixed_dictionaries({}, optional={
        "tool": st.sampled_from(["bash", "read", ""]), "success": st.booleans(),
        "prompt_tokens": st.integers(0, 10**9), "cost_usd": st.floats(0, 10),
        "latency_ms": st.integers(0, 10**6) | st.floats(0, 1e6),
        "tool_call_id": st.sampled_from(["c1", "c2"]), "error": st.sampled_from(["boom", ""]),
        "message": st.just("later"), "status": st.just("ok"),
        "final_status": st.sampled_from(["done", ""])})})
_session = st.lists(_clean_event, max_size=6) | st.lists(_event | _clean_event, max_size=6)


def _one_by_one(sessions: list[list[Any]]) -> tuple[pa.Table, Quality]:
    """The rows and issues of the row-by-row path (what ingest did before)."""
    q = Quality()
    batch = CanonicalBatch()
    for i, events in enumerate(sessions):
        session_dataset.add_events(batch, f"s{i}", events, f"/d/s{i}.jsonl", q)
    return batch.event_table(), q


def _vectorised(sessions: list[list[Any]]) -> tuple[pa.Table, Quality]:
    """The same sessions through the batch's deferred (vectorised) parse, one Quality per
    file merged in file order, as ingestion does."""
    batch = CanonicalBatch()
    qs = []
    for i, events in enumerate(sessions):
        qs.append(Quality())
        batch.deferred.append((session_dataset._resolve, session_dataset.EventBlock(
            f"s{i}", f"/d/s{i}.jsonl", events, qs[-1])))
    assert batch.resolve() == {}
    table = batch.event_table()
    q = Quality()
    for one in qs:
        q.merge(one)
    return table, q


def _same(a: pa.Table, b: pa.Table) -> None:
    assert a.schema == b.schema == EVENT_SCHEMA
    for name in a.column_names:
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        assert x == y, name


_EDGES = [[{"timestamp": t, "event_type": "tool_output",
            "data": {"tool": "", "tool_call_id": "c1", "prompt_tokens": 12.5}} for t in _STAMPS],
          [{"timestamp": "2026-05-20T13:00:00Z", "event_type": "tool_call",
            "data": {"tool": "bash", "tool_call_id": "c1"}}, {"data": []}, {"data": "x"},
           {"event_type": "error", "data": {"type": "E", "error": "", "message": "m"}}]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_session, min_size=1, max_size=40))
@example(_EDGES)
@example([[{"timestamp": t}] for t in _STAMPS])
def test_the_vectorised_parse_gives_the_rows_and_issues_of_the_row_by_row_one(
        sessions: list[list[Any]]) -> None:
    (slow, q_slow), (fast, q_fast) = _one_by_one(sessions), _vectorised(sessions)
    _same(slow, fast)
    assert q_fast.counts == q_slow.counts
    assert q_fast.examples == q_slow.examples
    # and pairing tool outputs with their calls gives the same completions on both
    paired_slow, n_slow = pair_tool_calls(slow)
    paired_fast, n_fast = pair_tool_calls(fast)
    assert n_slow == n_fast
    _same(paired_slow, paired_fast)


def test_clean_sessions_are_converted_by_arrow_and_odd_ones_one_by_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path really runs (a regression to row by row would pass the test above):
    the row-by-row function sees only the session holding a value to coerce."""
    seen: list[str] = []
    original = session_dataset.add_events

    def spy(batch: CanonicalBatch, session_id: str, *rest: Any) -> None:
        seen.append(session_id)
        original(batch, session_id, *rest)

    monkeypatch.setattr(session_dataset, "add_events", spy)
    clean = [{"timestamp": "2026-05-20T14:00:00Z", "event_type": "llm_call",
              "data": {"model": "m", "prompt_tokens": 10}}]
    odd = [{"timestamp": "2026-05-20T14:00:00Z", "event_type": "llm_call",
            "data": {"model": "m", "prompt_tokens": "10"}}]  # a numeric string: coerced
    sessions = [clean] * 40 + [odd] + [clean] * 40
    table, q = _vectorised(sessions)
    assert seen == ["s40"]
    assert table.num_rows == 81
    assert table.column("prompt_tokens").to_pylist() == [10] * 81
    assert table.column("session_id").to_pylist() == [f"s{i}" for i in range(81)]
    assert not q.counts


def _write(root: Path, sid: str, events: list[Any]) -> str:
    day = root / "sessions" / "2026-05-20"
    day.mkdir(parents=True, exist_ok=True)
    path = day / f"{sid}.jsonl"
    path.write_text(json.dumps({"session_id": sid, "user_id": "u",
                                "session_start_time": "2026-05-20T14:00:00+00:00",
                                "events": json.dumps(events)}) + "\n")
    return str(path)


def test_a_session_whose_events_fail_costs_only_its_file(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection at the row-by-row path (an importer bug, which no real input is
    known to trigger): the file is skipped and reported as the importer's failure, its
    session row goes with its events, the ledger says so, and every other file is kept."""
    ev = [{"timestamp": "2026-05-20T14:00:00Z", "event_type": "tool_call",
           "data": {"tool": "bash"}}]
    bad = [{"timestamp": "2026-05-20T14:00:00Z", "event_type": "tool_call",
            "data": {"tool": 5}}]  # not a string: goes row by row, where the bug is
    paths = [_write(tmp_path, "a", ev), _write(tmp_path, "b", bad), _write(tmp_path, "c", ev)]
    original = session_dataset.add_events

    def buggy(batch: CanonicalBatch, session_id: str, *rest: Any) -> None:
        if session_id == "b":
            raise RuntimeError("injected")
        original(batch, session_id, *rest)

    monkeypatch.setattr(session_dataset, "add_events", buggy)
    sessions, events, ledger, q = ingestion._parse_paths(
        "session_dataset", ingestion._local_fs(), [(p, "fp") for p in paths])
    assert sessions.column("session_id").to_pylist() == ["a", "c"]
    assert events.column("session_id").to_pylist() == ["a", "c"]
    assert [(r["status"], r["n_sessions"], r["n_events"]) for r in ledger] == [
        ("ok", 1, 1), ("skipped", 0, 0), ("ok", 1, 1)]
    assert "RuntimeError: injected" in ledger[1]["reason"]
    assert [s["path"] for s in q.skipped] == [paths[1]]
    assert q.counts["file_unparseable"] == 1


def test_issue_examples_keep_file_order_across_the_deferred_work(tmp_path: Path) -> None:
    """The first example of an issue kind is the first file's, though a file's own notes
    (its session start) are made before and its events' notes after the whole batch."""
    one = _write(tmp_path, "a", [{"timestamp": "not-a-date", "event_type": "feedback"}])
    two = tmp_path / "sessions" / "2026-05-20" / "b.jsonl"
    two.write_text(json.dumps({"session_id": "b", "session_start_time": "bad",
                               "events": []}) + "\n")
    _, _, _, q = ingestion._parse_paths("session_dataset", ingestion._local_fs(),
                                        [(one, "x"), (str(two), "y")])
    assert q.counts["ts_unparseable"] == 2
    assert q.examples["ts_unparseable"] == f"{one}: events[0]"


def test_importing_the_ingest_path_does_not_import_pandas() -> None:
    """pyarrow imports pandas (0.2-0.5 s) the first time it converts a Python value; a
    module-level conversion in the ingest path (the vectorised parse's timestamp bounds
    once did it) puts that in every cron run's start-up, before `without_pandas` runs."""
    import subprocess
    import sys

    code = ("import sys, agentkpi.cli.core, agentkpi.ingestion, agentkpi.rollups, "
            "agentkpi.sources, agentkpi.store.duckdb; print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
