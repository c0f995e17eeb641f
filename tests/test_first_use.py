"""First use: what a new user runs after the quickstart works as printed.

* Every command the quickstart's ``Next:`` line suggests runs as printed (the demo
  store is not the default store, so each names it).
* ``plot`` of a range without data says so (one line, exit 1) instead of writing
  empty charts.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from click.testing import CliRunner

from agentkpi.cli import main


def test_quickstart_next_commands_work_as_printed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AGENTKPI_STORE", str(tmp_path / "not-the-demo.duckdb"))
    r = CliRunner().invoke(main, ["quickstart", "--dir", str(tmp_path / "demo"),
                                  "--sessions", "150"])
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith("Next: "))
    commands = [shlex.split(c) for c in line[len("Next: "):].split(" | ")]
    assert all(c[0] == "agentkpi" for c in commands)
    ran = 0
    for argv in commands:
        if argv[1] == "serve":  # runs until stopped; it must name the demo store
            assert argv[2:] == ["--store", str(tmp_path / "demo" / "agentkpi.duckdb")]
            continue
        out = CliRunner().invoke(main, argv[1:])
        assert out.exit_code == 0, (argv, out.output)
        ran += 1
    assert ran >= 3
    assert not (tmp_path / "not-the-demo.duckdb").exists()
    from datetime import UTC, datetime

    from agentkpi.store import DuckDBStore

    with DuckDBStore(tmp_path / "demo" / "agentkpi.duckdb", read_only=True) as st:
        assert st.time_range()[1] <= datetime.now(UTC).replace(tzinfo=None)  # no future data


def test_plot_of_an_empty_range_says_so(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["quickstart", "--dir", str(tmp_path / "demo"),
                                  "--sessions", "50"])
    assert r.exit_code == 0, r.output
    store = str(tmp_path / "demo" / "agentkpi.duckdb")
    r = CliRunner().invoke(main, ["plot", "--out", str(tmp_path / "p"), "--store", store,
                                  "--from", "2001-01-01", "--to", "2001-01-02"])
    assert r.exit_code == 1
    assert "nothing to plot: no events in [2001-01-01T00:00:00, 2001-01-02T00:00:00)" \
        in r.output and "the store holds" in r.output
    assert not (tmp_path / "p").exists() or not list((tmp_path / "p").iterdir())


def test_demo_data_never_reaches_into_the_future(tmp_path: Path) -> None:
    """The generator's few multi-day sessions (0.5%) are cut to end by ``not_after``."""
    from datetime import UTC, datetime, timedelta

    from agentkpi.generate import generate_sessions

    now = datetime(2026, 5, 22, 12, tzinfo=UTC)
    free = generate_sessions(str(tmp_path / "free"), 3000, now - timedelta(hours=51), hours=48)
    assert free.last_event > now  # what the cap is for
    capped = generate_sessions(str(tmp_path / "capped"), 3000, now - timedelta(hours=51),
                               hours=48, not_after=now)
    assert capped.last_event <= now
    assert capped.n_sessions == free.n_sessions == 3000
