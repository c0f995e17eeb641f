"""agentkpi query / export / report as a user runs them (in-process Click runner, real files)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from agentkpi.cli import main
from agentkpi.ingestion import ingest
from agentkpi.store import DuckDBStore
from tests.test_query import build_fixture

RANGE = ["--from", "2026-05-01", "--to", "2026-07-01"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("cli-query")
    build_fixture(tmp / "data")
    with DuckDBStore(tmp / "s.duckdb") as st:
        ingest(str(tmp / "data"), st, workers=1)
    return str(tmp / "s.duckdb")


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


def test_query_json_is_a_list_of_row_objects(store: str) -> None:
    code, out = run("query", "--store", store, "--metrics", "events,sessions,errors",
                    "--grain", "week", *RANGE, "--format", "json")
    assert code == 0
    assert json.loads(out) == [
        {"bucket": "2026-05-04", "events": 9, "sessions": 2, "errors": 1},
        {"bucket": "2026-05-11", "events": 3, "sessions": 1, "errors": 2},
        {"bucket": "2026-06-01", "events": 1, "sessions": 1, "errors": 0},
    ]


def test_query_by_tool_where_top_compare_csv(store: str) -> None:
    code, out = run("query", "--store", store, "-m", "events,failure_count", "--grain", "none",
                    "--by", "tool", "--where", "tool=bash", "--where", "tool=read", *RANGE,
                    "--format", "csv")
    assert code == 0
    assert list(csv.DictReader(io.StringIO(out))) == [
        {"tool": "bash", "events": "4", "failure_count": "1"},
        {"tool": "read", "events": "2", "failure_count": "0"}]
    code, out = run("query", "--store", store, "-m", "events", "--grain", "none", "--by",
                    "session", "--top", "1", "--from", "2026-05-11", "--to", "2026-05-18",
                    "--compare", "previous", "--format", "json")
    rows = json.loads(out)
    assert rows[0] == {"session": "s3", "events": 3, "events_previous": 0,
                       "events_change": 3, "events_change_pct": None}
    assert {r["session"] for r in rows} == {"s3", "(other)"}


def test_query_tz_and_week_start(store: str) -> None:
    code, out = run("query", "--store", store, "-m", "events", "--grain", "week", "--tz",
                    "America/New_York", "--week-start", "sunday", *RANGE, "--format", "json")
    assert code == 0
    assert [r["bucket"] for r in json.loads(out)] == ["2026-05-03", "2026-05-10",
                                                      "2026-05-31"]


def test_query_files_parquet_xlsx(store: str, tmp_path: Path) -> None:
    for fmt in ("parquet", "xlsx"):
        path = tmp_path / f"q.{fmt}"
        code, _ = run("query", "--store", store, "-m", "events,sessions", "--by", "user",
                      "--grain", "month", *RANGE, "--format", fmt, "--out", str(path))
        assert code == 0
    t = pq.read_table(tmp_path / "q.parquet")
    assert t.column_names == ["bucket", "user", "events", "sessions"]
    assert t.column("user").to_pylist() == ["alice", "s3", "bob"]
    ws = load_workbook(tmp_path / "q.xlsx").active
    assert [c.value for c in ws[1]] == ["bucket", "user", "events", "sessions"]
    code, out = run("query", "--store", store, "--format", "parquet")
    assert code == 1 and "add --out PATH" in out


def test_query_table_and_list(store: str) -> None:
    code, out = run("query", "--store", store, "-m", "events", "--grain", "month", *RANGE)
    assert code == 0 and "2026-05-01" in out and "12" in out
    code, out = run("query", "--list")
    assert code == 0 and "duration_ms_p95" in out and "data.KEY" in out


@pytest.mark.parametrize(("args", "message"), [
    (["-m", "events,nope"], "unknown metric 'nope'; choose from"),
    (["--by", "colour"], "unknown dimension 'colour'; choose from session, user, tool"),
    (["--where", "colour=red"], "unknown dimension 'colour'"),
    (["--where", "tool"], "bad --where 'tool'; use DIMENSION=VALUE"),
    (["--from", "2026-05-02", "--to", "2026-05-01"], "empty range"),
    (["--from", "soon"], "cannot read start 'soon'"),
    (["--tz", "Nowhere/City"], "unknown time zone"),
])
def test_query_usage_errors_exit_1_with_the_choices(store: str, args: list[str],
                                                    message: str) -> None:
    code, out = run("query", "--store", store, *args)
    assert code == 1
    assert message in " ".join(out.split())
    assert "Traceback" not in out


def test_export_command(store: str, tmp_path: Path) -> None:
    code, out = run("export", "events", "--store", store, "--format", "parquet", "--out",
                    str(tmp_path / "e.parquet"), "--from", "2026-05-04", "--to", "2026-05-05")
    assert code == 0 and "7 events row(s)" in " ".join(out.split())
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 7
    code, _ = run("export", "sessions", "--store", store, "--out", str(tmp_path / "s.jsonl"))
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert code == 0 and len(lines) == 4
    code, _ = run("export", "kpis", "--store", store, "--out", str(tmp_path / "k.csv"))
    rows = list(csv.DictReader(open(tmp_path / "k.csv", newline="")))
    assert code == 0 and sum(int(r["sessions"]) for r in rows) >= 4
    code, out = run("export", "events", "--store", store, "--out", str(tmp_path / "x.txt"))
    assert code == 1 and "unknown export format 'txt'" in out


def test_report_command(store: str, tmp_path: Path) -> None:
    code, out = run("report", "--store", store, *RANGE)
    assert code == 0 and "## Summary" in out and "| events | 13 |" in out
    code, _ = run("report", "--store", store, *RANGE, "--format", "html", "--out",
                  str(tmp_path / "r.html"))
    assert code == 0 and "<html" in (tmp_path / "r.html").read_text().lower()
    code, out = run("report", "--store", store, "--from", "2024-01-01", "--to", "2024-01-02",
                    "--format", "json")
    assert code == 0 and json.loads(out)["empty"] is True


def test_query_runs_as_a_real_process(store: str) -> None:
    p = subprocess.run([sys.executable, "-m", "agentkpi", "query", "--store", store, "-m",
                        "events", "--grain", "none", "--format", "json"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [{"events": 13}]
