"""First use: what a new user runs after the quickstart works as printed (real processes).

* Every command the quickstart's ``Next:`` line suggests runs exactly as printed, in a
  shell, as its own process (the demo store is not the default store, so each names it,
  quoted: the demo folder here has a space in its name).
* Demo data never lies in the future.
* ``plot`` of a range without data says so (one line, exit 1) instead of drawing empty
  1970 axes.
* ``export`` and ``report`` draw a progress bar on a terminal's stderr (a real
  pseudo-terminal), and nothing with ``--quiet`` or when stderr is not a terminal.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["HOME"] = str(home)  # the default store lives under HOME: it must stay untouched
    env["AGENTKPI_STORE"] = str(home / "not-the-demo.duckdb")
    env.pop("AGENTKPI_DEBUG", None)
    return env


def _cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentkpi", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], str]:
    home = tmp_path_factory.mktemp("first-use")
    env = _env(home)
    r = _cli(["quickstart", "--dir", str(home / "my demo"), "--sessions", "150"], env, home)
    assert r.returncode == 0, r.stderr
    return home, env, r.stderr


def _shell(command: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """Run ``command`` as a user would paste it: ``agentkpi`` is this checkout's CLI."""
    bin_dir = cwd / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "agentkpi"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m agentkpi "$@"\n')
    shim.chmod(0o755)
    env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}
    return subprocess.Popen(["/bin/sh", "-c", command], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_quickstart_next_commands_work_as_printed(demo: tuple[Path, dict[str, str], str]
                                                 ) -> None:
    home, env, output = demo
    store = home / "my demo" / "agentkpi.duckdb"
    line = next(ln for ln in output.splitlines() if ln.startswith("Next: "))
    commands = line[len("Next: "):].split(" | ")
    argvs = [shlex.split(c) for c in commands]
    assert [a[:2] for a in argvs] == [["agentkpi", "kpis"], ["agentkpi", "query"],
                                      ["agentkpi", "report"], ["agentkpi", "serve"]]
    assert all(a[2:] == ["--store", str(store)] for a in argvs[1:])  # quoted: one argument
    for command in commands[:-1]:
        p = _shell(command, env, home)
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, (command, err)
        assert out.strip(), command
    # query and report see the demo data, not an empty default store
    p = _shell(commands[2] + " --format json", env, home)
    out, _ = p.communicate(timeout=300)
    assert json.loads(out)["summary"]["sessions"] > 0
    # serve runs until stopped: started as printed (plus a free port), it serves the demo
    port = _free_port()
    p = _shell(f"{commands[-1]} --port {port}", env, home)
    try:
        body = None
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/overview",
                                            timeout=5) as resp:
                    body = json.loads(resp.read())
                    break
            except OSError:
                assert p.poll() is None, p.communicate()[1]
                time.sleep(0.2)
        assert body is not None and body["totals"]["sessions"] > 0
    finally:
        os.killpg(p.pid, 15)
        p.communicate(timeout=30)
    assert not (home / "not-the-demo.duckdb").exists()
    assert not (home / ".local" / "share" / "agentkpi").exists()


def test_quickstart_demo_data_is_never_in_the_future(demo: tuple[Path, dict[str, str], str]
                                                     ) -> None:
    from agentkpi.store import DuckDBStore

    home, _, _ = demo
    with DuckDBStore(home / "my demo" / "agentkpi.duckdb", read_only=True) as st:
        first, last = st.time_range()
    now = datetime.now(UTC).replace(tzinfo=None)
    assert first is not None and last is not None
    assert last <= now
    assert now - first > timedelta(hours=40)  # the 48 demo hours are still covered


