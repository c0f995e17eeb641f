"""Gemini CLI chat recordings: ``~/.gemini/tmp/<project>/chats/session-*.jsonl`` (and ``.json``).

A ``.jsonl`` recording is a log of records, replayed the way Gemini CLI itself loads
it (``chatRecordingService.ts`` ``loadConversationRecord``): a metadata line
``{sessionId, projectHash, startTime, lastUpdated, kind}``, message records
``{id, timestamp, type: user|gemini|info|error|warning, ...}``, ``{"$set": {...}}``
metadata updates and ``{"$rewindTo": id}``. A legacy ``.json`` file holds the whole
conversation as one object with a ``messages`` list. Subagents are recorded in
``chats/<parentSessionId>/<sessionId>.jsonl``. The rules (docs/sources.md, "Gemini CLI"):

* **Same id, later record wins.** Gemini CLI re-appends a message every time it
  changes (tokens arrive, tool calls progress): the last record with an id replaces
  the earlier ones; each replacement is counted in the audit (``usage_lines_merged``).
* **One LLM call per ``gemini`` message** (its final version). A ``gemini`` message with
  neither tokens nor a model is a synthetic one (a summary), not a call.
* **``$rewindTo`` hides messages from the conversation, but they were billed**, so they
  still count (``rewound_counted``).
* **``$set.messages``** carries the whole history again: messages already read from
  their own records are not counted twice (``history_copies_ignored``).
* **A legacy ``.json`` resumed into ``.jsonl``**: Gemini CLI copies the whole
  conversation into ``<same name>.jsonl`` and leaves the ``.json``; the ``.json`` is not
  listed when its ``.jsonl`` exists, and the ``.jsonl`` supersedes rows the ``.json``
  produced in an earlier ingest.
* **Tokens.** ``tokens.input`` is ``promptTokenCount`` and includes cached tokens;
  ``thoughts`` and ``tool`` (tool-use prompt) are reported outside ``input``/``output``:
  ``prompt = input - cached + tool``, ``cache_read = cached``, ``completion = output +
  thoughts``, ``reasoning_tokens = thoughts``. Their sum is ``tokens.total``. No cost.
* **Tools.** Each ``toolCalls[]`` entry of a ``gemini`` message is a tool call (each
  ``id`` once); ``status`` ``success``/``error`` makes it a tool run (``error`` = failed);
  ``cancelled`` was never run. A call's ``response_id`` is its message's id (the
  llm_call's own).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from typing import IO, Any

import orjson

from agentkpi.model import CanonicalBatch
from agentkpi.quality import Quality, dump_json, parse_ts, to_int, to_str
from agentkpi.sources._transcripts import (
    add_event,
    event_key,
    json_lines,
    mcp_server,
    parse_bytes_by_stream,
    walk_local,
)
from agentkpi.sources.localfs import is_local

NAME = "gemini-cli"
REPLACES_SESSIONS = True  # a recording holds its whole session

_SESSION = re.compile(r"^session-.*\.jsonl?$")
_TOOL_RUN = {"success": True, "error": False}


def default_roots() -> list[str]:
    """Where Gemini CLI keeps its recordings: ``~/.gemini``."""
    return [os.path.join(os.path.expanduser("~"), ".gemini")]


# ------------------------------------------------------------------ layout

def _keep(directory: str, name: str) -> bool:
    d = directory.replace(os.sep, "/").rstrip("/")
    if posixpath.basename(d) == "chats":
        return bool(_SESSION.match(name))
    # subagent recordings: chats/<parentSessionId>/<sessionId>.jsonl
    return name.endswith(".jsonl") and posixpath.basename(posixpath.dirname(d)) == "chats"


def detect(fs: Any, root: str) -> bool:
    """A ``chats/session-*.json[l]`` under ``root`` (``~/.gemini``, ``tmp``, a project)."""
    root = root.rstrip("/")
    for pattern in ("tmp/*/chats/session-*", "*/chats/session-*", "chats/session-*",
                    "session-*.json*"):
        try:
            hits = fs.glob(f"{root}/{pattern}")
        except (OSError, ValueError, TypeError):
            continue
        if any(_SESSION.match(posixpath.basename(h)) for h in hits):
            return True
    return False


def list_files(fs: Any, root: str) -> dict[str, Any]:
    """``{path: info}`` of the recordings under ``root``; a ``.json`` whose ``.jsonl``
    copy exists (a resumed legacy session) is left out."""
    root = root.rstrip("/")
    if is_local(fs):
        files: dict[str, Any] = walk_local(root, _keep)
    else:
        try:
            found = fs.find(root, detail=True)
        except (OSError, ValueError):
            return {}
        files = {p: found[p] for p in sorted(found)
                 if _keep(posixpath.dirname(p), posixpath.basename(p))}
    return {p: info for p, info in files.items()
            if not (p.endswith(".json") and p + "l" in files)}


def supersedes(path: str) -> list[str]:
    """A resumed legacy session: ``session-x.jsonl`` replaces ``session-x.json``."""
    if path.endswith(".jsonl") and posixpath.basename(path).startswith("session-"):
        return [path[:-1]]
    return []


# ------------------------------------------------------------------ replay

class _Recording:
    """A conversation replayed record by record (only what the KPIs need is kept)."""

    def __init__(self, path: str, q: Quality) -> None:
        self.path, self.q = path, q
        self.meta: dict[str, Any] = {}
        self.messages: dict[str, dict[str, Any]] = {}  # id -> last record (insertion order)
        self.live: dict[str, None] = {}  # ids the UI still shows (ordered)
        self.rewound: set[str] = set()

    def record(self, rec: dict[str, Any], where: str) -> None:
        rewind = rec.get("$rewindTo")
        if isinstance(rewind, str):
            ids = list(self.live)
            cut = ids.index(rewind) if rewind in self.live else 0
            for mid in ids[cut:]:
                del self.live[mid]
                if mid not in self.rewound:
                    self.rewound.add(mid)
                    self.q.count_audit("rewound_counted")
            return
        rid = rec.get("id")
        if isinstance(rid, str):
            self.message(rid, rec, where)
            return
        upd = rec.get("$set")
        if isinstance(upd, dict):
            history = upd.get("messages")
            if isinstance(history, list):
                self.q.count_audit("history_copies_ignored")
                for m in history:  # only messages no record of their own carried
                    if isinstance(m, dict) and isinstance(m.get("id"), str) \
                            and m["id"] not in self.messages:
                        self.message(m["id"], m, where)
            self.meta.update({k: v for k, v in upd.items() if k != "messages"})
            return
        if isinstance(rec.get("sessionId"), str):
            self.meta.update({k: v for k, v in rec.items() if k != "messages"})
            return
        # neither metadata, a message, $set nor $rewindTo: nothing to keep, counted
        self.q.malformed("unknown_record", where)

    def message(self, mid: str, rec: dict[str, Any], where: str) -> None:
        old = self.messages.get(mid)
        if old is not None:
            self.q.count_audit("usage_lines_merged" if old["type"] == "gemini" or
                  rec.get("type") == "gemini" else "records_merged")
        self.messages[mid] = _summary(rec)
        self.messages[mid]["where"] = where
        self.live[mid] = None

    # -- rows
    def emit(self, batch: CanonicalBatch) -> None:
        q, path = self.q, self.path
        base = posixpath.basename(path)
        sid = (to_str(self.meta.get("sessionId")) or
               base.rsplit(".", 1)[0])
        parent_dir = posixpath.dirname(path)
        is_sub = self.meta.get("kind") == "subagent" or not base.startswith("session-")
        parent_id = posixpath.basename(parent_dir) if is_sub else None
        agent = "subagent" if is_sub else "main"
        seq = 0
        turns = 0
        models: dict[str, int] = {}
        seen_tools: set[str] = set()

        def add(key: tuple[str, ...], **row: Any) -> None:
            nonlocal seq
            add_event(batch, session_id=sid, seq=seq, agent=agent, parent_id=parent_id,
                            file=path, event_key=event_key(NAME, sid, *key), **row)
            seq += 1

        last_ts = None
        for mid, m in self.messages.items():
            where = m["where"]
            ts = parse_ts(m["timestamp"], q, where)
            last_ts = ts or last_ts
            kind = m["type"]
            if kind == "user":
                turns += 1
                continue
            if kind == "error":
                add(("msg", mid), event_type="error", ts=ts, error_type="gemini_cli_error",
                    error_message=m["text"], data=_dumps({"id": mid}))
                continue
            if kind != "gemini":
                continue
            tokens, model = m["tokens"], m["model"]
            if tokens is None and model is None and not m["tools"]:
                q.count_audit("synthetic_skipped")
            else:
                usage = _usage(tokens, q, where) if tokens is not None else {}
                if model:
                    models[model] = models.get(model, 0) + 1
                add(("msg", mid), event_type="llm_call", ts=ts, model=model, **usage,
                    response_id=mid,
                    data=_dumps({"id": mid, "tokens": tokens,
                                 "rewound": mid in self.rewound or None}))
            for tc in m["tools"]:
                tid = tc["id"]
                if tid is not None:
                    if tid in seen_tools:
                        q.count_audit("tool_calls_merged")
                        continue
                    seen_tools.add(tid)
                # The model asked at its message's time; the tool record is stamped when
                # its result came back: the ingest times the run from the pair.
                tts = parse_ts(tc["timestamp"], q, where) if tc["timestamp"] else ts
                tool = tc["name"]
                add(("call", tid or f"{mid}/{tool}"), event_type="tool_call", ts=ts, tool=tool,
                    tool_call_id=tid, response_id=mid,
                    mcp_server=mcp_server(tool),
                    data=_dumps({"id": tid, "name": tool, "status": tc["status"]}))
                ok = _TOOL_RUN.get(tc["status"] or "")
                if ok is not None:
                    add(("run", tid or f"{mid}/{tool}"), event_type="tool_output", ts=tts,
                        tool=tool, tool_call_id=tid,
                        mcp_server=mcp_server(tool), success=ok,
                        data=_dumps({"id": tid, "status": tc["status"]}))
        meta = self.meta
        start = parse_ts(meta.get("startTime"), q, path) if meta.get("startTime") else None
        end = parse_ts(meta.get("lastUpdated"), q, path) if meta.get("lastUpdated") else None
        if end is None or (last_ts is not None and last_ts > end):
            end = last_ts
        project = to_str(meta.get("projectHash"))
        if project is None:
            chats = parent_dir if not is_sub else posixpath.dirname(parent_dir)
            project = posixpath.basename(posixpath.dirname(chats)) or None
        batch.add_session(session_id=sid, start_ts=start, end_ts=end,
                          model=max(models, key=lambda k: models[k]) if models else None,
                          turns=turns, project=project, agent=agent, source=NAME,
                          source_path=path,
                          extra=_dumps({k: meta[k] for k in ("summary", "directories", "kind")
                                        if meta.get(k) is not None}
                                       | ({"parent_id": parent_id} if parent_id else {})))


def _summary(rec: dict[str, Any]) -> dict[str, Any]:
    """What is kept of a message record (never its content, to keep memory bounded)."""
    kind = to_str(rec.get("type")) or "unknown"
    tokens = rec.get("tokens")
    tools = []
    calls = rec.get("toolCalls")
    if isinstance(calls, list):
        for tc in calls:
            if isinstance(tc, dict):
                tools.append({"id": to_str(tc.get("id")), "name": to_str(tc.get("name")),
                              "status": to_str(tc.get("status")),
                              "timestamp": tc.get("timestamp")})
    text = None
    if kind == "error":
        content = rec.get("content")
        text = content[:2000] if isinstance(content, str) else _text(content)
    return {"type": kind, "timestamp": rec.get("timestamp"), "model": to_str(rec.get("model")),
            "tokens": tokens if isinstance(tokens, dict) else None, "tools": tools,
            "text": text}


def _text(content: Any) -> str | None:
    if isinstance(content, list):
        parts: list[str] = [p["text"] for p in content if isinstance(p, dict)
                            and isinstance(p.get("text"), str)]
        return "".join(parts)[:2000] or None
    return None


def _usage(tokens: dict[str, Any], q: Quality, where: str) -> dict[str, int | None]:
    def n(key: str) -> int:
        v = to_int(tokens.get(key), q, where)
        return v if v is not None and v >= 0 else 0

    inp, cached, tool = n("input"), n("cached"), n("tool")
    if cached > inp:
        q.note("number_unparseable", f"{where}: cached tokens exceed input tokens")
        cached = inp
    return {"prompt_tokens": inp - cached + tool, "cache_read_tokens": cached,
            "cache_creation_tokens": 0, "completion_tokens": n("output") + n("thoughts"),
            "reasoning_tokens": n("thoughts")}


def _dumps(value: Any) -> str | None:
    if value in (None, {}):
        return None
    return dump_json(value)  # any depth, any integer


# ------------------------------------------------------------------ parse

def _legacy(raw: bytes) -> dict[str, Any] | None:
    """A legacy whole-file recording (one JSON object with ``messages``), else None."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("messages"), list) else None


