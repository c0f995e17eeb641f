"""What every export writer accepts, turned into a stream of record batches.

A writer takes a :class:`pyarrow.Table`, a :class:`pyarrow.RecordBatchReader`
or any iterable of :class:`pyarrow.RecordBatch` (one schema), and consumes it
batch by batch, so memory stays flat however many rows go through.

Spreadsheet formats (CSV, XLSX) neutralise text cells that a spreadsheet would
run as a formula: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading single quote (OWASP "CSV injection").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

Batches: TypeAlias = pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch]

#: First characters that make a spreadsheet evaluate a cell.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_RE = "^[=+\\-@\\t\\r]"


def schema_and_batches(data: Batches) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The schema and a batch iterator of ``data`` (a Table, a reader or batches)."""
    if isinstance(data, pa.Table):
        return data.schema, iter(data.to_batches())
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, iter(data)
    it: Iterator[pa.RecordBatch] = iter(data)
    first = next(it, None)
    if first is None:
        raise ValueError("no record batches and no schema: pass a Table or a "
                         "RecordBatchReader for an empty result")

    def chain() -> Iterator[pa.RecordBatch]:
        yield first
        yield from it

    return first.schema, chain()


def neutralise_value(value: Any) -> Any:
    """``'`` + value when a spreadsheet would run the text cell as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with every formula-like string cell quoted (vectorised)."""
    cols = []
    changed = False
    for col in batch.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            hit = pc.match_substring_regex(col, _FORMULA_RE)
            if pc.any(hit).as_py():
                quoted = pc.binary_join_element_wise(pa.scalar("'", col.type), col, "")
                col = pc.if_else(hit, quoted, col)
                changed = True
        cols.append(col)
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(cols, schema=batch.schema)
