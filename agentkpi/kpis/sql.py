"""Compile the KPI catalogue to SQL for one engine dialect, run it, finish the rows.

The catalogue (:mod:`agentkpi.kpis.catalogue`) is written once; the store's
:class:`~agentkpi.store.base.Dialect` says how each aggregate is spelled on its
engine (:mod:`agentkpi.store.duckdb`, :mod:`agentkpi.store.clickhouse`), and
:func:`run` executes the SQL through :meth:`~agentkpi.store.base.Store.fetch`.
The store imports it only through :mod:`agentkpi.kpis.aggregates` (the hourly tables it
keeps up to date).

Rounding, ratios and JSON maps are finished in Python on the aggregated
values, so every engine produces byte-identical rows (Python's ``round`` and
``json.dumps(sort_keys=True)``, exactly as seed 000).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentkpi.kpis.catalogue import BY_NAME, MEASURES, Kpi, Measure
from agentkpi.model import EVENT_COLUMNS

if TYPE_CHECKING:
    from agentkpi.store.base import Dialect, Store

GRAINS = ("hour", "day", "week", "month")
EVENT_LEVEL = "__event_level__"
#: The one query of the event-level JSON maps over a subset of the events (:func:`_event_maps_sql`).
EVENT_MAPS = "__event_maps__"
EVENT_COLUMN_NAMES = frozenset(c[0] for c in EVENT_COLUMNS)


@dataclass(frozen=True)
class Dim:
    """A group-by dimension: output name, SQL expression, and where it lives."""

    name: str
    expr: str
    level: str  # "event" (events columns, grouped before sessions) or "session"


@dataclass
class KpiQuery:
    """What to compute: which KPIs, over which window, at which grain and grouping."""

    start: datetime  # naive UTC, inclusive
    end: datetime  # naive UTC, exclusive
    kpis: Sequence[str] = ()
    grain: str | None = "hour"
    tz: str = "UTC"
    week_start: int = 0
    by: Sequence[Dim] = ()
    where: Sequence[str] = ()  # portable predicates over events (e.) / sessions (s.)


def _aggregate(d: Dialect, agg: str, expr: str, where: str, order: str = "",
               p: float = 0.0) -> str | None:
    """One aggregate in the dialect's spelling (measures and KPIs share it)."""
    if agg == "sum":
        return f"coalesce({d.sum_if(expr, where, order)}, 0)"
    if agg in ("count", "count_if"):
        return d.count_if(where)
    if agg == "count_distinct":
        return d.count_distinct_if(expr, where)
    if agg == "percentile":
        return d.quantile_if(expr, p, where)
    if agg == "min":
        return d.min_if(expr, where)
    if agg == "max":
        return d.max_if(expr, where)
    return None  # ratio / diff / map: finished in Python or by their own query


def hourly_measure_sql(d: Dialect, m: Measure) -> str:
    """Stage 1: the measure over one session's events of one UTC hour.

    Distinct counts keep the distinct values (a list) so that hours combine exactly.
    """
    if m.agg == "count_distinct":
        return f"{d.distinct_list_if(m.expr, m.where)} AS {m.name}"
    sql = _aggregate(d, m.agg, m.expr, m.where, m.order)
    if sql is None:
        raise ValueError(f"unknown measure aggregation {m.agg!r}")
    return f"{sql} AS {m.name}"


def combined_measure_sql(d: Dialect, m: Measure) -> str:
    """Stage 2: the measure over a bucket, combined exactly from its hourly values.

    Counts and integer sums add up, minima take the minimum, distinct counts
    count the union of the hourly value lists. Float sums add the hourly sums in
    hour order: a session's cost over a day is the sum of its hourly costs, on
    every engine and whether the hours come from events or from the aggregates.
    """
    if m.agg in ("count", "sum"):
        order = "_hour" if m.agg == "sum" and m.expr not in INT_SUM_COLUMNS else ""
        return f"coalesce({d.sum_if(m.name, '', order)}, 0) AS {m.name}"
    if m.agg == "min":
        return f"{d.min_if(m.name, '')} AS {m.name}"
    if m.agg == "count_distinct":
        return f"{d.count_distinct_lists(m.name)} AS {m.name}"
    raise ValueError(f"unknown measure aggregation {m.agg!r}")


def _kpi_sql(d: Dialect, k: Kpi, one_session: bool = False) -> str | None:
    # A group of one session sums one value: no order to keep (and DuckDB's ordered
    # aggregate costs ~1 µs a group, 0.5 s for a list of 200,000 sessions).
    sql = _aggregate(d, k.agg, k.expr, k.where, "" if one_session else k.order, k.p)
    return None if sql is None else f"{sql} AS {k.name}"


