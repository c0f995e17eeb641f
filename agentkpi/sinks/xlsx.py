"""Excel export (openpyxl write-only mode, so rows stream to disk).

One sheet per 1,048,575 data rows (Excel's 1,048,576-row limit, header
included): ``SHEET``, ``SHEET_2``, ``SHEET_3``, ... each with the header row.
Text cells are neutralised against formula injection, stripped of characters
XML cannot hold, and cut at Excel's 32,767-character cell limit. Time-zone
aware timestamps are written as local wall time of their zone (Excel has no
time zones); naive ones (the store's UTC) as they are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO

import pyarrow as pa

from agentkpi.sinks._batches import Batches, neutralise_value, schema_and_batches

if TYPE_CHECKING:  # openpyxl (~8 MB) is imported when a workbook is written or read
    from openpyxl import Workbook

FORMAT = "xlsx"
SUFFIX = ".xlsx"
MAX_ROWS = 1_048_576  # per sheet, header included
MAX_CELL = 32_767


def _cell(value: Any, illegal: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        value = illegal.sub("", value)
        if len(value) > MAX_CELL:
            value = value[:MAX_CELL]
        return neutralise_value(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    if isinstance(value, (dict, list)):
        return str(value)
    return value


def write(data: Batches, destination: str | os.PathLike[str] | BinaryIO,
          sheet: str = "data", max_rows: int = MAX_ROWS) -> int:
    """Write ``data`` to an .xlsx workbook; returns the row count (header not counted)."""
    return write_sheets({sheet: data}, destination, max_rows)


def write_sheets(sheets: Mapping[str, Batches], destination: str | os.PathLike[str] | BinaryIO,
                 max_rows: int = MAX_ROWS) -> int:
    """Write one sheet per ``{name: data}`` to one workbook; returns the rows written.

    Names are made valid for Excel (:func:`sheet_name`); an empty mapping writes one
    empty sheet, so the file always opens.
    """
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    used: set[str] = set()
    rows = 0
    for name, data in sheets.items():
        rows += _append(wb, sheet_name(name, used), data, max_rows)
    if not sheets:
        wb.create_sheet("data")
    wb.save(destination if hasattr(destination, "write") else os.fspath(destination))
    return rows


def sheet_name(name: str, used: set[str]) -> str:
    """``name`` as a valid, unique (case-insensitive) sheet title; adds it to ``used``.

    Excel forbids ``[ ] : * ? / \\`` and titles over 31 characters.
    """
    title = re.sub(r"[\[\]:*?/\\]", "_", name)[:31] or "data"
    base, i = title, 1
    while title.lower() in used:
        i += 1
        title = f"{base[:28]}_{i}"
    used.add(title.lower())
    return title


def _append(wb: Workbook, sheet: str, data: Batches, max_rows: int) -> int:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    schema, batches = schema_and_batches(data)
    per_sheet = max_rows - 1
    header = list(schema.names)
    ws = wb.create_sheet(sheet)
    ws.append(header)
    n_sheets, in_sheet, rows = 1, 0, 0
    for batch in batches:
        cols = [c.to_pylist() for c in batch.columns]
        for row in zip(*cols, strict=True):
            if in_sheet == per_sheet:
                n_sheets += 1
                ws = wb.create_sheet(f"{sheet[:25]}_{n_sheets}")
                ws.append(header)
                in_sheet = 0
            ws.append([_cell(v, ILLEGAL_CHARACTERS_RE) for v in row])
            in_sheet += 1
            rows += 1
    return rows


def read(path: str | os.PathLike[str]) -> dict[str, list[tuple[Any, ...]]]:
    """``{sheet: [header, *rows]}`` of a workbook (for tests and tools)."""
    from openpyxl import load_workbook

    wb = load_workbook(os.fspath(path), read_only=True)
    try:
        return {ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)]
                for ws in wb.worksheets}
    finally:
        wb.close()


def to_table(sheets: dict[str, list[tuple[Any, ...]]], schema: pa.Schema) -> pa.Table:
    """Rows of every sheet (headers dropped) as a table of ``schema``."""
    # a row's trailing empty cells may be left out when read back: pad to the schema
    width = len(schema)
    rows = [r + (None,) * (width - len(r)) for body in sheets.values() for r in body[1:]]
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    return pa.table({f.name: pa.array(list(c), type=f.type) for f, c in
                     zip(schema, cols, strict=True)}, schema=schema)
