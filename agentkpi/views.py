"""The views: what the dashboard, the plots and the alerts show, as plain data.

Each function takes an open store and returns a JSON-ready dict (the contract of
the dashboard's ``/api/...`` routes, which only serialise them; pages only render
them). Every KPI number comes from :func:`agentkpi.queries.query`, the same
semantics as ``agentkpi query``, over the dimension registry
:mod:`agentkpi.kpis.dimensions`, so a view runs on every engine and agrees with
the query layer.

========================  ==================================================
function                  what
========================  ==================================================
:func:`overview`          time series of :data:`OVERVIEW_KPIS` + totals
:func:`breakdown`         one row per value of a dimension
:func:`sessions`          sessions of the range, most expensive first
:func:`session_events`    one session and its events in recorded order
:func:`session_timeline`  one session as a timeline: lanes, bars, marks, cost
:func:`costs`             where the money goes: by model over time, agent, MCP
                          server; cache savings; unpriced tokens; price versions
:func:`sources`           the import audit per source and the skipped files
:func:`alert_states`      alert rules, their state now and the last notifications
:func:`meta`              store counts, time range, grains, breakdown pages
:func:`run_kpis`          KPI rows for a range (used by the alerts)
========================  ==================================================

Times are naive UTC ``datetime`` (use :mod:`agentkpi.times` to read user input);
``filters`` are ``{dimension: value}`` over registry names, ``(none)`` selecting
NULL. This module sits below ``agentkpi.web``: it imports no web framework, so
``agentkpi alerts check`` and ``agentkpi plot`` never load Starlette.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from agentkpi.errors import StoreBusyError, StoreError, StoreMissingError, UsageError
from agentkpi.kpis import aggregates as agg
from agentkpi.kpis.catalogue import BY_NAME
from agentkpi.kpis.dimensions import DIMENSIONS, PAGE_DIMENSIONS
from agentkpi.kpis.display import format_value, label
from agentkpi.kpis.sql import GRAINS
from agentkpi.quality import AUDIT_KINDS
from agentkpi.queries import query, rank
from agentkpi.store import SessionRecord, Store, open_store
from agentkpi.times import hour_end

#: The KPI charts of the dashboard overview, the HTML report and the PNG plots
#: (title, unit, series): one definition so they stay "the same charts".
OVERVIEW_CHARTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Sessions and users", "count", ("sessions", "users")),
    ("Cost", "USD", ("cost_usd",)),
    ("Tokens by kind", "tokens", ("tokens_prompt", "tokens_completion", "tokens_cache_read",
                                  "tokens_cache_creation")),
    ("Cache-hit ratio", "ratio", ("cache_hit_ratio",)),
    ("Tool success rate", "ratio", ("tool_success_rate",)),
    ("Failure and regenerate rates", "ratio", ("failure_rate", "regenerate_rate")),
    ("Time to first action", "s", ("time_to_first_action_s_p50", "time_to_first_action_s_p95")),
)
OVERVIEW_KPIS: tuple[str, ...] = tuple(dict.fromkeys(
    [k for _, _, ks in OVERVIEW_CHARTS for k in ks]
    + ["llm_calls", "tool_calls_total", "tool_calls_failed", "errored_sessions",
       "regenerated_sessions", "turns"]))

#: Columns of a dimension's breakdown table where they differ from
#: :data:`DEFAULT_BREAKDOWN_KPIS` (the first is the default sort, descending).
BREAKDOWN_KPIS: dict[str, tuple[str, ...]] = {
    "tool": ("tool_calls_total", "sessions", "users", "tool_calls_succeeded",
             "tool_calls_failed", "tool_success_rate", "research_calls"),
    "model": ("sessions", "users", "llm_calls", "cost_usd", "tokens_prompt",
              "tokens_completion", "cache_hit_ratio", "tool_success_rate", "failure_rate",
              "time_to_first_action_s_p50"),
    "user": ("sessions", "llm_calls", "cost_usd", "tokens_prompt", "tokens_completion",
             "tool_calls_total", "tool_success_rate", "failure_rate", "regenerate_rate"),
}
#: Columns of any other dimension's breakdown (``project``, ``machine``, ...).
DEFAULT_BREAKDOWN_KPIS: tuple[str, ...] = ("sessions", "users", "llm_calls", "cost_usd",
                                           "tool_calls_total", "tool_success_rate",
                                           "failure_rate")
SESSION_LIST_KPIS = ("llm_calls", "cost_usd", "tool_calls_total", "tool_success_rate",
                     "errored_sessions", "regenerated_sessions")
MAX_ROWS = 500
DEFAULT_SPAN = {"hour": timedelta(days=7), "day": timedelta(days=30),
                "week": timedelta(days=7 * 26), "month": timedelta(days=730)}


# --------------------------------------------------------------------------- stores
def open_read_only(path: str | None = None, engine: str | None = None,
                   dsn: str | None = None) -> Store:
    """Open the store read-only (the configured engine unless given).

    Raises :class:`StoreMissingError` when there is no store yet and
    :class:`StoreBusyError` when it cannot be opened now (DuckDB: another process
    writes it; ``Store`` itself waits about 1.5 s for a read-only open).
    """
    try:
        return open_store(engine, dsn, path, read_only=True)
    except StoreMissingError:
        raise
    except StoreError as exc:
        raise StoreBusyError(f"store is busy (a writer holds its lock): {exc}") from None


def store_version(path: str | None) -> tuple[int, int, int, int] | None:
    """A cheap change stamp of a DuckDB file and its WAL (None when unknown)."""
    if not path or path == ":memory:" or not os.path.exists(path):
        return None
    st = os.stat(path)
    wal = path + ".wal"
    ws = os.stat(wal) if os.path.exists(wal) else None
    return (st.st_mtime_ns, st.st_size, ws.st_mtime_ns if ws else 0, ws.st_size if ws else 0)


# --------------------------------------------------------------------------- params
def resolve_range(store: Store, start: datetime | None, end: datetime | None,
                  grain: str) -> tuple[datetime, datetime, dict[str, Any]]:
    """Default range: the last DEFAULT_SPAN[grain] of data, ending after the last event."""
    lo, hi = store.time_range()
    data = {"first_event": _iso(lo), "last_event": _iso(hi)}
    if end is None:
        end = _ceil_hour(hi) if hi else _ceil_hour(datetime.now(UTC).replace(tzinfo=None))
    if start is None:
        start = end - DEFAULT_SPAN.get(grain, timedelta(days=7))
        if lo is not None and start < lo:
            start = lo.replace(minute=0, second=0, microsecond=0)
    if start >= end:
        raise UsageError(f"empty range: from {start} is not before to {end}")
    return start, end, data


def _ceil_hour(dt: datetime) -> datetime:
    return hour_end(dt)


def _iso(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.replace(tzinfo=None).isoformat(timespec="seconds")  # 0001, not 1
    if isinstance(v, date):
        return v.isoformat()
    return v


#: Most buckets one chart draws; a longer range is drawn at a coarser grain.
MAX_BUCKETS = 20000
_HOURS_PER = {"hour": 1, "day": 24, "week": 168, "month": 744}


def fit_grain(start: datetime, end: datetime, grain: str) -> tuple[str, str | None]:
    """``grain``, or the finest coarser one that keeps ``[start, end)`` within MAX_BUCKETS.

    Returns the grain and a notice saying what was changed (None when nothing was):
    a long range is never silently cut so that its charts go empty.
    """
    hours = (end - start).total_seconds() / 3600
    order = list(GRAINS)
    for g in order[order.index(grain):]:
        if hours / _HOURS_PER[g] <= MAX_BUCKETS:
            if g == grain:
                return grain, None
            return g, (f"{hours / _HOURS_PER[grain]:,.0f} {grain} buckets are too many to "
                       f"draw (at most {MAX_BUCKETS:,}): shown per {g}")
    return "month", (f"the range is too long to draw (more than {MAX_BUCKETS:,} months): "
                     f"the charts show the months with data (at most {MAX_BUCKETS:,}); "
                     "totals cover all of it")


def drawn_range(store: Store, start: datetime, end: datetime, grain: str
                ) -> tuple[datetime, datetime]:
    """The part of ``[start, end)`` the charts draw: all of it, unless it has more than
    MAX_BUCKETS buckets of ``grain`` (a range from year 1), then the part holding data."""
    if (end - start).total_seconds() / 3600 / _HOURS_PER[grain] <= MAX_BUCKETS:
        return start, end
    lo, hi = store.time_range()
    if lo is None or hi is None:
        return start, end
    return max(start, lo), min(end, hour_end(hi))


def buckets(start: datetime, end: datetime, grain: str) -> list[datetime]:
    """Every bucket start of ``grain`` overlapping ``[start, end)`` (UTC, weeks on Monday)."""
    if grain == "hour":
        b = start.replace(minute=0, second=0, microsecond=0)
    elif grain == "day":
        b = start.replace(hour=0, minute=0, second=0, microsecond=0)
    elif grain == "week":
        d = start.replace(hour=0, minute=0, second=0, microsecond=0)
        b = d - timedelta(days=d.weekday())
    else:
        b = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out: list[datetime] = []
    while b < end and len(out) < MAX_BUCKETS:
        out.append(b)
        try:
            if grain == "hour":
                b += timedelta(hours=1)
            elif grain == "day":
                b += timedelta(days=1)
            elif grain == "week":
                b += timedelta(days=7)
            else:
                b = b.replace(year=b.year + (b.month == 12), month=b.month % 12 + 1)
        except (OverflowError, ValueError):
            break  # the next bucket would be after year 9999
    return out


def kpi_meta(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Per KPI: its human ``label``, ``unit``, ``description`` and ``kind`` (pages show the
    label, the raw name on hover; :mod:`agentkpi.kpis.display`)."""
    return {n: {"label": label(n), "unit": BY_NAME[n].unit,
                "description": BY_NAME[n].description, "kind": BY_NAME[n].kind}
            for n in names}


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) for k, v in row.items()}


