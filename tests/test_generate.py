"""The session-dataset generator and the seed-approach baseline."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentkpi.generate import INJECTION_KINDS, append_hour, generate_sessions

from .conftest import CONSTRUCTED

REPO = Path(__file__).resolve().parents[1]
START = datetime(2026, 5, 20, tzinfo=UTC)

_spec = importlib.util.spec_from_file_location("baseline_seed",
                                               REPO / "benchmarks" / "baseline_seed.py")
baseline_seed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(baseline_seed)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted((root / "sessions").rglob("*.jsonl"))}


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    a = generate_sessions(tmp_path / "a", 1200, START, hours=6, seed=7)
    b = generate_sessions(tmp_path / "b", 1200, START, hours=6, seed=7, workers=2)
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(fa) == 1200
    assert fa == fb
    assert (a.n_events, a.bytes) == (b.n_events, b.bytes)
    generate_sessions(tmp_path / "c", 200, START, hours=6, seed=8)
    assert not set(_files(tmp_path / "c")) & set(fa)  # another seed, other sessions


def test_clean_rows_have_the_real_shape(tmp_path: Path) -> None:
    res = generate_sessions(tmp_path, 2000, START, hours=48, seed=0)
    assert res.n_sessions == res.n_files == 2000
    assert 20 <= res.n_events / res.n_sessions <= 30
    assert 4_000 <= res.bytes / res.n_files <= 9_000
    assert res.injected == {}
    assert START <= res.first_event < START + timedelta(hours=1)
    assert res.last_event > START + timedelta(hours=48)  # long-running sessions
    types: set[str] = set()
    tools_called: set[str] = set()
    outputs_without_call = 0
    no_user = crossing_midnight = 0
    for name, body in _files(tmp_path).items():
        assert body.endswith(b"\n") and body.count(b"\n") == 1
        row = json.loads(body)
        start = datetime.fromisoformat(row["session_start_time"])
        assert start.utcoffset() == timedelta(0)
        assert datetime.fromisoformat(row["session_end_time"]).tzinfo is None
        assert START <= start < START + timedelta(hours=48)
        assert name == f"sessions/{start.date().isoformat()}/{row['session_id']}.jsonl"
        no_user += "user_id" not in row
        for key in ("messages", "events", "tools"):
            assert isinstance(row[key], str)
        msgs = json.loads(row["messages"])
        assert any(m["role"] == "user" for m in msgs)
        events = json.loads(row["events"])
        calls = set()
        for ev in events:
            types.add(ev["event_type"])
            ts = datetime.fromisoformat(ev["timestamp"])
            assert ts >= start
            if ev["event_type"] == "tool_call":
                calls.add(ev["data"]["tool_call_id"])
                tools_called.add(ev["data"]["tool"])
            if ev["event_type"] == "tool_output" and ev["data"]["tool_call_id"] not in calls:
                assert ev["data"]["tool"] == "hf_jobs"
                outputs_without_call += 1
            if ev["event_type"] == "llm_call":
                d = ev["data"]
                assert d["total_tokens"] == (d["prompt_tokens"] + d["completion_tokens"]
                                             + d["cache_read_tokens"])
        crossing_midnight += datetime.fromisoformat(events[-1]["timestamp"]).date() != start.date()
    assert 100 <= no_user <= 320
    assert crossing_midnight > 0
    assert outputs_without_call > 0
    assert {"research", "bash", "read", "edit", "web_search"} <= tools_called
    assert {"ready", "processing", "llm_call", "assistant_stream_end", "tool_call",
            "tool_output", "tool_log", "approval_required", "tool_state_change",
            "hf_job_submit", "hf_job_complete", "error", "undo_complete", "feedback",
            "turn_complete", "shutdown", "sandbox_create", "pro_cta_click"} <= types


@pytest.mark.parametrize("seed", [3, 11])
def test_dirty_injects_every_kind(tmp_path: Path, seed: int) -> None:
    res = generate_sessions(tmp_path, 1500, START, hours=4, seed=seed, dirty=True)
    assert set(res.injected) == set(INJECTION_KINDS)
    assert all(v >= 1 for v in res.injected.values())
    again = generate_sessions(tmp_path / "again", 1500, START, hours=4, seed=seed, dirty=True)
    assert again.injected == res.injected
    files = _files(tmp_path)
    assert _files(tmp_path / "again") == files
    empty = bad_json = bad_messages = events_number = events_null = 0
    seen = {"ts_z": 0, "ts_garbage": 0, "ts_missing": 0, "abc": 0, "offset": 0}
    n_events = 0
    for body in files.values():
        if not body:
            empty += 1
            continue
        try:
            row = json.loads(body)
        except ValueError:
            bad_json += 1
            continue
        try:
            json.loads(row["messages"])
        except ValueError:
            bad_messages += 1
        if row["events"] is None:
            events_null += 1
            continue
        if isinstance(row["events"], int):
            events_number += 1
            continue
        events = json.loads(row["events"])
        n_events += len(events)
        for ev in events:
            ts = ev.get("timestamp")
            if ts is None:
                seen["ts_missing"] += 1
            elif ts == "not-a-date":
                seen["ts_garbage"] += 1
            elif ts.endswith("Z"):
                seen["ts_z"] += 1
            elif ts.endswith(("+02:00", "-05:00")):
                seen["offset"] += 1
            if ev["event_type"] == "llm_call" and isinstance(ev["data"], dict):
                seen["abc"] += "abc" in ev["data"].values()
    inj = res.injected
    assert empty == inj["file_empty"]
    assert bad_json == inj["file_truncated"]
    assert bad_messages == inj["messages_bad_json"]
    assert events_number == inj["events_number"]
    assert events_null == inj["events_null"]
    assert seen["ts_missing"] == inj["ts_missing"]
    assert seen["ts_garbage"] == inj["ts_garbage"]
    assert seen["ts_z"] == inj["ts_z"]
    assert seen["offset"] == inj["ts_other_offset"]
    assert seen["abc"] == inj["number_garbage"]
    assert n_events == res.n_events


def test_append_hour_adds_new_sessions_only(tmp_path: Path) -> None:
    generate_sessions(tmp_path, 300, START, hours=2, seed=0)
    before = _files(tmp_path)
    hour = START + timedelta(hours=2)
    res = append_hour(tmp_path, hour, 50, seed=0)
    after = _files(tmp_path)
    assert res.n_sessions == 50 and len(after) == 350
    assert all(after[k] == v for k, v in before.items())
    for name in set(after) - set(before):
        row = json.loads(after[name])
        assert hour <= datetime.fromisoformat(row["session_start_time"]) < hour + timedelta(hours=1)
    append_hour(tmp_path, hour, 50, seed=0)  # deterministic: same files again
    assert _files(tmp_path) == after


def _golden_dir(tmp_path: Path) -> Path:
    day = tmp_path / "sessions" / "2026-05-20"
    day.mkdir(parents=True)
    for src in sorted(CONSTRUCTED.glob("CONSTRUCTED_session_row_*.jsonl")):
        sid = json.loads(src.read_text().splitlines()[0])["session_id"]
        shutil.copy(src, day / f"{sid}.jsonl")
    return tmp_path


def test_baseline_matches_golden_hour(tmp_path: Path) -> None:
    root = _golden_dir(tmp_path)
    hour = datetime(2026, 5, 20, 14, tzinfo=UTC)
    rows = baseline_seed.baseline_rollup(root, [hour - timedelta(hours=1), hour])
    assert list(rows) == [hour]
    row = rows[hour]
    with open(CONSTRUCTED / "CONSTRUCTED_hourly_2026-05-20_14.csv", newline="") as fh:
        golden = next(csv.DictReader(fh))
    assert golden.pop("bucket") == "2026-05-20T14"
    assert {k: str(row[k]) for k in golden} == golden
    assert row["pro_cta_by_source_json"] == "{}"


def test_baseline_survives_dirty_data(tmp_path: Path) -> None:
    generate_sessions(tmp_path, 400, START, hours=2, seed=5, dirty=True)
    rows = baseline_seed.baseline_rollup(tmp_path, [START, START + timedelta(hours=1)])
    assert set(rows) == {START, START + timedelta(hours=1)}
    assert rows[START]["sessions"] > 50
