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
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from agentkpi.kpis.catalogue import CATALOGUE, MEASURES, Kpi, Measure
from agentkpi.kpis.dimensions import DIMENSIONS
from agentkpi.kpis.sql import (
    KpiQuery,
    combined_measure_sql,
    hourly_measure_sql,
    needed_kpis,
    needed_measures,
    subset_event_maps,
)
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

#: Per session and value of a dimension: the rows of a keyed hourly table combined per
#: (session, value of the dimension) over the session's whole life, with the session's
#: first and last hour (table -> its hourly table, the dimension). A query grouped by that
#: dimension (the cost page's models and agents, their breakdown pages) takes the stage-2
#: rows of the sessions wholly in its range (and, with time buckets, in one bucket) from
#: here. The column named like the dimension holds the dimension's value (for ``model``:
#: ``coalesce(e.model, s.model)``, the session's model filled in at write time).
SESSION_KEY_TABLES: dict[str, tuple[str, str]] = {
    "agg_session_model": ("agg_hourly_model", "model"),
    "agg_session_agent": ("agg_hourly_agent", "agent"),
}

#: The KPIs whose measures :data:`SESSION_KEY_TABLES` keep (the costs page's cost per
#: bucket, by model and by agent): a narrow table costs an ingest half as much to keep.
#: A query needing another measure combines the hours.
SESSION_KEY_KPIS = ("cost_usd", "llm_calls", "tokens_prompt", "tokens_completion",
                    "tokens_cache_read", "tokens_cache_creation", "unpriced_tokens",
                    "sessions", "tool_calls_total")
SESSION_KEY_MEASURES: tuple[Measure, ...] = tuple(needed_measures(needed_kpis(SESSION_KEY_KPIS)))

#: Per (UTC hour, session): the rows of the event-level JSON maps that read a subset of
#: the events (:data:`EVENT_MAP_KPIS`: tools by name, sessions per tool, CTA sources, GPU
#: hours by flavor). A count map keeps one row per key with its events counted; the
#: float-sum map one row per event, with its value and where it lies (file, seq) for the
#: seed's order of addition. A query of whole hours without dimensions or filters reads
#: its maps here (:func:`event_maps_source`) instead of the events' timestamps in every
#: row group (sessions that run for days leave no row group of a cold ingest skippable).
EVENT_MAPS_TABLE = "agg_hourly_event_maps"

#: The KPIs :data:`EVENT_MAPS_TABLE` answers: those of the hourly row (the query set's
#: other maps, e.g. tool outputs by name, would add a row per tool call; they read the
#: events).
EVENT_MAP_KPIS: tuple[Kpi, ...] = tuple(subset_event_maps(CATALOGUE))


def _rows_of(k: Kpi) -> str:
    """The ``map_name`` of the rows ``k`` reads: a count map and a sessions-count map of
    the same key and events (tools by name, sessions per tool) share one set of rows, the
    first one's; a float-sum map has its own."""
    if k.map_value == "sum":
        return k.name
    return next(o.name for o in EVENT_MAP_KPIS
                if o.map_value != "sum" and (o.expr, o.where) == (k.expr, k.where))


#: Map KPI name -> the ``map_name`` of its rows in :data:`EVENT_MAPS_TABLE`.
EVENT_MAP_ROWS: dict[str, str] = {k.name: _rows_of(k) for k in EVENT_MAP_KPIS}

#: Per model call (``llm_call`` with a time), the tools it asked for: one row per (call,
#: tool, MCP server) with the times asked (``n``), the times the call asked for any tool
#: (``kn``), ``rn`` = 1 on one row of the call, and when its first and last tool call
#: were (``t_first``, ``t_last``); a call that asked for none is one row with them NULL.
#: The split of call costs over requested tools (:func:`agentkpi.views.
#: cost_by_requested_tool`) reads it instead of matching the events, for whole hours when
#: every matched call's tool calls lie where the raw path looks for them; the costs page's
#: calls by price source and version, for whole hours (its rows with ``rn`` = 1 or ``kn``
#: NULL are the calls, once each).
CALL_TOOLS_TABLE = "agg_call_tools"

