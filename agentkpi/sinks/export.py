"""Exports: the canonical tables and KPI rows to CSV, JSON Lines, Parquet or XLSX.

Each format is a module with the same ``write(data, destination) -> rows``
shape (``data``: a :class:`pyarrow.Table`, a :class:`pyarrow.RecordBatchReader`
or record batches), so a new format is one module:

=========  =====================================  ==========================
format     module                                 notes
=========  =====================================  ==========================
csv        :mod:`agentkpi.sinks.csv_export`       formula cells neutralised
jsonl      :mod:`agentkpi.sinks.jsonl`            one object per line
parquet    :mod:`agentkpi.sinks.parquet`          zstd, row group per batch
xlsx       :mod:`agentkpi.sinks.xlsx`             extra sheets past 1,048,576 rows
=========  =====================================  ==========================

:func:`export` streams ``events`` / ``sessions`` out of a DuckDB store with
``to_arrow_reader`` (memory stays flat whatever the store's size) and ``kpis``
(the hourly KPI rows) through ``store.run_kpis``, which every engine has.
The schemas are documented in ``docs/exports.md``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

import pyarrow as pa

from agentkpi.errors import UsageError
from agentkpi.kpis.catalogue import BY_NAME, HOURLY_COLUMNS
from agentkpi.kpis.sql import KpiQuery
from agentkpi.model import EVENT_SCHEMA, SESSION_SCHEMA
from agentkpi.sinks import csv_export, jsonl, parquet, xlsx
from agentkpi.sinks._batches import Batches

WRITERS: dict[str, ModuleType] = {m.FORMAT: m for m in (csv_export, jsonl, parquet, xlsx)}
FORMATS = tuple(WRITERS)
TABLES = ("events", "sessions", "kpis")
BATCH_ROWS = 65_536


def writer(fmt: str) -> ModuleType:
    try:
        return WRITERS[fmt]
    except KeyError:
        raise UsageError(f"unknown export format {fmt!r}; choose from "
                         f"{', '.join(FORMATS)}") from None


def format_for(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """``fmt``, or the format named by the file's suffix."""
    if fmt:
        writer(fmt)
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "json":
        suffix = "jsonl"
    writer(suffix)
    return suffix


def write(data: Batches, destination: str | os.PathLike[str] | BinaryIO,
          fmt: str | None = None, **options: Any) -> int:
    """Write ``data`` to ``destination`` in ``fmt`` (default: from the suffix); rows written.

    A path is written atomically: to ``PATH.part`` first, renamed when complete.
    """
    if hasattr(destination, "write"):
        if not fmt:
            raise UsageError("writing to a stream needs an explicit format")
        return int(writer(fmt).write(data, destination, **options))
    fmt = format_for(destination, fmt)
    path = Path(destination)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        rows = int(writer(fmt).write(data, part, **options))
        os.replace(part, path)
    finally:
        if part.exists():
            part.unlink()
    return rows


# ----------------------------------------------------------------------------- reading

def _duckdb_con(store: Any, what: str) -> Any:
    con = getattr(store, "con", None)
    if con is None or getattr(store, "engine", "duckdb") != "duckdb":
        raise UsageError(f"exporting {what} streams from the DuckDB store; use --engine duckdb "
                         "(the kpis export works on every engine)")
    return con


def _range_sql(col: str, start: datetime | None, end: datetime | None
               ) -> tuple[list[str], list[Any]]:
    conds, params = [], []
    if start is not None:
        conds.append(f"{col} >= ?")
        params.append(start)
    if end is not None:
        conds.append(f"{col} < ?")
        params.append(end)
    return conds, params


def events_reader(store: Any, start: datetime | None = None, end: datetime | None = None,
                  batch_rows: int = BATCH_ROWS) -> pa.RecordBatchReader:
    """The ``events`` rows with ``start <= ts < end`` (naive UTC), in store order."""
    con = _duckdb_con(store, "events")
    conds, params = _range_sql("ts", start, end)
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    cols = ", ".join(EVENT_SCHEMA.names)
    rel = con.sql(f"SELECT {cols} FROM events{where}", params=params or None)
    return _cast(rel.to_arrow_reader(batch_rows), EVENT_SCHEMA)


