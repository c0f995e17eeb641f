"""The agentkpi event log written by the SDK (``agentkpi.Recorder``).

A directory holding ``events-*.jsonl`` segments, plain or rotated and
compressed (``.jsonl.gz`` / ``.jsonl.zst``); the format is documented in
:mod:`agentkpi.sdk.eventlog`. One file = one segment; a session usually spans
several segments, so session rows are partial and upserted by the store
(``REPLACES_SESSIONS = False``): ``session_start`` gives user/model/project/
agent and the start time, ``session_end`` the end time (and ``turns`` when the
SDK counted user messages).

Records of type ``otlp_traces`` (raw OTLP requests accepted by ``agentkpi collect``)
are turned into rows by the OTel importer, model calls deduplicated within the
segment (the collector itself deduplicates per trace; docs/otel.md).

A live segment may end in a torn line while it is being written; that line is
skipped and counted (``line_bad_json``) and read whole on the next ingest.

Rotation renames a segment (``x.jsonl`` -> ``x.jsonl.gz``). :func:`supersedes`
names the file(s) whose rows a compressed segment replaces, so the ingest can
delete them instead of counting the segment twice (the pipeline must call it;
see docs/sdk.md "Ingesting a live log").
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from agentkpi.model import EVENT_TYPES, LIFECYCLE_EVENT_TYPES, CanonicalBatch
from agentkpi.quality import (
    EventRowBuilder,
    Quality,
    decode_json,
    event_row,
    parse_ts,
    to_int,
    to_str,
)
from agentkpi.sdk.eventlog import SEGMENT_RE, decompress
from agentkpi.sources import otel

NAME = "eventlog"
REPLACES_SESSIONS = False

KNOWN_TYPES = frozenset(EVENT_TYPES) | LIFECYCLE_EVENT_TYPES
#: A raw OTLP/HTTP trace request as ``agentkpi collect`` appends it (docs/otel.md);
#: its spans become canonical rows through :mod:`agentkpi.sources.otel`.
OTLP_RECORD = "otlp_traces"


def _names(fs: Any, root: str) -> list[str]:
    try:
        return [p for p in fs.ls(root, detail=False)]
    except (OSError, ValueError):
        return []


def detect(fs: Any, root: str) -> bool:
    try:
        if not fs.isdir(root):
            return False
    except OSError:
        return False
    return any(SEGMENT_RE.match(posixpath.basename(p.rstrip("/"))) for p in _names(fs, root))


def list_files(fs: Any, root: str) -> dict[str, dict[str, Any]]:
    """``{path: info}`` of the segments under ``root`` (any depth), in write order.

    A plain segment whose compressed twin holds exactly the same bytes (a crash
    between rename and delete during compression) is left out; a plain segment
    that differs from its twin is data of its own and kept (never dropped).
    """
    try:
        found = fs.find(root.rstrip("/"), detail=True)
    except (OSError, ValueError):
        return {}
    plain: dict[tuple[str, str, int, int], str] = {}
    packed: dict[tuple[str, str, int, int], str] = {}
    for path in found:
        base = posixpath.basename(path)
        m = SEGMENT_RE.match(base)
        if not m:
            continue
        key = (posixpath.dirname(path), m.group(1), int(m.group(2)), int(m.group(3)))
        (packed if m.group(4) is not None else plain)[key] = path
    keep = []
    for key in sorted(set(plain) | set(packed)):
        if key in packed:
            keep.append(packed[key])
        if key in plain and not (key in packed and same_content(fs, plain[key], packed[key])):
            keep.append(plain[key])
    return {path: found[path] for path in keep}


def same_content(fs: Any, plain: str, compressed: str) -> bool:
    """True when ``compressed`` decompresses to exactly the bytes of ``plain``.

    Anything unreadable counts as different, so neither file is ever dropped
    for a guess.
    """
    try:
        raw_plain = fs.cat_file(plain)
        unpacked, complete = decompress(compressed, fs.cat_file(compressed))
    except Exception:  # noqa: BLE001 - unreadable: keep both
        return False
    return complete and unpacked == raw_plain


def supersedes(path: str) -> list[str]:
    """Paths whose events ``path`` replaces: the plain segment of a compressed one."""
    for suffix in (".gz", ".zst"):
        if path.endswith(".jsonl" + suffix):
            return [path[: -len(suffix)]]
    return []


# ------------------------------------------------------------------ mapping

def add_event_row(batch: CanonicalBatch, *, session_id: str | None, seq: int, ts: Any,
                  event_type: str, data: Any, path: str, q: Quality, where: str,
                  row: EventRowBuilder = event_row) -> None:
    """One event -> one canonical row; typed columns pulled out of ``data`` by the field
    map compiled into ``row`` (default: the common :data:`agentkpi.model.DATA_FIELDS`).

    Shared by the log sources (eventlog, seed002, seed003). ``data`` may be any JSON
    value; non-objects are kept in the ``data`` column only.
    """
    batch.event_rows.append(row(session_id, seq, ts, event_type, data, path, q, where))


class SessionRows:
    """Collects partial session rows while a file is parsed, one per session id."""

    def __init__(self, source: str, path: str) -> None:
        self.source, self.path = source, path
        self.rows: dict[str, dict[str, Any]] = {}

    def get(self, session_id: str) -> dict[str, Any]:
        row = self.rows.get(session_id)
        if row is None:
            row = self.rows[session_id] = {"session_id": session_id, "source": self.source,
                                           "source_path": self.path}
        return row

    def set(self, session_id: str, **values: Any) -> None:
        row = self.get(session_id)
        for k, v in values.items():
            if v is not None:
                row[k] = v

    def emit(self, batch: CanonicalBatch) -> None:
        for row in self.rows.values():
            batch.add_session(**row)


def readable_lines(path: str, raw: bytes, q: Quality, what: str
                   ) -> Iterator[tuple[int, dict[str, Any], str]]:
    """(line number, object, "path:line") of every good line of a JSONL log file.

    Decompresses ``.gz``/``.zst``; a compressed file that yields nothing is
    skipped and reported (``what`` names it in the reason), a truncated one keeps
    its readable part; bad lines are counted as ``line_bad_json``. Import audit: the
    file in ``files``, its non-blank lines in ``lines_read``.
    """
    q.count_audit("files")
    plain, complete = decompress(path, raw)
    if not complete:
        if not plain:
            q.skip(path, "file_bad_json", f"{what} is corrupt or truncated and nothing "
                                          "could be read; delete or restore it")
            return
        q.note("line_bad_json", f"{path}: truncated {what} (readable part kept)")
    n = 0
    for lineno, line in enumerate(plain.split(b"\n"), 1):
        if not line.strip():
            continue
        n += 1
        where = f"{path}:{lineno}"
        try:
            obj = decode_json(line, q, where)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            q.note("line_bad_json", where)
            continue
        yield lineno, obj, where
    q.count_audit("lines_read", n)


def parse_file(path: str, raw: bytes, q: Quality) -> CanonicalBatch:
    batch = CanonicalBatch()
    sessions = SessionRows(NAME, path)
    spans: list[Any] = []  # raw OTLP requests appended by ``agentkpi collect``
    for lineno, obj, where in readable_lines(path, raw, q, "compressed segment"):
        et = to_str(obj.get("event_type")) or "unknown"
        if et == OTLP_RECORD:
            spans.extend(otel.spans_from_log_record(obj.get("data"), q, where))
            continue
        if et not in KNOWN_TYPES:
            q.note("event_type_unknown", f"{where}: {et!r}")
        sid = to_str(obj.get("session_id"))
        ts = parse_ts(obj.get("ts"), q, where)
        data = obj.get("data")
        seq = obj.get("seq")
        add_event_row(batch, session_id=sid, seq=seq if type(seq) is int and 0 <= seq < 2**31
                      else lineno, ts=ts, event_type=et, data=data, path=path, q=q,
                      where=where)
        if sid is None:
            continue
        if et == "session_start":
            sessions.set(sid, start_ts=ts, user_id=to_str(obj.get("user_id")),
                         model=to_str(obj.get("model")), project=to_str(obj.get("project")),
                         agent=to_str(obj.get("agent")))
        elif et == "session_end":
            turns = data.get("turns") if isinstance(data, dict) else None
            n_turns = to_int(turns, q, where)
            sessions.set(sid, end_ts=ts, turns=n_turns if n_turns is None or
                         0 <= n_turns < 2**31 else None)
        else:
            sessions.get(sid)
    sessions.emit(batch)
    if spans:
        otel.derive(spans, batch, q, path)
    return batch
