"""The benchmarks' child measurements: a command's own peak RSS, not its parent's.

A child forked from a large process keeps that process's resident set as its high-water
mark through exec, so ``wait4`` on a child of a benchmark that holds gigabytes reported
gigabytes (the "6 GB first listing of the 1M dataset" of BENCHMARKS §12c was the
benchmark's own size). ``benchmarks/_machine.measured_popen`` starts commands from a
small launcher instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

from _machine import measured, measured_popen  # noqa: E402


def test_a_small_command_run_by_a_large_process_reports_its_own_peak(tmp_path: Path) -> None:
    ballast = bytearray(600 * 1024 * 1024)  # this process: > 600 MB resident
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    cmd = [sys.executable, "-c", "x = b'x' * (40 * 1024 * 1024); print(len(x))"]

    report = str(tmp_path / "r.json")
    proc = measured_popen(cmd, report, stdout=subprocess.PIPE)
    out, _ = proc.communicate()
    m = measured(report)

    assert proc.returncode == 0 and out.strip() == str(40 * 1024 * 1024).encode()
    assert 40 <= m["peak_rss_mb"] < 300, m  # the command's 40 MB + Python, not our 600 MB
    assert m["cpu_s"] > 0 and m["wall_s"] > 0
    assert not os.path.exists(report)  # read once, then removed
    del ballast


def test_the_launcher_passes_on_the_exit_code(tmp_path: Path) -> None:
    report = str(tmp_path / "r.json")
    proc = measured_popen([sys.executable, "-c", "raise SystemExit(3)"], report)
    proc.wait()
    assert proc.returncode == 3
    assert measured(report)["peak_rss_mb"] > 0


def test_the_floor_benchmark_times_each_step_of_a_real_ingest(tmp_path: Path,
                                                             capsys: Any) -> None:
    """``bench_floor.py`` (BENCHMARKS §24): every step on real files and a real store, the
    events it stores being those of the store it was given."""
    from datetime import UTC, datetime

    import bench_floor

    from agentkpi.generate import generate_sessions
    from agentkpi.ingestion import ingest
    from agentkpi.store import DuckDBStore

    generate_sessions(tmp_path / "data", 40, datetime(2026, 5, 20, tzinfo=UTC), hours=2, seed=1)
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        ingest(str(tmp_path / "data"), st, workers=1)
        n_events = st.counts()["events"]
    assert bench_floor.main(["--source", str(tmp_path / "data"), "--store",
                             str(tmp_path / "s.duckdb"), "--workdir", str(tmp_path / "w"),
                             "--hours", "2", "--baseline-hours", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"40 files, {n_events:,} events")  # decoded = stored, here
    for step in ("read", "decode", "store", "store without data", "aggregates"):
        assert f"| {step} | " in out
    assert out.count("floor of a cold ingest doing") == 3
    assert not list((tmp_path / "w").glob("floor*.duckdb"))  # its stores removed
