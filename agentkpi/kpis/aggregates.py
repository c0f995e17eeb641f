"""Materialised hourly aggregates: the KPI query's first stage, kept up to date by ingest.

Every session-level KPI is computed in three stages (:func:`agentkpi.kpis.sql.build`):
per (bucket, UTC hour, dimensions, session) *hourly measures*, combined exactly
per (bucket, dimensions, session), then aggregated per bucket. The first stage
does not depend on the query's range, grain or time zone, so the store keeps it
as tables, one per event-level key (:data:`TABLES`), and a query at hour grain or
coarser reads them instead of the raw events.

Exactness: the aggregate path returns the same rows as the raw path, bit for bit,
because both run the same stage-2 and stage-3 SQL over the same stage-1 rows.
Distinct counts keep their distinct values per hour (a list), float sums are
added hour by hour in hour order, percentiles and distinct users are computed at
query time from the per-session rows, not from sketches.

A query is answered from a table only when the table holds exactly what it
needs; otherwise it reads the events (the *raw path*):

* the range starts and ends on whole UTC hours and the time zone's offset is a
  whole number of hours over the range (so every UTC hour lies in one bucket);
* every event column its dimensions and filters read (``e.<column>``) is the
  table's key or ``session_id``; session columns (``s.*``) are joined as usual;
* event-level KPIs (event percentiles, first/last event, event maps) always read
  the events, in a query of their own.

The tables carry the signature of the SQL that filled them; when the catalogue
changes, a writer rebuilds them from the events (:meth:`agentkpi.store.Store.migrate`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import UTC, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from agentkpi.kpis.catalogue import MEASURES, Measure
from agentkpi.kpis.sql import KpiQuery, combined_measure_sql, hourly_measure_sql
from agentkpi.model import EVENT_COLUMNS

if TYPE_CHECKING:
    from agentkpi.store.base import Dialect

#: table -> the event columns it is keyed by (besides the hour and the session).
TABLES: dict[str, tuple[str, ...]] = {
    "agg_hourly": (),
    "agg_hourly_tool": ("tool",),
    "agg_hourly_agent": ("agent",),
    "agg_hourly_model": ("model",),
}

#: Per session: its hourly rows of ``agg_hourly`` combined over the session's whole life
#: (``_first_hour`` .. ``_last_hour``): the second stage of a query without time buckets
#: (totals, breakdowns, the sessions list) for every session that lies wholly in its range.
SESSION_TABLE = "agg_session"

#: Every aggregate table, in the order they are (re)built: the session table reads
#: ``agg_hourly``.
ALL_TABLES: tuple[str, ...] = (*TABLES, SESSION_TABLE)

_EVENT_NAMES = frozenset(n for n, *_ in EVENT_COLUMNS)
_QUALIFIED = re.compile(r"\b([es])\.([A-Za-z_][A-Za-z0-9_]*)")
_STRING = re.compile(r"'(?:[^'\\]|''|\\.)*'")
_WORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


def select_sql(d: Dialect, table: str, source: str = "events", where: str = "") -> str:
    """The rows of ``table`` computed from ``source`` (events, or a batch of them)."""
    key = TABLES[table]
    keys = "".join(f", {k}" for k in key)
    measures = ",\n    ".join(hourly_measure_sql(d, m) for m in MEASURES)
    cond = f" AND ({where})" if where else ""
    return (f"SELECT {d.bucket('hour', 'ts', 'UTC', 0)} AS _hour, session_id{keys},\n"
            f"    {measures}\nFROM {source} WHERE ts IS NOT NULL{cond}\n"
            f"GROUP BY _hour, session_id{keys}")


def session_select_sql(d: Dialect, where: str = "") -> str:
    """The rows of :data:`SESSION_TABLE`: ``agg_hourly`` combined per session.

    The combination is the query's own second stage (``combined_measure_sql``) over
    every hour of the session, so a session wholly inside a query's range has exactly
    the values the query would combine from its hours.
    """
    measures = ",\n    ".join(combined_measure_sql(d, m) for m in MEASURES)
    cond = f" WHERE {where}" if where else ""
    return (f"SELECT session_id, min(_hour) AS _first_hour, max(_hour) AS _last_hour,\n"
            f"    {measures}\nFROM agg_hourly{cond} GROUP BY session_id")


def signature(d: Dialect) -> str:
    """Changes whenever the SQL that fills the tables changes (catalogue, dialect)."""
    text = "\n".join([*(select_sql(d, t) for t in TABLES), session_select_sql(d)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _whole_hours(q: KpiQuery) -> bool:
    for t in (q.start, q.end):
        if (t.minute, t.second, t.microsecond) != (0, 0, 0):
            return False
    if q.tz == "UTC" or q.grain is None:
        return True
    zone = ZoneInfo(q.tz)
    day = q.start
    while True:  # offsets change at most a few times a year; a day's step sees them all
        off = day.replace(tzinfo=UTC).astimezone(zone).utcoffset()
        if off is None or off.total_seconds() % 3600:
            return False
        if day >= q.end:
            return True
        day = min(day + timedelta(days=1), q.end)


def event_columns(expr: str) -> set[str] | None:
    """Event columns ``expr`` reads (``e.x``), or None when it reads one unqualified."""
    text = _STRING.sub("''", expr)
    cols = {c for alias, c in _QUALIFIED.findall(text) if alias == "e"}
    bare = _QUALIFIED.sub(" ", text)
    if any(w in _EVENT_NAMES for w in _WORD.findall(bare)):
        return None
    return cols


def table_for(q: KpiQuery, available: frozenset[str]) -> str | None:
    """The aggregate table that answers ``q`` exactly, or None (read the events)."""
    if not _whole_hours(q):
        return None
    cols: set[str] = set()
    for expr in [*(x.expr for x in q.by), *q.where]:
        found = event_columns(expr)
        if found is None:
            return None
        cols |= found
    cols.discard("session_id")
    for name, key in TABLES.items():
        if name in available and set(key) == cols:
            return name
    return None


def hourly_source(d: Dialect, q: KpiQuery, measures: Sequence[Measure],
                  available: frozenset[str], partial_only: bool = False) -> str | None:
    """Stage-1 SQL over an aggregate table for ``q`` (None: use the raw path).

    ``partial_only``: only the sessions :func:`session_source` does not answer (those
    with hours outside the range).
    """
    table = table_for(q, available)
    if table is None:
        return None

    join, dims = _grouping(q)
    where = [f"a._hour >= {d.ts_literal(q.start)}", f"a._hour < {d.ts_literal(q.end)}",
             *(_local(p) for p in q.where)]
    if partial_only:  # uncorrelated subqueries: ClickHouse runs no correlated ones
        # Sessions cut by the range: they overlap it (only those have hours in it) and
        # do not lie inside it.
        cut = (f"SELECT session_id FROM {SESSION_TABLE} x WHERE "
               f"x._last_hour >= {d.ts_literal(q.start)} AND "
               f"x._first_hour < {d.ts_literal(q.end)} AND NOT ({_inside(d, q, 'x')})")
        where.append(f"(a.session_id IN ({cut}) OR (a.session_id IS NULL AND EXISTS "
                     f"({cut} AND x.session_id IS NULL)))")
    cols = ", ".join(f"a.{m.name}" for m in measures)
    return (f"SELECT {d.bucket(q.grain, 'a._hour', q.tz, q.week_start)} AS bucket{dims}, "
            f"a._hour AS _hour, a.session_id AS session_id, {cols}\n"
            f"  FROM {table} a{join} WHERE {' AND '.join(where)}")


def _inside(d: Dialect, q: KpiQuery, alias: str) -> str:
    return (f"{alias}._first_hour >= {d.ts_literal(q.start)} AND "
            f"{alias}._last_hour < {d.ts_literal(q.end)}")


def session_source(d: Dialect, q: KpiQuery, measures: Sequence[Measure],
                   available: frozenset[str]) -> str | None:
    """Stage-2 rows (per group and session) from :data:`SESSION_TABLE` for the sessions
    wholly inside ``q``'s range, or None when it cannot answer ``q``.

    It answers a query without time buckets whose dimensions and filters read only the
    session (``s.*``, ``e.session_id``): then each session is one group, and its combined
    values over the range are its values over its whole life. The other sessions of the
    range (:func:`hourly_source` with ``partial_only``) are combined from their hours.
    """
    if q.grain is not None or SESSION_TABLE not in available or \
            table_for(q, available) != "agg_hourly":
        return None

    join, dims = _grouping(q)
    where = [_inside(d, q, "a"), *(_local(p) for p in q.where)]
    cols = ", ".join(f"a.{m.name} AS {m.name}" for m in measures)
    return (f"SELECT {d.bucket(None, 'a._first_hour', q.tz, q.week_start)} AS bucket{dims}, "
            f"a.session_id AS session_id, {cols}\n"
            f"  FROM {SESSION_TABLE} a{join} WHERE {' AND '.join(where)}")


def _local(expr: str) -> str:
    """``expr`` with its event columns (``e.x``) read from the aggregate table (``a.x``)."""
    return _outside_strings(expr, lambda text: _QUALIFIED.sub(
        lambda m: f"a.{m.group(2)}" if m.group(1) == "e" else m.group(0), text))


def _grouping(q: KpiQuery) -> tuple[str, str]:
    """The sessions join (when a dimension or filter reads ``s.*``) and the group columns
    (``, expr AS g_name``) of ``q`` over an aggregate table aliased ``a``."""
    exprs = [*(x.expr for x in q.by), *q.where]
    join = (" LEFT JOIN sessions s ON s.session_id = a.session_id"
            if any(alias == "s" for e in exprs
                   for alias, _ in _QUALIFIED.findall(_STRING.sub("''", e))) else "")
    ev = [x for x in q.by if x.level == "event"]
    ss = [x for x in q.by if x.level == "session"]
    return join, "".join(f", {_local(x.expr)} AS g_{x.name}" for x in (*ev, *ss))


def _outside_strings(expr: str, fn: Callable[[str], str]) -> str:
    out, pos = [], 0
    for m in _STRING.finditer(expr):
        out.append(fn(expr[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(fn(expr[pos:]))
    return "".join(out)