# --------------------------------------------------------------------------- queries
NONE_LABEL = "(none)"  # a NULL dimension value in rows, links and filters


def run_kpis(store: Store, start: datetime, end: datetime, kpis: Sequence[str],
             grain: str | None = None, by: Sequence[str] = (),
             filters: Mapping[str, str | Sequence[str] | None] | None = None,
             tz: str = "UTC", compare: str | None = None) -> list[dict[str, Any]]:
    """KPI rows for ``[start, end)``: the one place views (and alerts) compute KPIs.

    A thin adapter over :func:`agentkpi.queries.query` (same semantics as ``agentkpi
    query``, every engine): ``by`` and ``filters`` name registry dimensions
    (``(none)`` filters NULL; a list keeps any of its values). Rows: ``bucket`` (naive
    UTC; absent when ``grain`` is None), one key per ``by`` dimension, one per KPI.
    """
    flt = {k: (None if v == NONE_LABEL else v) for k, v in (filters or {}).items()}
    if bad := [k for k in flt if k not in DIMENSIONS]:
        raise UsageError(f"unknown filter {bad[0]!r}; use one of {', '.join(DIMENSIONS)}")
    t = query(metrics=list(kpis), grain=grain, by=list(by), where=flt,
              start=start.replace(tzinfo=UTC), end=end.replace(tzinfo=UTC), tz=tz,
              compare=compare, store=store)
    rows = t.to_pylist()
    for r in rows:
        b = r.get("bucket")
        if isinstance(b, datetime) and b.tzinfo is not None:
            r["bucket"] = b.astimezone(UTC).replace(tzinfo=None)
    return rows