def needed_kpis(names: Sequence[str]) -> list[Kpi]:
    """The requested KPIs plus everything their ratios/differences read."""
    out: dict[str, Kpi] = {}

    def add(name: str) -> None:
        k = BY_NAME[name]
        if k.agg in ("ratio", "diff"):
            add(k.num)
            add(k.den)
        out.setdefault(name, k)

    for n in names:
        add(n)
    return list(out.values())


#: A dimension with this expression groups by session: each group holds one session.
SESSION_EXPR = "e.session_id"

#: Integer event columns: their sums are exact in any order.
INT_SUM_COLUMNS = frozenset({"prompt_tokens", "completion_tokens", "cache_read_tokens",
                             "cache_creation_tokens"})

#: Measures the session columns (ttfa_s, calls_per_turn) always read.
ALWAYS_MEASURES = frozenset({"first_action_ts", "named_tool_calls"})


def needed_measures(kpis: Sequence[Kpi]) -> list[Measure]:
    """The measures the session-level KPIs read (so a narrow query computes only those)."""
    used = " ".join(f"{k.expr} {k.where} {k.num} {k.den}" for k in kpis
                    if k.level == "session")
    return [m for m in MEASURES
            if m.name in ALWAYS_MEASURES or re.search(rf"\b{m.name}\b", used)]


def build(d: Dialect, q: KpiQuery, aggregates: frozenset[str] = frozenset()
          ) -> tuple[str, dict[str, str]]:
    """SQL for the scalar KPIs and one SQL per JSON-map KPI.

    Three stages: per (bucket, UTC hour, dims, session) measures (``hm``), combined
    per (bucket, dims, session) (``ps``), aggregated per (bucket, dims). ``hm`` is read
    from a materialised hourly table (:mod:`agentkpi.kpis.aggregates`) when one of
    ``aggregates`` can answer the query exactly, else computed from the events.
    Event-level KPIs read the events, but for the maps of a subset of them, which a query
    of whole hours without dimensions reads from their own table.
    """
    kpis = needed_kpis(q.kpis)
    ev_dims = [x for x in q.by if x.level == "event"]
    ss_dims = [x for x in q.by if x.level == "session"]
    bucket = d.bucket(q.grain, "e.ts", q.tz, q.week_start)
    needs_session_join = (bool(ss_dims) or any("s." in w for w in q.where)
                          or any("s." in x.expr for x in ev_dims))
    where = [f"e.ts >= {d.ts_literal(q.start)}", f"e.ts < {d.ts_literal(q.end)}", *q.where]
    join = " LEFT JOIN sessions s ON s.session_id = e.session_id" if needs_session_join else ""
    # Dimensions get internal aliases (g_<name>) so that a dimension named like an
    # events column ("model", "tool") can never be confused with that column.
    ev_sel = "".join(f", {x.expr} AS g_{x.name}" for x in ev_dims)
    ss_sel = "".join(f", {x.expr} AS g_{x.name}" for x in ss_dims)
    hour = d.bucket("hour", "e.ts", "UTC", 0)
    w = (f"SELECT e.*, {bucket} AS bucket, {hour} AS _hour{ev_sel}{ss_sel} FROM events e{join} "
         f"WHERE {' AND '.join(where)}")
    ev_names = "".join(f", g_{x.name}" for x in ev_dims)
    ss_names = "".join(f", g_{x.name}" for x in ss_dims)
    group = f"bucket{ev_names}{ss_names}"
    used = needed_measures(kpis)
    hm = whole = None
    if aggregates:
        from agentkpi.kpis.aggregates import hourly_source, session_source

        whole = session_source(d, q, used, aggregates)
        hm = hourly_source(d, q, used, aggregates, partial_only=whole is not None)
    from_table = hm is not None
    if hm is None:
        hm = (f"SELECT {group}, _hour, session_id,\n    "
              + ",\n    ".join(hourly_measure_sql(d, m) for m in used)
              + f"\n  FROM w GROUP BY {group}, _hour, session_id")
    ps = (f"SELECT {group}, session_id,\n    "
          + ",\n    ".join(combined_measure_sql(d, m) for m in used)
          + f"\n  FROM hm GROUP BY {group}, session_id")
    if whole is not None:  # sessions wholly in the range: their combined rows, stored
        ps = f"{whole}\n  UNION ALL\n{ps}"
    ttfa = d.seconds_between("ps.first_action_ts", "s2.start_ts")
    pss = ("SELECT ps.*, coalesce(s2.turns, 0) AS turns, "
           "coalesce(s2.user_id, ps.session_id) AS user_key, "
           "coalesce(s2.model, 'unknown') AS model_key, "
           "coalesce(s2.source_path, '') AS src_order, "
           f"{ttfa} AS ttfa_s, "
           f"{d.seconds_between('s2.end_ts', 's2.start_ts')} AS session_duration_s, "
           "CASE WHEN coalesce(s2.turns, 0) > 0 THEN ps.named_tool_calls / "
           "CAST(s2.turns AS DOUBLE) END AS calls_per_turn "
           "FROM ps LEFT JOIN sessions s2 ON s2.session_id = ps.session_id")
    ctes = f"hm AS ({hm}),\nps AS ({ps}),\npss AS ({pss})\n"
    ctes = f"WITH {ctes}" if from_table else f"WITH w AS ({w}),\n{ctes}"
    raw = f"WITH w AS ({w})\n"
    one_session = any(x.expr == SESSION_EXPR for x in q.by)
    cols = [s for s in (_kpi_sql(d, k, one_session) for k in kpis if k.level == "session")
            if s]
    # A session-level JSON map (sessions per key) is the list of its group's keys, counted
    # in Python: one more column of the main query, not a second run of its three stages.
    cols += [f"{d.list_of(k.expr)} AS {k.name}" for k in _session_maps(kpis)]
    main = f"{ctes}SELECT {group},\n  {', '.join(cols)}\nFROM pss GROUP BY {group}"
    maps: dict[str, str] = {}
    ev_cols = [s for s in (_kpi_sql(d, k) for k in kpis if k.level == "event") if s]
    if ev_cols:
        maps[EVENT_LEVEL] = f"{raw}SELECT {group}, {', '.join(ev_cols)} FROM w GROUP BY {group}"
    event_maps = subset_event_maps(kpis)
    if event_maps:
        stored = None
        if aggregates:
            from agentkpi.kpis.aggregates import event_maps_source

            stored = event_maps_source(d, q, event_maps, aggregates)
        maps[EVENT_MAPS] = stored or _event_maps_sql(w, group, event_maps)
    for k in kpis:  # a map over every event: its own query (a CTE of all would be huge)
        if k.agg == "map" and k.level == "event" and not k.where:
            maps[k.name] = _event_map_sql(raw, group, k)
    return main, maps


