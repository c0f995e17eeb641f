"""CSV export: header line, then one line per row, streamed batch by batch.

Cells are written by Arrow's CSV writer (quoted only when needed; timestamps as
``YYYY-MM-DD HH:MM:SS[.ffffff]``, booleans ``true``/``false``, NULL as an empty
cell). Formula-like text cells are neutralised (see :mod:`._batches`).
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from agentkpi.sinks._batches import Batches, neutralise_batch, schema_and_batches

FORMAT = "csv"
SUFFIX = ".csv"


def write(data: Batches, destination: str | os.PathLike[str] | BinaryIO) -> int:
    """Write ``data`` as CSV to a path or binary file object; returns the row count."""
    schema, batches = schema_and_batches(data)
    rows = 0
    sink: Any = destination if hasattr(destination, "write") else os.fspath(destination)
    with pacsv.CSVWriter(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(neutralise_batch(batch))
            rows += batch.num_rows
    return rows


def read(path: str | os.PathLike[str], schema: pa.Schema) -> pa.Table:
    """Read a file written by :func:`write` back with its schema (for tests and tools)."""
    opts = pacsv.ConvertOptions(column_types=schema, strings_can_be_null=True,
                                quoted_strings_can_be_null=False)
    return pacsv.read_csv(os.fspath(path), convert_options=opts).select(schema.names)
