"""Session-dataset rows (seed 000's input): ``sessions/YYYY-MM-DD/<session_id>.jsonl``.

One JSON object per file (only the first non-empty line is read, as the seed
does). ``messages``/``events``/``tools`` are JSON *strings* in real uploads, or
already-decoded lists; both work. Real rows carry more fields than the seed
knew (``session_end_time`` without offset, ``total_cost_usd``, ``usage_*``):
they are kept in ``sessions.extra`` when small and never fail a run.

A file carries a whole session, so a changed file replaces every event row of
its session (``REPLACES_SESSIONS``).
"""

from __future__ import annotations

import os
import posixpath
import re
import time
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from itertools import chain
from typing import Any

from agentkpi.model import DATA_FIELDS, EVENT_TYPES, LIFECYCLE_EVENT_TYPES, CanonicalBatch
from agentkpi.quality import (
    EventArrays,
    EventBlock,
    Quality,
    decode_json,
    dump_json,
    event_row,
    parse_ts,
    to_str,
)
from agentkpi.sources import dayfolders
from agentkpi.sources.dayfolders import DAY_DIR
from agentkpi.sources.localfs import is_local
from agentkpi.workers import worker_pool

NAME = "session_dataset"
REPLACES_SESSIONS = True

_KNOWN_TYPES = frozenset(EVENT_TYPES) | LIFECYCLE_EVENT_TYPES
_SESSION_FIELDS = {"session_id", "user_id", "session_start_time", "session_end_time",
                   "model_name", "messages", "events", "tools", "usage_metrics"}


def _sessions_dir(fs: Any, root: str) -> str | None:
    return dayfolders.sessions_dir(root, fs.isdir)


_YEAR_DIR = re.compile(r"^\d{4}$")


def detect(fs: Any, root: str) -> bool:
    """A ``sessions/`` folder of day folders. A ``sessions/`` holding year folders is
    Codex CLI's (``sessions/YYYY/MM/DD``), not ours. Cheap: lists one folder, so the
    main job's auto-detection never walks the dataset (it is tried first)."""
    base = _sessions_dir(fs, root)
    if base is None:
        return False
    try:
        names = [posixpath.basename(str(p).rstrip("/")) for p in fs.ls(base, detail=False)]
    except (OSError, ValueError):
        return True
    return any(DAY_DIR.match(n) for n in names) or not any(_YEAR_DIR.match(n) for n in names)


def list_files(fs: Any, root: str) -> dict[str, Any]:
    """``{path: info}`` of every ``sessions/YYYY-MM-DD/*.jsonl`` file, one listing call.

    ``info`` is fsspec's info dict, or for local directories the fingerprint string.
    """
    base = _sessions_dir(fs, root)
    if base is None:
        return {}
    if is_local(fs):
        return _list_local(base)
    found = fs.find(base, detail=True)
    out = {}
    for path in sorted(found):
        if not path.endswith(".jsonl"):
            continue
        if not DAY_DIR.match(posixpath.basename(posixpath.dirname(path))):
            continue
        out[path] = found[path]
    return out


def _list_local(base: str) -> dict[str, str]:
    # os.scandir + one stat per file and nothing else per entry: the warm and
    # incremental runs are mostly this listing. Large trees are scanned by one
    # process per CPU (the per-entry work is Python, so threads would not help).
    # Values are ready-made fingerprints; the order does not matter to ingest.
    day_dirs = dayfolders.day_dirs(base)
    cpus = os.cpu_count() or 1
    if cpus > 1 and len(day_dirs) > 1 and len(os.listdir(day_dirs[-1])) >= 10_000:
        with worker_pool(min(cpus, len(day_dirs))) as pool:
            parts = list(pool.map(dayfolders.stat_entries, day_dirs))
    else:
        parts = [dayfolders.stat_entries(day) for day in day_dirs]
    return {path: fp for part in parts for path, fp in part}


#: A folder modified this recently (seconds) is scanned again next time: directory
#: timestamps are coarse (a jiffy locally, a second or more on network filesystems), so a
#: file added right after the scan could leave the recorded timestamp unchanged.
SETTLE_S = 2.0


