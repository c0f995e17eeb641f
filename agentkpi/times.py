"""Time input: the one parser for every time, range and time zone a caller gives.

Every ``--from`` / ``--to`` / ``--datetime`` / ``--now`` / ``--tz`` of the CLI,
every ``?from=&to=&tz=`` of the web API and every ``start`` / ``end`` / ``tz``
argument of the library goes through this module, so all of them accept the same
forms and fail the same way: with :class:`agentkpi.errors.TimeInputError` (a
:class:`~agentkpi.errors.UsageError`: exit 1 with one line on the CLI, HTTP 400
with a JSON body on the API).

Accepted times (``value``):

* ``YYYY-MM-DD`` (midnight), ``YYYY-MM-DDTHH`` (the hour; a space may replace
  the ``T``), any ISO 8601 time (``2026-05-20T14:30``, ``...Z``, ``...+02:00``);
* a :class:`datetime.date` or :class:`datetime.datetime`.

Naive values are read in ``tz`` (an IANA name, default UTC); aware values are
converted. Results are naive UTC, the store's time.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentkpi.errors import TimeInputError

__all__ = ["TimeInputError", "FORMS", "local_iso", "parse_hour", "parse_range", "parse_time",
           "to_utc_naive", "zone", "hour_end"]

#: What a user may type, for error messages and ``--help`` texts.
FORMS = "YYYY-MM-DD, YYYY-MM-DDTHH or an ISO time such as 2026-05-20T14:30:00+02:00"

TimeValue = str | date | datetime

# A '+' of an offset arrives as ' ' when a URL query was not encoded (?to=...T14:00+02:00).
_SPACED_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")


def zone(tz: str | tzinfo | None = "UTC") -> ZoneInfo:
    """The time zone called ``tz`` (an IANA name; None or empty = UTC).

    Raises :class:`TimeInputError` for a name the system's zone database lacks.
    """
    if isinstance(tz, ZoneInfo):
        return tz
    if tz is None or tz is UTC:
        return ZoneInfo("UTC")
    if isinstance(tz, tzinfo):
        raise TimeInputError(f"time zone {tz!r} is not an IANA zone; pass its name, e.g. "
                             "'Europe/Paris'")
    name = str(tz).strip()
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimeInputError(f"unknown time zone {tz!r}; use an IANA name such as UTC, "
                             "Europe/Paris or America/New_York") from None


def parse_time(value: TimeValue | None, tz: str | tzinfo | None = "UTC",
               what: str = "") -> datetime | None:
    """``value`` read in ``tz`` -> naive UTC; None (or an empty string) stays None.

    ``what`` names the input in the error message (``"--from"``, ``"start"``).
    The zone is checked even when ``value`` is empty, so a bad ``tz`` never
    slips through because no time was given.
    """
    z = zone(tz)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        dt = _from_text(value, what)
    else:
        label = f"{what} " if what else ""
        raise TimeInputError(f"{label}must be a date, datetime or string, not "
                             f"{type(value).__name__}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=z)
    try:
        return dt.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # e.g. 9999-12-31T23:30-01:00 or 0001-01-01T00:00+05:00
        label = f"{what} " if what else ""
        raise TimeInputError(f"{label}{value!r} is outside years 1..9999 in UTC") from None


def _from_text(value: str, what: str) -> datetime:
    s = value.strip()
    if len(s) == 13 and s[10] in "T ":  # YYYY-MM-DDTHH
        s = s[:10] + "T" + s[11:] + ":00"
    s = _SPACED_OFFSET.sub(r"\1+\2", s)
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        label = f"{what} " if what else ""
        raise TimeInputError(f"cannot read {label}{value!r} as a time; use {FORMS}") from None


def parse_hour(value: TimeValue, tz: str | tzinfo | None = "UTC", what: str = "") -> datetime:
    """Like :func:`parse_time` (the value is required) and floored to the start of its hour."""
    dt = parse_time(value, tz, what)
    if dt is None:
        label = f"{what} " if what else "a time"
        raise TimeInputError(f"{label} is empty; use {FORMS}")
    return dt.replace(minute=0, second=0, microsecond=0)


def parse_range(start: TimeValue | None, end: TimeValue | None,
                tz: str | tzinfo | None = "UTC", names: tuple[str, str] = ("start", "end")
                ) -> tuple[datetime | None, datetime | None]:
    """``[start, end)`` read in ``tz`` -> naive UTC bounds (either may be None).

    Raises :class:`TimeInputError` when both are given and ``end`` is not after
    ``start`` (``names`` label them in the message).
    """
    lo = parse_time(start, tz, names[0])
    hi = parse_time(end, tz, names[1])
    if lo is not None and hi is not None and hi <= lo:
        raise TimeInputError(f"empty range: {names[0]} {start} is not before {names[1]} {end}; "
                             f"the range is [{names[0]}, {names[1]})")
    return lo, hi


def hour_end(dt: datetime) -> datetime:
    """The end of the hour holding ``dt`` (an exclusive range end), at most ``datetime.max``.

    Default range ends are derived from the last stored event; a stored event in
    the last hour of year 9999 must not overflow them.
    """
    floor = dt.replace(minute=0, second=0, microsecond=0)
    return floor + timedelta(hours=1) if floor < _LAST_HOUR else datetime.max


_LAST_HOUR = datetime.max.replace(minute=0, second=0, microsecond=0)


def to_utc_naive(dt: datetime) -> datetime:
    """Aware -> naive UTC (the store's time); naive values are taken to be UTC already."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def local_iso(dt: datetime | None, tz: str | tzinfo | None = "UTC") -> str | None:
    """A naive UTC time as ISO 8601 in ``tz`` (with its offset); None stays None."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC).astimezone(zone(tz)).isoformat()
