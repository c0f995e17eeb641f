"""Ingest: bring the store up to date with a source (the first half of the main job).

:func:`ingest` lists the source, asks the store which files are new or changed
(path + size + mtime/etag), parses them with the source's importer in parallel
worker processes (local sources), prices the llm_calls and writes the canonical
rows to the store in batches. :mod:`agentkpi.rollups` rolls KPIs up from there.
A library call; the CLI only formats.
"""

from __future__ import annotations

import gc
import inspect
import os
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from agentkpi import config, pricing, sources
from agentkpi.errors import AgentKpiError, SourceError, UsageError
from agentkpi.model import CanonicalBatch, pair_tool_calls
from agentkpi.quality import Quality
from agentkpi.sources.localfs import LocalFiles, is_local, open_fs
from agentkpi.store import Store
from agentkpi.workers import PARSE_NICENESS, worker_pool

Progress = Callable[[str, int, int], None]  # (stage, done, total)
CHUNK = 1000  # most files per parse task
#: Fewer files than this are parsed in the ingest process itself (an hourly run of a
#: small source): starting worker processes would cost more than it saves.
MIN_PARALLEL = 200
WRITE_EVENTS = 500_000  # events per store transaction
#: A store with no events that is given at least this many files loads them in bulk
#: (:meth:`agentkpi.store.base.Store.bulk_load`): its aggregate tables are built once at
#: the end instead of refreshed by every write.
BULK_FILES = 5_000
#: Most parse chunks in flight (parsed or being parsed, not yet taken by the writer).
MAX_AHEAD = 64
#: Files of sessions with events this many hours before the newest are checked every run
#: even when their folder did not change (see ``sources.session_dataset.list_changed``).
LIVE_HOURS = 2.0
#: The whole source is listed again when the last full listing is older than this.
RESCAN_HOURS = 24.0


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
    #: Unchanged files of this source that an earlier run skipped: still unread.
    still_skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "format": self.format, "files_seen": self.files_seen,
                "files_read": self.files_read, "files_unchanged": self.files_unchanged,
                "sessions": self.sessions, "events": self.events, "machine": self.machine,
                "ran_at": self.ran_at.isoformat() if self.ran_at else None,
                "machines_seen": self.machines_seen, "price_version": pricing.PRICE_VERSION,
                **self.quality.to_dict(), "still_skipped_files": self.still_skipped}

    def audit_rows(self) -> list[dict[str, Any]]:
        """The run's import-audit counters as rows of the store's ``import_audit``."""
        return [{"run_at": self.ran_at, "source": self.source, "format": self.format,
                 "machine": self.machine, "kind": kind, "n": n}
                for kind, n in sorted(self.quality.audit.items())]


def fingerprint(info: dict[str, Any] | str | None) -> str:
    """``size:mtime`` (or etag/blob id) of a listed file; a source may hand us a string."""
    if not info:
        return ""
    if isinstance(info, str):
        return info
    stamp = next((info[k] for k in ("mtime", "LastModified", "last_modified", "etag", "ETag",
                                    "blob_id", "sha", "created") if info.get(k) is not None), "")
    return f"{info.get('size', '')}:{stamp}"


def _read(fs: Any, path: str) -> bytes:
    if is_local(fs):
        with open(path, "rb") as fh:
            return fh.read()
    return fs.cat_file(path)


#: Remote files (``hf://``, S3, ...) read at once per parse chunk: each read is a request
#: that waits on the network, not on a core.
REMOTE_READS = 8


def _fetch(fs: Any, path: str) -> bytes | Exception:
    try:
        return _read(fs, path)
    except Exception as exc:  # noqa: BLE001 - a client's HTTP errors are not all OSErrors
        return exc


