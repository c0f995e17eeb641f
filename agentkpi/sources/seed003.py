"""Seed-003 metric files: ``metrics_YYYYMMDD_HHMMSS.jsonl`` (+ rotated ``.jsonl.gz``).

One ``MetricEntry`` per line::

    {"id", "timestamp", "type", "session_id", "user_id", "data", "metadata"}

Mapping onto the canonical model (so the tool/error KPIs work on these logs):

=================  ==============================================================
seed-003 type      canonical
=================  ==============================================================
session_start      event ``session_start``; session row: user_id, model
                   (``data.model``), project (``data.project_path``), start time
session_end        event ``session_end``; session row end time
tool_use           event ``tool_output``: tool = ``data.tool_name``, success,
                   duration_ms (KPIs tool_calls_total/_succeeded/_failed)
error_occurred     event ``error``: error_type, error_message
agent_execution    kept; ``agent`` = ``data.agent_id`` / ``data.agent``
token_usage        event ``token_usage``: prompt (``prompt_tokens``/``input_tokens``),
                   completion (``completion_tokens``/``output_tokens``) and cache
                   tokens; a ``token_count``/``total_tokens`` beyond that split is
                   ``unsplit_tokens``
others             kept with their own type (performance, checkpoint_created,
                   hook_triggered, command_executed, ...)
=================  ==============================================================

A ``token_count`` on any line (the seed's ``track_session_end(token_count=...)`` puts
the session's total on its ``session_end``) fills ``unsplit_tokens`` the same way, so
every token the seed's aggregator counts reaches ``tokens_total``.

``metadata`` is kept inside the ``data`` JSON under ``"_metadata"`` when not empty.
Like the SDK log, a file holds part of a session (``REPLACES_SESSIONS = False``).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from agentkpi.model import DATA_FIELDS, EVENT_COLUMNS, CanonicalBatch, DataField, field_map
from agentkpi.quality import Quality, event_row_builder, parse_ts, to_str, unsplit_tokens
from agentkpi.sources.eventlog import (
    KNOWN_TYPES,
    SessionRows,
    readable_lines,
    same_content,
)

NAME = "seed003"
REPLACES_SESSIONS = False

FILE_RE = re.compile(r"^metrics_[^/]*\.jsonl(\.gz)?$")
TYPE_MAP = {"tool_use": "tool_output", "error_occurred": "error"}
#: Seed 003 spells some data keys its own way, and reports tokens as a ``token_count``.
FIELDS = field_map(DATA_FIELDS + (DataField("unsplit_tokens", ("token_count", "total_tokens"),
                                            "int"),),
                   tool=("tool_name", "tool"),
                   error_message=("error_message", "error", "message"),
                   prompt_tokens=("prompt_tokens", "input_tokens"),
                   completion_tokens=("completion_tokens", "output_tokens"))
_row = event_row_builder(FIELDS)
_NAMES = [n for n, *_ in EVENT_COLUMNS]
_UNSPLIT = _NAMES.index("unsplit_tokens")
_PARTS = tuple(_NAMES.index(n) for n in ("prompt_tokens", "completion_tokens",
                                         "cache_read_tokens", "cache_creation_tokens"))


def detect(fs: Any, root: str) -> bool:
    try:
        return fs.isdir(root) and bool(list_files(fs, root))
    except OSError:
        return False


def list_files(fs: Any, root: str) -> dict[str, dict[str, Any]]:
    """``{path: info}`` of ``metrics_*.jsonl[.gz]`` under ``root`` (e.g. its
    ``metrics/`` folder). A plain file whose ``.gz`` twin holds the same bytes is
    left out; one that differs (the seed's writer rotates twice within a second and
    reuses the name) is kept: a file is never dropped unless it is a true twin."""
    try:
        found = fs.find(root.rstrip("/"), detail=True)
    except (OSError, ValueError):
        return {}
    paths = {p for p in found if FILE_RE.match(posixpath.basename(p))}
    return {p: found[p] for p in sorted(paths)
            if (p + ".gz") not in paths or not same_content(fs, p, p + ".gz")}


def supersedes(path: str) -> list[str]:
    """A rotated ``metrics_*.jsonl.gz`` replaces its plain ``metrics_*.jsonl``."""
    return [path[:-3]] if path.endswith(".jsonl.gz") else []


def parse_file(path: str, raw: bytes, q: Quality) -> CanonicalBatch:
    batch = CanonicalBatch()
    sessions = SessionRows(NAME, path)
    for lineno, obj, where in readable_lines(path, raw, q, "gzip file"):
        kind = to_str(obj.get("type")) or "unknown"
        et = TYPE_MAP.get(kind, kind)
        if et not in KNOWN_TYPES:
            q.note("event_type_unknown", f"{where}: {kind!r}")
        sid = to_str(obj.get("session_id"))
        ts = parse_ts(obj.get("timestamp"), q, where)
        data = obj.get("data")
        meta = obj.get("metadata")
        if meta and isinstance(data, dict):
            data = {**data, "_metadata": meta}
        d = data if isinstance(data, dict) else {}
        row = _row(sid, lineno - 1, ts, et, data, path, q, where)
        if row[_UNSPLIT] is not None:  # a total: only what its split (if any) leaves out
            row = (*row[:_UNSPLIT], unsplit_tokens(row[_UNSPLIT], *(row[i] for i in _PARTS)),
                   *row[_UNSPLIT + 1:])
        batch.event_rows.append(row)
        if sid is None:
            continue
        user = to_str(obj.get("user_id"))
        if kind == "session_start":
            sessions.set(sid, start_ts=ts, user_id=user, model=to_str(d.get("model")),
                         project=to_str(d.get("project_path")),
                         agent=to_str(d.get("agent_id") or d.get("agent")))
        elif kind == "session_end":
            sessions.set(sid, end_ts=ts, user_id=user)
        else:
            sessions.set(sid, user_id=user)
    sessions.emit(batch)
    return batch