def parse_stream(path: str, fh: IO[bytes], q: Quality, *, into: CanonicalBatch,
                 opener: Callable[[str], IO[bytes]] | None = None) -> None:
    """Stream one recording from ``fh`` into ``into``.

    A ``.jsonl`` is read line by line; a legacy ``.json`` is one JSON document and is
    read whole (Gemini CLI rewrote it whole on every change, so they stay small).
    """
    q.count_audit("files")
    rec = _Recording(path, q)
    legacy: dict[str, Any] | None = None
    if path.endswith(".json"):
        raw = fh.read()
        if not raw.strip():
            q.skip(path, "file_empty", "empty Gemini CLI recording; skipped")
            return
        legacy = _legacy(raw)
        if legacy is None:
            q.skip(path, "file_bad_json", "the legacy Gemini CLI recording is not valid JSON "
                                          "(truncated?); restore it or delete it")
            return
    else:
        for lineno, obj in json_lines(fh, q, path):
            rec.record(obj, f"{path}:{lineno}")
    if legacy is not None:
        q.count_audit("lines_read", len(legacy["messages"]))
        rec.meta.update({k: v for k, v in legacy.items() if k != "messages"})
        for i, m in enumerate(legacy["messages"]):
            where = f"{path}:messages[{i}]"
            if isinstance(m, dict) and isinstance(m.get("id"), str):
                rec.message(m["id"], m, where)
            else:
                q.note("event_not_object", where)
    if not rec.meta and not rec.messages:
        q.skip(path, "file_bad_json", "no Gemini CLI session metadata or message in the "
                                      "file; is it a chat recording?")
        return
    rec.emit(into)


#: One recording held in memory, parsed by :func:`parse_stream`.
parse_file = parse_bytes_by_stream(parse_stream)
