"""Exports: the canonical tables and KPI rows to CSV, JSON Lines, Parquet or XLSX.

Each format is a module with the same ``write(data, destination) -> rows``
shape (``data``: a :class:`pyarrow.Table`, a :class:`pyarrow.RecordBatchReader`
or record batches), so a new format is one module:

=========  =====================================  ================================
format     module                                 notes
=========  =====================================  ================================
csv        :mod:`agentkpi.sinks.csv_export`       formula cells neutralised
jsonl      :mod:`agentkpi.sinks.jsonl`            one object per line
parquet    :mod:`agentkpi.sinks.parquet`          zstd, row groups of 32,768 rows
xlsx       :mod:`agentkpi.sinks.xlsx`             extra sheets past 1,048,576 rows
=========  =====================================  ================================

:func:`export` streams ``events`` / ``sessions`` out of any store with
``store.scan`` (on DuckDB memory stays flat whatever the store's size; ClickHouse
reads the range whole) and ``kpis`` (the hourly KPI rows) through
:func:`agentkpi.kpis.run`.
The schemas are documented in ``docs/exports.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
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
from agentkpi.store.base import ScanTable, scan_sql
from agentkpi.times import hour_end

#: ``progress(stage, done, total)``, as ingest's.
Progress = Callable[[str, int, int], None]

WRITERS: dict[str, ModuleType] = {m.FORMAT: m for m in (csv_export, jsonl, parquet, xlsx)}
FORMATS = tuple(WRITERS)
TABLES = ("events", "sessions", "kpis")
#: Rows per batch of an events/sessions scan. Memory in flight grows with it (the store's
#: reader and the writer each hold a few batches): at 65,536 an export of 5.3 M events
#: peaked at 439 MB, at 8,192 it stays under 300 MB (benchmarks/bench_export.py).
BATCH_ROWS = 8_192


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


def _kpi_range(store: Store, start: datetime | None, end: datetime | None
               ) -> tuple[datetime, datetime] | None:
    """``[start, end)`` with open ends at the store's first / last event hour (None: nothing)."""
    if start is None or end is None:
        lo, hi = store.time_range()
        if lo is None or hi is None:
            return None
        start = start or lo.replace(minute=0, second=0, microsecond=0)
        end = end or hour_end(hi)
    return (start, end) if end > start else None


#: The KPI rows of a long range are computed this many parts at a time (each at least a
#: day): every hourly row depends on its hour alone, so the parts are the same rows, and
#: an export can say how far it got.
KPI_PARTS = 20


def kpis_batches(store: Store, start: datetime | None = None, end: datetime | None = None,
                 progress: Progress | None = None) -> pa.RecordBatchReader:
    """The hourly KPI rows (every hourly CSV column) for ``[start, end)`` as a stream of
    record batches, one per part of the range; empty hours left out.

    Open ends default to the store's first / last event hour. ``progress("kpis", hours
    done, hours)`` is called after each part.
    """
    schema = kpi_schema()
    span = _kpi_range(store, start, end)
    if span is None:
        return pa.RecordBatchReader.from_batches(schema, iter(()))
    lo, hi = span
    hours = max(1, -(-int((hi - lo).total_seconds()) // 3600))
    step = timedelta(hours=max(24, -(-hours // KPI_PARTS)))

    def parts() -> Iterator[pa.RecordBatch]:
        a = lo
        while a < hi:
            b = hi if hi - a <= step else a + step
            rows = run(store, KpiQuery(start=a, end=b, kpis=list(HOURLY_COLUMNS),
                                       grain="hour"))
            if progress:
                progress("kpis", min(hours, int((b - lo).total_seconds()) // 3600), hours)
            yield from pa.Table.from_pylist(rows, schema=schema).to_batches()
            a = b

    return pa.RecordBatchReader.from_batches(schema, parts())


def kpis_table(store: Store, start: datetime | None = None, end: datetime | None = None
               ) -> pa.Table:
    """The hourly KPI rows (every hourly CSV column) for ``[start, end)``; empty hours left out.

    Open ends default to the store's first / last event hour.
    """
    return kpis_batches(store, start, end).read_all()


def _counted(data: pa.RecordBatchReader, stage: str, total: int, progress: Progress
             ) -> pa.RecordBatchReader:
    """``data`` calling ``progress(stage, rows so far, total)`` after each batch."""
    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        progress(stage, 0, total)
        for b in data:
            done += b.num_rows
            progress(stage, done, max(total, done))
            yield b

    return pa.RecordBatchReader.from_batches(data.schema, batches())


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
           start: datetime | None = None, end: datetime | None = None,
           progress: Progress | None = None) -> ExportResult:
    """Stream ``events`` / ``sessions`` / ``kpis`` of ``[start, end)`` into ``destination``.

    ``progress(stage, done, total)``: rows written of the rows in range (events,
    sessions) or hours computed of the range's hours (kpis).
    """
    if Path(destination).is_dir():
        raise UsageError(f"--out {destination} is a directory; give a file name, e.g. "
                         f"{Path(destination) / ('export.' + (fmt or 'csv'))}")
    fmt = format_for(destination, fmt)
    if what not in TABLES:
        raise UsageError(f"unknown export {what!r}; choose from {', '.join(TABLES)}")
    options = {"sheet": what} if fmt == "xlsx" else {}
    if what == "kpis":
        # The KPI query needs the store's ordinary memory: only a scan runs with a small
        # buffer pool (under it, a KPI query of a large store runs out of memory).
        rows = write(kpis_batches(store, start, end, progress), destination, fmt, **options)
    else:
        table: ScanTable = "events" if what == "events" else "sessions"
        total = 0
        if progress:
            _, sql = scan_sql(table, store.dialect, start, end)
            total = int(store.fetch(f"SELECT count(*) FROM ({sql}) AS scanned")[1][0][0])
        with store.low_memory(table, start, end):
            data = (events_reader if what == "events" else sessions_reader)(store, start, end)
            if progress:
                data = _counted(data, what, total, progress)
            rows = write(data, destination, fmt, **options)
    return ExportResult(what, fmt, os.fspath(destination), rows,
                        Path(destination).stat().st_size)