def list_changed(fs: Any, root: str, folders: dict[str, str], live: Iterable[str],
                 unrecorded: Callable[[list[str], list[int], list[str]], Collection[str]]
                 | None = None,
                 ) -> tuple[dict[str, str], dict[str, str], dict[str, list[Any]]] | None:
    """Files that may have changed since ``folders`` was recorded, without listing history.

    ``folders``: ``{day folder: fingerprint}`` recorded by the last run (empty: scan
    everything). A day folder whose fingerprint (inode and mtime of the directory) is
    unchanged has exactly the entries it had then: nothing was created, removed or
    renamed in it; it is not read. Every other folder is read (names and inode numbers,
    no ``stat``): with ``unrecorded`` (the store's record of the entries seen before;
    ``None`` on a full listing) only the entries it does not know — a new name, or a
    known name now on another inode (replaced by rename) — are stat-ed; without it
    every file is. Files rewritten in place keep their entry: of those only the ``live``
    ones (sessions active lately, which a writer may still rewrite) are stat-ed, the
    others wait for the full listing (``--rescan``, daily).

    Returns ``({path: fingerprint}, {folder: fingerprint to record}, entries)``, where
    ``entries`` (``folder``, ``path``, ``ino`` lists) are the entries of the folders
    read, for the store to record once their files are ingested. A folder modified less
    than :data:`SETTLE_S` before the scan is not recorded, so the next run reads it
    again.

    Other filesystems: see :func:`_list_changed_remote` (``None`` when their folders carry
    no content id: list them whole).
    """
    if not is_local(fs):
        return _list_changed_remote(fs, root, folders)
    entries: dict[str, list[Any]] = {"folder": [], "path": [], "ino": []}
    base = _sessions_dir(fs, root)
    if base is None:
        return {}, {}, entries
    listing: dict[str, str] = {}
    gone: set[str] = set()
    record: dict[str, str] = {}
    trusted: set[str] = set()  # folders whose unlisted files are only checked when live
    read: list[str] = []  # folders whose entries were read (every entry's folder)
    for day in dayfolders.day_dirs(base):
        # The newest folder may have been read already, while the program started
        # (dayfolders.prefetch): that reading stands for this one, fingerprint included.
        got = dayfolders.take(day)
        try:
            if got is None:
                read_at = time.time_ns()
                st = os.stat(day)
                fp, mtime = dayfolders.fingerprint(st), st.st_mtime_ns
            else:
                fp, mtime, read_at = got.fingerprint, got.mtime_ns, got.read_at_ns
            if folders.get(day) == fp:
                trusted.add(day)
            else:
                paths, inos = (got.paths, got.inos) if got else dayfolders.entries(day)
                read.append(day)
                entries["folder"].extend([day] * len(paths))
                entries["path"].extend(paths)
                entries["ino"].extend(inos)
                if unrecorded is not None:
                    trusted.add(day)
                else:
                    _stat_all(paths, listing, gone)
        except OSError:
            continue
        if mtime < read_at - int(SETTLE_S * 1e9):
            record[day] = fp
    dayfolders.drop()
    if unrecorded is not None and entries["path"]:
        _stat_all(unrecorded(entries["path"], entries["ino"], read), listing, gone)
    if gone:  # not recorded: a name that comes back is checked again
        keep = [i for i, p in enumerate(entries["path"]) if p not in gone]
        entries = {k: [v[i] for i in keep] for k, v in entries.items()}
    _stat_all((p for p in live if p and p not in listing and os.path.dirname(p) in trusted),
              listing, set())
    return listing, record, entries


#: Keys of a remote listing's folder entry that identify everything below the folder: the
#: Hugging Face Hub's git tree id (``HfFileSystem.ls``) changes when any file under the
#: folder is added, removed, renamed or rewritten, and only then.
FOLDER_CONTENT_IDS = ("tree_id",)


def _content_id(info: dict[str, Any]) -> str | None:
    return next((f"{k}:{info[k]}" for k in FOLDER_CONTENT_IDS if info.get(k)), None)