#: Every aggregate table, in the order they are (re)built: the session tables read
#: the hourly ones.
ALL_TABLES: tuple[str, ...] = (*TABLES, SESSION_TABLE, *SESSION_KEY_TABLES, EVENT_MAPS_TABLE,
                               CALL_TOOLS_TABLE)

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


def event_maps_select_sql(d: Dialect, source: str = "events", where: str = "") -> str:
    """The rows of :data:`EVENT_MAPS_TABLE` computed from ``source`` (events, or a batch)."""
    hour = d.bucket("hour", "ts", "UTC", 0)
    cond = f" AND ({where})" if where else ""
    branches = []
    for k in EVENT_MAP_KPIS:
        if EVENT_MAP_ROWS[k.name] != k.name:  # another map's rows are this one's
            continue
        head = (f"SELECT {hour} AS _hour, session_id, {d.str_literal(k.name)} AS map_name, "
                f"{k.expr} AS key")
        rows = f"FROM {source} WHERE ts IS NOT NULL AND ({k.where}){cond}"
        if k.map_value == "sum":
            branches.append(f"{head}, CAST({k.num} AS DOUBLE) AS value, file, seq {rows}")
        else:
            branches.append(f"{head}, CAST(count(*) AS DOUBLE) AS value, NULL AS file, "
                            f"NULL AS seq {rows} GROUP BY _hour, session_id, key")
    return "\nUNION ALL\n".join(branches)


def event_maps_source(d: Dialect, q: KpiQuery, maps: Sequence[Kpi],
                      available: frozenset[str]) -> str | None:
    """The event-level maps query over :data:`EVENT_MAPS_TABLE` for ``q``, rows as the
    raw path's (map index, bucket, key, value, file, session_id, seq); None: read the
    events. Only for whole hours, without dimensions or filters (the table has neither)."""
    if (EVENT_MAPS_TABLE not in available or q.by or q.where or not _whole_hours(q)
            or any(k not in EVENT_MAP_KPIS for k in maps)):
        return None
    bucket = d.bucket(q.grain, "_hour", q.tz, q.week_start)
    hours = f"_hour >= {d.ts_literal(q.start)} AND _hour < {d.ts_literal(q.end)}"
    branches = []
    for i, k in enumerate(maps):
        rows = (f"FROM {EVENT_MAPS_TABLE} WHERE map_name = "
                f"{d.str_literal(EVENT_MAP_ROWS[k.name])} AND {hours}")
        if k.map_value == "sum":
            branches.append(f"SELECT {i} AS map_index, {bucket} AS bucket, key, value, file, "
                            f"session_id, seq {rows}")
        else:  # counts add up exactly (integers below 2**53); sessions are counted again
            value = ("sum(value)" if k.map_value == "count"
                     else "CAST(count(DISTINCT session_id) AS DOUBLE)")
            branches.append(f"SELECT {i} AS map_index, {bucket} AS bucket, key, "
                            f"{value} AS value, NULL AS file, NULL AS session_id, NULL AS seq "
                            f"{rows} GROUP BY bucket, key")
    return "\nUNION ALL\n".join(branches)


def call_tools_select_sql(d: Dialect, source: str = "events", where: str = "") -> str:
    """The rows of :data:`CALL_TOOLS_TABLE` computed from ``source`` (events, or a batch
    holding its sessions' every event): each call joined to the tool calls of its session
    that carry its ``response_id`` (a call's tools are its session's)."""
    cond = f" AND ({where})" if where else ""
    calls = (f"SELECT {d.bucket('hour', 'ts', 'UTC', 0)} AS _hour, session_id, response_id, "
             f"cost_usd, model, agent, cost_source, price_version FROM {source} "
             f"WHERE event_type = 'llm_call' AND ts IS NOT NULL{cond}")
    asked = ("SELECT session_id, response_id, tool, mcp_server, count(*) AS n, "
             f"min(ts) AS t0, max(ts) AS t1 FROM {source} WHERE event_type = 'tool_call' "
             f"AND response_id IS NOT NULL AND ts IS NOT NULL{cond} "
             "GROUP BY session_id, response_id, tool, mcp_server")
    call = "PARTITION BY session_id, response_id"
    asked_n = (f"SELECT session_id, response_id, tool, mcp_server, n, sum(n) OVER ({call}) "
               f"AS kn, row_number() OVER ({call} ORDER BY tool NULLS FIRST, mcp_server "
               f"NULLS FIRST) AS rn, min(t0) OVER ({call}) AS t_first, "
               f"max(t1) OVER ({call}) AS t_last FROM ({asked}) a")
    return ("SELECT c._hour AS _hour, c.session_id AS session_id, c.response_id AS "
            "response_id, c.cost_usd AS cost_usd, c.model AS model, c.agent AS agent, "
            "c.cost_source AS cost_source, c.price_version AS price_version, "
            "t.tool AS tool, t.mcp_server AS mcp_server, t.n AS n, t.kn AS kn, t.rn AS rn, "
            "t.t_first AS t_first, t.t_last AS t_last "
            f"FROM ({calls}) c LEFT JOIN ({asked_n}) t "
            "ON t.session_id = c.session_id AND t.response_id = c.response_id")


