"""``generate``, ``ingest``, ``status``, ``config`` and ``serve`` as real processes.

Each run gets a clean environment (no ``AGENTKPI_*``, ``HOME`` in a tmp dir) so the default
store path and the precedence explicit option > environment > default are what is tested.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reference_seed import decode, read_rows, ts

REPO = Path(__file__).resolve().parents[2]


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AGENTKPI_") and k != "XDG_DATA_HOME"}
    env.update(HOME=str(home), COLUMNS="200", PYTHONPATH=str(REPO), **extra)
    return env


def agentkpi(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentkpi", *args], capture_output=True,
                          text=True, timeout=300, env=env_for(home, **env), cwd=home)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("gen")
    r = agentkpi(home, "generate", "--out", "data", "--sessions", "25", "--hours", "3",
                 "--start", "2026-05-20T22", "--seed", "4")
    assert r.returncode == 0, r.stderr
    return home / "data"


def test_generate_writes_what_it_says_and_is_deterministic(dataset: Path,
                                                           tmp_path: Path) -> None:
    rows = read_rows(dataset)
    n_events = sum(len(decode(r["events"])) for r in rows)
    files = sorted(dataset.rglob("*.jsonl"))
    assert len(rows) == len(files) == 25
    # every session starts inside [--start, --start + --hours); the days are the folders
    starts = [ts(r["session_start_time"]) for r in rows]
    assert all(s is not None and "2026-05-20T22" <= s.strftime("%Y-%m-%dT%H") < "2026-05-21T01"
               for s in starts)
    assert {p.parent.name for p in files} <= {"2026-05-20", "2026-05-21"}
    again = agentkpi(tmp_path, "generate", "--out", "data", "--sessions", "25", "--hours", "3",
                     "--start", "2026-05-20T22", "--seed", "4")
    assert again.returncode == 0
    assert f"generated 25 sessions, {n_events} events in 25 files" in again.stdout + again.stderr
    assert {p.relative_to(dataset): p.read_bytes() for p in files} == {
        p.relative_to(tmp_path / "data"): p.read_bytes()
        for p in sorted((tmp_path / "data").rglob("*.jsonl"))}
    bad = agentkpi(tmp_path, "generate", "--out", "x", "--start", "yesterday")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "Traceback" not in bad.stderr


def test_default_store_path_and_status(dataset: Path, tmp_path: Path) -> None:
    home = tmp_path
    default = home / ".local" / "share" / "agentkpi" / "agentkpi.duckdb"
    cfg = agentkpi(home, "config")
    assert cfg.returncode == 0
    assert _setting(cfg.stdout, "AGENTKPI_STORE")["value"] == str(default)
    assert _setting(cfg.stdout, "AGENTKPI_STORE")["origin"] == "default"
    r = agentkpi(home, "ingest", "--source", str(dataset), "-q", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert default.exists()  # no --store, no env: the documented default was used
    st = agentkpi(home, "status")
    assert st.returncode == 0, st.stderr
    got = _table(st.stdout)
    rows = read_rows(dataset)
    stamps = [t for r in rows for e in decode(r["events"])
              if (t := ts(e.get("timestamp"))) is not None]
    assert got["store"] == str(default)
    assert got["sessions"] == "25" and got["files"] == "25"
    assert got["events"] == str(sum(len(decode(r["events"])) for r in rows))
    assert got["first_event"].startswith(min(stamps).strftime("%Y-%m-%d %H:%M:%S"))
    assert got["last_event"].startswith(max(stamps).strftime("%Y-%m-%d %H:%M:%S"))
    assert int(got["schema_version"]) >= 1


def _rows(text: str) -> list[list[str]]:
    """The body rows of a Rich table, with cells folded over several lines joined again."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if rows and not cells[0]:
            rows[-1] = [a + b for a, b in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows


def _table(text: str) -> dict[str, str]:
    return {r[0]: r[1] for r in _rows(text) if len(r) == 2}


def _setting(text: str, env: str) -> dict[str, str]:
    (row,) = [r for r in _rows(text) if r[1] == env]
    return dict(zip(["name", "env", "value", "origin", "doc"], row, strict=True))


def test_xdg_data_home_moves_the_default_store(dataset: Path, tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    r = agentkpi(tmp_path, "ingest", "--source", str(dataset), "-q", "--workers", "1",
                 XDG_DATA_HOME=str(xdg))
    assert r.returncode == 0, r.stderr
    assert (xdg / "agentkpi" / "agentkpi.duckdb").exists()
    assert not (tmp_path / ".local").exists()


def test_explicit_store_beats_the_environment_which_beats_the_default(dataset: Path,
                                                                      tmp_path: Path) -> None:
    env_store, opt_store = tmp_path / "env.duckdb", tmp_path / "opt.duckdb"
    r = agentkpi(tmp_path, "ingest", "--source", str(dataset), "-q", "--workers", "1",
                 AGENTKPI_STORE=str(env_store))
    assert r.returncode == 0 and env_store.exists() and not (tmp_path / ".local").exists()
    cfg = agentkpi(tmp_path, "config", AGENTKPI_STORE=str(env_store))
    assert _setting(cfg.stdout, "AGENTKPI_STORE")["value"] == str(env_store)
    assert _setting(cfg.stdout, "AGENTKPI_STORE")["origin"] == "env"
    # --store wins over the environment: a missing store is reported by its path, exit 1
    st = agentkpi(tmp_path, "status", "--store", str(opt_store), AGENTKPI_STORE=str(env_store))
    assert st.returncode == 1 and str(opt_store) in st.stderr + st.stdout
    assert len((st.stderr + st.stdout).strip().splitlines()) == 1
    st = agentkpi(tmp_path, "status", AGENTKPI_STORE=str(env_store))
    assert st.returncode == 0 and _table(st.stdout)["store"] == str(env_store)


def test_config_get_resolves_explicit_then_env_then_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from agentkpi import config

    monkeypatch.delenv("AGENTKPI_THREADS", raising=False)
    assert config.get("threads") == 0
    monkeypatch.setenv("AGENTKPI_THREADS", "3")
    assert config.get("threads") == 3  # typed from the env text
    assert config.get("threads", 5) == 5
    monkeypatch.setenv("AGENTKPI_THREADS", "")
    assert config.get("threads") == 0  # empty means unset
    origin = {s["name"]: s["origin"] for s in config.resolved()}
    assert origin["threads"] == "default"


# ----------------------------------------------------------------------------- serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def served(dataset: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    store = tmp_path / "s.duckdb"
    assert agentkpi(tmp_path, "ingest", "--source", str(dataset), "--store", str(store), "-q",
                    "--workers", "1").returncode == 0
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agentkpi", "serve", "--port", str(port),
                             "--store", str(store)], env=env_for(tmp_path), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        while proc.poll() is None:  # wait for a condition (it answers), not a clock
            try:
                with urllib.request.urlopen(url + "/api/meta", timeout=30):
                    break
            except OSError:
                time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        yield url, proc, store
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def test_serve_answers_with_the_store_numbers_and_stops_cleanly(served: Any,
                                                                dataset: Path) -> None:
    url, proc, _ = served
    rows = read_rows(dataset)
    meta = _get(url + "/api/meta")
    assert meta["counts"]["sessions"] == 25
    assert meta["counts"]["events"] == sum(len(decode(r["events"])) for r in rows)
    o = _get(url + "/api/overview?from=2026-05-20T22&to=2026-05-21T01")
    assert o["totals"]["sessions"] == 25
    with urllib.request.urlopen(url + "/", timeout=60) as r:
        assert r.status == 200 and b'data-api="/api/overview"' in r.read()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    out, err = proc.communicate()
    assert f"agentkpi dashboard on {url}/" in out + err


def test_serve_on_a_busy_port_is_a_one_line_error(served: Any, tmp_path: Path) -> None:
    url, _, store = served
    port = url.rsplit(":", 1)[1]
    r = agentkpi(tmp_path, "serve", "--port", port, "--store", str(store))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr and "Uvicorn" not in r.stderr + r.stdout