def _list_changed_remote(fs: Any, root: str, folders: dict[str, str]
                         ) -> tuple[dict[str, Any], dict[str, str], dict[str, list[Any]]] | None:
    """:func:`list_changed` on a remote filesystem whose folders carry a content id
    (:data:`FOLDER_CONTENT_IDS`; an ``hf://`` dataset): one listing of ``sessions/`` gives
    every day folder's id, and only the folders whose id differs from the one recorded
    are listed (their files with size and blob id). An unchanged id is proof that no file
    below changed, in place or not, so no live session or periodic listing is needed to
    see a rewrite. ``None`` when a day folder has no content id (other stores: S3, GCS,
    ``memory://``, Hub buckets): the caller lists the source whole, as before.

    The folder ids are read before the folders' files, so a commit landing in between
    makes the next run read the folder again, never skip a change.
    """
    invalidate = getattr(fs, "invalidate_cache", None)
    if invalidate is not None:  # a long-lived process must not see an old listing
        invalidate()
    base = _sessions_dir(fs, root)
    if base is None:
        return {}, {}, {"folder": [], "path": [], "ino": []}
    days: dict[str, str] = {}
    for info in fs.ls(base, detail=True):
        name = str(info["name"]).rstrip("/")
        if info.get("type") != "directory" or not DAY_DIR.match(posixpath.basename(name)):
            continue
        cid = _content_id(info)
        if cid is None:
            return None
        days[name] = cid
    listing: dict[str, Any] = {}
    for day in sorted(days):
        if folders.get(day) == days[day]:
            continue
        try:
            found = fs.ls(day, detail=True)
        except FileNotFoundError:  # removed since sessions/ was listed: not recorded
            del days[day]
            continue
        for info in found:
            path = str(info["name"])
            if info.get("type") == "file" and path.endswith(".jsonl"):
                listing[path] = info
    return listing, days, {"folder": [], "path": [], "ino": []}


def _stat_all(paths: Iterable[str], into: dict[str, str], gone: set[str]) -> None:
    """``into[path] = "size:mtime_ns"``; a file removed meanwhile goes to ``gone``."""
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            gone.add(path)
            continue
        into[path] = f"{st.st_size}:{st.st_mtime_ns}"