def _remote_reads(fs: Any, paths: list[str]) -> Iterator[bytes | Exception]:
    """The bytes (or the error) of each of ``paths``, in order, :data:`REMOTE_READS` of
    them requested at a time and at most twice that many read ahead of the consumer."""
    with ThreadPoolExecutor(REMOTE_READS, thread_name_prefix="agentkpi-read") as pool:
        yield from _bounded_map(pool, _fetch, fs, paths, 2 * REMOTE_READS)


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
    batch = CanonicalBatch()
    # One Quality per file, merged in file order at the end: an importer may leave work
    # for the end of the batch (CanonicalBatch.deferred), whose notes must still come
    # after the file's own and before the next file's (the first example of a kind).
    files: list[tuple[Quality, dict[str, Any], int, int]] = []
    into = "into" in inspect.signature(src.parse_file).parameters
    supersedes = getattr(src, "supersedes", None)
    stream = getattr(src, "parse_stream", None)
    local = is_local(fs)

    def opener(p: str) -> Any:
        return open(p, "rb") if local else fs.open(p, "rb")

    def failed(q: Quality, path: str, exc: Exception) -> None:
        q.skip(path, "file_unparseable", f"the {fmt} importer failed on it "
               f"({type(exc).__name__}: {exc}); please report this file")

    # Remote files are requested several at a time (local ones are read as they come).
    fetched = (_remote_reads(fs, [p for p, _ in paths])
               if not local and stream is None and len(paths) > 1 else None)
    for path, fp in paths:
        q = Quality()
        n_s, n_e, n_d = batch.n_sessions, batch.n_events, len(batch.deferred)
        if stream is not None:
            # A streaming source reads the file itself, chunk by chunk (huge transcripts).
            try:
                with opener(path) as fh:
                    stream(path, fh, q, into=batch, opener=opener)
            except OSError as exc:
                batch.truncate(n_s, n_e, n_d)
                q.skip(path, "file_unreadable", f"cannot read: {exc}")
            except Exception as exc:  # noqa: BLE001 - an importer bug must not lose the other files
                batch.truncate(n_s, n_e, n_d)
                failed(q, path, exc)
            raw = None
        else:
            got = _fetch(fs, path) if fetched is None else next(fetched)
            if isinstance(got, Exception):
                q.skip(path, "file_unreadable", f"cannot read: {type(got).__name__}: {got}")
                raw = None
            else:
                raw = got
        if raw is not None:
            try:
                if into:
                    src.parse_file(path, raw, q, into=batch)
                else:
                    batch.extend(src.parse_file(path, raw, q))
            except Exception as exc:  # noqa: BLE001 - an importer bug must not lose the other files
                batch.truncate(n_s, n_e, n_d)
                failed(q, path, exc)
        # A file that could not be read is ledgered without its fingerprint, so that the
        # next run reads it again (a network error passes; a fixed permission keeps mtime).
        unread = any(s["kind"] == "file_unreadable" for s in q.skipped)
        files.append((q, {"path": path, "fingerprint": "" if unread else fp, "source": fmt,
                          "supersedes": supersedes(path) if supersedes else [],
                          "n_sessions": batch.n_sessions - n_s,
                          "n_events": batch.n_events - n_e}, n_s, batch.n_sessions))
    events = _resolve(batch, files, failed)
    q = Quality()
    ledger = []
    for fq, row, _, _ in files:
        q.merge(fq)
        row["status"] = "skipped" if fq.skipped else "ok"
        row["reason"] = fq.skipped[-1]["reason"] if fq.skipped else None
        ledger.append(row)
    # Every source's tool outputs are named and timed from their calls (tool_call_id).
    events, _ = pair_tool_calls(events)
    # The one pricing step every source goes through (source cost wins; tokens
    # without a cost are priced; unknown models stay NULL and are counted unpriced).
    return batch.session_table(), pricing.price_events(events, q), ledger, q


def _resolve(batch: CanonicalBatch, files: list[tuple[Quality, dict[str, Any], int, int]],
             failed: Callable[[Quality, str, Exception], None]) -> pa.Table:
    """The batch's event rows, its deferred work done: the rows it made are counted in
    their files' ledger rows, and a file whose deferred rows could not be made is skipped
    and reported like a file the importer failed on (its session rows dropped too)."""
    errors = batch.resolve()
    made = batch.event_tables
    if made:
        counts = pc.value_counts(pa.concat_tables(made).column("file").combine_chunks())
        per_file = dict(zip(counts.field("values").to_pylist(),
                            counts.field("counts").to_pylist(), strict=True))
        for _, row, _, _ in files:
            row["n_events"] += per_file.get(row["path"], 0)
    for fq, row, s0, s1 in reversed(files):  # from the end: earlier row numbers stay put
        exc = errors.get(row["path"])
        if exc is None:
            continue
        for column in batch.sessions.values():
            del column[s0:s1]
        row["n_sessions"] = 0
        failed(fq, row["path"], exc)
    return batch.event_table()


def _local_fs() -> Any:
    return LocalFiles()


def parse_local_chunk(fmt: str, paths: list[tuple[str, str]]) -> Any:
    return _parse_chunk(fmt, _local_fs(), paths)


def default_machine() -> str:
    """The machine name sessions are tagged with when ``--machine`` is not given."""
    return socket.gethostname() or "unknown"