def overview(store: Store, start: datetime | None = None, end: datetime | None = None,
             grain: str = "hour", tz: str = "UTC",
             filters: dict[str, str] | None = None) -> dict[str, Any]:
    """Time series of the overview KPIs plus totals over the whole range."""
    if grain not in GRAINS:
        raise UsageError(f"bad grain {grain!r}: use one of {', '.join(GRAINS)}")
    start, end, span = resolve_range(store, start, end, grain)
    asked = grain
    grain, notice = fit_grain(start, end, grain)
    filters = dict(filters or {})
    rows = run_kpis(store, start, end, OVERVIEW_KPIS, grain=grain, filters=filters, tz=tz)
    by_bucket = {r["bucket"]: r for r in rows}
    series = []
    grid = buckets(*drawn_range(store, start, end, grain), grain) if tz == "UTC" \
        else sorted(by_bucket)
    for b in grid:
        r = by_bucket.get(b) or {k: 0 for k in OVERVIEW_KPIS}
        series.append({"bucket": _iso(b), **_gaps({k: r.get(k, 0) for k in OVERVIEW_KPIS})})
    totals = run_kpis(store, start, end, OVERVIEW_KPIS, grain=None, filters=filters, tz=tz,
                      compare="previous")
    both = _clean(totals[0]) if totals else {}
    total = {k: both.get(k, 0) for k in OVERVIEW_KPIS}
    # The same KPIs over the period of the same length just before (the cards' change).
    previous = {k: both.get(f"{k}_previous") for k in OVERVIEW_KPIS}
    change_pct = {k: both.get(f"{k}_change_pct") for k in OVERVIEW_KPIS}
    return {
        "page": "overview",
        "from": _iso(start), "to": _iso(end), "grain": grain, "tz": tz, "filters": filters,
        "grain_asked": asked, "notice": notice,
        "data_range": span,
        "charts": [{"title": t, "unit": u, "kpis": list(ks)} for t, u, ks in OVERVIEW_CHARTS],
        "kpis": kpi_meta(OVERVIEW_KPIS),
        "series": series,
        "totals": total,
        "previous": previous,
        "change_pct": change_pct,
    }


def _gaps(row: dict[str, Any]) -> dict[str, Any]:
    """Rates and percentiles of a bucket with nothing to measure are gaps (None), not 0."""
    empty = {
        "cache_hit_ratio": not (row.get("tokens_prompt") or row.get("tokens_cache_read")),
        "tool_success_rate": not row.get("tool_calls_total"),
        "failure_rate": not row.get("sessions"),
        "regenerate_rate": not row.get("sessions"),
        "time_to_first_action_s_p50": not row.get("tool_calls_total"),
        "time_to_first_action_s_p95": not row.get("tool_calls_total"),
    }
    return {k: (None if empty.get(k) else v) for k, v in row.items()}


def breakdown(store: Store, dim: str, start: datetime | None = None, end: datetime | None = None,
              grain: str = "hour", tz: str = "UTC", filters: dict[str, str] | None = None,
              sort: str | None = None, desc: bool = True, limit: int = MAX_ROWS
              ) -> dict[str, Any]:
    """One row per value of ``dim`` with that dimension's KPIs over the range."""
    if dim not in DIMENSIONS:
        raise UsageError(f"unknown dimension {dim!r}; use one of {', '.join(DIMENSIONS)}")
    start, end, span = resolve_range(store, start, end, grain)
    filters = dict(filters or {})
    kpis = BREAKDOWN_KPIS.get(dim, DEFAULT_BREAKDOWN_KPIS)
    sort = sort if sort in (dim, *kpis) else kpis[0]

    def order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if dim == "tool":  # events without a tool are not a tool
            rows = [r for r in rows if r["tool"] not in (None, "")]
        rows = [{**r, dim: NONE_LABEL if r[dim] is None else str(r[dim])} for r in rows]
        rows.sort(key=lambda r: (r[sort] is None, r[sort]), reverse=desc)
        if not desc:
            rows.sort(key=lambda r: r[sort] is None)
        return rows

    # A dimension of the session (53,645 users): rank every value by the sort column
    # alone (from the per-session aggregate), then compute the full rows of the shown
    # ones. Event dimensions (a few tools, models) are computed whole at once.
    metric = "sessions" if sort == dim else sort
    many = DIMENSIONS[dim].level == "session" and "e." not in DIMENSIONS[dim].expr.replace(
        "e.session_id", "")
    ranked = None if dim in filters or not many else _ranked(store, [dim], metric, start, end,
                                                              filters)
    shown = None
    if ranked is not None:
        keys = order([{dim: key[0], "_key": key[0], metric: v} for key, v in ranked])
        total, keys = len(keys), keys[:limit]
        shown = _rows_for(store, start, end, kpis, [dim], [(r["_key"],) for r in keys],
                          filters, tz)
    if shown is None:
        rows = run_kpis(store, start, end, kpis, by=[dim], filters=filters, tz=tz)
        ranked_rows = order([{dim: r[dim], **{k: r[k] for k in kpis}} for r in rows])
        total, rows = len(ranked_rows), ranked_rows[:limit]
    else:
        rows = [{dim: r[dim], **{k: shown[(r["_key"],)][k] for k in kpis}} for r in keys]
    return {
        "page": "breakdown", "dim": dim,
        "from": _iso(start), "to": _iso(end), "grain": grain, "tz": tz, "filters": filters,
        "data_range": span, "columns": [dim, *kpis], "kpis": kpi_meta(kpis),
        "sort": sort, "desc": desc, "total_rows": total, "rows": rows,
    }


def _ranked(store: Store, by: Sequence[str], metric: str, start: datetime, end: datetime,
            filters: Mapping[str, str | None], in_order: bool = True
            ) -> list[tuple[tuple[str | None, ...], Any]] | None:
    """Every group of ``by`` with ``metric``, in :func:`run_kpis` order (None: not lean)."""
    flt = {k: (None if v == NONE_LABEL else v) for k, v in filters.items()}
    if any(k not in DIMENSIONS for k in flt):
        return None  # run_kpis reports the bad name
    return rank(metric, by, flt, start, end, store, in_order)


