"""Monitor: seed-002 GenerationMonitor behaviour, with alerts that fire and exports
that keep metadata."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from agentkpi.monitor import Alert, Monitor, TokenUsageReport, percentile
from agentkpi.quality import Quality
from agentkpi.sdk.eventlog import read_events
from agentkpi.sources import seed002

from .conftest import file_size_limit

pytestmark = pytest.mark.usefixtures("raise_errors")  # tests/conftest.py


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 20, 14, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mon(tmp_path: Path, clock: Clock) -> Any:
    alerts: list[Alert] = []
    m = Monitor(tmp_path / "mon", alert_handlers=[alerts.append], metrics_interval=3600,
                alert_cooldown_seconds=3600, clock=clock)
    m.alerts = alerts  # type: ignore[attr-defined]
    yield m
    m.shutdown()


def healthy(m: Monitor, n: int = 20) -> None:
    for _ in range(n):
        m.track_generation(1.0, True, error=None, model_name="g", prompt_token_count=100,
                           completion_token_count=50, total_token_count=150,
                           conversation_length=1, finish_reason="STOP")


def unhealthy(m: Monitor, n: int = 20) -> None:
    for _ in range(n):
        m.track_generation(45.0, False, error="boom", model_name="g", prompt_token_count=5000,
                           completion_token_count=5000, total_token_count=10000,
                           conversation_length=3)


ALL_RULES = ["low_success_rate", "high_generation_time", "high_error_rate",
             "high_token_usage:prompt", "high_token_usage:completion",
             "high_token_usage:total", "long_conversations"]


def test_healthy_stream_raises_no_alert(mon: Any) -> None:
    healthy(mon)
    assert mon.check_alerts() == [] and mon.alerts == []


def test_all_seven_alerts_fire_on_a_bad_stream_with_seed_defaults(mon: Any) -> None:
    unhealthy(mon)
    fired = mon.check_alerts()
    assert [a.name for a in fired] == ALL_RULES
    assert [a.name for a in mon.alerts] == ALL_RULES
    assert {a.name: a.level for a in fired}["high_error_rate"] == "error"
    low = fired[0]
    assert low.message == "Success rate dropped to 0.0%"
    assert low.data["threshold"] == 0.8 and low.data["count"] == 20
    assert sorted(mon.active_alerts()) == sorted(ALL_RULES)


def test_thresholds_are_configurable(tmp_path: Path, clock: Clock) -> None:
    m = Monitor(tmp_path, clock=clock, metrics_interval=3600,
                alert_max_generation_time_seconds=0.5, alert_max_conversation_length_mean=5)
    try:
        healthy(m)
        assert [a.name for a in m.check_alerts()] == ["high_generation_time"]
    finally:
        m.shutdown()


def test_cooldown_stops_repeats_and_resolution_is_reported(mon: Any, clock: Clock) -> None:
    mon.alert_cooldown_seconds = 1.0
    unhealthy(mon, 5)
    assert len(mon.check_alerts()) == 7
    assert mon.check_alerts() == []          # still true, inside the cooldown
    time.sleep(1.05)
    assert len(mon.check_alerts()) == 7      # still true, cooldown over: reminded
    clock.advance(minutes=6)                 # the bad values leave the 5-minute window
    healthy(mon)
    resolved = mon.check_alerts()
    assert [a.name for a in resolved] == ALL_RULES
    assert all(a.resolved and a.level == "info" for a in resolved)
    assert mon.active_alerts() == []
    assert mon.check_alerts() == []          # resolved once only


def test_background_thread_evaluates_alerts(tmp_path: Path) -> None:
    got = threading.Event()
    seen: list[Alert] = []

    def handler(a: Alert) -> None:
        seen.append(a)
        got.set()

    m = Monitor(tmp_path, alert_handlers=[handler], metrics_interval=0.05)  # type: ignore[arg-type]
    try:
        m.record_metric("error_rate", 1.0)
        assert got.wait(5), "the periodic alert check never ran"
        assert seen[0].name == "high_error_rate"
    finally:
        m.shutdown()


def test_windowed_statistics_with_percentiles(mon: Any, clock: Clock) -> None:
    for v in (100.0, 100.0):
        mon.record_metric("latency", v)
    clock.advance(minutes=10)
    for v in range(1, 11):
        mon.record_metric("latency", float(v))
    assert mon.get_metrics("latency") == {"mean": 5.5, "min": 1.0, "max": 10.0, "count": 10,
                                          "p50": 5.5, "p95": pytest.approx(9.55)}
    assert mon.get_metrics("latency", timedelta(hours=1))["count"] == 12
    assert mon.get_metrics("unknown") == {"mean": 0.0, "min": 0.0, "max": 0.0, "count": 0,
                                          "p50": 0.0, "p95": 0.0}
    clock.advance(hours=1)
    assert mon.get_metrics("latency") == {}
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)


def test_metric_timestamp_from_metadata_is_respected(mon: Any, clock: Clock) -> None:
    mon.record_metric("x", 1.0, {"timestamp": clock.now - timedelta(hours=2)})
    mon.record_metric("x", 3.0, {"timestamp": clock.now.isoformat()})
    assert mon.get_metrics("x")["count"] == 1


def test_token_usage_by_model_and_periodic_callback(tmp_path: Path, clock: Clock) -> None:
    reports: list[TokenUsageReport] = []
    got = threading.Event()

    def cb(r: TokenUsageReport) -> None:
        reports.append(r)
        got.set()

    m = Monitor(tmp_path, clock=clock, token_usage_callback=cb,
                token_usage_callback_interval_seconds=0.05)
    try:
        m.track_generation(1, True, model_name="a", prompt_token_count=10,
                           completion_token_count=5, total_token_count=15)
        m.track_generation(1, True, model_name="b", prompt_token_count="7",
                           completion_token_count=None, total_token_count=7)
        m.track_evaluation(1, True, "judge", {"q": 1.0}, model_name="a", prompt_token_count=3)
        m.track_generation(1, True, prompt_token_count=1)
        r = m.get_total_token_usage()
        assert [(u.model_name, u.prompt_tokens, u.completion_tokens, u.total_tokens)
                for u in r.by_model] == [("a", 13, 5, 15), ("b", 7, 0, 7), ("unknown", 1, 0, 0)]
        assert (r.total_prompt_tokens, r.total_completion_tokens, r.total_tokens) == \
            (21, 5, 22)
        while not any(r.total_prompt_tokens == 21 for r in reports):  # a condition, no clock
            time.sleep(0.02)
        assert got.is_set()
        clock.advance(hours=1)
        assert m.get_total_token_usage(timedelta(minutes=5)).by_model == []
    finally:
        m.shutdown()


def test_exports_keep_metadata_columns(mon: Any, tmp_path: Path) -> None:
    mon.track_generation(2.0, True, model_name="g", prompt_token_count=10)
    mon.track_evaluation(1.5, True, "judge", {"coherence": {"score": 0.9, "feedback": "good"}})
    mon.record_metric("custom", 1.0, {"run": {"id": 7, "tag": "x"}})
    out = tmp_path / "out"

    mon.export_metrics(out / "m.csv", format="csv")
    with open(out / "m_evaluation_score_coherence.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"timestamp": rows[0]["timestamp"], "value": "0.9",
                     "metadata_evaluator_type": "judge", "metadata_feedback": "good"}]
    with open(out / "m_custom.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["metadata_run.id"], row["metadata_run.tag"]) == ("7", "x")

    mon.export_metrics(out / "m.parquet", format="parquet")
    t = pq.read_table(out / "m.parquet").to_pylist()
    tok = [r for r in t if r["metric_name"] == "prompt_token_count"]
    assert tok[0]["metadata_model_name"] == "g" and tok[0]["value"] == 10
    ev = [r for r in t if r["metric_name"] == "evaluation_time"][0]
    assert (ev["metadata_evaluator_type"], ev["metadata_success"]) == ("judge", True)

    mon.export_metrics(out / "m.xlsx", format="excel")
    wb = load_workbook(out / "m.xlsx")
    ws = wb["prompt_token_count"]
    header = [c.value for c in ws[1]]
    assert header == ["timestamp", "value", "metadata_model_name"]
    assert [c.value for c in ws[2]][1:] == [10, "g"]
    assert "model_usage_g" in wb.sheetnames   # ':' is not allowed in sheet names

    mon.export_metrics(out / "m.json", format="json")
    data = json.loads((out / "m.json").read_text())
    assert data["prompt_token_count"][0]["model_name"] == "g"
    with pytest.raises(ValueError, match="Unsupported format"):
        mon.export_metrics(out / "m.txt", format="txt")


def test_window_filters_exports(mon: Any, clock: Clock, tmp_path: Path) -> None:
    mon.record_metric("a", 1.0)
    clock.advance(hours=2)
    mon.record_metric("a", 2.0)
    mon.export_metrics(tmp_path / "w.json", window=timedelta(hours=1))
    assert [e["value"] for e in json.loads((tmp_path / "w.json").read_text())["a"]] == [2.0]


def test_seven_plots_are_written_as_png(mon: Any, tmp_path: Path) -> None:
    healthy(mon, 3)
    unhealthy(mon, 3)
    mon.track_evaluation(1.0, True, "judge", {"coherence": 0.8, "facts": 0.6})
    figs = mon.visualize_metrics(tmp_path / "plots", return_figures=True)
    names = {"success_error_rate", "generation_time", "total_token_count",
             "prompt_token_count", "completion_token_count", "evaluation_scores",
             "evaluation_time"}
    assert set(figs) == names
    for n in names:
        assert (tmp_path / "plots" / f"{n}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = mon.plot_metric("generation_time")
    assert fig.axes[0].get_title() == "generation_time Over Time"
    with pytest.raises(ValueError, match="not found"):
        mon.plot_metric("nope")


PLOTTING = r"""
import sys
from agentkpi.errors import OutputError
from agentkpi.monitor import Monitor