def _session_maps(kpis: Sequence[Kpi]) -> list[Kpi]:
    """The session-level JSON maps among ``kpis`` (key: a session column, never NULL)."""
    return [k for k in kpis if k.agg == "map" and k.level != "event"]


def subset_event_maps(kpis: Sequence[Kpi]) -> list[Kpi]:
    """The event-level JSON maps among ``kpis`` that read a subset of the events (a
    ``where``): the branches, in order, of their one query (:func:`_event_maps_sql`)."""
    return [k for k in kpis if k.agg == "map" and k.level == "event" and k.where]


def _event_map_sql(raw: str, group: str, k: Kpi) -> str:
    """The query of one event-level JSON map over all the window's events (no ``where``)."""
    if k.map_value == "sum":
        return (f"{raw}SELECT {group}, {k.expr} AS key, file, session_id, seq, "
                f"{k.num} AS value FROM w")
    value = {"count": "count(*)", "count_sessions": "count(DISTINCT session_id)"}[k.map_value]
    return f"{raw}SELECT {group}, {k.expr} AS key, {value} AS value FROM w GROUP BY {group}, key"


_WORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


def _event_maps_sql(w: str, group: str, maps: Sequence[Kpi]) -> str:
    """One query for the event-level JSON maps that read a subset of the events: a
    ``UNION ALL`` of one branch per map over the window's events that some map reads
    (the OR of their ``where``), with only the columns they read, so the events are
    scanned once, not once per map (DuckDB reads a CTE used by several branches once;
    the events of a window are not ordered by time on disk, so each scan reads the whole
    ``ts`` column).

    Rows: (branch index, group..., key, value, file, session_id, seq). A count map's
    branch is grouped (one row per group and key; value its count); a float-sum map's
    branch has one row per event (its value, and where it lies, for the seed's order of
    addition in Python: ``_ordered_sums``). Values are DOUBLE in every branch (counts
    are exact below 2**53).
    """
    branches = []
    for i, k in enumerate(maps):
        if k.map_value == "sum":
            # Float sums are added up in Python in the seed's order (per session in
            # event order, then sessions in file order) so that every engine prints
            # the very same float repr.
            branches.append(f"SELECT {i} AS map_index, {group}, {k.expr} AS key, "
                            f"CAST({k.num} AS DOUBLE) AS value, file, session_id, seq "
                            f"FROM w WHERE {k.where}")
        else:
            value = {"count": "count(*)",
                     "count_sessions": "count(DISTINCT session_id)"}[k.map_value]
            branches.append(f"SELECT {i} AS map_index, {group}, {k.expr} AS key, "
                            f"CAST({value} AS DOUBLE) AS value, NULL AS file, "
                            "NULL AS session_id, NULL AS seq "
                            f"FROM w WHERE {k.where} GROUP BY {group}, key")
    text = " ".join(f"{k.expr} {k.where} {k.num}" for k in maps)
    read = {c for c in _WORD.findall(text) if c in EVENT_COLUMN_NAMES}
    read |= {"file", "session_id", "seq"}
    cols = ", ".join(sorted(read))
    keep = " OR ".join(f"({k.where})" for k in maps)
    return (f"WITH w AS (SELECT {group}, {cols} FROM ({w}) w0 WHERE {keep})\n"
            + "\nUNION ALL\n".join(branches))


