"""Parquet export: one file, zstd-compressed, written row group by row group."""

from __future__ import annotations

import os
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from agentkpi.sinks._batches import Batches, schema_and_batches

FORMAT = "parquet"
SUFFIX = ".parquet"
#: Rows per Parquet row group. The writer keeps every row group's metadata (and column
#: statistics) in memory until it closes the file: with one row group per scanned batch
#: (8,192 rows) an export of 24.5 M events peaked at 449 MB and grew with the store; batches
#: are gathered up to this many rows instead (318 MB; BENCHMARKS.md §11d).
ROW_GROUP_ROWS = 32_768
#: Columns of free text: no statistics are written for them.
_FREE_TEXT = frozenset({"data", "error_message", "extra"})


def write(data: Batches, destination: str | os.PathLike[str] | BinaryIO,
          compression: str = "zstd") -> int:
    """Write ``data`` as Parquet to a path or binary file object; returns the row count."""
    schema, batches = schema_and_batches(data)
    rows = 0
    sink = destination if hasattr(destination, "write") else os.fspath(destination)
    group: list[pa.RecordBatch] = []
    # No min/max statistics for free text (JSON, messages): the writer keeps them for
    # every row group until it closes, and nobody filters a Parquet file on them.
    stats = [n for n in schema.names if n not in _FREE_TEXT]
    with pq.ParquetWriter(sink, schema, compression=compression,
                          write_statistics=stats) as writer:

        def flush() -> None:  # the gathered batches as one row group
            table = pa.Table.from_batches(group, schema)
            writer.write_table(table, row_group_size=max(table.num_rows, 1))
            group.clear()

        for batch in batches:
            group.append(batch)
            rows += batch.num_rows
            if sum(b.num_rows for b in group) >= ROW_GROUP_ROWS:
                flush()
        if group:
            flush()
    return rows


def read(path: str | os.PathLike[str], schema: pa.Schema | None = None) -> pa.Table:
    return pq.read_table(os.fspath(path), schema=schema)
