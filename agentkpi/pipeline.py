"""The main job: ingest a source into the store, roll KPIs up, write the CSVs.

``ingest`` reads only new or changed files (path + size + mtime/etag), in
parallel worker processes for local sources, and writes them to the store in
batches; ``rollup`` computes every requested hour in one query and writes one
CSV per non-empty hour. Both are library calls; the CLI only formats.
"""

from __future__ import annotations

import gc
import inspect
import os
import socket
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import fsspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from agentkpi import config, pricing, sources
from agentkpi.errors import DataError, UsageError
from agentkpi.kpis import HOURLY_COLUMNS, KpiQuery, run
from agentkpi.model import CanonicalBatch
from agentkpi.quality import Quality
from agentkpi.sinks import csv_hourly
from agentkpi.sinks.target import write_files
from agentkpi.store import Store, open_store
from agentkpi.times import parse_hour

Progress = Callable[[str, int, int], None]  # (stage, done, total)
CHUNK = 1000  # files per parse task
WRITE_EVENTS = 500_000  # events per store transaction


@dataclass
class IngestResult:
    source: str
    format: str
    files_seen: int = 0
    files_read: int = 0
    files_unchanged: int = 0
    sessions: int = 0
    events: int = 0
    quality: Quality = field(default_factory=Quality)
    machine: str | None = None
    ran_at: datetime | None = None
    #: Machines of the sessions in the store after the run.
    machines_seen: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "format": self.format, "files_seen": self.files_seen,
                "files_read": self.files_read, "files_unchanged": self.files_unchanged,
                "sessions": self.sessions, "events": self.events, "machine": self.machine,
                "ran_at": self.ran_at.isoformat() if self.ran_at else None,
                "machines_seen": self.machines_seen, "price_version": pricing.PRICE_VERSION,
                **self.quality.to_dict()}

    def audit_rows(self) -> list[dict[str, Any]]:
        """The run's import-audit counters as rows of the store's ``import_audit``."""
        return [{"run_at": self.ran_at, "source": self.source, "format": self.format,
                 "machine": self.machine, "kind": kind, "n": n}
                for kind, n in sorted(self.quality.audit.items())]


def _fingerprint(info: dict[str, Any] | str | None) -> str:
    """``size:mtime`` (or etag/blob id) of a listed file; a source may hand us a string."""
    if not info:
        return ""
    if isinstance(info, str):
        return info
    stamp = next((info[k] for k in ("mtime", "LastModified", "last_modified", "etag", "ETag",
                                    "blob_id", "sha", "created") if info.get(k) is not None), "")
    return f"{info.get('size', '')}:{stamp}"


def _is_local(fs: Any) -> bool:
    protocol = getattr(fs, "protocol", None)
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol or ())
    return "file" in protocols


def _read(fs: Any, path: str) -> bytes:
    if _is_local(fs):
        with open(path, "rb") as fh:
            return fh.read()
    return fs.cat_file(path)


def _parse_chunk(fmt: str, fs: Any, paths: list[tuple[str, str]]
                 ) -> tuple[Any, Any, list[dict[str, Any]], Quality]:
    # Parsing builds millions of small acyclic objects; the cyclic GC would walk
    # the growing column lists over and over (a third of the time) for nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse_paths(fmt, fs, paths)
    finally:
        if enabled:
            gc.enable()


def _parse_paths(fmt: str, fs: Any, paths: list[tuple[str, str]]
                 ) -> tuple[Any, Any, list[dict[str, Any]], Quality]:
    src = sources.by_name(fmt)
    q = Quality()
    batch = CanonicalBatch()
    ledger = []
    into = "into" in inspect.signature(src.parse_file).parameters
    supersedes = getattr(src, "supersedes", None)
    for path, fp in paths:
        before_skips = len(q.skipped)
        try:
            raw = _read(fs, path)
        except OSError as exc:
            q.skip(path, "file_unreadable", f"cannot read: {exc}")
            raw = None
        n_s, n_e = batch.n_sessions, batch.n_events
        if raw is not None:
            try:
                if into:
                    src.parse_file(path, raw, q, into=batch)
                else:
                    batch.extend(src.parse_file(path, raw, q))
            except Exception as exc:  # an importer bug must not lose the other files
                batch.truncate(n_s, n_e)
                q.skip(path, "file_unparseable", f"the {fmt} importer failed on it "
                       f"({type(exc).__name__}: {exc}); please report this file")
        skipped = len(q.skipped) > before_skips
        ledger.append({"path": path, "fingerprint": fp, "source": fmt,
                       "supersedes": supersedes(path) if supersedes else [],
                       "status": "skipped" if skipped else "ok",
                       "reason": q.skipped[-1]["reason"] if skipped else None,
                       "n_sessions": batch.n_sessions - n_s, "n_events": batch.n_events - n_e})
    # The one pricing step every source goes through (source cost wins; tokens
    # without a cost are priced; unknown models stay NULL and are counted unpriced).
    return batch.session_table(), pricing.price_events(batch.event_table(), q), ledger, q


