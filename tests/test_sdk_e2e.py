"""End to end: SDK -> event log -> ``agentkpi rollup`` -> hourly CSV with the recorded numbers."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from agentkpi import pipeline
from agentkpi.sdk import Recorder
from agentkpi.sdk.eventlog import list_segments

from .conftest import CONSTRUCTED

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _raise_recording_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTKPI_RAISE_ERRORS", "1")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 20, 14, 5, 0)

    def __call__(self) -> datetime:
        return self.now


def record_known_hour(log: Path, **kw: object) -> None:
    clock = Clock()
    rec = Recorder(log, clock=clock, **kw)  # type: ignore[arg-type]
    with rec.session(session_id="s1", user_id="alice", model="claude-sonnet-4") as s:
        s.user_message("list files")
        s.llm_call(model="claude-sonnet-4", prompt_tokens=1200, completion_tokens=80,
                   cache_read_tokens=900, cost_usd=0.004, latency_ms=850)
        s.tool_call("bash", arguments={"cmd": "ls"})
        s.tool_output("bash", success=True, duration_ms=35)
        s.feedback("up")
    clock.now = datetime(2026, 5, 20, 14, 30, 0)
    with rec.session(session_id="s2", user_id="bob", model="m2") as s:
        s.user_message("research this")
        s.user_message("and that")
        s.llm_call(model="m2", prompt_tokens=300, completion_tokens=20, cost_usd=0.0105)
        s.llm_call(model="m2", prompt_tokens=500, completion_tokens=30, cost_usd=0.0005)
        s.tool_call("research")
        s.tool_output("research", success=False)
        s.feedback("down")
    clock.now = datetime(2026, 5, 20, 15, 10, 0)  # next hour: not in the 14:00 row
    with rec.session(session_id="s3", user_id="carol") as s:
        s.llm_call(model="m3", prompt_tokens=999)
    rec.close()


def read_row(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        (row,) = list(csv.DictReader(f))
    return row


EXPECTED = {"bucket": "2026-05-20T14", "sessions": "2", "users": "2", "turns": "3",
            "llm_calls": "3",
            "tokens_prompt": "2000", "tokens_completion": "130", "tokens_cache_read": "900",
            "cost_usd": "0.015", "tool_calls_total": "2", "tool_calls_succeeded": "1",
            "tool_calls_failed": "1", "thumbs_up": "1", "thumbs_down": "1",
            "research_calls": "1"}


def test_rollup_library_call_reproduces_the_recorded_numbers(tmp_path: Path) -> None:
    log = tmp_path / "telemetry"
    record_known_hour(log)
    out = tmp_path / "out"
    pipeline.rollup(str(out), source=str(log), store=str(tmp_path / "kpi.duckdb"),
                    start="2026-05-20T14", end="2026-05-20T16")
    row = read_row(out / "hourly" / "2026-05-20" / "14.csv")
    assert {k: row[k] for k in EXPECTED} == EXPECTED
    row15 = read_row(out / "hourly" / "2026-05-20" / "15.csv")
    assert (row15["sessions"], row15["llm_calls"], row15["tokens_prompt"]) == ("1", "1", "999")


def test_rollup_cli_on_an_sdk_log(tmp_path: Path) -> None:
    log = tmp_path / "telemetry"
    record_known_hour(log)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "agentkpi", "rollup", "--source", str(log), "--target", str(out),
         "--from", "2026-05-20T14", "--to", "2026-05-20T15", "--store",
         str(tmp_path / "kpi.duckdb")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    row = read_row(out / "hourly" / "2026-05-20" / "14.csv")
    assert {k: row[k] for k in EXPECTED} == EXPECTED


def test_rerun_after_rotation_does_not_double_count(tmp_path: Path) -> None:
    """A live segment ingested once, then rotated into ``.gz``, must not be counted twice.

    Needs the store to drop rows of a plain segment that was replaced by its
    compressed twin (see docs/sdk.md, "Ingesting a live log").
    """
    log = tmp_path / "telemetry"
    record_known_hour(log, compression="gzip")
    store = str(tmp_path / "kpi.duckdb")
    out = tmp_path / "out"
    pipeline.rollup(str(out), source=str(log), store=store,
                    start="2026-05-20T14", end="2026-05-20T15")
    (seg,) = list_segments(log)
    from agentkpi.sdk.eventlog import compress_segment

    compress_segment(seg.path, "gzip")   # what rotation does
    pipeline.rollup(str(out), source=str(log), store=store,
                    start="2026-05-20T14", end="2026-05-20T15")
    row = read_row(out / "hourly" / "2026-05-20" / "14.csv")
    assert {k: row[k] for k in EXPECTED} == EXPECTED



def test_seed003_metric_files_roll_up_into_tool_and_error_kpis(tmp_path: Path) -> None:
    src = tmp_path / "analytics" / "metrics"
    src.mkdir(parents=True)
    (src / "metrics_20250731_231502.jsonl").write_bytes(
        (CONSTRUCTED / "CONSTRUCTED_shannon_metrics_20250731_231502.jsonl").read_bytes())
    out = tmp_path / "out"
    pipeline.rollup(str(out), source=str(tmp_path / "analytics"),
                    store=str(tmp_path / "kpi.duckdb"), at="2025-07-31T23")
    row = read_row(out / "hourly" / "2025-07-31" / "23.csv")
    assert {k: row[k] for k in ("sessions", "users", "tool_calls_total", "tool_calls_succeeded",
                                "tool_calls_failed", "errored_sessions", "llm_calls")} == {
        "sessions": "1", "users": "1", "tool_calls_total": "2", "tool_calls_succeeded": "1",
        "tool_calls_failed": "1", "errored_sessions": "1", "llm_calls": "0"}
    assert json_field(row["sessions_by_model_json"]) == {"claude-3-5-sonnet-20241022": 1}


def test_seed002_monitor_log_rolls_up_as_one_session(tmp_path: Path) -> None:
    run = tmp_path / "monitoring" / "run1"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_bytes(
        (CONSTRUCTED / "CONSTRUCTED_afterimage_metrics.jsonl").read_bytes())
    out = tmp_path / "out"
    pipeline.rollup(str(out), source=str(tmp_path / "monitoring"),
                    store=str(tmp_path / "kpi.duckdb"), at="2026-03-02T10")
    row = read_row(out / "hourly" / "2026-03-02" / "10.csv")
    assert (row["sessions"], row["llm_calls"]) == ("1", "0")
    assert json_field(row["sessions_by_model_json"]) == {"gemini-2.5-flash": 1}


def json_field(text: str) -> object:
    import json

    return json.loads(text)
