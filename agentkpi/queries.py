"""Ad-hoc KPI queries: any catalogue metric, by time grain and by dimension.

>>> import agentkpi
>>> t = agentkpi.query(metrics=["events", "sessions", "duration_ms_p95"], grain="day",
...                    by=["tool"], start="2026-05-01", end="2026-06-01",
...                    store="agentkpi.duckdb")                       # doctest: +SKIP
>>> t.to_pandas()              # a pandas DataFrame                   # doctest: +SKIP
>>> polars.from_arrow(t)       # a polars DataFrame                   # doctest: +SKIP

The result is a :class:`pyarrow.Table`: a ``bucket`` column (start of each hour /
day / week / month in ``tz``, timezone-aware) unless ``grain=None``, one string
column per dimension in ``by``, then one column per metric (plus
``<metric>_previous``, ``<metric>_change`` and ``<metric>_change_pct`` with
``compare="previous"``).

Everything goes through :func:`agentkpi.kpis.run` (a ``KpiQuery``), so the same call runs on
every engine (DuckDB by default, ClickHouse for scale); the SQL here is limited
to the portable subset the KPI catalogue uses. See ``docs/query.md``.

Semantics in one place:

* ``start`` / ``end``: half-open ``[start, end)``; a date, an hour
  (``2026-05-20T14``), an ISO time or a ``datetime``. Naive values are read in
  ``tz``; aware values are converted. Omitted: the store's first / last event
  (whole hours).
* Calendar grains are computed in ``tz``; weeks start on ``week_start``
  (Monday by default).
* ``where={"tool": "bash", "user": ["u1", "u2"], "data.flavor": None}``: equality,
  membership, ``IS NULL``; all predicates are ANDed. A session-level dimension
  (user, project) keeps or drops whole sessions; an event-level one (tool,
  event_type) keeps the matching events only.
* ``top=N``: each dimension keeps its N largest values (ranked by the first
  numeric metric over the whole range); every other value is folded into one
  ``"(other)"`` row, computed by the engine (so non-additive metrics such as
  ``users`` or percentiles are exact for the folded row too). NULL stays NULL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from agentkpi.errors import UsageError
from agentkpi.kpis.catalogue import BY_NAME, Kpi
from agentkpi.kpis.dimensions import (
    DIMENSIONS,
    Dimension,
    describe_dimensions,
    resolve_dimension,
)
from agentkpi.kpis.sql import GRAINS, Dim, KpiQuery, run, values
from agentkpi.store import Dialect, Store, open_store
from agentkpi.times import hour_end, parse_range
from agentkpi.times import zone as time_zone

# The dimension registry lives in agentkpi.kpis.dimensions; re-exported as query's API.
__all__ = ["DIMENSIONS", "METRICS", "OTHER", "Dimension", "describe_dimensions",
           "metric_names", "query", "resolve_dimension"]

OTHER = "(other)"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def metric_names() -> list[str]:
    """Every metric a query can ask for (the hourly catalogue plus the query KPIs)."""
    return [n for n in BY_NAME if not n.startswith("_")]


METRICS: tuple[str, ...] = tuple(metric_names())


# ----------------------------------------------------------------------------- parsing

def _week_start(value: str | int) -> int:
    if isinstance(value, int) and 0 <= value <= 6:
        return value
    if isinstance(value, str) and value.strip().lower() in WEEKDAYS:
        return WEEKDAYS.index(value.strip().lower())
    raise UsageError(f"bad week start {value!r}; choose from {', '.join(WEEKDAYS)}")


def _grain(value: str | None) -> str | None:
    if value is None or value in ("none", "all", "total", ""):
        return None
    if value not in GRAINS:
        raise UsageError(f"unknown grain {value!r}; choose from {', '.join(GRAINS)} or none")
    return value


def _literal(dialect: Dialect, value: Any) -> str:
    return dialect.str_literal(str(value))


def _predicate(dialect: Dialect, dim: Dimension, value: Any) -> str:
    if value is None:
        return f"{dim.expr} IS NULL"
    if isinstance(value, (list, tuple, set, frozenset)):
        values = sorted({str(v) for v in value if v is not None})
        parts = []
        if values:
            parts.append(f"{dim.expr} IN ({', '.join(_literal(dialect, v) for v in values)})")
        if any(v is None for v in value):
            parts.append(f"{dim.expr} IS NULL")
        if not parts:
            return "1 = 0"
        return parts[0] if len(parts) == 1 else f"({' OR '.join(parts)})"
    return f"{dim.expr} = {_literal(dialect, value)}"


# ----------------------------------------------------------------------------- the query

def _open(store: Store | str | Path | None) -> tuple[Store, bool]:
    if store is None:  # the configured engine
        return open_store(read_only=True), True
    if isinstance(store, (str, Path)):  # a DuckDB file
        return open_store("duckdb", path=store, read_only=True), True
    return store, False


def _arrow_type(k: Kpi) -> pa.DataType:
    return {"int": pa.int64(), "float": pa.float64(), "json": pa.string(),
            "time": pa.timestamp("us", tz="UTC")}[k.kind]


def _empty_value(k: Kpi) -> Any:
    return {"int": 0, "float": 0.0, "json": "{}", "time": None}[k.kind]


def _numeric(k: Kpi) -> bool:
    return k.kind in ("int", "float")


def query(metrics: Sequence[str] | str = ("events", "sessions", "users"),
          grain: str | None = "day", by: Sequence[str] | str = (),
          where: Mapping[str, Any] | None = None,
          start: str | date | datetime | None = None, end: str | date | datetime | None = None,
          tz: str = "UTC", week_start: str | int = "monday", top: int | None = None,
          compare: str | None = None, store: Store | str | Path | None = None) -> pa.Table:
    """Compute ``metrics`` per ``grain`` bucket and per value of the ``by`` dimensions.

    ``metrics``: names from the KPI catalogue (``agentkpi kpis``; see
    :func:`metric_names`). ``grain``: ``hour``, ``day``, ``week``, ``month`` or
    ``None`` for one row over the whole range. ``by``: names from
    :data:`DIMENSIONS` or ``data.KEY``. ``where``: ``{dimension: value | [values]
    | None}``. ``compare="previous"`` adds the previous period (same length,
    immediately before) per metric. ``store``: a store object, a DuckDB path, or
    ``None`` for the configured store (:func:`agentkpi.store.open_store`).

    Returns a :class:`pyarrow.Table` (``.to_pandas()``, ``polars.from_arrow``).
    Raises :class:`agentkpi.errors.UsageError` for unknown names or a bad range.
    """
    metrics = _names(metrics)
    by = _names(by)
    valid = metric_names()
    if not metrics:
        raise UsageError("no metrics asked for; choose from " + ", ".join(valid))
    for m in metrics:
        if m not in valid:
            raise UsageError(f"unknown metric {m!r}; choose from {', '.join(valid)}")
    if len(set(metrics)) != len(metrics):
        raise UsageError("a metric is listed twice: " + ", ".join(metrics))
    if len(set(by)) != len(by):
        raise UsageError("a dimension is listed twice: " + ", ".join(by))
    grain = _grain(grain)
    zone = time_zone(tz)
    wstart = _week_start(week_start)
    if top is not None and (not isinstance(top, int) or top < 1):
        raise UsageError(f"top must be a positive integer, not {top!r}")
    if compare not in (None, "previous"):
        raise UsageError(f"unknown comparison {compare!r}; use 'previous'")
    start_utc, end_utc = parse_range(start, end, zone)

    st, owned = _open(store)
    try:
        dialect = st.dialect
        dims = [resolve_dimension(b, dialect) for b in by]
        preds = [_predicate(dialect, resolve_dimension(k, dialect), v)
                 for k, v in (where or {}).items()]
        if start_utc is None or end_utc is None:
            lo, hi = st.time_range()
            if lo is None or hi is None:
                return _to_table([], grain, by, metrics, compare, tz)
            if start_utc is None:
                start_utc = lo.replace(minute=0, second=0, microsecond=0)
            if end_utc is None:
                end_utc = hour_end(hi)
            if end_utc <= start_utc:
                return _to_table([], grain, by, metrics, compare, tz)
        engine_dims = [Dim(f"dim{i}", d.expr, d.level) for i, d in enumerate(dims)]
        ranks: list[dict[str, int]] = []
        if top is not None:
            engine_dims, ranks = _apply_top(st, dims, engine_dims, metrics, preds, top,
                                            start_utc, end_utc, dialect)
        # kpis.sql groups event-level dimensions before session-level ones; pass them in
        # that order so its positional row keys line up with the names.
        ordered = sorted(engine_dims, key=lambda x: x.level != "event")
        base = KpiQuery(start=start_utc, end=end_utc, kpis=_engine_kpis(metrics), grain=grain,
                        tz=tz, week_start=wstart, by=ordered, where=preds)
        rows = _run(st, base)
        if compare == "previous":
            period = _previous(start_utc, end_utc, zone)
            if period is None:  # it would start before year 1: there is none, not zero
                rows = [_with_previous(r, None, metrics, absent=True) for r in rows]
            else:
                prev_start, shift = period
                prev = _run(st, replace(base, start=prev_start, end=start_utc))
                rows = _compare(rows, prev, metrics, len(dims), grain, shift)
    finally:
        if owned:
            st.close()
    if ranks or compare or [d.name for d in ordered] != [d.name for d in engine_dims]:
        # kpis.run sorts by (bucket, dims) in its own grouping order; re-sort when that
        # order is not ours (top-N ranks, comparison rows, session-level dims moved last).
        rows = _order(rows, len(dims), ranks)
    internal = {"bucket", *(f"dim{i}" for i in range(len(dims)))}
    out = [{"bucket": r["bucket"], **{b: r[f"dim{i}"] for i, b in enumerate(by)},
            **{c: v for c, v in r.items() if c not in internal}}
           for r in rows]
    return _to_table(out, grain, by, metrics, compare, tz)


def rank(metric: str, by: Sequence[str], where: Mapping[str, Any] | None,
         start: datetime, end: datetime, store: Store, in_order: bool = True
         ) -> list[tuple[tuple[str | None, ...], Any]] | None:
    """Every group of ``by`` over ``[start, end)`` (naive UTC) with its ``metric``.

    What ``query(metrics=[metric], grain=None, by=by, where=where, ...)`` returns,
    as ``((dim values...), value)`` in the same row order, but from the main query alone
    and without building a table: the dashboard ranks 200,000 sessions with it, then asks
    :func:`query` for the full rows of the few it shows. None when ``metric`` needs the
    event-level query or is a JSON map (ask :func:`query`). ``in_order=False``: in no
    particular order (the caller sorts).
    """
    dialect = store.dialect
    dims = [resolve_dimension(b, dialect) for b in by]
    preds = [_predicate(dialect, resolve_dimension(k, dialect), v)
             for k, v in (where or {}).items()]
    engine_dims = [Dim(f"dim{i}", d.expr, d.level) for i, d in enumerate(dims)]
    ordered = sorted(engine_dims, key=lambda x: x.level != "event")
    names = [d.name for d in ordered]
    resort = names != [d.name for d in engine_dims]  # query() re-sorts these (see _order)
    got = values(store, KpiQuery(start=start, end=end, kpis=[metric], grain=None,
                                 by=ordered, where=preds), metric, in_order and not resort)
    if got is None:
        return None
    pos = [1 + names.index(f"dim{i}") for i in range(len(dims))]
    # query() returns dimension values as strings; SQL columns have one type each
    strings = all(next((key[p] for key, _ in got if key[p] is not None), "").__class__ is str
                  for p in pos)
    if strings and pos == list(range(1, len(dims) + 1)):
        out = [(key[1:], v) for key, v in got]
    else:
        out = [(tuple(None if key[p] is None else str(key[p]) for p in pos), v)
               for key, v in got]
    if resort and in_order:
        out.sort(key=lambda x: tuple((3, "") if v is None else (1, v) for v in x[0]))
    return out


def _names(value: Sequence[str] | str | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [v.strip() for v in value if v and v.strip()]


def _engine_kpis(metrics: Sequence[str]) -> list[str]:
    # The main (session-level) query needs at least one column of its own.
    return [*metrics, "sessions"] if "sessions" not in metrics else list(metrics)


def _run(st: Store, q: KpiQuery) -> list[dict[str, Any]]:
    return run(st, q)


def _apply_top(st: Store, dims: list[Dimension], engine_dims: list[Dim], metrics: list[str],
               preds: list[str], top: int, start: datetime, end: datetime,
               dialect: Dialect) -> tuple[list[Dim], list[dict[str, int]]]:
    rank_metric = next((m for m in metrics if _numeric(BY_NAME[m])), "events")
    out, ranks = [], []
    for d, ed in zip(dims, engine_dims, strict=True):
        q = KpiQuery(start=start, end=end, kpis=_engine_kpis([rank_metric]), grain=None,
                     by=[ed], where=preds)
        scored = [(r[rank_metric], r[ed.name]) for r in _run(st, q) if r[ed.name] is not None]
        scored.sort(key=lambda x: (-x[0], str(x[1])))
        keep = [str(v) for _, v in scored[:top]]
        ranks.append({v: i for i, v in enumerate(keep)})
        # Folded even when nothing is left over now: the previous period of a comparison
        # must fold the same way.
        kept = (f"WHEN {d.expr} IN ({', '.join(_literal(dialect, v) for v in keep)}) "
                f"THEN {d.expr} " if keep else "")
        expr = (f"(CASE WHEN {d.expr} IS NULL THEN NULL {kept}"
                f"ELSE {_literal(dialect, OTHER)} END)")
        out.append(Dim(ed.name, expr, ed.level))
    return out, ranks


# ----------------------------------------------------------------------------- compare

@dataclass(frozen=True)
class _Shift:
    months: int = 0
    days: int = 0
    delta: timedelta = timedelta(0)

    def forward(self, bucket: datetime) -> datetime:
        if self.months:
            m = bucket.month - 1 + self.months
            y = bucket.year + m // 12
            return bucket.replace(year=y, month=m % 12 + 1)
        if self.days:
            return bucket + timedelta(days=self.days)
        return bucket + self.delta


def _previous(start: datetime, end: datetime, zone: ZoneInfo
              ) -> tuple[datetime, _Shift] | None:
    """The period of the same length just before ``[start, end)``, and how to align buckets
    (None when it would start before year 1).

    Whole local months shift by calendar months, whole local days by local days (so
    DST changes do not skew the comparison); anything else by the exact duration.
    """
    try:
        return _previous_period(start, end, zone)
    except (OverflowError, ValueError):
        return None


def _previous_period(start: datetime, end: datetime, zone: ZoneInfo
                     ) -> tuple[datetime, _Shift]:
    ls = start.replace(tzinfo=UTC).astimezone(zone)
    le = end.replace(tzinfo=UTC).astimezone(zone)
    midnight = all((x.hour, x.minute, x.second, x.microsecond) == (0, 0, 0, 0) for x in (ls, le))
    naive_s = ls.replace(tzinfo=None)
    if midnight and ls.day == 1 and le.day == 1:
        months = (le.year * 12 + le.month) - (ls.year * 12 + ls.month)
        m = ls.month - 1 - months
        prev_local = naive_s.replace(year=ls.year + m // 12, month=m % 12 + 1)
        shift = _Shift(months=months)
    elif midnight:
        days = (le.date() - ls.date()).days
        prev_local = naive_s - timedelta(days=days)
        shift = _Shift(days=days)
    else:
        delta = end - start
        return start - delta, _Shift(delta=delta)
    prev = prev_local.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)
    return prev, shift


def _compare(rows: list[dict[str, Any]], prev: list[dict[str, Any]], metrics: list[str],
             n_dims: int, grain: str | None, shift: _Shift) -> list[dict[str, Any]]:
    keys = ["bucket", *(f"dim{i}" for i in range(n_dims))]

    def key(r: dict[str, Any], moved: bool) -> tuple[Any, ...]:
        b = r["bucket"]
        if moved and b is not None and grain is not None:
            b = shift.forward(b)
        return (b, *(r[k] for k in keys[1:]))

    before = {key(r, True): r for r in prev}
    seen = set()
    out = []
    for r in rows:
        k = key(r, False)
        seen.add(k)
        out.append(_with_previous(r, before.get(k), metrics))
    for k, p in before.items():
        if k in seen:
            continue
        empty = {c: k[i] for i, c in enumerate(keys)}
        empty.update({m: _empty_value(BY_NAME[m]) for m in metrics})
        out.append(_with_previous(empty, p, metrics))
    return out


def _with_previous(row: dict[str, Any], prev: dict[str, Any] | None,
                   metrics: list[str], absent: bool = False) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k == "bucket" or k.startswith("dim")}
    for m in metrics:
        cur = row[m]
        out[m] = cur
        k = BY_NAME[m]
        # No row in the previous period = nothing happened then: the empty value (0, 0.0,
        # "{}"), as a row missing now gets in _compare.
        # ``absent``: there is no previous period at all (None).
        before = prev[m] if prev is not None else None if absent else _empty_value(k)
        out[f"{m}_previous"] = before
        if not _numeric(k):
            continue
        if before is None or cur is None:
            out[f"{m}_change"] = None
            out[f"{m}_change_pct"] = None
            continue
        change = cur - before
        out[f"{m}_change"] = round(change, 6) if isinstance(change, float) else change
        out[f"{m}_change_pct"] = round(change / before * 100.0, 2) if before else None
    return out


# ----------------------------------------------------------------------------- output

def _order(rows: list[dict[str, Any]], n_dims: int,
           ranks: list[dict[str, int]]) -> list[dict[str, Any]]:
    def dim_key(i: int, v: Any) -> tuple[Any, ...]:
        if v is None:
            return (3, 0, "")
        if ranks:
            if v == OTHER and v not in ranks[i]:
                return (2, 0, "")
            if v in ranks[i]:
                return (0, ranks[i][v], "")
        return (1, 0, str(v))

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        b = r["bucket"]
        return ((b is None, b or datetime.min),
                *(dim_key(i, r[f"dim{i}"]) for i in range(n_dims)))

    return sorted(rows, key=key)


def columns(metrics: Sequence[str], compare: str | None) -> list[tuple[str, pa.DataType]]:
    """Metric columns (and comparison columns) of a query result, in order."""
    cols: list[tuple[str, pa.DataType]] = []
    for m in metrics:
        k = BY_NAME[m]
        t = _arrow_type(k)
        cols.append((m, t))
        if compare == "previous":
            cols.append((f"{m}_previous", t))
            if _numeric(k):
                cols.append((f"{m}_change", t))
                cols.append((f"{m}_change_pct", pa.float64()))
    return cols


def _to_table(rows: list[dict[str, Any]], grain: str | None, by: Sequence[str],
              metrics: Sequence[str], compare: str | None, tz: str) -> pa.Table:
    zone = time_zone(tz)
    fields: list[tuple[str, pa.DataType]] = []
    data: dict[str, list[Any]] = {}
    if grain is not None:
        fields.append(("bucket", pa.timestamp("us", tz=tz)))
        data["bucket"] = [None if r["bucket"] is None else r["bucket"].replace(tzinfo=zone)
                          for r in rows]
    for b in by:
        fields.append((b, pa.string()))
        data[b] = [None if r[b] is None else str(r[b]) for r in rows]
    for name, t in columns(metrics, compare):
        values = [r.get(name) for r in rows]
        if pa.types.is_timestamp(t):
            values = [None if v is None else v.replace(tzinfo=UTC) for v in values]
        data[name] = values
        fields.append((name, t))
    schema = pa.schema(fields)
    return pa.table({n: pa.array(data[n], type=t) for n, t in fields}, schema=schema)
