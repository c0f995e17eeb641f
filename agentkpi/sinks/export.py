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

:func:`export` streams ``events`` / ``sessions`` out of any store with
``store.scan`` (on DuckDB memory stays flat whatever the store's size; ClickHouse
reads the range whole) and ``kpis`` (the hourly KPI rows) through
:func:`agentkpi.kpis.run`.
The schemas are documented in ``docs/exports.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

import pyarrow as pa

from agentkpi.errors import OutputError, UsageError, os_reason
from agentkpi.kpis.catalogue import BY_NAME, HOURLY_COLUMNS
from agentkpi.kpis.sql import KpiQuery, run
from agentkpi.sinks import csv_export, jsonl, parquet, xlsx
from agentkpi.sinks._batches import Batches
from agentkpi.store import Store
from agentkpi.times import hour_end

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
    path = Path(destination)
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory; give a file name, e.g. "
                         f"{path / ('export.' + (fmt or 'csv'))}")
    fmt = format_for(destination, fmt)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        rows = int(writer(fmt).write(data, part, **options))
        os.replace(part, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {os_reason(exc)}; free some space or "
                          "choose another --out") from None
    finally:
        if part.exists():
            part.unlink()
    return rows


# ----------------------------------------------------------------------------- reading

def events_reader(store: Store, start: datetime | None = None, end: datetime | None = None,
                  batch_rows: int = BATCH_ROWS) -> pa.RecordBatchReader:
    """The ``events`` rows with ``start <= ts < end`` (naive UTC), in store order."""
    return store.scan("events", start, end, batch_rows)


def sessions_reader(store: Store, start: datetime | None = None, end: datetime | None = None,
                    batch_rows: int = BATCH_ROWS) -> pa.RecordBatchReader:
    """The ``sessions`` rows with at least one event in ``[start, end)`` (all when open)."""
    return store.scan("sessions", start, end, batch_rows)


KPI_TYPES = {"int": pa.int64(), "float": pa.float64(), "json": pa.string(),
             "time": pa.timestamp("us")}


def kpi_schema(columns: tuple[str, ...] = HOURLY_COLUMNS) -> pa.Schema:
    return pa.schema([("bucket", pa.timestamp("us")),
                      *((c, KPI_TYPES[BY_NAME[c].kind]) for c in columns)])


def kpis_table(store: Store, start: datetime | None = None, end: datetime | None = None
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
        end = end or hour_end(hi)
    if end <= start:
        return schema.empty_table()
    rows = run(store, KpiQuery(start=start, end=end, kpis=list(HOURLY_COLUMNS), grain="hour"))
    return pa.Table.from_pylist(rows, schema=schema)


def reader(store: Store, what: str, start: datetime | None = None,
           end: datetime | None = None) -> pa.Table | pa.RecordBatchReader:
    if what == "events":
        return events_reader(store, start, end)
    if what == "sessions":
        return sessions_reader(store, start, end)
    if what == "kpis":
        return kpis_table(store, start, end)
    raise UsageError(f"unknown export {what!r}; choose from {', '.join(TABLES)}")


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


def export(store: Store, what: str, destination: str | os.PathLike[str], fmt: str | None = None,
           start: datetime | None = None, end: datetime | None = None) -> ExportResult:
    """Stream ``events`` / ``sessions`` / ``kpis`` of ``[start, end)`` into ``destination``."""
    if Path(destination).is_dir():
        raise UsageError(f"--out {destination} is a directory; give a file name, e.g. "
                         f"{Path(destination) / ('export.' + (fmt or 'csv'))}")
    fmt = format_for(destination, fmt)
    if what not in TABLES:
        raise UsageError(f"unknown export {what!r}; choose from {', '.join(TABLES)}")
    options = {"sheet": what} if fmt == "xlsx" else {}
    with store.low_memory():
        rows = write(reader(store, what, start, end), destination, fmt, **options)
    return ExportResult(what, fmt, os.fspath(destination), rows,
                        Path(destination).stat().st_size)
