"""The ``agentkpi`` program leaves without tearing the interpreter down
(:func:`agentkpi.cli.run`): its output, exit code, exit handlers and store are what a
normal exit gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from agentkpi.cli import main
from tests.conftest import ev, write_session

HOUR = "2026-05-20T10"


def agentkpi(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentkpi", *args], capture_output=True,
                          text=True, env={**os.environ, "AGENTKPI_ALERT_RULES": "", **(env or {})},
                          timeout=300)


def test_a_long_output_through_a_pipe_is_written_whole() -> None:
    # stdout is a pipe: block-buffered, so the end of it sits in the buffer at exit
    out = agentkpi("kpis", "--format", "json")
    assert out.returncode == 0, out.stderr
    expected = CliRunner().invoke(main, ["kpis", "--format", "json"]).output
    assert out.stdout == expected and len(out.stdout) > 8192
    assert json.loads(out.stdout)


def test_an_error_keeps_its_exit_code_and_line(tmp_path: Path) -> None:
    r = agentkpi("rollup", "--source", str(tmp_path / "missing"), "--target",
                 str(tmp_path / "out"), "--store", str(tmp_path / "s.duckdb"),
                 "--datetime", HOUR)
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert agentkpi("no-such-command").returncode == 1


def test_exit_handlers_run_and_the_store_is_closed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_session(data, "s1", f"{HOUR}:00:00Z", [
        ev(f"{HOUR}:01:00Z", "llm_call", model="m", prompt_tokens=10, cost_usd=0.25)])
    site = tmp_path / "site"
    site.mkdir()
    mark = tmp_path / "handler-ran"
    (site / "sitecustomize.py").write_text(
        "import atexit\n"
        f"atexit.register(lambda: open({str(mark)!r}, 'w').write('ran'))\n")
    path = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    store = tmp_path / "s.duckdb"
    r = agentkpi("rollup", "--source", str(data), "--target", str(tmp_path / "out"),
                 "--store", str(store), "--datetime", HOUR, env={"PYTHONPATH": path})
    assert r.returncode == 0, r.stderr
    assert mark.read_text() == "ran"
    # closed (checkpointed) by the command itself: no write-ahead log left to replay
    assert store.is_file() and not Path(str(store) + ".wal").exists()
    assert (tmp_path / "out" / "hourly" / "2026-05-20" / "10.csv").is_file()