def _rows_for(store: Store, start: datetime, end: datetime, kpis: Sequence[str],
              by: Sequence[str], keys: Sequence[tuple[str | None, ...]],
              filters: Mapping[str, str | None], tz: str
              ) -> dict[tuple[str | None, ...], dict[str, Any]] | None:
    """The full KPI rows of the groups ``keys`` of ``by``, by key (None: one is missing).

    The query keeps only those groups (their first dimension's values as a filter): a
    group's KPIs depend on its own rows only, so they equal the rows of the query over
    every group.
    """
    if not keys:
        return {}
    flt: dict[str, Any] = dict(filters)
    flt[by[0]] = sorted({k[0] for k in keys}, key=lambda v: (v is None, v or ""))
    rows = run_kpis(store, start, end, kpis, by=by, filters=flt, tz=tz)
    out = {tuple(r[b] for b in by): r for r in rows}
    return out if all(k in out for k in keys) else None


def sessions(store: Store, start: datetime | None = None, end: datetime | None = None,
             grain: str = "hour", tz: str = "UTC", filters: dict[str, str] | None = None,
             limit: int = 200) -> dict[str, Any]:
    """Sessions active in the range (most expensive first), each with its own KPIs over
    the range, its user and its main model (the session's ``model``)."""
    start, end, span = resolve_range(store, start, end, grain)
    filters = dict(filters or {})
    by = ["session", "user"]
    # Rank every session by cost alone, then compute the full rows of the shown ones.
    ranked = None if "session" in filters else _ranked(store, by, "cost_usd", start, end,
                                                        filters, in_order=False)
    shown = None
    if ranked is not None:  # one row per session: (cost, id) orders them all
        total = len(ranked)
        keys = heapq.nsmallest(limit, ranked, key=lambda kv: (-(kv[1] or 0), kv[0][0]))
        shown = _rows_for(store, start, end, SESSION_LIST_KPIS, by, [k for k, _ in keys],
                          filters, tz)
    if shown is None:
        rows = run_kpis(store, start, end, SESSION_LIST_KPIS, by=by, filters=filters, tz=tz)
        rows.sort(key=lambda r: (-(r["cost_usd"] or 0), r["session"]))
        total, rows = len(rows), rows[:limit]
    else:
        rows = [shown[k] for k, _ in keys]
    models = _session_models(store, [r["session"] for r in rows])
    out = [{"session_id": r["session"], "user": r["user"], "model": models.get(r["session"]),
            **{k: r[k] for k in SESSION_LIST_KPIS}} for r in rows]
    return {"page": "sessions", "from": _iso(start), "to": _iso(end), "grain": grain, "tz": tz,
            "filters": filters, "data_range": span,
            "columns": ["session_id", "user", "model", *SESSION_LIST_KPIS],
            "kpis": kpi_meta(SESSION_LIST_KPIS), "total_rows": total, "rows": out}


def _session_models(store: Store, ids: Sequence[str | None]) -> dict[str | None, str | None]:
    """The main model (``sessions.model``) of each session of ``ids``."""
    names = [i for i in ids if i is not None]
    if not names:
        return {}
    lit = store.dialect.str_literal
    _, rows = store.fetch("SELECT session_id, model FROM sessions WHERE session_id IN ("
                          + ", ".join(lit(i) for i in names) + ")")
    return {sid: model for sid, model in rows}


EVENT_FIELDS = ("seq", "ts", "event_type", "tool", "success", "model", "prompt_tokens",
                "completion_tokens", "cache_read_tokens", "cache_creation_tokens", "cost_usd",
                "latency_ms", "duration_ms", "error_type", "error_message", "rating", "agent",
                "tool_call_id", "parent_id", "mcp_server", "data")


def session_events(store: Store, session_id: str) -> dict[str, Any]:
    """One session: its session row and every event in recorded order."""
    rec = store.read_session(session_id)
    if rec.session is None and not rec.events:
        raise LookupError(f"no session {session_id!r} in the store")
    events = [{k: e.get(k) for k in EVENT_FIELDS} for e in rec.events]
    return {"page": "session", "session_id": session_id,
            "session": _clean(rec.session) if rec.session else {"session_id": session_id},
            "columns": list(EVENT_FIELDS), "events": [_clean(e) for e in events],
            "timeline": session_timeline(store, session_id, rec)}


#: Events drawn as marks (a point in time) on the session timeline.
TIMELINE_MARKS = ("error", "feedback", "undo_complete", "user_message", "session_start",
                  "session_end", "hf_job_submit", "hf_job_complete", "sandbox_create")
MAIN_LANE = "main"


def _ms(t: datetime, t0: datetime) -> float:
    return (t - t0).total_seconds() * 1000.0


