"""Processes and files: what agentkpi leaves behind on the machine.

* A ``kill -9`` of an ingest leaves none of its parser workers running.
* CSVs and the run report are created like any file: mode 0666 minus the umask.
* An invalid ``AGENTKPI_DURABILITY`` never raises into the host from the SDK's
  module-level functions; it falls back to ``batch`` and says so in ``stats()``.
* A forked child's ``stats()`` counts the child's events only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentkpi.generate import generate_sessions
from agentkpi.rollups import rollup

ROOT = str(Path(__file__).resolve().parents[1])


def _children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_kill_9_of_an_ingest_leaves_no_parser_worker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_sessions(str(data), 6000, datetime(2026, 5, 20, tzinfo=UTC), hours=6, seed=3,
                      workers=2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentkpi", "ingest", "--source", str(data), "--store",
         str(tmp_path / "s.duckdb"), "--workers", "2", "--quiet"],
        env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    while proc.poll() is None and len(workers) < 2:  # a condition: the pool is up
        workers |= _children(proc.pid)
        time.sleep(0.01)
    assert workers, "the ingest finished before its workers were seen; use more data"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for _ in range(3000):  # a condition with a generous bound, not a timing assertion
        if not any(_alive(w) for w in workers):
            break
        time.sleep(0.02)
    assert not [w for w in workers if _alive(w)], "parser workers outlived the ingest"


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_csvs_and_report_honour_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    from tests.conftest import ev, write_session

    write_session(tmp_path / "data", "s1", "2026-05-20T10:00:00Z",
                  [ev("2026-05-20T10:01:00Z", "llm_call", model="m", prompt_tokens=3)])
    old = os.umask(mask)
    try:
        r = rollup(str(tmp_path / "out"), source=str(tmp_path / "data"),
                   store=str(tmp_path / "s.duckdb"), at="2026-05-20T10", workers=1)
    finally:
        os.umask(old)
    assert r.written == ["hourly/2026-05-20/10.csv"]
    for f in (tmp_path / "out/hourly/2026-05-20/10.csv", tmp_path / "out/_reports/latest.json"):
        assert f.stat().st_mode & 0o777 == mode, (f, oct(f.stat().st_mode))


def _python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    run_env = {k: v for k, v in os.environ.items() if k != "AGENTKPI_RAISE_ERRORS"}
    run_env.update(PYTHONPATH=ROOT, AGENTKPI_LOG_DIR=str(tmp_path / "log"), **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=run_env, timeout=120)


def test_invalid_durability_never_raises_into_the_host(tmp_path: Path) -> None:
    r = _python("""
        import agentkpi.sdk as kpi
        kpi.record("feedback", session_id="s1", rating="up")
        with kpi.session(user_id="alice") as s:
            s.llm_call(model="m", prompt_tokens=1, completion_tokens=2)
        assert kpi.flush()
        st = kpi.default_recorder().stats()
        print(st["written"], st["last_error"])
    """, tmp_path, AGENTKPI_DURABILITY="sometimes")
    assert r.returncode == 0, r.stderr
    written, error = r.stdout.split(" ", 1)
    assert int(written) == 4  # feedback, session_start, llm_call, session_end
    assert "AGENTKPI_DURABILITY='sometimes'" in error and "'batch'" in error


def test_forked_child_stats_count_the_child_only(tmp_path: Path) -> None:
    r = _python("""
        import os, sys
        import agentkpi.sdk as kpi
        for i in range(5):
            kpi.record("feedback", session_id="parent", rating="up")
        kpi.flush()
        pid = os.fork()
        if pid == 0:
            for i in range(2):
                kpi.record("feedback", session_id="child", rating="down")
            kpi.flush()
            st = kpi.default_recorder().stats()
            os._exit(0 if (st["recorded"], st["written"]) == (2, 2) else 3)
        _, status = os.waitpid(pid, 0)
        st = kpi.default_recorder().stats()
        print(os.waitstatus_to_exitcode(status), st["recorded"], st["written"])
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "5", "5"]
