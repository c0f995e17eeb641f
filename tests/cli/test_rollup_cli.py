"""The CLI end to end, as a user runs it: real processes, real files, real DuckDB."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentkpi.generate import generate_sessions

from ..conftest import CONSTRUCTED


def agentkpi(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentkpi", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gen")
    generate_sessions(root, 400, datetime(2026, 5, 20, 0, tzinfo=UTC), hours=48,
                      seed=3)
    return root


def test_rollup_range_writes_one_csv_per_nonempty_hour_and_a_summary(generated: Path,
                                                                      tmp_path: Path) -> None:
    out, store = tmp_path / "kpis", tmp_path / "s.duckdb"
    r = agentkpi("rollup", "--source", str(generated), "--target", str(out), "--from",
                 "2026-05-20T00", "--to", "2026-05-22T00", "--store", str(store))
    assert r.returncode == 0, r.stderr
    files = sorted(out.glob("hourly/*/*.csv"))
    assert len(files) == 48
    assert files[0].relative_to(out).as_posix() == "hourly/2026-05-20/00.csv"
    header, row = files[0].read_text().splitlines()
    assert header.startswith("bucket,sessions,users,turns,llm_calls,")
    assert row.startswith("2026-05-20T00,")
    assert "48 bucket(s): 48 file(s) written" in r.stderr
    assert "traceback" not in r.stderr.lower()
    # warm re-run: nothing read, nothing rewritten, bytes identical
    before = {p: p.read_bytes() for p in files}
    r2 = agentkpi("rollup", "--source", str(generated), "--target", str(out), "--from",
                  "2026-05-20T00", "--to", "2026-05-22T00", "--store", str(store))
    assert r2.returncode == 0, r2.stderr
    assert "0 file(s) read" in r2.stderr and "0 file(s) written, 48 unchanged" in r2.stderr
    assert {p: p.read_bytes() for p in files} == before


def test_datetime_and_daily_backfill_modes(generated: Path, tmp_path: Path) -> None:
    out, store = tmp_path / "kpis", tmp_path / "s.duckdb"
    r = agentkpi("rollup", "--source", str(generated), "--target", str(out), "--datetime",
                 "2026-05-21T13", "--store", str(store), "-q")
    assert r.returncode == 0, r.stderr
    assert [p.name for p in out.glob("hourly/*/*.csv")] == ["13.csv"]
    r = agentkpi("rollup", "--target", str(out), "--daily-backfill", "2026-05-21", "--store",
                 str(store), "-q")
    assert r.returncode == 0, r.stderr
    text = (out / "daily" / "2026-05-21.csv").read_text()
    assert text.splitlines()[1].startswith("2026-05-21,")


def test_hours_mode_rolls_up_trailing_completed_hours(tmp_path: Path) -> None:
    # the cron path: data in the last completed hour relative to now
    from agentkpi.rollups import rollup

    root = tmp_path / "d"
    generate_sessions(root, 50, datetime(2026, 5, 20, 10, tzinfo=UTC), hours=2, seed=1)
    r = rollup(str(tmp_path / "o"), source=str(root), store=str(tmp_path / "s.duckdb"),
               hours=3, now=datetime(2026, 5, 20, 12, 30, tzinfo=UTC))
    assert r.buckets == ["2026-05-20T09", "2026-05-20T10", "2026-05-20T11"]
    assert r.empty == 1 and len(r.written) == 2


@pytest.mark.parametrize("args, message", [
    (["--from", "2026-05-20T05", "--to", "2026-05-20T01"], "empty range"),
    (["--from", "2026-05-20T05"], "--from and --to go together"),
    (["--datetime", "yesterday"], "cannot read 'yesterday' as a time"),
    (["--datetime", "2026-05-20T01", "--hours", "3"], "choose one of"),
])
def test_usage_errors_exit_1_with_one_line_and_no_traceback(tmp_path: Path, args: list[str],
                                                            message: str) -> None:
    r = agentkpi("rollup", "--target", str(tmp_path / "o"), "--store",
                 str(tmp_path / "s.duckdb"), *args)
    assert r.returncode == 1
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2


def test_strict_exits_2_on_dirty_data_and_lists_skipped_files(tmp_path: Path) -> None:
    root = tmp_path / "dirty"
    generate_sessions(root, 60, datetime(2026, 5, 20, 0, tzinfo=UTC), hours=2, seed=2,
                      dirty=True)
    out = tmp_path / "o"
    loose = agentkpi("rollup", "--source", str(root), "--target", str(out), "--from",
                     "2026-05-20T00", "--to", "2026-05-20T03", "--store", str(tmp_path / "a.db"))
    assert loose.returncode == 0, loose.stderr
    assert "file(s) skipped" in loose.stderr and "Traceback" not in loose.stderr
    report = json.loads((out / "_reports" / "latest.json").read_text())
    assert report["ingest"]["skipped_files"], report
    strict = agentkpi("rollup", "--source", str(root), "--target", str(out), "--from",
                      "2026-05-20T00", "--to", "2026-05-20T03", "--store", str(tmp_path / "b.db"),
                      "--strict")
    assert strict.returncode == 2
    assert "data problem" in strict.stderr and "Traceback" not in strict.stderr


def test_kpis_command_prints_every_kpi_with_a_description() -> None:
    from agentkpi.kpis import CATALOGUE

    r = agentkpi("kpis", "--format", "json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert [k["name"] for k in listed][: len(CATALOGUE)] == [k.name for k in CATALOGUE]
    assert all(k["description"] and k["unit"] for k in listed)


def test_every_setting_is_documented() -> None:
    from agentkpi.config import SETTINGS

    assert all(s.doc and s.env.startswith("AGENTKPI_") for s in SETTINGS)
    r = agentkpi("config")
    assert r.returncode == 0 and all(s.env in r.stdout for s in SETTINGS)


def test_help_reads_well() -> None:
    r = agentkpi("rollup", "--help")
    assert r.returncode == 0
    for flag in ("--source", "--target", "--hours", "--datetime", "--from", "--to",
                 "--daily-backfill", "--store", "--strict"):
        assert flag in r.stdout


def test_quickstart_generates_ingests_rolls_up_and_summarises(tmp_path: Path) -> None:
    r = agentkpi("quickstart", "--dir", str(tmp_path / "demo"), "--sessions", "300")
    assert r.returncode == 0, r.stderr
    assert "Last 24 hours" in r.stdout
    assert len(list((tmp_path / "demo" / "kpis" / "hourly").glob("*/*.csv"))) >= 40
    assert (tmp_path / "demo" / "agentkpi.duckdb").exists()


def test_golden_through_the_cli(tmp_path: Path) -> None:
    src = tmp_path / "src" / "sessions" / "2026-05-20"
    src.mkdir(parents=True)
    for f in CONSTRUCTED.glob("CONSTRUCTED_session_row_*.jsonl"):
        (src / f.name).write_bytes(f.read_bytes())
    r = agentkpi("rollup", "--source", str(tmp_path / "src"), "--target", str(tmp_path / "o"),
                 "--datetime", "2026-05-20T14", "--store", str(tmp_path / "s.duckdb"))
    assert r.returncode == 0, r.stderr
    golden = (CONSTRUCTED / "CONSTRUCTED_hourly_2026-05-20_14.csv").read_text().splitlines()
    ours = (tmp_path / "o" / "hourly" / "2026-05-20" / "14.csv").read_text().splitlines()
    assert all(o.startswith(g) for o, g in zip(ours, golden, strict=True))


@pytest.mark.parametrize("args, message", [
    (["rollup", "--hours", "abc", "--target", "x"], "Invalid value for '--hours'"),
    (["rollup"], "Missing option '--target'"),
    (["no-such-command"], "No such command"),
])
def test_click_usage_errors_also_exit_1_in_one_line(args: list[str], message: str) -> None:
    r = agentkpi(*args)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert message in r.stderr and "Traceback" not in r.stderr