def session_timeline(store: Store, session_id: str,
                     rec: SessionRecord | None = None) -> dict[str, Any]:
    """One session drawn as a timeline (the session page's picture).

    * ``lanes``: the main agent first, then each subagent, nested (``depth``) under the
      tool call that started it (its events' ``parent_id`` is that call's
      ``tool_call_id``) when that call is in the session;
    * ``items``: model calls (``llm``: model, tokens by bucket, cost, latency; a bar
      from ``ts - latency_ms`` to ``ts``) and tool runs (``tool``: name, duration,
      success; a call and its output paired by ``tool_call_id``, else an output with a
      duration, else the call alone) as bars; errors, feedback, undo, user turns and
      lifecycle events as ``mark`` items;
    * ``cost``: the cumulative cost after each priced model call;
    * times are milliseconds from ``t0``, the earliest drawn point: the session start,
      its first event, or the start of a bar that reaches back before them (a model
      call's latency, a tool output's duration), so no time is negative and every bar
      keeps its length; ``session_start_ms`` places the recorded start on that axis;
      events without a time are counted in ``untimed`` and left out of the picture.
    """
    rec = rec if rec is not None else store.read_session(session_id)
    if rec.session is None and not rec.events:
        raise LookupError(f"no session {session_id!r} in the store")
    timed = [e for e in rec.events if e.get("ts") is not None]
    start = (rec.session or {}).get("start_ts")
    firsts = [e["ts"] for e in timed]
    t0 = min([start, *firsts]) if start is not None and firsts else start or (
        min(firsts) if firsts else None)
    lanes: dict[str, dict[str, Any]] = {}
    items: list[dict[str, Any]] = []
    calls: dict[str, dict[str, Any]] = {}
    cost: list[dict[str, Any]] = []
    total = 0.0

    def lane_of(e: dict[str, Any]) -> str:
        key = e.get("agent") or MAIN_LANE
        if key not in lanes:
            lanes[key] = {"id": key, "parent_id": e.get("parent_id"), "first": e["ts"]}
        return key

    if t0 is not None:
        for e in timed:
            lane, kind, at = lane_of(e), e.get("event_type"), _ms(e["ts"], t0)
            base = {"lane": lane, "seq": e.get("seq"), "event_type": kind}
            if kind == "llm_call":
                lat = e.get("latency_ms")
                item = {**base, "kind": "llm", "start": at - (lat or 0.0), "end": at,
                        "model": e.get("model"), "latency_ms": lat, "cost_usd": e.get("cost_usd"),
                        "tokens": {"input": e.get("prompt_tokens"),
                                   "output": e.get("completion_tokens"),
                                   "cache_read": e.get("cache_read_tokens"),
                                   "cache_write": e.get("cache_creation_tokens")}}
                items.append(item)
                c = e.get("cost_usd")
                if isinstance(c, (int, float)) and c == c:
                    total += float(c)
                    cost.append({"t": at, "cost_usd": total})
            elif kind == "tool_call":
                item = {**base, "kind": "tool", "start": at, "end": at, "tool": e.get("tool"),
                        "success": None, "duration_ms": None,
                        "tool_call_id": e.get("tool_call_id")}
                items.append(item)
                if e.get("tool_call_id"):
                    calls[str(e["tool_call_id"])] = item
            elif kind == "tool_output":
                dur = e.get("duration_ms")
                call = calls.get(str(e.get("tool_call_id"))) if e.get("tool_call_id") else None
                if call is not None and call["lane"] == lane:
                    call.update(end=max(at, call["start"]), success=e.get("success"),
                                duration_ms=dur if dur is not None else at - call["start"],
                                tool=call["tool"] or e.get("tool"))
                else:
                    items.append({**base, "kind": "tool", "start": at - (dur or 0.0), "end": at,
                                  "tool": e.get("tool"), "success": e.get("success"),
                                  "duration_ms": dur, "tool_call_id": e.get("tool_call_id")})
            elif kind in TIMELINE_MARKS:
                items.append({**base, "kind": "mark", "start": at, "end": at,
                              "label": e.get("error_type") or e.get("rating") or kind,
                              "message": e.get("error_message")})
    # Lanes: main first, then each subagent under the lane of the call that started it.
    def parent_lane(ln: dict[str, Any]) -> str | None:
        if ln["id"] == MAIN_LANE:
            return None
        call = calls.get(str(ln["parent_id"]))
        if call is not None and call["lane"] != ln["id"]:
            return str(call["lane"])
        return MAIN_LANE if MAIN_LANE in lanes else None

    children: dict[str | None, list[dict[str, Any]]] = {}
    for ln in sorted(lanes.values(), key=lambda x: (x["id"] != MAIN_LANE, x["first"])):
        children.setdefault(parent_lane(ln), []).append(ln)
    ordered: list[dict[str, Any]] = []
    placed: set[str] = set()

    def place(ln: dict[str, Any], depth: int, parent: str | None) -> None:
        placed.add(ln["id"])
        call = calls.get(str(ln["parent_id"])) if parent is not None else None
        ordered.append({"id": ln["id"], "depth": depth, "parent_lane": parent,
                        "parent_call": call["tool_call_id"] if call else None,
                        "label": "main agent" if ln["id"] == MAIN_LANE else ln["id"]})
        for child in children.get(ln["id"], []):
            if child["id"] not in placed:
                place(child, depth + 1, ln["id"])

    for ln in children.get(None, []):
        place(ln, 0, None)
    for ln in lanes.values():  # lanes whose parents form a cycle: kept, at the top level
        if ln["id"] not in placed:
            place(ln, 0, None)
    lead = -min((it["start"] for it in items), default=0.0)
    if lead > 0 and t0 is not None:  # a bar reaches back before t0: the axis starts there
        t0 -= timedelta(milliseconds=lead)
        for it in items:
            it["start"] += lead
            it["end"] += lead
        for c in cost:
            c["t"] += lead
    end = max((it["end"] for it in items), default=0.0)
    return {"page": "timeline", "session_id": session_id, "t0": _iso(t0),
            "session_start_ms": _ms(start, t0) if start is not None and t0 is not None
            else None,
            "duration_ms": end, "lanes": ordered, "items": items, "cost": cost,
            "total_cost_usd": total, "events": len(rec.events),
            "untimed": len(rec.events) - len(timed)}


COST_KPIS = ("cost_usd", "llm_calls", "tokens_prompt", "tokens_completion",
             "tokens_cache_read", "tokens_cache_creation", "unpriced_tokens")


def _rows_by(store: Store, dim: str, start: datetime, end: datetime, kpis: Sequence[str],
             filters: Mapping[str, Any], tz: str) -> list[dict[str, Any]]:
    rows = run_kpis(store, start, end, kpis, by=[dim], filters=filters, tz=tz)
    out = [{dim: NONE_LABEL if r[dim] is None else str(r[dim]), **{k: r[k] for k in kpis}}
           for r in rows]
    out.sort(key=lambda r: (-(r[kpis[0]] or 0), r[dim]))
    return out