def session_select_sql(d: Dialect, where: str = "", hourly: str = "agg_hourly") -> str:
    """The rows of :data:`SESSION_TABLE`: ``agg_hourly`` combined per session.

    The combination is the query's own second stage (``combined_measure_sql``) over
    every hour of the session, so a session wholly inside a query's range has exactly
    the values the query would combine from its hours. ``hourly``: the relation holding
    those hourly rows (a batch's own, when its sessions have no other).
    """
    measures = ",\n    ".join(combined_measure_sql(d, m) for m in MEASURES)
    cond = f" WHERE {where}" if where else ""
    return (f"SELECT session_id, min(_hour) AS _first_hour, max(_hour) AS _last_hour,\n"
            f"    {measures}\nFROM {hourly}{cond} GROUP BY session_id")


def session_key_select_sql(d: Dialect, table: str, where: str = "",
                           hourly: str | None = None) -> str:
    """The rows of a :data:`SESSION_KEY_TABLES` table: its hourly table combined per
    session and value of the dimension (``where`` filters the hourly rows, unqualified).

    The combination is the query's own second stage over the same hourly rows, grouped
    by the same dimension expression, so a session wholly inside a query's range (and
    bucket) has exactly the values the query would combine from its hours. ``hourly``:
    the relation holding those hourly rows (default: the hourly table).
    """
    table_hourly, dim = SESSION_KEY_TABLES[table]
    hourly = hourly or table_hourly
    expr = _local(DIMENSIONS[dim].expr)
    join = " LEFT JOIN sessions s ON s.session_id = a.session_id" if _reads_session(expr) else ""
    cond = f" WHERE {where}" if where else ""
    cols = ", ".join(f"a.{m.name} AS {m.name}" for m in SESSION_KEY_MEASURES)
    measures = ",\n    ".join(combined_measure_sql(d, m) for m in SESSION_KEY_MEASURES)
    return (f"SELECT session_id, _first_hour, _last_hour, _key AS {dim},\n    {measures}\n"
            f"FROM (SELECT a.session_id AS session_id, a._hour AS _hour, {expr} AS _key, "
            "min(a._hour) OVER (PARTITION BY a.session_id) AS _first_hour, "
            f"max(a._hour) OVER (PARTITION BY a.session_id) AS _last_hour, {cols}\n"
            f"  FROM (SELECT * FROM {hourly}{cond}) a{join})\n"
            "GROUP BY session_id, _first_hour, _last_hour, _key")


def table_sql(d: Dialect, table: str, where: str = "", source: str = "events",
              hourly: str | None = None) -> str:
    """The rows of any aggregate ``table`` (``where``: a filter on its source's rows;
    ``hourly``: for a session table, the relation holding the hourly rows it combines)."""
    if table == SESSION_TABLE:
        return session_select_sql(d, where, hourly or "agg_hourly")
    if table in SESSION_KEY_TABLES:
        return session_key_select_sql(d, table, where, hourly)
    if table == EVENT_MAPS_TABLE:
        return event_maps_select_sql(d, source, where)
    if table == CALL_TOOLS_TABLE:
        return call_tools_select_sql(d, source, where)
    return select_sql(d, table, source, where)


