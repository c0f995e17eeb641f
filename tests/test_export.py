"""Exports: what is written reads back equal, for each format; formula cells are neutralised."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agentkpi.errors import UsageError
from agentkpi.generate import generate_sessions
from agentkpi.ingestion import ingest
from agentkpi.model import EVENT_SCHEMA, SESSION_SCHEMA
from agentkpi.sinks import csv_export, jsonl, parquet, xlsx
from agentkpi.sinks._batches import neutralise_batch
from agentkpi.sinks.export import FORMATS, export, write
from agentkpi.store import DuckDBStore
from tests.conftest import ev, write_session

from .reference_seed import hourly_row, read_rows

START = datetime(2026, 5, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DuckDBStore:
    tmp = tmp_path_factory.mktemp("export")
    generate_sessions(tmp / "data", 40, START, hours=3, seed=3, dirty=True)
    # One session whose text would run as spreadsheet formulas.
    write_session(tmp / "data", "evil", "2026-05-20T01:00:00Z", [
        ev("2026-05-20T01:01:00Z", "tool_call", tool="=HYPERLINK(\"http://x\")"),
        ev("2026-05-20T01:02:00Z", "error", error_type="@SUM(A1)", error="-1+2"),
        ev("2026-05-20T01:03:00Z", "tool_output", tool="+cmd", success=True),
    ], user_id="\tuser", project="\rproj")
    path = tmp / "s.duckdb"
    with DuckDBStore(path) as st:
        ingest(str(tmp / "data"), st, workers=1)
    st = DuckDBStore(path, read_only=True)
    yield st
    st.close()


def _expected(store: DuckDBStore, what: str, spreadsheet: bool) -> pa.Table:
    schema = {"events": EVENT_SCHEMA, "sessions": SESSION_SCHEMA}[what]
    t = store.sql(f"SELECT {', '.join(schema.names)} FROM {what}").cast(schema)
    if spreadsheet:
        t = pa.Table.from_batches([neutralise_batch(b) for b in t.to_batches()], schema=schema)
    return t


def _read(fmt: str, path: Path, schema: pa.Schema) -> pa.Table:
    if fmt == "csv":
        return csv_export.read(path, schema)
    if fmt == "jsonl":
        return jsonl.read(path, schema)
    if fmt == "parquet":
        return parquet.read(path)
    return xlsx.to_table(xlsx.read(path), schema)


def _sorted(t: pa.Table, keys: list[str]) -> pa.Table:
    return t.sort_by([(k, "ascending") for k in keys])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("what", ["events", "sessions"])
def test_table_export_reads_back_equal(store: DuckDBStore, tmp_path: Path, fmt: str,
                                       what: str) -> None:
    path = tmp_path / f"{what}.{fmt}"
    r = export(store, what, path, fmt)
    schema = {"events": EVENT_SCHEMA, "sessions": SESSION_SCHEMA}[what]
    want = _expected(store, what, spreadsheet=fmt in ("csv", "xlsx"))
    got = _read(fmt, path, schema)
    assert r.rows == want.num_rows > 0
    keys = ["session_id", "seq", "file"] if what == "events" else ["session_id"]
    got, want = _sorted(got, keys), _sorted(want, keys)
    if fmt == "xlsx":
        # Excel cannot keep an empty string apart from an empty cell, and XML turns a
        # carriage return into a line feed (both documented in docs/exports.md).
        def cell(v: object) -> object:
            if isinstance(v, str):
                return v.replace("\r\n", "\n").replace("\r", "\n") or None
            return v

        want = pa.table({n: pa.array([cell(v) for v in c.to_pylist()], c.type)
                         for n, c in zip(want.column_names, want.columns, strict=True)})
    assert got.schema.equals(schema)
    for name in schema.names:
        a, b = got.column(name).to_pylist(), want.column(name).to_pylist()
        if fmt == "xlsx" and pa.types.is_timestamp(schema.field(name).type):
            # Excel keeps times to the millisecond (documented in docs/exports.md).
            assert all((x is None and y is None) or abs(x - y) <= timedelta(milliseconds=1)
                       for x, y in zip(a, b, strict=True)), name
            continue
        assert a == b, name


def _read_plain(fmt: str, path: Path) -> list[dict[str, Any]]:
    """Read an export back with the format's own library, not agentkpi's readers."""
    if fmt == "csv":
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    from openpyxl import load_workbook

    ws = load_workbook(path).worksheets[0]
    head, *body = [[c.value for c in row] for row in ws.iter_rows()]
    return [dict(zip(head, r, strict=True)) for r in body]


def _same(fmt: str, got: Any, want: Any) -> bool:
    if fmt == "csv":  # text cells: the number's shortest repr, the string as is
        return got == (str(want) if not isinstance(want, float) else repr(want)) or (
            isinstance(want, float) and float(got) == want)
    if fmt == "jsonl" and isinstance(got, str) and not isinstance(want, str):
        return False
    return bool(got == want)


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_kpis_command_writes_the_reference_hourly_rows(store: DuckDBStore, tmp_path: Path,
                                                              fmt: str) -> None:
    """``agentkpi export kpis`` through the command, read back plainly, against the reference."""
    from click.testing import CliRunner

    from agentkpi.cli import main

    path = tmp_path / f"kpis.{fmt}"
    r = CliRunner().invoke(main, ["export", "kpis", "--out", str(path), "--from", "2026-05-20T00",
                                  "--to", "2026-05-20T06", "--store", store.path])
    assert r.exit_code == 0, r.output
    rows = read_rows(Path(store.path).parent / "data")
    got = _read_plain(fmt, path)
    want = {}
    for h in range(6):
        lo = START + timedelta(hours=h)
        if (ref := hourly_row(rows, lo, lo + timedelta(hours=1))) is not None:
            want[lo.strftime("%Y-%m-%dT%H")] = ref
    assert len(want) >= 3
    assert [str(g["bucket"])[:13].replace(" ", "T") for g in got] == list(want)
    for g in got:
        w = want[str(g.pop("bucket"))[:13].replace(" ", "T")]
        assert list(g) == list(w)
        bad = {k: (g[k], w[k]) for k in w if not _same(fmt, g[k], w[k])}
        assert not bad, bad


def test_formula_cells_are_neutralised_in_csv_and_xlsx(store: DuckDBStore, tmp_path: Path) -> None:
    export(store, "events", tmp_path / "e.csv")
    export(store, "events", tmp_path / "e.xlsx")
    with open(tmp_path / "e.csv", newline="") as fh:
        cells = {c for row in csv.reader(fh) for c in row}
    assert {"'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "'-1+2", "'+cmd"} <= cells
    assert not any(c[:1] in ("=", "+", "@", "\t", "\r") for c in cells)
    assert not any(c.startswith("-") and not _number(c) for c in cells)
    from openpyxl import load_workbook

    wb = load_workbook(tmp_path / "e.xlsx")
    values = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]
    assert all(c.data_type != "f" for c in values)
    texts = {c.value for c in values if isinstance(c.value, str)}
    assert {"'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "'-1+2", "'+cmd"} <= texts
    export(store, "sessions", tmp_path / "s.csv")
    body = (tmp_path / "s.csv").read_bytes()
    assert b"\"'\tuser\"" in body and b"'\rproj" in body


def _number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def test_neutralising_leaves_safe_and_numeric_cells_alone(tmp_path: Path) -> None:
    t = pa.table({"s": ["=1+1", "+a", "-b", "@c", "\tx", "\ry", "ok", "a=b", "", None],
                  "n": [-1, 2, -3, 4, 5, 6, 7, 8, 9, 10]})
    write(t, tmp_path / "t.csv")
    back = csv_export.read(tmp_path / "t.csv", t.schema)
    assert back.column("s").to_pylist() == ["'=1+1", "'+a", "'-b", "'@c", "'\tx", "'\ry",
                                            "ok", "a=b", "", None]
    assert back.column("n").to_pylist() == t.column("n").to_pylist()


def test_xlsx_splits_into_sheets_past_the_row_limit(tmp_path: Path) -> None:
    t = pa.table({"i": list(range(25)), "s": [f"row{i}" for i in range(25)]})
    n = xlsx.write(t, tmp_path / "t.xlsx", sheet="events", max_rows=10)
    sheets = xlsx.read(tmp_path / "t.xlsx")
    assert n == 25
    assert list(sheets) == ["events", "events_2", "events_3"]
    assert [len(rows) for rows in sheets.values()] == [10, 10, 8]  # header + 9, 9, 7
    assert all(rows[0] == ("i", "s") for rows in sheets.values())
    assert xlsx.to_table(sheets, t.schema).equals(t)
    assert xlsx.MAX_ROWS == 1_048_576


def test_streaming_takes_batches_and_readers(tmp_path: Path) -> None:
    schema = pa.schema([("a", pa.int64()), ("ts", pa.timestamp("us", tz="UTC"))])
    batches = [pa.record_batch([[i], [datetime(2026, 5, 20, i, tzinfo=UTC)]], schema=schema)
               for i in range(3)]
    for fmt in FORMATS:
        path = tmp_path / f"b.{fmt}"
        reader = pa.RecordBatchReader.from_batches(schema, iter(batches))
        assert write(reader, path) == 3
        assert not (tmp_path / f"b.{fmt}.part").exists()
    assert pq.read_table(tmp_path / "b.parquet").equals(pa.Table.from_batches(batches))
    lines = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert lines[1] == {"a": 1, "ts": "2026-05-20T01:00:00+00:00"}
    empty = pa.Table.from_batches([], schema=schema)
    assert write(empty, tmp_path / "empty.parquet") == 0
    assert pq.read_table(tmp_path / "empty.parquet").schema.equals(schema)


def test_bad_format_and_range_filter(store: DuckDBStore, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown export format 'txt'; choose from csv"):
        export(store, "events", tmp_path / "x.txt")
    r = export(store, "events", tmp_path / "hour.parquet", None, datetime(2026, 5, 20, 1),
               datetime(2026, 5, 20, 2))
    ts = pq.read_table(tmp_path / "hour.parquet").column("ts").to_pylist()
    assert r.rows == len(ts) > 0
    assert all(datetime(2026, 5, 20, 1) <= t < datetime(2026, 5, 20, 2) for t in ts)
    s = export(store, "sessions", tmp_path / "s.parquet", None, datetime(2026, 5, 20, 1),
               datetime(2026, 5, 20, 2))
    ids = set(pq.read_table(tmp_path / "s.parquet").column("session_id").to_pylist())
    assert "evil" in ids and s.rows == len(ids)


def test_table_exports_scan_with_a_small_pool_and_set_it_back(store: DuckDBStore,
                                                               tmp_path: Path) -> None:
    """DuckDB's buffer pool fills up to its limit with the blocks a scan reads: a plain scan
    (events; all sessions) runs with the smallest pool it works with, the sessions of a range
    (a hash table of the range's session ids) with a larger one; each setting is DuckDB's
    default again afterwards. At 1M sessions the 64 MB pool made a Parquet export of 24.5 M
    events peak at 318 MB (BENCHMARKS.md §11d)."""
    def setting(cur: Any, name: str) -> str:
        return str(cur.execute(f"SELECT current_setting('{name}')").fetchall()[0][0])

    names = ("memory_limit", "threads", "streaming_buffer_size")
    before = {n: setting(store.con, n) for n in names}
    probe = store.con.cursor()  # memory_limit and threads are global: seen from any cursor
    seen: dict[str, set[tuple[str, str]]] = {}
    rng = (datetime(2026, 5, 20, 1), datetime(2026, 5, 20, 2))
    for label, what, fmt, (lo, hi) in [("events", "events", "parquet", rng),
                                       ("all sessions", "sessions", "csv", (None, None)),
                                       ("sessions of a range", "sessions", "jsonl", rng)]:
        seen[label] = set()
        export(store, what, tmp_path / f"x.{fmt}", None, lo, hi, progress=lambda *_, k=label:
               seen[k].add((setting(probe, "memory_limit"), setting(probe, "threads"))))
        assert {n: setting(store.con, n) for n in names} == before
    probe.close()
    assert seen["events"] == seen["all sessions"] == {("30.5 MiB", "1")}
    assert seen["sessions of a range"] == {("61.0 MiB", "1")}


def test_the_export_command_loads_openpyxl_only_to_write_a_workbook(tmp_path: Path) -> None:
    """openpyxl costs ~8 MB of every export's memory: only an xlsx export imports it."""
    code = ("import sys, pyarrow as pa; import agentkpi.cli.export, agentkpi.sinks.export as e; "
            "print('openpyxl' in sys.modules); e.write(pa.table({'a': [1]}), sys.argv[1]); "
            "print('openpyxl' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.xlsx")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]
    assert xlsx.read(tmp_path / "a.xlsx") == {"data": [("a",), (1,)]}