def test_plot_of_an_empty_range_says_so(demo: tuple[Path, dict[str, str], str],
                                        tmp_path: Path) -> None:
    home, env, _ = demo
    store = str(home / "my demo" / "agentkpi.duckdb")
    r = _cli(["plot", "--out", str(tmp_path / "p"), "--store", store,
              "--from", "2001-01-01", "--to", "2001-01-02"], env, tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "nothing to plot: no events in [2001-01-01T00:00:00, 2001-01-02T00:00:00)" \
        in lines[0] and "the store holds" in lines[0]
    assert not (tmp_path / "p").exists() or not list((tmp_path / "p").iterdir())


def test_demo_data_never_reaches_into_the_future(tmp_path: Path) -> None:
    """The generator's few multi-day sessions (0.5%) are cut to end by ``not_after``."""
    from agentkpi.generate import generate_sessions

    now = datetime(2026, 5, 22, 12, tzinfo=UTC)
    free = generate_sessions(str(tmp_path / "free"), 3000, now - timedelta(hours=51), hours=48)
    assert free.last_event > now  # what the cap is for
    capped = generate_sessions(str(tmp_path / "capped"), 3000, now - timedelta(hours=51),
                               hours=48, not_after=now)
    assert capped.last_event <= now
    assert capped.n_sessions == free.n_sessions == 3000


def _on_a_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; (exit code, what the terminal got)."""
    master, slave = os.openpty()
    p = subprocess.Popen([sys.executable, "-m", "agentkpi", *args], env={**env, "COLUMNS": "100"},
                         cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=slave)
    os.close(slave)
    got = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        got += chunk
    os.close(master)
    return p.wait(timeout=300), got.decode("utf-8", "replace")


@pytest.mark.parametrize("args,stage", [
    (["export", "kpis", "--out", "{tmp}/k.csv"], "kpis"),
    (["export", "events", "--out", "{tmp}/e.parquet"], "events"),
    (["export", "sessions", "--out", "{tmp}/s.jsonl"], "sessions"),
    (["report", "--out", "{tmp}/r.md"], "report"),
])
def test_export_and_report_show_progress_on_a_terminal_only(
        demo: tuple[Path, dict[str, str], str], tmp_path: Path, args: list[str],
        stage: str) -> None:
    home, env, _ = demo
    args = [a.format(tmp=tmp_path) for a in args] + ["--store",
                                                       str(home / "my demo" / "agentkpi.duckdb")]
    code, screen = _on_a_terminal(args, env, tmp_path)
    assert code == 0, screen
    # the bar's last state: the stage's name and done == total (rows, hours or queries)
    finals = re.findall(rf"{stage}\s+\S*\s*(?:\x1b\[[0-9;]*m|[^\x1b\d])*\s*(\d+)/(\d+)", screen)
    assert finals, screen
    done, total = finals[-1]
    assert done == total and int(total) > 0
    if stage == "report":
        assert total == "6"
    quiet_code, quiet = _on_a_terminal([*args, "--quiet"], env, tmp_path)
    assert quiet_code == 0 and f"/{total}" not in quiet
    piped = _cli(args, env, tmp_path)  # stderr is a pipe: no bar
    assert piped.returncode == 0 and f"/{total}" not in piped.stderr and "\x1b" not in piped.stderr


def test_ingest_progress_moves_with_every_parsed_chunk(tmp_path: Path, monkeypatch) -> None:
    """The bar moved only at each 500k-event store write; now each parsed chunk moves it."""
    from agentkpi import ingestion
    from agentkpi.generate import generate_sessions
    from agentkpi.store import DuckDBStore

    generate_sessions(str(tmp_path / "data"), 20, datetime(2026, 5, 20, tzinfo=UTC), hours=2)
    monkeypatch.setattr(ingestion, "CHUNK", 5)  # 4 parse chunks, one store write
    calls: list[tuple[str, int, int]] = []
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        r = ingestion.ingest(str(tmp_path / "data"), st, workers=1,
                             progress=lambda *a: calls.append(a))
    assert r.files_read == 20
    assert calls == [("ingest", 0, 20), ("ingest", 5, 20), ("ingest", 10, 20),
                     ("ingest", 15, 20), ("ingest", 20, 20), ("write", 20, 20)]
