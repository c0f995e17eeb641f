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

import posixpath
import re
from typing import Any

import orjson

from agentkpi.model import EVENT_TYPES, LIFECYCLE_EVENT_TYPES, CanonicalBatch
from agentkpi.quality import Quality, parse_ts, to_bool, to_float, to_int, to_str

NAME = "session_dataset"
REPLACES_SESSIONS = True

_DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_KNOWN_TYPES = frozenset(EVENT_TYPES) | LIFECYCLE_EVENT_TYPES
_SESSION_FIELDS = {"session_id", "user_id", "session_start_time", "session_end_time",
                   "model_name", "messages", "events", "tools", "usage_metrics"}


def _sessions_dir(fs: Any, root: str) -> str | None:
    root = root.rstrip("/")
    if fs.isdir(posixpath.join(root, "sessions")):
        return posixpath.join(root, "sessions")
    if posixpath.basename(root) == "sessions" and fs.isdir(root):
        return root
    return None


def detect(fs: Any, root: str) -> bool:
    return _sessions_dir(fs, root) is not None


def list_files(fs: Any, root: str) -> dict[str, dict[str, Any]]:
    """``{path: info}`` of every ``sessions/YYYY-MM-DD/*.jsonl`` file, one listing call."""
    base = _sessions_dir(fs, root)
    if base is None:
        return {}
    found = fs.find(base, detail=True)
    out = {}
    for path in sorted(found):
        if not path.endswith(".jsonl"):
            continue
        if not _DAY_DIR.match(posixpath.basename(posixpath.dirname(path))):
            continue
        out[path] = found[path]
    return out


def _decode_list(value: Any, field: str, q: Quality, where: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
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
    return orjson.dumps(extra, option=orjson.OPT_SORT_KEYS).decode() if extra else None


def parse_file(path: str, raw: bytes, q: Quality) -> CanonicalBatch:
    batch = CanonicalBatch()
    line = b""
    for candidate in raw.splitlines():
        if candidate.strip():
            line = candidate
            break
    if not line:
        q.skip(path, "file_empty", "file is empty; re-upload the session or delete the file")
        return batch
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
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
    add_events(batch, session_id, events, path, q)


def add_events(batch: CanonicalBatch, session_id: str, events: list[Any], path: str,
               q: Quality) -> None:
    """Append ``[{timestamp, event_type, data}, ...]`` as canonical event rows."""
    cols = batch.events
    for seq, ev in enumerate(events):
        if not isinstance(ev, dict):
            q.note("event_not_object", f"{path}: events[{seq}]")
            continue
        where = f"{path}: events[{seq}]"
        et = to_str(ev.get("event_type")) or "unknown"
        if et not in _KNOWN_TYPES:
            q.note("event_type_unknown", f"{where}: {et!r}")
        data = ev.get("data")
        if not isinstance(data, dict):
            data = {}
        g = data.get
        err = g("error")
        cols["session_id"].append(session_id)
        cols["seq"].append(seq)
        cols["ts"].append(parse_ts(ev.get("timestamp"), q, where))
        cols["event_type"].append(et)
        cols["tool"].append(to_str(g("tool")))
        cols["success"].append(to_bool(g("success"), q, where) if "success" in data else None)
        cols["model"].append(to_str(g("model")))
        for col in ("prompt_tokens", "completion_tokens", "cache_read_tokens",
                    "cache_creation_tokens"):
            v = g(col)
            cols[col].append(v if type(v) is int else to_int(v, q, where))
        for col in ("cost_usd", "latency_ms", "duration_ms", "wall_time_s"):
            v = g(col)
            cols[col].append(v if type(v) is float else to_float(v, q, where))
        cols["flavor"].append(to_str(g("flavor")))
        cols["status"].append(to_str(g("final_status")))
        cols["rating"].append(to_str(g("rating")))
        cols["source"].append(to_str(g("source")))
        cols["hardware"].append(to_str(g("hardware")))
        cols["error_type"].append(to_str(g("error_type") or g("type")) if et == "error" else None)
        cols["error_message"].append(
            (err if isinstance(err, str) else to_str(g("message"))) if et == "error" else None)
        cols["agent"].append(to_str(g("agent_id") or g("agent")))
        cols["data"].append(orjson.dumps(data).decode() if data else None)
        cols["file"].append(path)