def test_kpi_export_in_parts_equals_one_query_and_reports_progress(tmp_path: Path) -> None:
    """``export kpis`` computes a long range in parts (one progress step each): every hourly
    row depends on its hour alone, so the parts give the rows of one query, bit for bit."""
    from agentkpi.kpis.catalogue import HOURLY_COLUMNS
    from agentkpi.kpis.sql import KpiQuery, run
    from agentkpi.sinks.export import kpi_schema, kpis_batches

    generate_sessions(tmp_path / "data", 300, START, hours=80, seed=5, dirty=True)
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        ingest(str(tmp_path / "data"), st, workers=1)
        lo, hi = START.replace(tzinfo=None), (START + timedelta(hours=84)).replace(tzinfo=None)
        one = pa.Table.from_pylist(run(st, KpiQuery(start=lo, end=hi, kpis=list(HOURLY_COLUMNS),
                                                    grain="hour")), schema=kpi_schema())
        steps: list[tuple[str, int, int]] = []
        parts = kpis_batches(st, lo, hi, progress=lambda *a: steps.append(a)).read_all()
        assert one.num_rows > 80
        assert parts.to_pylist() == one.to_pylist()
        assert steps == [("kpis", 24, 84), ("kpis", 48, 84), ("kpis", 72, 84), ("kpis", 84, 84)]
        # the export writes the same rows, with progress in rows for a table scan
        seen: list[tuple[str, int, int]] = []
        r = export(st, "events", tmp_path / "e.jsonl", progress=lambda *a: seen.append(a))
        assert seen[0] == ("events", 0, r.rows) and seen[-1] == ("events", r.rows, r.rows)
        assert r.rows == st.counts()["events"]


