"""Shared fixtures: session-dataset files on disk and stores in tmp dirs."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    """``../shared`` beside the checkout (for a git worktree: beside its main checkout).

    ``$AGENTKPI_SHARED`` overrides. A missing folder fails the tests that need it.
    """
    if os.environ.get("AGENTKPI_SHARED"):
        return Path(os.environ["AGENTKPI_SHARED"])
    beside = ROOT.parent / "shared"
    git = ROOT / ".git"
    if not beside.exists() and git.is_file():  # "gitdir: <main>/.git/worktrees/<name>"
        gitdir = Path(git.read_text().split("gitdir:", 1)[-1].strip())
        common = gitdir / "commondir"
        main_git = (gitdir / common.read_text().strip()).resolve() if common.exists() else gitdir
        if (main_git.parent.parent / "shared").exists():
            return main_git.parent.parent / "shared"
    return beside


SHARED = _shared()
CONSTRUCTED = SHARED / "data" / "constructed"

# A skipped test is a failed test: CI must not go green while testing less (a missing browser,
# a missing extra, a missing data folder). Set AGENTKPI_ALLOW_SKIPS=1 for a local partial run.
ALLOW_SKIPS = os.environ.get("AGENTKPI_ALLOW_SKIPS", "") not in ("", "0")
_SKIP_HELP = "skips fail the suite (set AGENTKPI_ALLOW_SKIPS=1 to allow them locally)"


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    lr = report.longrepr
    return str(lr[2]) if isinstance(lr, tuple) and len(lr) == 3 else str(lr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not ALLOW_SKIPS:
        if hasattr(report, "wasxfail"):  # an expected failure hides a broken number too
            reason = f"xfail (not allowed): {report.wasxfail or 'no reason given'}"
            del report.wasxfail
        else:
            reason = f"SKIPPED (not allowed): {_skip_reason(report)}"
        report.outcome = "failed"
        report.longrepr = f"{reason}; {_SKIP_HELP}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not ALLOW_SKIPS:
        report.outcome = "failed"
        report.longrepr = f"module skipped (not allowed): {_skip_reason(report)}; {_SKIP_HELP}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Belt and braces: any skip or xfail that reached the summary fails the run."""
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(tr, "stats", {}) if tr else {}
    n = len(stats.get("skipped", [])) + len(stats.get("xfailed", []))
    if n and not ALLOW_SKIPS and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if tr:
            tr.write_line(f"error: {n} test(s) skipped or xfailed; {_SKIP_HELP}", red=True)


def write_session(root: Path, session_id: str, start: str, events: list[dict[str, Any]] | Any,
                  *, user_id: str | None = "u1", model: str | None = "m1",
                  messages: list[dict[str, Any]] | Any = None, day: str | None = None,
                  as_strings: bool = True, **extra: Any) -> Path:
    """Write one session row as ``root/sessions/<day>/<id>.jsonl`` like the real uploader."""
    if messages is None:
        messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    row: dict[str, Any] = {"session_id": session_id, "session_start_time": start,
                           "model_name": model, **extra}
    if user_id is not None:
        row["user_id"] = user_id
    row["messages"] = json.dumps(messages) if as_strings and not isinstance(messages, str) \
        else messages
    row["events"] = json.dumps(events) if as_strings and not isinstance(events, str) else events
    path = root / "sessions" / (day or start[:10]) / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row) + "\n")
    return path


def cli_ingest(source: Path | str, *args: str) -> None:
    """``agentkpi ingest --source SOURCE ARGS -q`` as a real process (fails the test on error)."""
    subprocess.run([sys.executable, "-m", "agentkpi", "ingest", "--source", str(source), *args,
                    "-q"], check=True, capture_output=True, text=True)


def file_size_limit(limit: int) -> Callable[[], None]:
    """A ``preexec_fn`` for a child process whose files cannot grow past ``limit`` bytes:
    its writes fail with EFBIG, as on a full disk (the kernel's limit, not a mock; SIGXFSZ
    ignored, so the write fails instead of the signal killing the process)."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def row_groups(store: Any, table: str) -> int:
    """The row groups of ``table`` in a DuckDB store's file."""
    return int(store.con.execute(f"SELECT count(DISTINCT row_group_id) FROM "
                                 f"pragma_storage_info('{table}')").fetchall()[0][0])


def ev(ts: str, event_type: str, **data: Any) -> dict[str, Any]:
    return {"timestamp": ts, "event_type": event_type, "data": data}


@pytest.fixture
def raise_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors made while recording (SDK, Monitor) are raised instead of counted.

    The one switch for the ``raise_errors`` setting (``AGENTKPI_RAISE_ERRORS``): a
    recording bug fails the test. Use it with ``pytest.mark.usefixtures("raise_errors")``.
    """
    monkeypatch.setenv("AGENTKPI_RAISE_ERRORS", "1")


@pytest.fixture(params=["duckdb", "clickhouse"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """An empty store on each engine (a DuckDB file, a chDB folder): the test runs on both.
    A module with a ``store`` fixture of its own uses that one instead."""
    from agentkpi.store import DuckDBStore
    from agentkpi.store.clickhouse import ClickHouseStore

    st = (DuckDBStore(tmp_path / "s.duckdb") if request.param == "duckdb"
          else ClickHouseStore(f"chdb://{tmp_path / 'ch'}"))
    try:
        yield st
    finally:
        st.close()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def constructed(tmp_path: Path) -> Path:
    """The two constructed real-format rows in a sessions/2026-05-20/ folder."""
    root = tmp_path / "constructed"
    day = root / "sessions" / "2026-05-20"
    day.mkdir(parents=True)
    for f in CONSTRUCTED.glob("CONSTRUCTED_session_row_*.jsonl"):
        shutil.copy(f, day / f.name)
    return root


@pytest.fixture
def hour_row(tmp_path: Path) -> Callable[..., dict[str, Any] | None]:
    """Roll one hour up from a dataset dir; returns the KPI row (None = empty hour)."""
    from agentkpi.rollups import rollup

    def run(root: Path, hour: str) -> dict[str, Any] | None:
        r = rollup(str(tmp_path / "out"), source=str(root), store=str(tmp_path / "s.duckdb"),
                   at=hour, workers=1)
        return r.rows.get(hour)

    return run


@pytest.fixture(autouse=True)
def _testclient_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starlette's TestClient sends ``Host: testserver``; the dashboard answers only to
    loopback names by default (DNS rebinding), so tests allow that name too.
    ``tests/test_web_hostile.py`` checks the real default."""
    monkeypatch.setenv("AGENTKPI_ALLOWED_HOSTS", "localhost,127.0.0.1,::1,testserver")
