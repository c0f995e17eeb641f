"""Rollup: the hourly (or daily) KPI CSVs from the store (the second half of the main job).

:func:`rollup` optionally ingests a source first (:func:`agentkpi.ingestion.ingest`),
computes every requested hour in one KPI query and writes one CSV per non-empty
hour (seed 000's layout) plus a machine-readable run report. A library call; the
CLI only formats.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from agentkpi.errors import DataError, UsageError
from agentkpi.ingestion import IngestResult, Progress, ingest
from agentkpi.kpis import HOURLY_COLUMNS, KpiQuery, run
from agentkpi.quality import Quality
from agentkpi.sinks import csv_hourly
from agentkpi.sinks.target import write_files
from agentkpi.store import Store, open_store
from agentkpi.times import hour_end, parse_hour


@dataclass
class RollupResult:
    buckets: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    empty: int = 0
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    ingest: IngestResult | None = None
    report_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"buckets": self.buckets, "written": self.written, "unchanged": self.unchanged,
                "empty_buckets": self.empty,
                "ingest": self.ingest.to_dict() if self.ingest else None}


#: Most hours one rollup writes (ten years): a mistyped range must not run for hours,
#: fill the disk with empty-bucket listings or grow memory without bound.
MAX_HOURS = 24 * 3653


def _check_hours(n: int, what: str) -> None:
    if n > MAX_HOURS:
        raise UsageError(f"{what} is {n:,} hours; one rollup covers at most {MAX_HOURS:,} "
                         "hours (ten years): split the range into several runs")


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    if end <= start:
        raise UsageError(f"empty range: --from {start:%Y-%m-%dT%H} is not before --to "
                         f"{end:%Y-%m-%dT%H}; the range is [from, to)")
    n = int((end - start).total_seconds() // 3600)
    _check_hours(n, f"--from {start:%Y-%m-%dT%H} --to {end:%Y-%m-%dT%H}")
    return [start + timedelta(hours=i) for i in range(n)]


def compute_rows(store: Store, start: datetime, end: datetime, grain: str = "hour",
                 columns: Iterable[str] = HOURLY_COLUMNS) -> dict[datetime, dict[str, Any]]:
    """KPI rows keyed by bucket start for ``[start, end)``."""
    q = KpiQuery(start=start, end=end, kpis=list(columns), grain=grain)
    rows = run(store, q)
    return {r.pop("bucket"): r for r in rows}


def plan_buckets(*, hours: int | None = None, at: str | None = None, start: str | None = None,
                 end: str | None = None, daily: str | None = None,
                 now: datetime | None = None) -> list[datetime]:
    """The buckets a rollup covers, checked before anything is opened or read.

    Hour starts in order, or the one day of ``daily``; a malformed, empty or too
    long range is a :class:`UsageError` (so it is reported before a store error).
    """
    modes = sum(x is not None for x in (at, daily)) + (start is not None or end is not None)
    if modes > 1 or (hours is not None and modes):
        raise UsageError("choose one of --hours, --datetime, --from/--to, --daily-backfill")
    if (start is None) != (end is None):
        raise UsageError("--from and --to go together: give both, e.g. --from 2026-04-24T00 "
                         "--to 2026-04-25T00")
    if daily is not None:
        return [parse_hour(daily).replace(hour=0)]
    if at is not None:
        return [parse_hour(at)]
    if start is not None and end is not None:
        return hours_between(parse_hour(start), parse_hour(end))
    _check_hours(hours or 1, f"--hours {hours}")
    current = (now or datetime.now(UTC)).astimezone(UTC)
    top = current.replace(tzinfo=None, minute=0, second=0, microsecond=0)
    return sorted(top - timedelta(hours=i) for i in range(1, (hours or 1) + 1))


def rollup(target: str, *, source: str | None = None,
           store: Store | str | os.PathLike[str] | None = None,
           hours: int | None = None, at: str | None = None, start: str | None = None,
           end: str | None = None, daily: str | None = None, fmt: str | None = None,
           strict: bool = False, now: datetime | None = None, workers: int | None = None,
           progress: Progress | None = None, machine: str | None = None,
           rescan: bool = False) -> RollupResult:
    """Ingest ``source`` (if given) and write the hourly (or daily) KPI CSVs to ``target``.

    Exactly one of: ``hours`` (trailing completed hours, default 1), ``at`` (one
    hour), ``start``/``end`` (``[start, end)``), ``daily`` (one UTC day).
    """
    buckets = plan_buckets(hours=hours, at=at, start=start, end=end, daily=daily, now=now)
    # Nothing: the configured engine (as every entry point); a path: that DuckDB file.
    # Without a source nothing is written to the store: it is opened read-only, so a
    # mistyped --store fails ("no store at ...") instead of creating an empty store.
    st: Store
    if store is None:
        st, own = open_store(read_only=source is None), True
    elif isinstance(store, (str, os.PathLike)):
        st, own = open_store("duckdb", path=store, read_only=source is None), True
    else:
        st, own = store, False
    result = RollupResult()
    try:
        if source is not None:
            result.ingest = ingest(source, st, fmt=fmt, workers=workers, progress=progress,
                                   machine=machine, rescan=rescan)
        if daily is not None:
            day = buckets[0]
            rows = compute_rows(st, day, hour_end(day.replace(hour=23)), grain="day")
            path_of: Callable[[datetime], tuple[str, str]] = csv_hourly.daily_path
        else:
            # One hour (the hourly cron): its few queries keep a small cache.
            with st.query_memory() if len(buckets) == 1 else nullcontext():
                rows = compute_rows(st, buckets[0], hour_end(buckets[-1]))
            path_of = csv_hourly.hourly_path
        files: dict[str, bytes] = {}
        for b in buckets:
            rel, key = path_of(b)
            result.buckets.append(key)
            row = rows.get(b)
            if row is None:
                result.empty += 1
                continue
            result.rows[key] = row
            files[rel] = csv_hourly.render(key, row)
        label = buckets[0].strftime("%Y-%m-%dT%H") + (
            f"..{buckets[-1]:%Y-%m-%dT%H}" if len(buckets) > 1 else "")
        wr = write_files(target, files, message=f"KPIs for {label}")
        result.written, result.unchanged = wr.written, wr.unchanged
        result.report_path = _write_report(target, result)
    finally:
        if own:
            st.close()
    if strict and result.ingest and result.ingest.quality.data_errors:
        q = result.ingest.quality
        raise DataError(f"{q.data_errors} data problem(s) in {source} ({_top(q)}); see "
                        f"{result.report_path}. Drop --strict to roll up anyway.")
    if strict and result.ingest and result.ingest.still_skipped:
        first = result.ingest.still_skipped[0]
        raise DataError(f"{len(result.ingest.still_skipped)} file(s) of {source} are still "
                        f"skipped from an earlier run (e.g. {first['path']}: {first['reason']});"
                        f" fix or remove them, or drop --strict. See {result.report_path}.")
    return result


def _top(q: Quality) -> str:
    items = sorted(((n, k) for k, n in q.counts.items() if k != "event_type_unknown"),
                   reverse=True)[:3]
    return ", ".join(f"{k}: {n}" for n, k in items)


def _write_report(target: str, result: RollupResult) -> str | None:
    """Machine-readable run report at ``TARGET/_reports/latest.json`` (not for hf://)."""
    if target.startswith("hf://"):
        return None
    body = orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    write_files(target, {"_reports/latest.json": body})
    return f"{target.rstrip('/')}/_reports/latest.json"
