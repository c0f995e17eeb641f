"""End to end: SDK -> event log -> ``agentkpi rollup`` -> hourly CSV with the recorded numbers."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from agentkpi import rollups
from agentkpi.sdk import Recorder
from agentkpi.sdk.eventlog import list_segments

from .conftest import CONSTRUCTED

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("raise_errors")  # tests/conftest.py


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 20, 14, 5, 0)

    def __call__(self) -> datetime:
        return self.now


def record_known_hour(log: Path, **kw: object) -> None:
    """Two sessions in 14:00-15:00 using every Session helper, one more at 15:10."""
    clock = Clock()
    rec = Recorder(log, clock=clock, **kw)  # type: ignore[arg-type]

    def at(hh: int, mm: int, ss: int) -> None:
        clock.now = datetime(2026, 5, 20, hh, mm, ss)

    at(14, 0, 0)
    with rec.session(session_id="s1", user_id="alice", model="m-a", project="p1",
                     agent="coder") as s:
        at(14, 0, 10)
        s.user_message("list files")
        at(14, 0, 20)
        s.llm_call(prompt_tokens=1000, completion_tokens=100, cache_read_tokens=3000,
                   cache_creation_tokens=500, cost_usd=0.02, latency_ms=850)
        at(14, 0, 30)
        s.tool_call("bash", arguments={"cmd": "ls"})  # first action: 30 s after the start
        at(14, 0, 40)
        s.tool_output("bash", success=True, duration_ms=35)
        s.tool_call("research")
        s.tool_output("research", success=False)
        at(14, 1, 10)
        s.user_message("again")
        s.tool_call("research")
        s.tool_output("research", success=True)
        s.tool_call("bash")  # no output: a call, not a tool run
        s.job_submit("l4x4", job_id="j1")
        s.job_complete("l4x4", "completed", wall_time_s=1800, job_id="j1")  # 4 GPUs x 0.5 h
        s.job_submit("a10g-small", job_id="j2")
        s.job_complete("a10g-small", "error", wall_time_s=360, job_id="j2")  # 1 GPU x 0.1 h
        s.sandbox_create("cpu-basic")
        s.sandbox_create("t4-small")
        s.event("jobs_access_blocked", reason="not pro")
        s.event("pro_cta_click", source="banner")
        s.event("pro_cta_click", source="banner")
        s.event("pro_cta_click", source="limit")
        s.event("pro_conversion")
        s.event("credits_topped_up", amount=10)
        s.feedback("up")
        s.feedback("up")
        s.undo()
        s.error("Timeout", "the tool timed out")
        s.performance("tokens_per_s", 41.5, unit="tok/s")
        s.agent_execution("planner", duration_ms=120, success=True)
        s.checkpoint("c1")
        s.hook("pre_commit")
        s.command("/compact", success=True, duration_ms=5)
    at(14, 30, 0)
    with rec.session(session_id="s2", user_id="bob", model="m-b") as s:
        at(14, 30, 5)
        s.user_message("research this")
        at(14, 30, 10)
        s.llm_call(prompt_tokens=500, completion_tokens=50, cost_usd=0.01)
        at(14, 31, 10)
        s.tool_call("bash")  # first action: 70 s after the start
        s.tool_output("bash", success=True)
        s.feedback("down")
    at(15, 10, 0)  # next hour: not in the 14:00 row
    with rec.session(session_id="s3", user_id="carol") as s:
        s.llm_call(model="m3", prompt_tokens=999)
    rec.close()


#: The whole 14:00 row, worked out by hand from the calls above (seed-000 column order).
EXPECTED = {
    "bucket": "2026-05-20T14", "sessions": "2", "users": "2", "turns": "3", "llm_calls": "2",
    "tokens_prompt": "1500", "tokens_completion": "150", "tokens_cache_read": "3000",
    "tokens_cache_creation": "500", "cost_usd": "0.03", "cost_per_session_mean": "0.015",
    "cost_per_session_p50": "0.015", "cost_per_session_p95": "0.0195",  # 0.01 + 0.01 * .95
    "cache_hit_ratio": "0.6667",  # 3000 / (3000 + 1500)
    "tool_calls_total": "4", "tool_calls_succeeded": "3", "tool_calls_failed": "1",
    "errored_sessions": "1", "successful_sessions": "1", "regenerated_sessions": "1",
    "tool_success_rate": "0.75", "failure_rate": "0.5", "regenerate_rate": "0.5",
    "time_to_first_action_s_p50": "50.0", "time_to_first_action_s_p95": "68.0",  # 30, 70 s
    "thumbs_up": "2", "thumbs_down": "1", "hf_jobs_submitted": "2", "hf_jobs_succeeded": "1",
    "sandboxes_created": "2", "sandboxes_cpu": "1", "sandboxes_gpu": "1",
    "hf_jobs_blocked": "1", "pro_cta_clicks": "3", "pro_conversions": "1",
    "credits_topped_up": "1", "gpu_hours_by_flavor_json": '{"a10g-small": 0.1, "l4x4": 2.0}',
    "research_calls": "2", "sessions_with_research": "1",
    "research_calls_per_session_p50": "2.0", "research_calls_per_session_p95": "2.0",
    "distinct_tools_per_session_p50": "1.5", "distinct_tools_per_session_p95": "1.95",
    "tool_calls_per_session_p50": "2.5", "tool_calls_per_session_p95": "3.85",  # 4 and 1 calls
    "tool_calls_per_turn_p50": "1.5", "tool_calls_per_turn_p95": "1.95",  # 4/2 and 1/1
    "tool_calls_by_name_json": '{"bash": 3, "research": 2}',
    "sessions_using_tool_json": '{"bash": 2, "research": 1}',
    "sessions_by_model_json": '{"m-a": 1, "m-b": 1}',
    "pro_cta_by_source_json": '{"banner": 2, "limit": 1}',
}


def read_row(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        (row,) = list(csv.DictReader(f))
    return row


def test_rollup_library_call_reproduces_the_recorded_numbers(tmp_path: Path) -> None:
    log = tmp_path / "telemetry"
    record_known_hour(log)
    out = tmp_path / "out"
    rollups.rollup(str(out), source=str(log), store=str(tmp_path / "kpi.duckdb"),
                    start="2026-05-20T14", end="2026-05-20T16")
    row = read_row(out / "hourly" / "2026-05-20" / "14.csv")
    assert row == EXPECTED and list(row) == list(EXPECTED)
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
    assert row == EXPECTED


def test_rerun_after_rotation_does_not_double_count(tmp_path: Path) -> None:
    """A live segment ingested once, then rotated into ``.gz``, must not be counted twice.

    Needs the store to drop rows of a plain segment that was replaced by its
    compressed twin (see docs/sdk.md, "Ingesting a live log").
    """
    log = tmp_path / "telemetry"
    record_known_hour(log, compression="gzip")
    store = str(tmp_path / "kpi.duckdb")
    out = tmp_path / "out"
    rollups.rollup(str(out), source=str(log), store=store,
                    start="2026-05-20T14", end="2026-05-20T15")
    (seg,) = list_segments(log)
    from agentkpi.sdk.eventlog import compress_segment

    compress_segment(seg.path, "gzip")   # what rotation does
    rollups.rollup(str(out), source=str(log), store=store,
                    start="2026-05-20T14", end="2026-05-20T15")
    row = read_row(out / "hourly" / "2026-05-20" / "14.csv")
    assert row == EXPECTED



def test_seed003_metric_files_roll_up_into_tool_and_error_kpis(tmp_path: Path) -> None:
    src = tmp_path / "analytics" / "metrics"
    src.mkdir(parents=True)
    (src / "metrics_20250731_231502.jsonl").write_bytes(
        (CONSTRUCTED / "CONSTRUCTED_shannon_metrics_20250731_231502.jsonl").read_bytes())
    out = tmp_path / "out"
    rollups.rollup(str(out), source=str(tmp_path / "analytics"),
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
    rollups.rollup(str(out), source=str(tmp_path / "monitoring"),
                    store=str(tmp_path / "kpi.duckdb"), at="2026-03-02T10")
    row = read_row(out / "hourly" / "2026-03-02" / "10.csv")
    assert (row["sessions"], row["llm_calls"]) == ("1", "0")
    # the file's models are per line: its synthetic session has none of its own
    assert json_field(row["sessions_by_model_json"]) == {"unknown": 1}
    assert (row["tokens_prompt"], row["tokens_completion"]) == ("812", "356")


def json_field(text: str) -> object:
    import json

    return json.loads(text)
