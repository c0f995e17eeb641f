"""Data-quality bookkeeping and value coercion shared by every importer.

Nothing bad in the input crashes a run and nothing vanishes silently: a value
of the wrong type becomes NULL and is counted under a named issue kind; a file
that cannot be parsed is skipped and listed with its path and the reason.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentkpi.model import to_utc_naive

#: Issue kinds and what each one means (also the report's documentation).
ISSUE_KINDS: dict[str, str] = {
    "file_empty": "The file had no content; skipped.",
    "file_unreadable": "The file could not be read (I/O error); skipped.",
    "file_bad_json": "The file is not valid JSON (truncated or corrupt); skipped.",
    "file_not_object": "The file's row is not a JSON object; skipped.",
    "file_unparseable": "The importer failed on the file (a bug to report); skipped, the "
                        "rest of the run goes on.",
    "line_bad_json": "A line of a JSONL log is not valid JSON (e.g. a torn last line); skipped.",
    "field_bad_json": "A field holding JSON text (messages/events/tools) did not parse; "
                      "treated as empty.",
    "field_wrong_type": "A field had the wrong type (e.g. events is a number); treated as empty.",
    "event_not_object": "An entry of events is not an object; skipped.",
    "ts_missing": "An event has no timestamp; stored with ts NULL and left out of every window.",
    "ts_unparseable": "An event timestamp could not be parsed; stored with ts NULL.",
    "number_unparseable": "A numeric field held a non-number (e.g. 'abc'); treated as missing.",
    "bool_unparseable": "A boolean field held an unrecognised value; treated as missing.",
    "session_id_missing": "A row had no session_id; the file name was used instead.",
    "event_type_unknown": "An event type outside the documented vocabulary (kept as is).",
    "span_id_invalid": "An OpenTelemetry span without a valid trace or span id; skipped.",
    "tokens_inconsistent": "OTel input tokens smaller than the cache tokens they include; "
                           "input kept as the prompt tokens.",
}


@dataclass
class Quality:
    """Counts of issues by kind plus the list of skipped files."""

    counts: Counter[str] = field(default_factory=Counter)
    skipped: list[dict[str, str]] = field(default_factory=list)
    examples: dict[str, str] = field(default_factory=dict)

    def note(self, kind: str, where: str = "") -> None:
        self.counts[kind] += 1
        if where and kind not in self.examples:
            self.examples[kind] = where

    def skip(self, path: str, kind: str, reason: str) -> None:
        self.note(kind, path)
        self.skipped.append({"path": path, "kind": kind, "reason": reason})

    def merge(self, other: Quality) -> None:
        self.counts.update(other.counts)
        self.skipped.extend(other.skipped)
        for k, v in other.examples.items():
            self.examples.setdefault(k, v)

    @property
    def data_errors(self) -> int:
        """Issues that mean data was lost or guessed (unknown event types are not errors)."""
        return sum(n for k, n in self.counts.items() if k != "event_type_unknown")

    def to_dict(self) -> dict[str, Any]:
        return {
            "issues": dict(sorted(self.counts.items())),
            "issue_kinds": {k: ISSUE_KINDS.get(k, "") for k in sorted(self.counts)},
            "examples": dict(sorted(self.examples.items())),
            "skipped_files": sorted(self.skipped, key=lambda s: s["path"]),
        }


# --------------------------------------------------------------------- coercion

def parse_ts(value: Any, q: Quality, where: str = "") -> datetime | None:
    """ISO-8601 text (offset, ``Z`` or none = UTC) or epoch seconds -> naive UTC."""
    if value is None or value == "":
        q.note("ts_missing", where)
        return None
    if isinstance(value, str):
        try:
            return to_utc_naive(datetime.fromisoformat(value))
        except ValueError:
            q.note("ts_unparseable", where)
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        try:
            return datetime.utcfromtimestamp(float(value))  # noqa: DTZ004 - naive UTC wanted
        except (OverflowError, OSError, ValueError):
            pass
    q.note("ts_unparseable", where)
    return None


def to_float(value: Any, q: Quality, where: str = "") -> float | None:
    """Numbers, numeric strings -> float; None stays None; anything else counted."""
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        f = float(value)
        if math.isfinite(f):
            return f
        q.note("number_unparseable", where)
        return None
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return None
        try:
            f = float(s)
        except ValueError:
            q.note("number_unparseable", where)
            return None
        if math.isfinite(f):
            return f
    q.note("number_unparseable", where)
    return None


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def to_int(value: Any, q: Quality, where: str = "") -> int | None:
    """Like :func:`to_float` but truncated to an integer (token counts).

    Values outside the 64-bit (BIGINT) range are counted as unparseable, not stored.
    """
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    f = value if type(value) is int else to_float(value, q, where)
    if f is None:
        return None
    if not INT64_MIN <= f <= INT64_MAX:
        q.note("number_unparseable", where)
        return None
    return int(f)


_TRUE = {"true", "1", "yes", "y", "ok", "success", "succeeded"}
_FALSE = {"false", "0", "no", "n", "fail", "failed", "failure", "error", ""}


def to_bool(value: Any, q: Quality, where: str = "") -> bool | None:
    """Booleans, 0/1 and the usual words -> bool. The string 'false' is False.

    (The seed took ``bool(value)``, so the string ``"false"`` counted as a
    success; that is a bug we do not reproduce.)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
    q.note("bool_unparseable", where)
    return None


def to_str(value: Any) -> str | None:
    """Any scalar -> str; None and empty string -> None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, (dict, list)):
        return None
    return str(value)