def ingest(source: str, store: Store, *, fmt: str | None = None, workers: int | None = None,
           progress: Progress | None = None, machine: str | None = None,
           rescan: bool = False) -> IngestResult:
    """Bring the store up to date with ``source`` (a directory or fsspec URL).

    ``machine`` (default: the host name) is stored on the sessions read, unless the
    source names a machine itself. ``rescan``: list every file of the source, not
    only the folders that changed. The store's cache is bounded meanwhile
    (:meth:`agentkpi.store.Store.write_memory`).
    """
    with store.write_memory():
        return _ingest(source, store, fmt=fmt, workers=workers, progress=progress,
                       machine=machine, rescan=rescan)


def _ingest(source: str, store: Store, *, fmt: str | None, workers: int | None,
            progress: Progress | None, machine: str | None, rescan: bool) -> IngestResult:
    try:
        fs, root = open_fs(source)
    except (ValueError, ImportError) as exc:
        raise UsageError(f"cannot open source {source!r}: {exc}") from None
    try:
        if not fs.exists(root):
            raise UsageError(f"source {source!r} does not exist; pass an existing directory "
                             "or URL with --source")
        src: ModuleType = sources.by_name(fmt) if fmt else sources.detect(fs, root)
        # Files the ledger holds as skipped (read once: the listing and the report use them).
        skipped = store.skipped_files()
        listing, scan, full = _list(src, fs, root, store, rescan, skipped)
    except AgentKpiError:
        raise
    except Exception as exc:  # noqa: BLE001 - the filesystem: network, permissions, auth
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SourceError(f"cannot list source {source}: {type(exc).__name__}: {first}; "
                          "check the path or URL, the network and credentials") from None
    # The periodic full listing compacts the store's storage, not every hourly run (also
    # when an incremental ingest on this store object deferred it before).
    store.defer_compaction(not full)
    if not full:
        # Skipped files are always looked at, like live sessions' files: a
        # folder left unlisted because nothing in it was created, removed or renamed may
        # hold one, still bad (reported, --strict fails) or rewritten in place (read again)
        under = root.rstrip("/") + "/"
        for p in skipped:
            if p not in listing and p.startswith(under) and (info := _safe_info(fs, p)):
                listing[p] = info
    result = IngestResult(source=source, format=src.NAME, files_seen=len(listing),
                          machine=machine or default_machine(),
                          ran_at=datetime.now(UTC).replace(tzinfo=None))
    merged_before = store.merged_by_key
    todo = [(p, fingerprint(info)) for p, info in listing.items()]
    todo = sorted(store.changed_files(todo))
    result.files_unchanged = result.files_seen - len(todo)
    if result.files_unchanged:
        reading = {p for p, _ in todo}
        result.still_skipped = sorted(
            ({"path": p, "reason": reason} for p, reason in skipped.items()
             if p in listing and p not in reading), key=lambda s: s["path"])
    fresh = store.counts()["events"] == 0
    local = is_local(fs)
    n_workers = workers or int(config.get("threads")) or (os.cpu_count() or 1)
    parallel = local and n_workers > 1 and len(todo) >= MIN_PARALLEL
    chunks = split(todo, n_workers if parallel else 1)
    replace = bool(getattr(src, "REPLACES_SESSIONS", False))

    taken = [0, 0]  # parsed chunks and their events, as consume() takes them

    def ahead() -> int:
        """Chunks the workers may parse ahead of the writer: about one store write's
        worth (:data:`WRITE_EVENTS`), so they go on parsing while it writes (with only
        two per worker they stalled, and the writer then waited for them: a cold
        ingest used ~1.1 of 2 cores); at least two per worker, at most
        :data:`MAX_AHEAD`."""
        floor = 2 * n_workers
        if not taken[0] or not taken[1]:
            return floor
        return max(floor, min(MAX_AHEAD, int(WRITE_EVENTS * taken[0] / taken[1])))

    def consume(parts: Iterable[Any]) -> None:
        # Parsed chunks are written WRITE_EVENTS events at a time: one transaction
        # per write, so a crash loses at most the batch in flight (re-read next
        # run: the ledger is written in the same transaction) and the store is not
        # committed (and checkpointed) hundreds of times.
        done = 0
        parsed = 0
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
            for row in ledger:  # a file still listed is its own data, never superseded
                row["supersedes"] = [s for s in row.get("supersedes") or () if s not in listing]
            store.write_batch(sess, evs, ledger, replace_sessions=replace, fresh=fresh)
            for p in pending:
                result.quality.merge(p[3])
            result.files_read += len(ledger)
            result.sessions += sess.num_rows
            result.events += evs.num_rows
            done += len(ledger)
            pending.clear()
            if progress:
                progress("write", done, len(todo))

        for part in parts:
            pending.append(part)
            parsed += len(part[2])
            taken[0] += 1
            taken[1] += part[1].num_rows
            if progress:  # moves with every parsed chunk, not only at each store write
                progress("ingest", parsed, len(todo))
            if sum(p[1].num_rows for p in pending) >= WRITE_EVENTS:
                flush()
        flush()

    if progress:
        progress("ingest", 0, len(todo))
    bulk = fresh and len(todo) >= BULK_FILES
    with store.bulk_load() if bulk else nullcontext():
        if parallel and len(chunks) > 1:
            with worker_pool(n_workers, PARSE_NICENESS) as pool:
                consume(_bounded_map(pool, parse_local_chunk, src.NAME, chunks, ahead))
        else:
            consume(_parse_chunk(src.NAME, fs, c) for c in chunks)
        if bulk and progress:
            progress("aggregates", 0, 1)
    if bulk and progress:
        progress("aggregates", 1, 1)
    result.quality.count_audit("duplicate_events_merged", store.merged_by_key - merged_before)
    store.record_audit(result.audit_rows())
    _, machines = store.fetch("SELECT DISTINCT machine FROM sessions")
    result.machines_seen = sorted(m for (m,) in machines if m is not None)
    if scan is not None:  # everything listed is in the store now
        store.save_scan_state(root, scan[0], full, scan[1])  # type: ignore[attr-defined]
    return result