def cache_savings(model: str, cache_read_tokens: int) -> float | None:
    """What ``cache_read_tokens`` saved: their price as uncached input minus their price
    as cache reads, at the price table's base rates (None when the model is unpriced)."""
    from agentkpi import pricing

    if not cache_read_tokens:
        return 0.0
    full = pricing.cost(model, prompt=cache_read_tokens, completion=0)
    cached = pricing.cost(model, prompt=0, completion=0, cache_read=cache_read_tokens)
    return None if full is None or cached is None else full - cached


#: Rows of :func:`cost_by_requested_tool` that are not a tool.
NO_TOOL_ASKED = "(no tool requested)"
NOT_LINKED = "(not linked: the source does not say)"
#: Dimensions filtered on the tool calls (not on the model calls) by that view.
_TOOL_SIDE = ("tool", "mcp_server")


def cost_by_requested_tool(store: Store, start: datetime, end: datetime,
                           filters: Mapping[str, str | None] | None = None
                           ) -> list[dict[str, Any]]:
    """The cost of the model calls of ``[start, end)`` attributed to the tools they asked for.

    A call's cost is **split evenly** over the tool calls it requested (its tool_call
    events with its ``response_id``, :mod:`agentkpi.model`): a call that asked for
    Read, Read and Bash gives Read 2/3 and Bash 1/3. Rows: ``tool``, ``llm_calls``
    (calls that asked for it), ``tool_calls`` (times asked), ``cost_usd`` (the
    attributed cost; None when none of those calls is priced). Two more rows make
    the column sum to the range's cost: the calls that asked for no tool
    (:data:`NO_TOOL_ASKED`) and the calls of sources that do not link calls to
    tools (:data:`NOT_LINKED`); they are left out under a ``tool``/``mcp_server``
    filter, which applies to the tool calls (the split still counts every tool of a
    call).
    """
    from agentkpi.queries import _predicate

    d = store.dialect
    call_where = ["e.event_type = 'llm_call'", f"e.ts >= {d.ts_literal(start)}",
                  f"e.ts < {d.ts_literal(end)}"]
    tool_where: list[str] = []
    for k, v in (filters or {}).items():
        if k not in DIMENSIONS:
            raise UsageError(f"unknown filter {k!r}; use one of {', '.join(DIMENSIONS)}")
        pred = _predicate(d, DIMENSIONS[k], None if v == NONE_LABEL else v)
        (tool_where if k in _TOOL_SIDE else call_where).append(pred)
    join = (" LEFT JOIN sessions s ON s.session_id = e.session_id"
            if any("s." in w for w in call_where) else "")
    calls = (f"SELECT e.session_id, e.response_id, e.cost_usd FROM events e{join} "
             f"WHERE {' AND '.join(call_where)}")
    # A response's tool calls are stamped within seconds of it (the same message, or the
    # next lines of the transcript): the tool calls read are those within a day of the range.
    day = timedelta(days=1)
    lo = start - day if start >= datetime.min + day else start  # ranges at year 1 / 9999
    hi = end + day if end <= datetime.max - day else end
    asked = ("SELECT e.session_id, e.response_id, e.tool, e.mcp_server, count(*) AS n "
             "FROM events e WHERE e.event_type = 'tool_call' AND e.response_id IS NOT NULL "
             f"AND e.ts >= {d.ts_literal(lo)} AND e.ts < {d.ts_literal(hi)} "
             "GROUP BY e.session_id, e.response_id, e.tool, e.mcp_server")
    if store.schema_version() < 3:  # a store not migrated yet (read-only): no links stored
        _, tot = store.fetch(f"SELECT count(*), sum(e.cost_usd) FROM events e{join} "
                             f"WHERE {' AND '.join(call_where)}")
        n, cost = tot[0]
        return [] if tool_where or not n else [
            {"tool": NOT_LINKED, "llm_calls": int(n), "tool_calls": 0,
             "cost_usd": None if cost is None else float(cost)}]
    # One pass, each CTE read once (ClickHouse computes a CTE again wherever it is read; two
    # statements over twice-read CTEs scanned the events four or five times: 3.3 s of the
    # costs page at 200k sessions there, 1.0 s on DuckDB). x: every call with each tool it
    # asked for (n times), kn the times it asked for any (the split still counts every
    # tool of a call under a tool filter) and rn = 1 on one of its rows; a call that asked
    # for none is one row with kn NULL. Grouped by tool, the NULL group also holds those.
    asked_n = ("SELECT session_id, response_id, tool, mcp_server, n, "
               "sum(n) OVER (PARTITION BY session_id, response_id) AS kn, "
               "row_number() OVER (PARTITION BY session_id, response_id) AS rn FROM a")
    once = "(e.rn = 1 OR e.kn IS NULL)"  # each call once
    with_id = f"{once} AND e.response_id IS NOT NULL"
    kept = _kept_call_tools(store, start, end, lo, hi, call_where[3:], join)
    x = kept or (f"WITH c AS ({calls}), a AS ({asked}), x AS (SELECT c.response_id, "
                 f"c.cost_usd, t.tool, t.mcp_server, t.n, t.kn, t.rn FROM c LEFT JOIN "
                 f"({asked_n}) t ON t.session_id = c.session_id AND t.response_id = "
                 "c.response_id) ")
    _, rows = store.fetch(
        f"{x}SELECT e.tool, count(e.n), sum(e.n), sum(e.cost_usd * e.n / e.kn), "
        f"count(CASE WHEN {once} THEN 1 END), count(CASE WHEN {with_id} THEN 1 END), "
        "count(CASE WHEN e.rn = 1 THEN 1 END), "
        f"sum(CASE WHEN {once} THEN e.cost_usd END), "
        f"sum(CASE WHEN {with_id} THEN e.cost_usd END), "
        "sum(CASE WHEN e.rn = 1 THEN e.cost_usd END) "
        f"FROM x e{' WHERE ' + ' AND '.join(tool_where) if tool_where else ''} GROUP BY e.tool")
    out = [{"tool": NONE_LABEL if tool is None else str(tool), "llm_calls": int(n_calls),
            "tool_calls": int(n_tools), "cost_usd": cost}
           for tool, n_calls, n_tools, cost, *_ in rows if n_calls]
    out.sort(key=lambda r: (-(r["cost_usd"] or 0.0), -r["tool_calls"], r["tool"]))
    if tool_where:
        return out
    # The calls: all, with an id, and those that asked for tools (counts, then costs).
    n_all, n_linked, n_asking, cost_all, cost_linked, cost_asking = (
        _total(r[i] for r in rows) for i in range(4, 10))

    def minus(a: Any, b: Any) -> float | None:
        return None if a is None else float(a) - float(b or 0.0)

    for name, n, cost in ((NO_TOOL_ASKED, int(n_linked or 0) - int(n_asking or 0),
                           minus(cost_linked, cost_asking)),
                          (NOT_LINKED, int(n_all or 0) - int(n_linked or 0),
                           minus(cost_all, cost_linked))):
        if n:
            out.append({"tool": name, "llm_calls": n, "tool_calls": 0, "cost_usd": cost})
    return out