def _finish(k: Kpi, row: dict[str, Any]) -> Any:
    if k.agg == "ratio":
        num, den = row[k.num], row[k.den]
        v = num / den if den else 0.0
    elif k.agg == "diff":
        v = row[k.num] - row[k.den]
    else:
        v = row.get(k.name)
    if k.kind == "int":
        # Sums of 64-bit token counts are exact on the engine (DuckDB: HUGEINT) but may
        # not fit the BIGINT of a KPI column: saturate instead of failing the read.
        if v is None or v != v:
            return 0
        if isinstance(v, float) and v in (INF, -INF):
            return INT64_MAX if v > 0 else INT64_MIN
        return max(INT64_MIN, min(INT64_MAX, int(v)))
    if k.kind == "float":
        # A sum of finite costs can overflow to infinity: saturate at the largest float
        # so every output (CSV, strict JSON, charts) stays a finite number.
        v = 0.0 if v is None or v != v else max(-FLOAT_MAX, min(FLOAT_MAX, float(v)))
        return round(v, k.digits) if k.digits is not None else v
    return v


INF = float("inf")
FLOAT_MAX = sys.float_info.max
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def run(store: Store, q: KpiQuery) -> list[dict[str, Any]]:
    """Compute ``q`` on ``store``; one dict per (bucket, dims...) with KPIs in catalogue order.

    The SQL is built in the store's dialect and executed by ``store.fetch``.
    """
    d = store.dialect
    fetch = store.fetch
    main, maps = build(d, q, store.aggregates)
    names, rows = fetch(main)
    # build() groups event-level dimensions first: name the key columns in that order.
    dim_names = ["bucket", *(x.name for x in q.by if x.level == "event"),
                 *(x.name for x in q.by if x.level == "session")]
    raw = {tuple(r[: len(dim_names)]): dict(zip(names, r, strict=True)) for r in rows}
    map_values: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for name, sql in maps.items():
        if name == EVENT_LEVEL:
            enames, erows = fetch(sql)
            for r in erows:
                target = raw.get(tuple(r[: len(dim_names)]))
                if target is not None:
                    target.update(zip(enames[len(dim_names):], r[len(dim_names):], strict=True))
        elif name == EVENT_MAPS:
            _, erows = fetch(sql)
            n = len(dim_names)
            for i, k in enumerate(subset_event_maps(needed_kpis(q.kpis))):
                mine = [r[1:] for r in erows if r[0] == i]
                if k.map_value == "sum":  # (group..., key, file, session_id, seq, value)
                    map_values[k.name] = _ordered_sums(
                        [(*r[:n + 1], *r[n + 2:], r[n + 1]) for r in mine], n)
                else:
                    map_values[k.name] = _counts(mine, n)
        else:
            _, mrows = fetch(sql)
            one = BY_NAME[name]
            map_values[name] = (_ordered_sums(mrows, len(dim_names)) if one.map_value == "sum"
                                else _counts(mrows, len(dim_names)))
    for k in _session_maps(needed_kpis(q.kpis)):
        map_values[k.name] = {g: _tally(row.pop(k.name)) for g, row in raw.items()}
    requested = list(q.kpis)
    needed = needed_kpis(requested)
    out = []
    for key in sorted(raw, key=_sort_key):
        row = raw[key]
        full: dict[str, Any] = {n: key[i] for i, n in enumerate(dim_names)}
        for k in needed:
            if k.agg == "map":
                row[k.name] = json.dumps(map_values[k.name].get(key, {}), sort_keys=True)
            elif k.agg in ("ratio", "diff"):
                continue
            else:
                row.setdefault(k.name, None)
                row[k.name] = _finish(k, row)
        for k in needed:
            if k.agg in ("ratio", "diff"):
                row[k.name] = _finish(k, row)
        for name in requested:
            full[name] = row[name]
        out.append(full)
    return out


