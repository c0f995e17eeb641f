"""Seed 000's KPI CSV layout: ``hourly/YYYY-MM-DD/HH.csv`` and ``daily/YYYY-MM-DD.csv``.

A header line and one row; first column ``bucket`` (``YYYY-MM-DDTHH`` or
``YYYY-MM-DD``); a cell is quoted only when it contains a comma, a quote or a
newline (quotes doubled); values are Python's ``str()`` of the KPI value, so
``0.0`` stays ``0.0`` and integers have no decimal point, exactly as the seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def cell(value: Any) -> str:
    s = str(value)
    if "," in s or '"' in s or "\n" in s:
        return '"' + s.replace('"', '""') + '"'
    return s


def render(bucket: str, row: Mapping[str, Any]) -> bytes:
    cols = list(row)
    header = ",".join(["bucket", *cols])
    values = ",".join([bucket, *(cell(row[c]) for c in cols)])
    return f"{header}\n{values}\n".encode()


def hourly_path(hour: datetime) -> tuple[str, str]:
    """(relative path, bucket key) of an hour."""
    return f"hourly/{hour:%Y-%m-%d}/{hour:%H}.csv", f"{hour:%Y-%m-%dT%H}"


def daily_path(day: datetime) -> tuple[str, str]:
    return f"daily/{day:%Y-%m-%d}.csv", f"{day:%Y-%m-%d}"