def split(todo: list[Any], workers: int) -> list[list[Any]]:
    """``todo`` in chunks of at most :data:`CHUNK`, as many as a multiple of ``workers``
    and of equal size, so a small batch (an hourly run) keeps every worker busy to the end."""
    if not todo:
        return []
    n = -(-len(todo) // CHUNK)
    n = -(-n // workers) * workers
    size = -(-len(todo) // n)
    return [todo[i:i + size] for i in range(0, len(todo), size)]


def _bounded_map(pool: Any, fn: Callable[..., Any], first: Any, chunks: list[Any],
                 ahead: int | Callable[[], int]) -> Iterator[Any]:
    """``pool.map(fn, [first]*n, chunks)`` in order, with at most ``ahead`` chunks in
    flight (a number, or a function asked again after every chunk taken).

    ``Executor.map`` submits every chunk at once, so when the store writes slower than
    the workers parse, finished chunks pile up in this process (a cold ingest's peak
    memory); here chunks are submitted only up to the bound, as earlier ones are taken.
    """
    limit = ahead if callable(ahead) else (lambda: ahead)
    pending: deque[Any] = deque()
    it = iter(chunks)

    def fill() -> None:
        while len(pending) < max(1, limit()):
            c = next(it, _END)
            if c is _END:
                return
            pending.append(pool.submit(fn, first, c))

    fill()
    while pending:
        result = pending.popleft().result()
        fill()  # before the consumer writes: the workers parse on meanwhile
        yield result


_END = object()


def _with_machine(sessions: pa.Table, machine: str | None) -> pa.Table:
    """Sessions whose source named no machine get the run's ``machine``."""
    if machine is None or "machine" not in sessions.column_names:
        return sessions
    i = sessions.schema.get_field_index("machine")
    return sessions.set_column(i, "machine", pc.fill_null(sessions.column("machine"),
                                                          pa.scalar(machine, pa.string())))


def _list(src: ModuleType, fs: Any, root: str, store: Any, rescan: bool,
          skipped: dict[str, str]) -> tuple[dict[str, Any], tuple[Any, Any] | None, bool]:
    """The files to check, and (when the source and store support it) what to record of
    the scan: folder fingerprints and the entries of the folders read.

    With both, only folders that changed since the last run are read, and of those only
    the entries the store has not recorded (new names, names replaced by rename) are
    stat-ed, plus the files of sessions active in the last :data:`LIVE_HOURS` (a writer
    may rewrite those in place) and skipped files; the whole source is listed again with
    ``rescan`` or when the last full listing is older than :data:`RESCAN_HOURS`.
    """
    changed = getattr(src, "list_changed", None)
    state = getattr(store, "scan_state", None)
    if changed is not None and state is not None:
        full_at, folders = state(root)
        full = rescan or full_at is None or (
            datetime.now(UTC).replace(tzinfo=None) - full_at > timedelta(hours=RESCAN_HOURS))
        # Files a writer may rewrite in place are stat-ed every run: those of live
        # sessions, and skipped ones (few; fixed in place, and reported while they stay).
        live = () if full else [*store.live_files(LIVE_HOURS), *skipped]
        unrecorded = None if full else partial(store.unrecorded_entries, root)
        found = changed(fs, root, {} if full else folders, live, unrecorded)
        if found is not None:
            return found[0], (found[1], found[2]), full
    listing = src.list_files(fs, root)
    if not isinstance(listing, dict):
        listing = {p: _safe_info(fs, p) for p in listing}
    return listing, None, True


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