def values(store: Store, q: KpiQuery, name: str, ordered: bool = True
           ) -> list[tuple[tuple[Any, ...], Any]] | None:
    """A lean :func:`run` of one KPI, for ranking groups: ``((bucket, dims...), value)``.

    Every group of ``q`` with the finished value of ``name`` (the value :func:`run`
    returns for it), in :func:`run`'s row order (``ordered``; else in the engine's).
    Only the main (session-level) query runs and no row dicts are built, so ranking
    200,000 sessions stays cheap. None when ``name`` needs the event-level query or a
    JSON map (use :func:`run`).
    """
    kpis = needed_kpis([name, "sessions"])
    if any(k.level != "session" or k.agg == "map" for k in kpis):
        return None
    main, _ = build(store.dialect, replace(q, kpis=[name, "sessions"]), store.aggregates)
    names, rows = store.fetch(main)
    n = 1 + len(q.by)
    k = BY_NAME[name]
    out: list[tuple[tuple[Any, ...], Any]]
    if k.agg in ("ratio", "diff"):
        parts = [p for p in kpis if p.agg not in ("ratio", "diff")]
        derived = [p for p in kpis if p.agg in ("ratio", "diff")]
        out = []
        for r in rows:
            row = dict(zip(names, r, strict=True))
            for p in parts:
                row[p.name] = _finish(p, row)
            for p in derived:
                row[p.name] = _finish(p, row)
            out.append((tuple(r[:n]), row[name]))
    else:
        i = names.index(name)
        fin = _finisher(k)
        out = [(r[:n], fin(r[i])) for r in rows]
    if ordered:
        out.sort(key=lambda x: _sort_key(x[0]))
    return out


def _finisher(k: Kpi) -> Callable[[Any], Any]:
    """:func:`_finish` of a plain (not ratio/diff) KPI's value, with a fast path for the
    common case (a finite float to round, an int in range): the same results."""
    def slow(v: Any) -> Any:
        return _finish(k, {k.name: v})

    if k.kind == "float" and k.digits is not None:
        digits = k.digits
        return lambda v: (round(v, digits) if v.__class__ is float and -FLOAT_MAX <= v <= FLOAT_MAX
                          else slow(v))
    if k.kind == "int":
        return lambda v: v if v.__class__ is int and INT64_MIN <= v <= INT64_MAX else slow(v)
    return slow


def _tally(keys: Sequence[Any] | None) -> dict[str, int]:
    """``{key: how many times}`` of one group's list of keys (:meth:`Dialect.list_of`)."""
    out: dict[str, int] = {}
    for key in keys or ():
        out[str(key)] = out.get(str(key), 0) + 1
    return out


def _counts(rows: list[tuple[Any, ...]], n_keys: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    """``{group: {key: count}}`` of (group..., key, value, ...) rows of a count map."""
    acc: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        acc.setdefault(tuple(r[:n_keys]), {})[str(r[n_keys])] = int(r[n_keys + 1])
    return acc


def _ordered_sums(rows: list[tuple[Any, ...]], n_keys: int
                  ) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Sum (group..., key, file, session_id, seq, value) rows like seed 000 does."""
    ordered = sorted(rows, key=lambda r: (str(r[n_keys + 1]), str(r[n_keys + 2]),
                                          r[n_keys + 3] or 0))
    per_session: dict[tuple[Any, ...], dict[str, dict[str, float]]] = {}
    for r in ordered:
        group, key, session = tuple(r[:n_keys]), str(r[n_keys]), str(r[n_keys + 2])
        sessions = per_session.setdefault(group, {})
        sums = sessions.setdefault(session, {})
        sums[key] = sums.get(key, 0.0) + float(r[-1] or 0.0)
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for group, sessions in per_session.items():
        total: dict[str, float] = {}
        for sums in sessions.values():  # insertion order = file order
            for key, v in sums.items():
                total[key] = total.get(key, 0.0) + v
        out[group] = total
    return out


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, "" if v is None else v) if not isinstance(v, (int, float))
                 else (False, v) for v in key)