def _kept_call_tools(store: Store, start: datetime, end: datetime, lo: datetime,
                     hi: datetime, call_filters: list[str], join: str) -> str | None:
    """The ``WITH x AS (...)`` of :func:`cost_by_requested_tool` read from the calls'
    requested tools kept by ingest (``aggregates.CALL_TOOLS_TABLE``), or None: match the
    events. Kept rows serve whole hours, with filters on the call's model and agent or on
    its session, and only when every kept call of the range that asked for tools has its
    first and last tool call within ``[lo, hi)``, where the events path looks for them
    (so both count the same tool calls)."""
    d = store.dialect
    table = agg.CALL_TOOLS_TABLE
    read = [agg.event_columns(w) for w in call_filters]
    if (table not in store.aggregates or not agg.on_whole_hours(start, end)
            or any(cols is None or not cols <= {"model", "agent", "session_id"}
                   for cols in read)):
        return None
    hours = f"e._hour >= {d.ts_literal(start)} AND e._hour < {d.ts_literal(end)}"
    _, far = store.fetch(f"SELECT count(*) FROM {table} e WHERE {hours} AND e.kn IS NOT NULL "
                         f"AND (e.t_first < {d.ts_literal(lo)} OR e.t_last >= "
                         f"{d.ts_literal(hi)})")
    if far[0][0]:
        return None
    return (f"WITH x AS (SELECT e.response_id, e.cost_usd, e.tool, e.mcp_server, e.n, e.kn, "
            f"e.rn FROM {table} e{join} WHERE {' AND '.join([hours, *call_filters])}) ")


def _total(parts: Iterable[Any]) -> Any:
    """The sum of SQL partial sums, None when every part is (nothing to sum)."""
    got = [p for p in parts if p is not None]
    return sum(got) if got else None


def costs(store: Store, start: datetime | None = None, end: datetime | None = None,
          grain: str = "day", tz: str = "UTC",
          filters: dict[str, str] | None = None) -> dict[str, Any]:
    """Where the money goes over the range.

    ``by_model_series``: cost per bucket and model (the stacked chart); ``by_model``,
    ``by_agent`` (main agent and subagents), ``by_mcp_server`` (tool runs and failures of
    each MCP server's tools); ``by_requested_tool`` (each call's cost split evenly over
    the tools it asked for, :func:`cost_by_requested_tool`); ``cache_savings_usd`` per
    model and in total; models
    with ``unpriced_tokens`` (the price table lacks them: no cost, never $0); the
    ``price_versions`` that priced the range's model calls (``cost_source``).
    """
    if grain not in GRAINS:
        raise UsageError(f"bad grain {grain!r}: use one of {', '.join(GRAINS)}")
    start, end, span = resolve_range(store, start, end, grain)
    filters = dict(filters or {})
    series_rows = run_kpis(store, start, end, ["cost_usd"], grain=grain, by=["model"],
                           filters=filters, tz=tz)
    by_model = _rows_by(store, "model", start, end, COST_KPIS, filters, tz)
    models = [r["model"] for r in by_model if r["cost_usd"]]
    grid = buckets(start, end, grain) if tz == "UTC" else sorted(
        {r["bucket"] for r in series_rows})
    cell = {(r["bucket"], NONE_LABEL if r["model"] is None else str(r["model"])): r["cost_usd"]
            for r in series_rows}
    series = [{"bucket": _iso(b), **{m: cell.get((b, m)) or 0.0 for m in models}}
              for b in grid]
    total_saved = 0.0
    for r in by_model:
        r["cache_savings_usd"] = saved = cache_savings(r["model"], r["tokens_cache_read"] or 0)
        total_saved += saved or 0.0
    by_agent = _rows_by(store, "agent", start, end, ("cost_usd", "llm_calls", "sessions",
                                                      "tool_calls_total"), filters, tz)
    d = store.dialect
    # Only MCP tool events name a server: the range's servers first (one narrow scan), then
    # the KPIs of their events alone, which are the rows of grouping every event less the
    # (none) group (a group's KPIs depend on its own events only).
    mcp_filters: dict[str, Any] = dict(filters)
    if "mcp_server" not in filters:
        _, srows = store.fetch(
            "SELECT DISTINCT mcp_server FROM events WHERE mcp_server IS NOT NULL "
            f"AND ts >= {d.ts_literal(start)} AND ts < {d.ts_literal(end)}")
        mcp_filters["mcp_server"] = sorted(str(r[0]) for r in srows)
    by_mcp = [r for r in _rows_by(store, "mcp_server", start, end,
                                  ("tool_calls_total", "tool_calls_failed",
                                   "tool_success_rate", "sessions"), mcp_filters, tz)
              if r["mcp_server"] != NONE_LABEL] if mcp_filters["mcp_server"] else []
    # The calls by price source and version: from the calls kept with their requested
    # tools (each once) for whole hours, else from the events.
    if agg.CALL_TOOLS_TABLE in store.aggregates and agg.on_whole_hours(start, end):
        calls = (f"FROM {agg.CALL_TOOLS_TABLE} WHERE (rn = 1 OR kn IS NULL) AND "
                 f"_hour >= {d.ts_literal(start)} AND _hour < {d.ts_literal(end)}")
    else:
        calls = (f"FROM events WHERE event_type = 'llm_call' AND ts >= {d.ts_literal(start)} "
                 f"AND ts < {d.ts_literal(end)}")
    cols, vrows = store.fetch(
        "SELECT coalesce(cost_source, 'unpriced') AS cost_source, price_version, "
        f"count(*) AS calls {calls} "
        # ties (as many calls) in a fixed order: the page is the same on every run
        "GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 NULLS LAST")
    versions = [dict(zip(cols, v, strict=True)) for v in vrows]
    by_tool = cost_by_requested_tool(store, start, end, filters)
    return {
        "page": "costs", "from": _iso(start), "to": _iso(end), "grain": grain, "tz": tz,
        "filters": filters, "data_range": span,
        "kpis": kpi_meta([*COST_KPIS, "sessions", "tool_calls_total", "tool_calls_failed",
                          "tool_success_rate"]),
        "models": models, "by_model_series": series,
        "by_model": by_model, "by_agent": by_agent, "by_mcp_server": by_mcp,
        "by_requested_tool": by_tool,
        "cache_savings_usd": total_saved,
        "unpriced": [{"model": r["model"], "unpriced_tokens": r["unpriced_tokens"]}
                     for r in by_model if r["unpriced_tokens"]],
        "price_versions": versions,
    }


