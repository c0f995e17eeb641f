"""Every ordinary CLI failure is ONE line on stderr, says what and where, and exits 1.

Each case runs the real ``agentkpi`` in a subprocess against real files: a target
that is a file or read-only, unknown URL protocols, an unreachable Hub (a local
port nobody listens on), an unknown ClickHouse setting, absurd ranges, ``--out``
pointing at a directory, and exports/reports on a "full disk" (the file-size
limit makes the kernel refuse the write with EFBIG, a real I/O error that must
not be masked by a DuckDB error).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentkpi.ingestion import ingest
from agentkpi.store import DuckDBStore
from tests.conftest import ev, file_size_limit, write_session

REFUSED = "http://127.0.0.1:9"  # the discard port: nothing listens, connection refused


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("errs")
    write_session(root / "data", "s1", "2026-05-20T10:00:00Z", [
        ev("2026-05-20T10:01:00Z", "llm_call", model="m", prompt_tokens=5, cost_usd=0.5),
        ev("2026-05-20T10:02:00Z", "tool_call", tool="bash", detail="x" * 5000)])
    path = root / "s.duckdb"
    with DuckDBStore(path) as st:
        ingest(str(root / "data"), st, workers=1)
    return path


def _read_only_dir(tmp: Path) -> str:
    """A directory the OS refuses to create files in (root ignores modes: use sysfs)."""
    if os.geteuid() == 0:
        return "/sys/agentkpi-target"
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return str(ro / "out")


_full_disk = file_size_limit(4096)


# (name, argv with {store}/{tmp}/{file}/{ro} placeholders, extra env, words the line must hold)
CASES = [
    ("target is a file", ["rollup", "--target", "{file}", "--datetime", "2026-05-20T10"], {},
     ["Not a directory", "{file}"]),
    ("target read-only", ["rollup", "--target", "{ro}", "--datetime", "2026-05-20T10"], {},
     ["cannot write to target"]),
    ("unknown target protocol", ["rollup", "--target", "foo://bar", "--datetime",
                                 "2026-05-20T10"], {}, ["foo"]),
    ("unknown source protocol", ["rollup", "--source", "foo://bar", "--target", "{tmp}/o"], {},
     ["foo"]),
    ("unreachable Hub target", ["rollup", "--target", "hf://datasets/nobody/none",
                                "--datetime", "2026-05-20T10"], {"HF_ENDPOINT": REFUSED},
     ["hf://datasets/nobody/none"]),
    ("unreachable Hub source", ["ingest", "--source", "hf://datasets/nobody/none"],
     {"HF_ENDPOINT": REFUSED}, ["hf://datasets/nobody/none"]),
    ("unknown ClickHouse setting", ["query", "--engine", "clickhouse", "--dsn",
                                    "chdb:///{tmp}/ch?bogus_setting=1"], {}, ["bogus_setting"]),
    ("--hours huge", ["rollup", "--target", "{tmp}/o", "--hours", "100000000"], {},
     ["100,000,000 hours"]),
    ("range of millennia", ["rollup", "--target", "{tmp}/o", "--from", "0001-01-01", "--to",
                            "9999-12-31"], {}, ["hours"]),
    ("report --out dir", ["report", "--out", "{tmp}"], {}, ["is a directory"]),
    ("query json --out dir", ["query", "--format", "json", "--out", "{tmp}"], {},
     ["is a directory"]),
    ("query csv --out dir", ["query", "--format", "csv", "--out", "{tmp}"], {},
     ["is a directory"]),
    ("export --out dir", ["export", "events", "--out", "{tmp}"], {}, ["is a directory"]),
    ("export on a full disk", ["export", "events", "--out", "{tmp}/e.csv"], {"FULL": "1"},
     ["File too large", "e.csv"]),
    ("export parquet on a full disk", ["export", "events", "--out", "{tmp}/e.parquet"],
     {"FULL": "1"}, ["File too large"]),
    ("report on a full disk", ["report", "--format", "html", "--out", "{tmp}/r.html"],
     {"FULL": "1"}, ["File too large"]),
    ("store is a directory", ["status", "--store", "{tmp}"], {}, ["{tmp}", "check the path"]),
    ("store on a full disk", ["ingest", "--source", "{data}", "--store", "{tmp}/new.duckdb",
                              "--workers", "1"], {"FULL": "1"}, ["{tmp}/new.duckdb"]),
    ("ClickHouse server unreachable", ["status", "--engine", "clickhouse", "--dsn",
                                       "clickhouse://default@127.0.0.1:9/db"], {},
     ["cannot open ClickHouse store"]),
    ("ClickHouse DSN with a bad port", ["status", "--engine", "clickhouse", "--dsn",
                                        "clickhouse://host:99999/db"], {}, ["bad port"]),
    ("bad AGENTKPI_THREADS", ["ingest", "--source", "{data}", "--store", "{tmp}/t.duckdb"],
     {"AGENTKPI_THREADS": "many"}, ["AGENTKPI_THREADS='many'"]),
    ("serve a mistyped store", ["serve", "--store", "{tmp}/typo.duckdb", "--port", "0"], {},
     ["no store at {tmp}/typo.duckdb"]),
    ("bad time", ["query", "--from", "yesterday-ish"], {}, ["yesterday-ish"]),
]


@pytest.mark.parametrize("name,argv,env,words", CASES, ids=[c[0] for c in CASES])
def test_every_failure_is_one_line_and_exit_1(store: Path, tmp_path: Path, name: str,
                                              argv: list[str], env: dict[str, str],
                                              words: list[str]) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    subs = {"{store}": str(store), "{tmp}": str(tmp_path), "{file}": str(a_file),
            "{data}": str(store.parent / "data"),
            "{ro}": _read_only_dir(tmp_path) if "{ro}" in argv else ""}

    def fill(s: str) -> str:
        for k, v in subs.items():
            s = s.replace(k, v)
        return s

    args = [fill(a) for a in argv]
    if "--store" not in args and "--dsn" not in args:
        args += ["--store", str(store)]
    full = "FULL" in env
    run_env = {**os.environ, **{k: v for k, v in env.items() if k != "FULL"},
               "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run_env.pop("AGENTKPI_DEBUG", None)
    r = subprocess.run([sys.executable, "-m", "agentkpi", *args], capture_output=True,
                       text=True, env=run_env, timeout=120,
                       preexec_fn=_full_disk if full else None)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1, (name, r.returncode, r.stderr[-2000:])
    assert len(lines) == 1, (name, r.stderr[-2000:])
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in r.stderr and "open result" not in r.stderr
    for w in words:
        assert fill(w) in lines[0], (name, w, lines[0])
    if full:  # nothing half-written is left behind: no truncated file, no broken store
        assert not [p.name for p in tmp_path.iterdir() if p != a_file], name