def test_parquet_export_writes_few_row_groups_without_free_text_statistics(
        tmp_path: Path) -> None:
    """The writer keeps each row group's metadata until it closes the file: one per scanned
    batch (8,192 rows) grew an export of 24.5 M events by ~190 MB. Batches are gathered into
    row groups of ``ROW_GROUP_ROWS``, and free text gets no min/max statistics."""
    generate_sessions(str(tmp_path / "data"), 3500, datetime(2026, 5, 20, tzinfo=UTC),
                      hours=3, seed=2, workers=1)
    with DuckDBStore(str(tmp_path / "s.duckdb")) as st:
        n = ingest(str(tmp_path / "data"), st, workers=1).events
        assert n > 2 * parquet.ROW_GROUP_ROWS  # several scanned batches per row group
        export(st, "events", tmp_path / "e.parquet")
    meta = pq.ParquetFile(tmp_path / "e.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sum(sizes) == meta.num_rows == n
    assert sizes[:-1] and all(s >= parquet.ROW_GROUP_ROWS for s in sizes[:-1]), sizes
    assert len(sizes) == -(-n // parquet.ROW_GROUP_ROWS)
    cols = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i)
            for i in range(meta.num_columns)}
    assert cols["data"].statistics is None and cols["error_message"].statistics is None
    assert cols["ts"].statistics is not None and cols["ts"].statistics.has_min_max
    assert pq.read_table(tmp_path / "e.parquet").num_rows == n