def sources(store: Store) -> dict[str, Any]:
    """The import audit: per source, format and machine, every audit counter summed over
    the runs, the last run; and per source the files read, skipped, and why."""
    cols, rows = store.fetch(
        "SELECT source, format, machine, kind, sum(n) AS n, max(run_at) AS last_run "
        "FROM import_audit GROUP BY source, format, machine, kind "
        "ORDER BY source, format, machine, kind")
    audit: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for src, fmt, machine, kind, n, last in rows:
        a = audit.setdefault((src, fmt, machine), {"source": src, "format": fmt,
                                                   "machine": machine, "counters": {},
                                                   "last_run": None})
        a["counters"][kind] = int(n or 0)
        if last is not None and (a["last_run"] is None or _iso(last) > a["last_run"]):
            a["last_run"] = _iso(last)
    fcols, frows = store.fetch(
        "SELECT source, status, coalesce(reason, '') AS reason, count(*) AS files, "
        "max(ingested_at) AS last FROM ingested_files GROUP BY source, status, reason "
        "ORDER BY source, status, reason")
    files = [{**dict(zip(fcols, r, strict=True)), "last": _iso(r[4])} for r in frows]
    mcols, mrows = store.fetch(
        "SELECT coalesce(machine, '(none)') AS machine, count(*) AS sessions FROM sessions "
        "GROUP BY 1 ORDER BY 2 DESC")
    return {"page": "sources", "audit": list(audit.values()), "files": files,
            "machines": [dict(zip(mcols, r, strict=True)) for r in mrows],
            "audit_kinds": dict(AUDIT_KINDS)}


def alert_states(store: Store, rules_file: str | os.PathLike[str] | None,
                 now: datetime | None = None, last: int = 50) -> dict[str, Any]:
    """The alert rules of ``rules_file``: each rule and group evaluated now (without
    notifying anyone), what the state file records as firing, and the last ``last``
    notifications of the rules' ``[notify] file`` (newest first)."""
    import json

    from agentkpi import alerts

    if rules_file is None:
        return {"page": "alerts", "rules_file": None, "rules": [], "notifications": [],
                "note": "no alert rules: write alerts.toml next to the store or set "
                        "AGENTKPI_ALERT_RULES (docs/alerts.md)"}
    rules, notify = alerts.load_rules(rules_file)
    state = alerts.load_state(notify.state)
    findings = alerts.evaluate(rules, store, now, firing_before=state)
    rows = []
    for f in findings:
        r = f.rule
        unit = BY_NAME[r.metric].unit if r.metric in BY_NAME else ""
        rows.append({"rule": r.name, "severity": r.severity, "metric": r.metric,
                     "condition": f"{r.op} {r.threshold:g} for {r.for_} {r.grain}(s)",
                     "condition_text": f"{r.op} {format_value(r.threshold, unit)} for "
                                       f"{r.for_} {r.grain}{'s' if r.for_ != 1 else ''}",
                     "group": f.group, "state": "firing" if f.firing else "ok",
                     "value": f.value, "last_bucket": f.buckets[-1] if f.buckets else None,
                     "notified_since": (state.get(f.key) or {}).get("since"),
                     "description": r.description})
    notes: list[dict[str, Any]] = []
    if notify.file and os.path.exists(notify.file):
        with open(notify.file, encoding="utf-8", errors="replace") as fh:
            tail = fh.readlines()[-last:]
        for line in reversed(tail):
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if isinstance(m, dict):
                notes.append({k: m.get(k) for k in ("at", "status", "rule", "severity",
                                                     "value", "text")})
    return {"page": "alerts", "rules_file": str(rules_file), "rules": rows,
            "kpis": kpi_meta(sorted({r.rule.metric for r in findings
                                     if r.rule.metric in BY_NAME})),
            "firing": sum(r["state"] == "firing" for r in rows), "notifications": notes,
            "notifications_file": notify.file}


def meta(store: Store) -> dict[str, Any]:
    lo, hi = store.time_range()
    return {"counts": store.counts(), "first_event": _iso(lo), "last_event": _iso(hi),
            "grains": list(GRAINS), "dimensions": list(PAGE_DIMENSIONS),
            "filters": list(DIMENSIONS), "engine": store.engine}
