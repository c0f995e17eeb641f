"""Parquet export: one file, zstd-compressed, written row group by row group."""

from __future__ import annotations

import os
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from agentkpi.sinks._batches import Batches, schema_and_batches

FORMAT = "parquet"
SUFFIX = ".parquet"


def write(data: Batches, destination: str | os.PathLike[str] | BinaryIO,
          compression: str = "zstd") -> int:
    """Write ``data`` as Parquet to a path or binary file object; returns the row count."""
    schema, batches = schema_and_batches(data)
    rows = 0
    sink = destination if hasattr(destination, "write") else os.fspath(destination)
    with pq.ParquetWriter(sink, schema, compression=compression) as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def read(path: str | os.PathLike[str], schema: pa.Schema | None = None) -> pa.Table:
    return pq.read_table(os.fspath(path), schema=schema)