#: The session tables, each combined from one hourly table (:func:`combined_from`).
SESSION_TABLES: tuple[str, ...] = (SESSION_TABLE, *SESSION_KEY_TABLES)


def combined_from(table: str) -> str:
    """The hourly table a session table is combined from."""
    return SESSION_KEY_TABLES[table][0] if table in SESSION_KEY_TABLES else "agg_hourly"


def usable(tables: frozenset[str]) -> frozenset[str]:
    """Of the current ``tables``, those a query may read: a session table is only as good
    as the hourly table it was combined from."""
    return tables - {t for t in SESSION_TABLES if combined_from(t) not in tables}


def with_dependents(todo: Sequence[str]) -> list[str]:
    """``todo`` plus the session tables combined from a table in it, in build order."""
    need = set(todo) | {t for t in SESSION_TABLES if combined_from(t) in todo}
    return [t for t in ALL_TABLES if t in need]


def signature(d: Dialect) -> str:
    """Changes whenever the SQL that fills the tables changes (catalogue, dialect)."""
    text = "\n".join([*(select_sql(d, t) for t in TABLES), session_select_sql(d),
                      *(session_key_select_sql(d, t) for t in SESSION_KEY_TABLES),
                      event_maps_select_sql(d), call_tools_select_sql(d)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def on_whole_hours(start: datetime, end: datetime) -> bool:
    """Whether ``[start, end)`` starts and ends on whole UTC hours (what the tables keep)."""
    return all((t.minute, t.second, t.microsecond) == (0, 0, 0) for t in (start, end))


def _whole_hours(q: KpiQuery) -> bool:
    if not on_whole_hours(q.start, q.end):
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
    with hours outside the range, or in more than one of its time buckets).
    """
    table = table_for(q, available)
    if table is None:
        return None

    join, dims = _grouping(q)
    rows = [f"a._hour >= {d.ts_literal(q.start)}", f"a._hour < {d.ts_literal(q.end)}"]
    source = table
    if partial_only:  # uncorrelated subqueries: ClickHouse runs no correlated ones
        # Sessions cut by the range: they overlap it (only those have hours in it) and
        # do not lie inside it (or one bucket). Picked before the sessions join, which
        # otherwise meets every row of the range.
        cut = (f"SELECT session_id FROM {SESSION_TABLE} x WHERE "
               f"x._last_hour >= {d.ts_literal(q.start)} AND "
               f"x._first_hour < {d.ts_literal(q.end)} AND NOT ({_whole(d, q, 'x')})")
        rows.append(f"(a.session_id IN ({cut}) OR (a.session_id IS NULL AND EXISTS "
                    f"({cut} AND x.session_id IS NULL)))")
        source = f"(SELECT * FROM {table} a WHERE {' AND '.join(rows)})"
        rows = []
        if join:  # their sessions only (ClickHouse hashes the whole right side)
            join = (f" LEFT JOIN (SELECT * FROM sessions WHERE session_id IN ({cut})) s "
                    "ON s.session_id = a.session_id")
    where = [*rows, *(_local(p) for p in q.where)] or ["1 = 1"]
    cols = ", ".join(f"a.{m.name}" for m in measures)
    return (f"SELECT {d.bucket(q.grain, 'a._hour', q.tz, q.week_start)} AS bucket{dims}, "
            f"a._hour AS _hour, a.session_id AS session_id, {cols}\n"
            f"  FROM {source} a{join} WHERE {' AND '.join(where)}")


def _whole(d: Dialect, q: KpiQuery, alias: str) -> str:
    """The session (its ``_first_hour``/``_last_hour``) lies wholly in ``q``'s range and,
    when ``q`` has time buckets, in one bucket (buckets are intervals: the first and the
    last hour's bucket are the same, so every hour's is)."""
    inside = (f"{alias}._first_hour >= {d.ts_literal(q.start)} AND "
              f"{alias}._last_hour < {d.ts_literal(q.end)}")
    if q.grain is None:
        return inside
    first, last = (d.bucket(q.grain, f"{alias}.{c}", q.tz, q.week_start)
                   for c in ("_first_hour", "_last_hour"))
    return f"{inside} AND {first} = {last}"


def _session_table(q: KpiQuery, available: frozenset[str]
                   ) -> tuple[str, list[str], list[str]] | None:
    """The session table that answers ``q``'s sessions wholly in its range, with ``q``'s
    dimension and filter expressions over it (the dimension's value read from its
    column ``a.<dim>``), or None."""
    exprs = [x.expr for x in q.by]
    table = table_for(q, available)
    if table == "agg_hourly":
        return SESSION_TABLE, exprs, list(q.where)
    for name, (hourly, dim) in SESSION_KEY_TABLES.items():
        if hourly != table or name not in available:
            continue
        # Grouped by the dimension: each (group, session) is one stored row. A filter on
        # it alone could keep several rows of a session in one group.
        key = DIMENSIONS[dim].expr
        if key not in exprs:
            return None
        subst = [_outside_strings(e, partial(_replace, old=key, new=f"a.{dim}"))
                 for e in [*exprs, *q.where]]
        for e in subst:  # no other event column may remain
            found = event_columns(e.replace(f"a.{dim}", "NULL"))
            if found is None or found - {"session_id"}:
                return None
        return name, subst[:len(exprs)], subst[len(exprs):]
    return None


def session_source(d: Dialect, q: KpiQuery, measures: Sequence[Measure],
                   available: frozenset[str]) -> str | None:
    """Stage-2 rows (per group and session) from a session table for the sessions wholly
    inside ``q``'s range (and one of its buckets), or None when none can answer ``q``.

    :data:`SESSION_TABLE` answers a query whose dimensions and filters read only the
    session (``s.*``, ``e.session_id``): each session is then one group. A table of
    :data:`SESSION_KEY_TABLES` answers a query grouped by its dimension (besides session
    columns) that needs only the measures it keeps: each (session, value) is one group.
    With time buckets, a session whose hours all fall in one bucket is one group of that
    bucket. Such a group's combined values over the range are its values over its whole
    life. The other sessions of the range (:func:`hourly_source` with ``partial_only``)
    are combined from their hours.
    """
    if SESSION_TABLE not in available:
        return None
    found = _session_table(q, available)
    if found is None:
        return None
    table, by, where_exprs = found
    if table in SESSION_KEY_TABLES and not {m.name for m in measures} <= {
            m.name for m in SESSION_KEY_MEASURES}:
        return None
    join = (" LEFT JOIN sessions s ON s.session_id = a.session_id"
            if any(_reads_session(e) for e in [*by, *where_exprs]) else "")
    level = {x.name: x.level for x in q.by}
    names = [x.name for x in q.by]
    order = [i for i, n in enumerate(names) if level[n] == "event"] + \
        [i for i, n in enumerate(names) if level[n] != "event"]
    dims = "".join(f", {_local(by[i])} AS g_{names[i]}" for i in order)
    where = [_whole(d, q, "a"), *(_local(p) for p in where_exprs)]
    cols = ", ".join(f"a.{m.name} AS {m.name}" for m in measures)
    return (f"SELECT {d.bucket(q.grain, 'a._first_hour', q.tz, q.week_start)} AS bucket"
            f"{dims}, a.session_id AS session_id, {cols}\n"
            f"  FROM {table} a{join} WHERE {' AND '.join(where)}")


def _replace(text: str, old: str, new: str) -> str:
    return text.replace(old, new)


def _reads_session(expr: str) -> bool:
    return any(alias == "s" for alias, _ in _QUALIFIED.findall(_STRING.sub("''", expr)))


def _local(expr: str) -> str:
    """``expr`` with its event columns (``e.x``) read from the aggregate table (``a.x``)."""
    return _outside_strings(expr, lambda text: _QUALIFIED.sub(
        lambda m: f"a.{m.group(2)}" if m.group(1) == "e" else m.group(0), text))


def _grouping(q: KpiQuery) -> tuple[str, str]:
    """The sessions join (when a dimension or filter reads ``s.*``) and the group columns
    (``, expr AS g_name``) of ``q`` over an aggregate table aliased ``a``."""
    exprs = [*(x.expr for x in q.by), *q.where]
    join = (" LEFT JOIN sessions s ON s.session_id = a.session_id"
            if any(_reads_session(e) for e in exprs) else "")
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