def sessions_reader(store: Any, start: datetime | None = None, end: datetime | None = None,
                    batch_rows: int = BATCH_ROWS) -> pa.RecordBatchReader:
    """The ``sessions`` rows with at least one event in ``[start, end)`` (all when open)."""
    con = _duckdb_con(store, "sessions")
    conds, params = _range_sql("ts", start, end)
    cols = ", ".join(SESSION_SCHEMA.names)
    sql = f"SELECT {cols} FROM sessions"
    if conds:
        sql += (" WHERE session_id IN (SELECT session_id FROM events WHERE "
                f"{' AND '.join(conds)})")
    rel = con.sql(sql, params=params or None)
    return _cast(rel.to_arrow_reader(batch_rows), SESSION_SCHEMA)


def _cast(reader: pa.RecordBatchReader, schema: pa.Schema) -> pa.RecordBatchReader:
    if reader.schema.equals(schema):
        return reader
    return pa.RecordBatchReader.from_batches(schema, (b.cast(schema) for b in reader))


KPI_TYPES = {"int": pa.int64(), "float": pa.float64(), "json": pa.string(),
             "time": pa.timestamp("us")}


def kpi_schema(columns: tuple[str, ...] = HOURLY_COLUMNS) -> pa.Schema:
    return pa.schema([("bucket", pa.timestamp("us")),
                      *((c, KPI_TYPES[BY_NAME[c].kind]) for c in columns)])


def kpis_table(store: Any, start: datetime | None = None, end: datetime | None = None
               ) -> pa.Table:
    """The hourly KPI rows (every hourly CSV column) for ``[start, end)``; empty hours left out.

    Open ends default to the store's first / last event hour.
    """
    schema = kpi_schema()
    if start is None or end is None:
        lo, hi = store.time_range()
        if lo is None or hi is None:
            return schema.empty_table()
        start = start or lo.replace(minute=0, second=0, microsecond=0)
        end = end or hi.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if end <= start:
        return schema.empty_table()
    rows = store.run_kpis(KpiQuery(start=start, end=end, kpis=list(HOURLY_COLUMNS),
                                   grain="hour"))
    return pa.Table.from_pylist(rows, schema=schema)


def reader(store: Any, what: str, start: datetime | None = None,
           end: datetime | None = None) -> pa.Table | pa.RecordBatchReader:
    if what == "events":
        return events_reader(store, start, end)
    if what == "sessions":
        return sessions_reader(store, start, end)
    if what == "kpis":
        return kpis_table(store, start, end)
    raise UsageError(f"unknown export {what!r}; choose from {', '.join(TABLES)}")


#: DuckDB keeps the table blocks a scan reads in its buffer pool (up to 80% of RAM by
#: default); an export reads every block once, so it runs with a small pool instead.
EXPORT_MEMORY_LIMIT = "64MB"


@contextmanager
def _bounded_cache(store: Any) -> Iterator[None]:
    con = getattr(store, "con", None)
    if con is None or getattr(store, "engine", "duckdb") != "duckdb":
        yield
        return
    before = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con.execute(f"SET memory_limit = '{EXPORT_MEMORY_LIMIT}'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{before}'")


@dataclass
class ExportResult:
    what: str
    format: str
    path: str
    rows: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "format": self.format, "path": self.path,
                "rows": self.rows, "bytes": self.bytes}


def export(store: Any, what: str, destination: str | os.PathLike[str], fmt: str | None = None,
           start: datetime | None = None, end: datetime | None = None) -> ExportResult:
    """Stream ``events`` / ``sessions`` / ``kpis`` of ``[start, end)`` into ``destination``."""
    fmt = format_for(destination, fmt)
    if what not in TABLES:
        raise UsageError(f"unknown export {what!r}; choose from {', '.join(TABLES)}")
    options = {"sheet": what} if fmt == "xlsx" else {}
    with _bounded_cache(store):
        rows = write(reader(store, what, start, end), destination, fmt, **options)
    return ExportResult(what, fmt, os.fspath(destination), rows,
                        Path(destination).stat().st_size)
