"""The SQL engine against an independent per-session Python statement of the row,
on generated data, clean and dirty, for every hour (and the day-crossing ones)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentkpi.generate import generate_sessions
from agentkpi.rollups import rollup

from .reference_seed import hourly_row, read_rows

START = datetime(2026, 5, 20, 20, tzinfo=UTC)


@pytest.mark.parametrize("dirty", [False, True], ids=["clean", "dirty"])
def test_every_hour_equals_the_reference_row(tmp_path: Path, dirty: bool) -> None:
    root = tmp_path / "data"
    generate_sessions(root, 300, START, hours=8, seed=7, dirty=dirty)
    r = rollup(str(tmp_path / "o"), source=str(root), store=str(tmp_path / "s.duckdb"),
               start="2026-05-20T18", end="2026-05-21T06", workers=1)
    rows = read_rows(root)
    checked = 0
    for i in range(12):
        lo = datetime(2026, 5, 20, 18, tzinfo=UTC) + timedelta(hours=i)
        key = lo.strftime("%Y-%m-%dT%H")
        expected = hourly_row(rows, lo, lo + timedelta(hours=1))
        got = r.rows.get(key)
        if expected is None:
            assert got is None, key
            continue
        assert got == expected, key
        checked += 1
    assert checked >= 8  # the generated hours, including the ones after midnight
