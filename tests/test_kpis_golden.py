"""The hourly row against the newer seed script's own output (golden file)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from agentkpi.rollups import rollup

from .conftest import CONSTRUCTED

GOLDEN = CONSTRUCTED / "CONSTRUCTED_hourly_2026-05-20_14.csv"


def test_golden_hour_matches_the_seed_scripts_csv_byte_for_byte(constructed: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "kpis"
    rollup(str(out), source=str(constructed), store=str(tmp_path / "s.duckdb"),
           at="2026-05-20T14")
    ours = (out / "hourly" / "2026-05-20" / "14.csv").read_text()
    golden = GOLDEN.read_text()
    ours_rows = list(csv.reader(io.StringIO(ours)))
    gold_rows = list(csv.reader(io.StringIO(golden)))
    n = len(gold_rows[0])
    # Same 50 columns, same order, same cell text; we add pro_cta_by_source_json
    # (the seed's original column that the newer script dropped) at the end.
    assert [r[:n] for r in ours_rows] == gold_rows
    assert ours_rows[0][n:] == ["pro_cta_by_source_json"]
    header, values = golden.splitlines()
    assert ours.splitlines()[0].startswith(header)
    assert ours.splitlines()[1].startswith(values)


def test_rerun_rewrites_byte_identical_files_and_reports_them_unchanged(
        constructed: Path, tmp_path: Path) -> None:
    out, store = tmp_path / "kpis", str(tmp_path / "s.duckdb")
    first = rollup(str(out), source=str(constructed), store=store, at="2026-05-20T14")
    before = (out / "hourly" / "2026-05-20" / "14.csv").read_bytes()
    second = rollup(str(out), source=str(constructed), store=store, at="2026-05-20T14")
    assert first.written == ["hourly/2026-05-20/14.csv"]
    assert second.written == [] and second.unchanged == ["hourly/2026-05-20/14.csv"]
    assert second.ingest is not None and second.ingest.files_read == 0
    assert (out / "hourly" / "2026-05-20" / "14.csv").read_bytes() == before
    # and a fresh store computes the very same bytes
    (out / "hourly" / "2026-05-20" / "14.csv").unlink()
    rollup(str(out), source=str(constructed), store=str(tmp_path / "other.duckdb"),
           at="2026-05-20T14")
    assert (out / "hourly" / "2026-05-20" / "14.csv").read_bytes() == before


def test_an_hour_without_sessions_writes_no_file(constructed: Path, tmp_path: Path) -> None:
    out = tmp_path / "kpis"
    r = rollup(str(out), source=str(constructed), store=str(tmp_path / "s.duckdb"),
               start="2026-05-20T12", end="2026-05-20T16")
    assert r.buckets == ["2026-05-20T12", "2026-05-20T13", "2026-05-20T14", "2026-05-20T15"]
    assert r.empty == 3
    assert sorted(p.name for p in (out / "hourly" / "2026-05-20").iterdir()) == ["14.csv"]