m = Monitor(sys.argv[1], metrics_interval=3600)
try:
    for i in range(20):
        m.track_evaluation(0.5 + i % 4, True, "judge", {"coherence": 0.8 - i / 100, "facts": 0.6})
    print(sorted(m.visualize_metrics(sys.argv[2], return_figures=True)))
except OutputError as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
finally:
    m.shutdown()
"""


def _visualize(log_dir: Path, save_dir: Path, limit: int | None = None
               ) -> subprocess.CompletedProcess[str]:
    """A real process: a Monitor with 20 evaluations draws two charts into ``save_dir``
    (evaluation_time ~17 KB, then evaluation_scores ~40 KB), its files limited to
    ``limit`` bytes (EFBIG as on a full disk)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-c", PLOTTING, str(log_dir), str(save_dir)],
                          capture_output=True, text=True, timeout=300, env=env,
                          preexec_fn=file_size_limit(limit) if limit else None)


def test_a_failed_visualize_leaves_no_partial_png_and_no_folder_it_made(tmp_path: Path
                                                                         ) -> None:
    """The second chart cannot be written: the first (complete) is not kept either, the
    folders made for save_dir are gone, the error names save_dir; an earlier run's PNGs
    stay whole (before: a truncated evaluation_scores.png next to evaluation_time.png)."""
    save_dir = tmp_path / "a" / "b" / "plots"
    r = _visualize(tmp_path / "log", save_dir, limit=30_000)
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith(f"cannot write the plots to {save_dir}: File too large"), \
        r.stderr
    assert r.stderr.count("\n") == 1 and "choose another save_dir" in r.stderr
    assert not (tmp_path / "a").exists()
    kept = tmp_path / "kept"
    r = _visualize(tmp_path / "log2", kept)
    assert r.returncode == 0 and "'evaluation_scores', 'evaluation_time'" in r.stdout, r.stderr
    before = {p.name: p.read_bytes() for p in kept.iterdir()}
    assert sorted(before) == ["evaluation_scores.png", "evaluation_time.png"]
    assert all(len(b) > 10_000 and b[:8] == b"\x89PNG\r\n\x1a\n" for b in before.values())
    r = _visualize(tmp_path / "log3", kept, limit=30_000)
    assert r.returncode == 3, r.stderr
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == before


