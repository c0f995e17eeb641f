"""JSON Lines export: one JSON object per row, keys in column order, streamed.

Timestamps are ISO 8601 strings (``2026-05-20T14:02:59.104211``, with an
offset when the column has a time zone), NULL is ``null``.
"""

from __future__ import annotations

import math
import os
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.json as pajson

from agentkpi.sinks._batches import Batches, schema_and_batches

FORMAT = "jsonl"
SUFFIX = ".jsonl"
_OPTS = orjson.OPT_APPEND_NEWLINE


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (``inf``, ``nan``) as None: strict JSON.

    Python's ``json.dumps`` writes ``Infinity``/``NaN``, which no strict JSON
    reader accepts; every JSON the package prints or serves goes through this.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _lines(batch: pa.RecordBatch) -> bytes:
    names = batch.schema.names
    cols = [c.to_pylist() for c in batch.columns]
    out = bytearray()
    for row in zip(*cols, strict=True):
        out += orjson.dumps(dict(zip(names, row, strict=True)), option=_OPTS)
    return bytes(out)


def write(data: Batches, destination: str | os.PathLike[str] | BinaryIO) -> int:
    """Write ``data`` as JSON Lines to a path or binary file object; returns the row count."""
    _, batches = schema_and_batches(data)
    rows = 0
    fh: Any
    own = not hasattr(destination, "write")
    fh = open(os.fspath(destination), "wb") if own else destination  # type: ignore[arg-type]
    try:
        for batch in batches:
            fh.write(_lines(batch))
            rows += batch.num_rows
    finally:
        if own:
            fh.close()
    return rows


def read(path: str | os.PathLike[str], schema: pa.Schema) -> pa.Table:
    """Read a file written by :func:`write` back with its schema."""
    opts = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    return pajson.read_json(os.fspath(path), parse_options=opts).select(schema.names)