def _local_fs() -> Any:
    return fsspec.filesystem("file")


def _parse_chunk_local(fmt: str, paths: list[tuple[str, str]]) -> Any:
    return _parse_chunk(fmt, _local_fs(), paths)


def default_machine() -> str:
    """The machine name sessions are tagged with when ``--machine`` is not given."""
    return socket.gethostname() or "unknown"


def ingest(source: str, store: Store, *, fmt: str | None = None, workers: int | None = None,
           progress: Progress | None = None, machine: str | None = None) -> IngestResult:
    """Bring the store up to date with ``source`` (a directory or fsspec URL).

    ``machine`` (default: the host name) is stored on the sessions read, unless the
    source names a machine itself.
    """
    try:
        fs, root = fsspec.core.url_to_fs(source)
    except (ValueError, ImportError) as exc:
        raise UsageError(f"cannot open source {source!r}: {exc}") from None
    if not fs.exists(root):
        raise UsageError(f"source {source!r} does not exist; pass an existing directory "
                         "or URL with --source")
    src: ModuleType = sources.by_name(fmt) if fmt else sources.detect(fs, root)
    listing = src.list_files(fs, root)
    if not isinstance(listing, dict):
        listing = {p: _safe_info(fs, p) for p in listing}
    result = IngestResult(source=source, format=src.NAME, files_seen=len(listing),
                          machine=machine or default_machine(),
                          ran_at=datetime.now(UTC).replace(tzinfo=None))
    merged_before = store.merged_by_key
    todo = [(p, _fingerprint(info)) for p, info in listing.items()]
    todo = sorted(store.changed_files(todo))
    result.files_unchanged = result.files_seen - len(todo)
    fresh = store.counts()["events"] == 0
    chunks = [todo[i:i + CHUNK] for i in range(0, len(todo), CHUNK)]
    local = _is_local(fs)
    n_workers = workers or int(config.get("threads")) or (os.cpu_count() or 1)
    replace = bool(getattr(src, "REPLACES_SESSIONS", False))

    def consume(parts: Iterable[Any]) -> None:
        # Parsed chunks are written WRITE_EVENTS events at a time: one transaction
        # per write, so a crash loses at most the batch in flight (re-read next
        # run: the ledger is written in the same transaction) and the store is not
        # committed (and checkpointed) hundreds of times.
        done = 0
        pending: list[Any] = []

        def flush() -> None:
            nonlocal done
            if not pending:
                return
            sess = _with_machine(pa.concat_tables([p[0] for p in pending]), result.machine)
            evs = pa.concat_tables([p[1] for p in pending])
            if replace:
                evs = _one_file_per_session(sess, evs)
            ledger = [row for p in pending for row in p[2]]
            store.write_batch(sess, evs, ledger, replace_sessions=replace, fresh=fresh)
            for p in pending:
                result.quality.merge(p[3])
            result.files_read += len(ledger)
            result.sessions += sess.num_rows
            result.events += evs.num_rows
            done += len(ledger)
            pending.clear()
            if progress:
                progress("ingest", done, len(todo))

        for part in parts:
            pending.append(part)
            if sum(p[1].num_rows for p in pending) >= WRITE_EVENTS:
                flush()
        flush()

    if progress:
        progress("ingest", 0, len(todo))
    if local and n_workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            consume(pool.map(_parse_chunk_local, [src.NAME] * len(chunks), chunks))
    else:
        consume(_parse_chunk(src.NAME, fs, c) for c in chunks)
    result.quality.count_audit("duplicate_events_merged", store.merged_by_key - merged_before)
    store.record_audit(result.audit_rows())
    _, machines = store.fetch("SELECT DISTINCT machine FROM sessions")
    result.machines_seen = sorted(m for (m,) in machines if m is not None)
    return result


