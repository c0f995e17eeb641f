"""``--quiet`` means the same on every command that has it: nothing on stdout or stderr
when the command succeeds, and still the one-line error (exit 1) when it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ev, write_session

HOUR = "2026-05-20T10"


def agentkpi(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTKPI_ALERT_RULES": ""}
    return subprocess.run([sys.executable, "-m", "agentkpi", *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_session(root, "s1", f"{HOUR}:00:00Z", [
        ev(f"{HOUR}:01:00Z", "llm_call", model="m", prompt_tokens=10, completion_tokens=5,
           cost_usd=0.25),
        ev(f"{HOUR}:02:00Z", "tool_call", tool="ls"),
        ev(f"{HOUR}:02:01Z", "tool_output", tool="ls", success=True)])
    return root


def test_quiet_commands_print_nothing_on_success(data: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "s.duckdb")
    loud = agentkpi("ingest", "--source", str(data), "--store", store)
    assert loud.returncode == 0, loud.stderr
    assert "1 file(s) read" in loud.stderr  # the summary that --quiet must drop
    (data / "sessions" / "2026-05-20" / "s1.jsonl").touch()  # read again below
    runs = {
        "ingest": ["ingest", "--source", str(data), "--store", store, "--quiet"],
        "ingest -q": ["ingest", "--source", str(data), "--store", store, "-q", "--rescan"],
        "rollup": ["rollup", "--source", str(data), "--target", str(tmp_path / "out"),
                   "--store", str(tmp_path / "r.duckdb"), "--datetime", HOUR, "--quiet"],
        "report": ["report", "--store", store, "--out", str(tmp_path / "r.md"), "--quiet"],
        "export": ["export", "events", "--store", store, "--out", str(tmp_path / "e.csv"),
                   "--quiet"],
    }
    for name, args in runs.items():
        r = agentkpi(*args)
        assert r.returncode == 0, (name, r.stderr)
        assert (r.stdout, r.stderr) == ("", ""), name
    # ... and each did its work
    assert (tmp_path / "out" / "hourly" / "2026-05-20" / "10.csv").is_file()
    assert "# " in (tmp_path / "r.md").read_text()
    assert len((tmp_path / "e.csv").read_text().splitlines()) == 4  # header + 3 events


def test_quiet_still_reports_an_error_in_one_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    for args in (["ingest", "--source", str(tmp_path / "missing"), "--store",
                  str(tmp_path / "s.duckdb"), "--quiet"],
                 ["report", "--store", str(tmp_path / "s.duckdb"), "--out",
                  str(not_a_dir / "r.md"), "--quiet"]):
        r = agentkpi(*args)
        assert r.returncode == 1, (args, r.stderr)
        assert r.stdout == ""
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr


def test_the_cli_starts_no_blas_threads_unless_asked() -> None:
    """numpy (imported by pyarrow) starts an OpenBLAS thread per CPU unless told otherwise;
    the CLI uses no BLAS, so its processes say one thread (a user's own setting is kept)."""
    import os
    import subprocess
    import sys

    code = ("import agentkpi.cli, numpy, os, threading; "
            "print(os.environ['OPENBLAS_NUM_THREADS'], threading.active_count())")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout.split()
    assert out[0] == "1"
    kept = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**env, "OPENBLAS_NUM_THREADS": "3"}).stdout.split()
    assert kept[0] == "3"