def _decode_list(value: Any, field: str, q: Quality, where: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = decode_json(value, q, f"{where}: {field}")
        except ValueError:
            q.note("field_bad_json", f"{where}: {field}")
            return []
        if value is None:
            return []
    if isinstance(value, list):
        return value
    q.note("field_wrong_type", f"{where}: {field} is {type(value).__name__}")
    return []


def _scalar_extras(row: dict[str, Any]) -> str | None:
    extra = {k: v for k, v in row.items()
             if k not in _SESSION_FIELDS and (v is None or isinstance(v, (str, int, float, bool)))
             and not (isinstance(v, str) and len(v) > 200)}
    return dump_json(extra, sort_keys=True) if extra else None


def parse_file(path: str, raw: bytes, q: Quality,
               into: CanonicalBatch | None = None) -> CanonicalBatch:
    """Parse one session file; rows are appended to ``into`` (or a new batch).

    Import audit: every file counts in ``files``, its one line in ``lines_read``.
    """
    batch = into if into is not None else CanonicalBatch()
    q.count_audit("files")
    line = b""
    for candidate in raw.splitlines():
        if candidate.strip():
            line = candidate
            break
    if not line:
        q.skip(path, "file_empty", "file is empty; re-upload the session or delete the file")
        return batch
    q.count_audit("lines_read")
    try:
        row = decode_json(line, q, path)
    except ValueError as exc:
        q.skip(path, "file_bad_json", f"not valid JSON ({exc}); the file is truncated or corrupt")
        return batch
    if not isinstance(row, dict):
        q.skip(path, "file_not_object", f"first line is a JSON {type(row).__name__}, "
                                        "expected an object with session fields")
        return batch
    add_row(batch, row, path, q)
    return batch


def add_row(batch: CanonicalBatch, row: dict[str, Any], path: str, q: Quality) -> None:
    """Append one decoded session row (and its events) to ``batch``."""
    session_id = to_str(row.get("session_id"))
    if session_id is None:
        session_id = posixpath.splitext(posixpath.basename(path))[0]
        q.note("session_id_missing", path)
    messages = _decode_list(row.get("messages"), "messages", q, path)
    events = _decode_list(row.get("events"), "events", q, path)
    turns = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user")
    start = row.get("session_start_time")
    end = row.get("session_end_time")
    batch.add_session(
        session_id=session_id,
        user_id=to_str(row.get("user_id")),
        start_ts=parse_ts(start, q, path) if start not in (None, "") else None,
        end_ts=parse_ts(end, q, path) if end not in (None, "") else None,
        model=to_str(row.get("model_name")),
        turns=turns,
        project=to_str(row.get("project")),
        agent=to_str(row.get("agent")),
        source=NAME,
        source_path=path,
        extra=_scalar_extras(row),
    )
    if events:  # converted with the rest of the batch's sessions (_resolve)
        batch.deferred.append((_resolve, EventBlock(session_id, path, events, q)))


#: The field map of :data:`~agentkpi.model.DATA_FIELDS`, vectorised.
_ARRAYS = EventArrays(DATA_FIELDS, _KNOWN_TYPES)
#: Sessions whose events are converted by one Arrow call; a group holding a value of
#: another type is converted again session by session, and a session that still does not
#: convert goes through :func:`add_events`, event by event.
GROUP = 16


def _resolve(batch: CanonicalBatch, blocks: list[EventBlock]) -> dict[str, Exception]:
    """The canonical rows of the sessions' events, in order (``CanonicalBatch.resolve``).

    This is the ingest's hot path: millions of events, converted by Arrow a group of
    sessions at a time (:class:`agentkpi.quality.EventArrays`). A session whose events
    are not all of their columns' types already goes through :func:`add_events`, which
    coerces and counts each bad value. Returns ``{file: error}`` of sessions whose events
    failed even that way (an importer bug: the caller skips and reports the file)."""
    failed: dict[str, Exception] = {}
    run: list[EventBlock] = []
    converted: list[tuple[Any, Any]] = []

    def flush() -> None:
        if run:
            batch.event_tables.append(_ARRAYS.table(run, converted))
            run.clear()
            converted.clear()

    for g in range(0, len(blocks), GROUP):
        group = blocks[g:g + GROUP]
        whole = (_ARRAYS.convert(list(chain.from_iterable(b.events for b in group)))
                 if len(group) > 1 else None)
        if whole is not None:
            run.extend(group)
            converted.append(whole)
            continue
        for b in group:
            one = _ARRAYS.convert(b.events)
            if one is not None:
                run.append(b)
                converted.append(one)
                continue
            flush()
            rows = CanonicalBatch()
            try:
                add_events(rows, b.session_id, b.events, b.path, b.q)
            except Exception as exc:  # noqa: BLE001 - reported by the caller, file skipped
                failed[b.path] = exc
                continue
            if rows.n_events:
                batch.event_tables.append(rows.event_table())
    flush()
    return failed


def add_events(batch: CanonicalBatch, session_id: str, events: list[Any], path: str,
               q: Quality) -> None:
    """Append ``[{timestamp, event_type, data}, ...]`` as canonical event rows, one by one.

    The path of sessions with values to coerce or count (:func:`_resolve` converts the
    others in Arrow): timestamps take an inline fast path, ``data`` goes through the
    common field map (:data:`agentkpi.model.DATA_FIELDS`, compiled by
    :func:`agentkpi.quality.event_row_builder`), one tuple per event.
    """
    add_row = batch.event_rows.append
    fromiso = datetime.fromisoformat
    known = _KNOWN_TYPES
    row = event_row
    str_ = str

    for seq, ev in enumerate(events):
        if type(ev) is not dict:
            q.note("event_not_object", f"{path}: events[{seq}]")
            continue
        et = ev.get("event_type")
        if type(et) is not str_ or not et:
            et = to_str(et) or "unknown"
        if et not in known:
            q.note("event_type_unknown", f"{path}: events[{seq}]: {et!r}")
        raw_ts = ev.get("timestamp")
        if type(raw_ts) is str_ and raw_ts:
            try:
                ts = fromiso(raw_ts)
                off = ts.utcoffset()
                if off is not None:  # (the usual offset, +00:00, needs no arithmetic)
                    ts = (ts - off if off else ts).replace(tzinfo=None)
            except (ValueError, OverflowError):  # overflow: past year 9999 in UTC
                q.note("ts_unparseable", f"{path}: events[{seq}]")
                ts = None
        else:
            ts = parse_ts(raw_ts, q, f"{path}: events[{seq}]")
        add_row(row(session_id, seq, ts, et, ev.get("data"), path, q, None))