def _with_machine(sessions: pa.Table, machine: str | None) -> pa.Table:
    """Sessions whose source named no machine get the run's ``machine``."""
    if machine is None or "machine" not in sessions.column_names:
        return sessions
    i = sessions.schema.get_field_index("machine")
    return sessions.set_column(i, "machine", pc.fill_null(sessions.column("machine"),
                                                          pa.scalar(machine, pa.string())))


def _one_file_per_session(sessions: pa.Table, events: pa.Table) -> pa.Table:
    """Events of a session filed twice in one batch (two date folders) from one file only.

    The last path wins, as it would if the files came in separate batches (paths are
    ingested in sorted order and a later file replaces the session's rows).
    """
    ids = sessions.column("session_id")
    if len(pc.unique(ids)) == len(ids):
        return events
    last: dict[str, str] = {}
    for sid, path in zip(ids.to_pylist(), sessions.column("source_path").to_pylist(),
                         strict=True):
        if path is not None and (sid not in last or path > last[sid]):
            last[sid] = path
    keep = [last.get(sid, path) == path for sid, path in
            zip(events.column("session_id").to_pylist(), events.column("file").to_pylist(),
                strict=True)]
    return events.filter(pa.array(keep))


def _safe_info(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        return fs.info(path)
    except OSError:
        return None


# ----------------------------------------------------------------------- rollup

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


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    if end <= start:
        raise UsageError(f"empty range: --from {start:%Y-%m-%dT%H} is not before --to "
                         f"{end:%Y-%m-%dT%H}; the range is [from, to)")
    n = int((end - start).total_seconds() // 3600)
    return [start + timedelta(hours=i) for i in range(n)]


def compute_rows(store: Store, start: datetime, end: datetime, grain: str = "hour",
                 columns: Iterable[str] = HOURLY_COLUMNS) -> dict[datetime, dict[str, Any]]:
    """KPI rows keyed by bucket start for ``[start, end)``."""
    q = KpiQuery(start=start, end=end, kpis=list(columns), grain=grain)
    rows = run(store, q)
    return {r.pop("bucket"): r for r in rows}


def rollup(target: str, *, source: str | None = None,
           store: Store | str | os.PathLike[str] | None = None,
           hours: int | None = None, at: str | None = None, start: str | None = None,
           end: str | None = None, daily: str | None = None, fmt: str | None = None,
           strict: bool = False, now: datetime | None = None, workers: int | None = None,
           progress: Progress | None = None, machine: str | None = None) -> RollupResult:
    """Ingest ``source`` (if given) and write the hourly (or daily) KPI CSVs to ``target``.

    Exactly one of: ``hours`` (trailing completed hours, default 1), ``at`` (one
    hour), ``start``/``end`` (``[start, end)``), ``daily`` (one UTC day).
    """
    modes = sum(x is not None for x in (at, daily)) + (start is not None or end is not None)
    if modes > 1 or (hours is not None and modes):
        raise UsageError("choose one of --hours, --datetime, --from/--to, --daily-backfill")
    if (start is None) != (end is None):
        raise UsageError("--from and --to go together: give both, e.g. --from 2026-04-24T00 "
                         "--to 2026-04-25T00")
    # Nothing: the configured engine (as every entry point); a path: that DuckDB file.
    st: Store
    if store is None:
        st, own = open_store(), True
    elif isinstance(store, (str, os.PathLike)):
        st, own = open_store("duckdb", path=store), True
    else:
        st, own = store, False
    result = RollupResult()
    try:
        if source is not None:
            result.ingest = ingest(source, st, fmt=fmt, workers=workers, progress=progress,
                                   machine=machine)
        if daily is not None:
            day = parse_hour(daily).replace(hour=0)
            buckets = [day]
            rows = compute_rows(st, day, day + timedelta(days=1), grain="day")
            path_of = csv_hourly.daily_path
        else:
            if at is not None:
                hour_list = [parse_hour(at)]
            elif start is not None and end is not None:
                hour_list = hours_between(parse_hour(start), parse_hour(end))
            else:
                current = (now or datetime.now(UTC)).astimezone(UTC)
                top = current.replace(tzinfo=None, minute=0, second=0, microsecond=0)
                hour_list = [top - timedelta(hours=i) for i in range(1, (hours or 1) + 1)]
            buckets = sorted(hour_list)
            rows = compute_rows(st, buckets[0], buckets[-1] + timedelta(hours=1))
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