def test_metrics_file_and_event_log_reach_the_store_formats(tmp_path: Path) -> None:
    d = tmp_path / "run"
    m = Monitor(d, metrics_interval=3600)
    m.track_generation(2.0, True, model_name="g", prompt_token_count=10,
                       completion_token_count=4, finish_reason="STOP")
    m.track_generation(3.0, False, error="rate limited", model_name="g")
    m.log_warning("careful", step=3)
    m.log_error("failed", error=ValueError("bad"))
    m.shutdown()
    lines = (d / "metrics.jsonl").read_text().splitlines()
    q = Quality()
    batch = seed002.parse_file(str(d / "metrics.jsonl"), (d / "metrics.jsonl").read_bytes(), q)
    assert batch.n_events == len(lines) == 10 and q.data_errors == 0
    events, bad = read_events(d / "events")
    types = [e["event_type"] for e in events]
    assert bad == 0
    assert types.count("llm_call") == 2 and types.count("error") == 1
    assert types[0] == "session_start" and types[-1] == "session_end"
    assert types.count("metric") == 10
    llm = [e for e in events if e["event_type"] == "llm_call"][0]["data"]
    assert (llm["model"], llm["prompt_tokens"], llm["latency_ms"]) == ("g", 10, 2000.0)
    log = (d / "monitor.log").read_text()
    assert '"careful"' in log and '"error_type": "ValueError"' in log


def test_a_failing_handler_does_not_stop_the_monitor(tmp_path: Path, clock: Clock) -> None:
    class Bad:
        def handle_metric(self, *a: Any) -> None:
            raise OSError("disk gone")

    def bad_alert(a: Alert) -> None:
        raise RuntimeError("pager down")

    m = Monitor(tmp_path, metric_handlers=[Bad()], alert_handlers=[bad_alert], clock=clock)
    try:
        m.record_metric("error_rate", 1.0)
        with pytest.warns(RuntimeWarning, match="pager down"):
            assert [a.name for a in m.check_alerts()] == ["high_error_rate"]
        assert m.get_metrics("error_rate")["count"] == 1
    finally:
        m.shutdown()
    assert m.handler_errors >= 2


def test_shutdown_is_graceful_and_idempotent(tmp_path: Path) -> None:
    m = Monitor(tmp_path, shutdown_timeout=5)
    for i in range(500):
        m.record_metric("x", float(i))
    m.shutdown()
    m.shutdown()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 500
    assert not any(w.is_alive() for w in m._workers)


def test_import_compatibility_with_the_seed_names() -> None:
    from agentkpi import Monitor as M  # noqa: N817 - short alias, compared below
    from agentkpi.monitor import (
        FileLogHandler,
        FileMetricHandler,
        GenerationMonitor,
        ModelTokenUsage,
    )

    assert GenerationMonitor is M
    assert ModelTokenUsage("m", 1, 2, 3).total_tokens == 3
    assert FileMetricHandler and FileLogHandler


def test_spreadsheet_exports_neutralise_formula_cells(mon: Any, tmp_path: Path) -> None:
    evil = '=HYPERLINK("http://x.example","click")'
    mon.record_metric("custom", 1.0, {"note": evil, "who": "@admin", "ok": "plain"})
    mon.export_metrics(tmp_path / "m.csv", format="csv")
    with open(tmp_path / "m_custom.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["metadata_note"], row["metadata_who"], row["metadata_ok"]) == (
        "'" + evil, "'@admin", "plain")
    mon.export_metrics(tmp_path / "m.xlsx", format="excel")
    ws = load_workbook(tmp_path / "m.xlsx")["custom"]
    assert [c.value for c in ws[1]] == ["timestamp", "value", "metadata_note", "metadata_ok",
                                        "metadata_who"]
    assert [c.value for c in ws[2]][2:] == ["'" + evil, "plain", "'@admin"]
    mon.export_metrics(tmp_path / "m.json", format="json")  # not a spreadsheet: kept as is
    assert json.loads((tmp_path / "m.json").read_text())["custom"][0]["note"] == evil
