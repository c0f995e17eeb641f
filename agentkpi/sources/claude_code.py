"""Claude Code session transcripts (``~/.claude/projects/<project>/<session>.jsonl``).

Layout: ``projects/<project>/<session>.jsonl`` for a session's main agent and
``projects/<project>/<session>/subagents/agent-<id>.jsonl`` for its subagents (Task
calls, ``/compact``). Each line is one record; the format is undocumented and
changes between versions, so every field except ``type`` is optional. What becomes
a row (docs/sources.md has the rules with their reasons):

* **llm_call**: one per API response. Only top-level ``assistant`` lines with
  ``message.usage`` count (usage copied into progress lines or tool results does
  not). A response is written as one line per content block, each repeating its
  usage, and the first lines of a streamed message carry a partial output count:
  the lines of one (``message.id``, ``requestId``) are merged into one call with
  the largest usage. The same ``message.id`` under another ``requestId`` (a
  sidechain replay) is the same response: one call, the main agent's line wins.
  Across files and machines the store merges them by ``event_key`` =
  ``claude:<message.id>``. ``<synthetic>`` model lines are not calls (an
  ``isApiErrorMessage`` one becomes an ``error`` event). Tokens are Anthropic's
  exclusive buckets; the 1-hour cache-write part is kept; a legacy ``costUSD``
  is the source's cost, else ingest prices the call.
* **tool_call** per ``tool_use`` block and **tool_output** per ``tool_result``
  block, each tool-use id once (``event_key``), paired by ``tool_call_id``; a
  call's ``response_id`` is the ``message.id`` of the response whose block it is
  (the llm_call's own ``response_id``: ``message.id``, else ``req:<requestId>``);
  ``is_error: true`` is a failure; duration = result time - call time when both
  are in the file; ``mcp__<server>__<tool>`` names fill ``mcp_server``.
* session = ``sessionId`` (a file may hold several; subagent files carry their
  parent's), project = ``cwd``, agent = ``main`` or the subagent id, and a
  subagent's events get ``parent_id`` = the Task tool-use id that started it
  (from the main transcript's ``agent_progress`` lines or its Task result),
  else the subagent id.

Files are streamed in chunks (never read whole; ``file-history-snapshot`` lines,
which reach hundreds of MB, are dropped while streaming); malformed lines are
counted by reason and skipped.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO, Any

import orjson

from agentkpi.model import CanonicalBatch
from agentkpi.quality import Quality, decode_json, parse_ts, to_int
from agentkpi.sources.localfs import is_local

NAME = "claude-code"
AGENT = "claude-code"

CHUNK = 1 << 20  # bytes read at a time
#: Record types that never carry calls or tool runs: dropped while streaming once a line
#: is this long and starts like one (so a 700 MB snapshot line is never held in memory).
_BIG_SKIP_PREFIXES = (b'{"type":"file-history-snapshot"',)
_BIG_LINE = 1 << 16
_AGENT_FILE = re.compile(r"^agent-(.+)\.jsonl$")
_MCP = re.compile(r"^mcp__(.+?)__(.+)$")


def default_roots() -> list[str]:
    """``$CLAUDE_CONFIG_DIR`` (comma-separated) else ``~/.config/claude`` and ``~/.claude``."""
    env = os.environ.get("CLAUDE_CONFIG_DIR", "").strip()
    if env:
        return [os.path.expanduser(p.strip()) for p in env.split(",") if p.strip()]
    return [os.path.expanduser("~/.config/claude"), os.path.expanduser("~/.claude")]


# --------------------------------------------------------------------- layout

def _projects_dir(fs: Any, root: str) -> str | None:
    root = root.rstrip("/")
    try:
        if posixpath.basename(root) == "projects" and fs.isdir(root):
            return root
        if fs.isdir(root + "/projects"):
            return root + "/projects"
    except OSError:
        return None
    return None


def _looks_like_transcript(fs: Any, path: str) -> bool:
    try:
        with fs.open(path, "rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return False
    return b'"sessionId"' in head and (b'"parentUuid"' in head or b'"requestId"' in head
                                       or b'"file-history-snapshot"' in head)


def detect(fs: Any, root: str) -> bool:
    """A Claude Code config dir (``projects/``), its ``projects`` dir, or a folder of
    transcripts whose lines look like Claude Code's."""
    if _projects_dir(fs, root) is not None:
        for path in _jsonl(fs, _projects_dir(fs, root) or root, limit=5):
            if _looks_like_transcript(fs, path):
                return True
        return False
    try:
        if not fs.isdir(root):
            return False
    except OSError:
        return False
    return any(_looks_like_transcript(fs, p) for p in _jsonl(fs, root, limit=5))


def _jsonl(fs: Any, root: str, limit: int | None = None) -> list[str]:
    out = []
    try:
        for dirpath, _dirs, files in fs.walk(root.rstrip("/")):
            for name in sorted(files):
                if name.endswith(".jsonl"):
                    out.append(f"{dirpath.rstrip('/')}/{name}")
                    if limit and len(out) >= limit:
                        return out
    except (OSError, ValueError):
        return out
    return out


def list_files(fs: Any, root: str) -> dict[str, Any]:
    """``{path: info}`` of every ``*.jsonl`` under ``projects/`` (or ``root``), any depth.

    Local trees are walked with ``os.scandir`` and one stat per file (``info`` is then
    the ``size:mtime_ns`` fingerprint): warm and incremental runs are mostly listing.
    """
    base = _projects_dir(fs, root) or root.rstrip("/")
    if is_local(fs):
        return _list_local(base)
    try:
        found = fs.find(base, detail=True)
    except (OSError, ValueError):
        return {}
    return {p: info for p, info in sorted(found.items())
            if p.endswith(".jsonl") and info.get("type", "file") == "file"}


def _list_local(base: str) -> dict[str, str]:
    out: dict[str, str] = {}
    todo = [base]
    while todo:
        try:
            with os.scandir(todo.pop()) as entries:
                for e in entries:
                    if e.is_dir(follow_symlinks=False):
                        todo.append(e.path)
                    elif e.name.endswith(".jsonl") and e.is_file():
                        st = e.stat()
                        out[e.path] = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            continue
    return dict(sorted(out.items()))


# --------------------------------------------------------------------- streaming

def iter_lines(fh: IO[bytes], q: Quality, where: str) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a binary stream, read in chunks.

    A line that grows past 64 KB while starting like a record type that carries no
    calls (``file-history-snapshot``) is dropped as it streams, so memory stays
    bounded by the largest line that matters.
    """
    buf = b""
    n = 0
    skipping = False
    while True:
        chunk = fh.read(CHUNK)
        if not chunk:
            break
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                if not skipping:
                    buf += chunk[start:]
                    if len(buf) > _BIG_LINE and buf.startswith(_BIG_SKIP_PREFIXES):
                        skipping, buf = True, b""
                break
            if skipping:
                q.count_audit("lines_read")
                q.count_audit("lines:file-history-snapshot")
                skipping = False
            else:
                line = buf + chunk[start:nl] if buf else chunk[start:nl]
                buf = b""
                yield n, line
            n += 1
            start = nl + 1
    if skipping:
        q.count_audit("lines_read")
        q.count_audit("lines:file-history-snapshot")
    elif buf.strip():
        yield n, buf


# --------------------------------------------------------------------- parsing

def _usage_total(u: dict[str, Any]) -> int:
    total = 0
    for k in ("input_tokens", "output_tokens", "cache_read_input_tokens",
              "cache_creation_input_tokens"):
        v = u.get(k)
        if type(v) is int:
            total += v
    return total


class _Call:
    """The lines of one API response merged."""

    __slots__ = ("line", "seq", "ts", "usage", "sidechain", "request_id", "message_id",
                 "model", "cost", "session", "raw_ts", "data")
    line: Any
    seq: Any
    ts: Any
    usage: Any
    sidechain: Any
    request_id: Any
    message_id: Any
    model: Any
    cost: Any
    session: Any
    raw_ts: Any
    data: Any

    def __init__(self, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(self, k, v)


def _parent_of(opener: Callable[[str], IO[bytes]], path: str, agent_id: str,
               q: Quality) -> str | None:
    """The Task tool-use id that started subagent ``agent_id``, from the main transcript.

    ``<session>/subagents/agent-<id>.jsonl`` belongs to ``<session>.jsonl``; its
    ``agent_progress`` lines carry ``data.agentId`` and ``parentToolUseID``, and a Task
    result may carry ``toolUseResult.agentId``. The main file is scanned once for all
    its subagents (only lines mentioning ``agentId`` are parsed) and remembered while
    its size is unchanged.
    """
    sub = posixpath.dirname(path)
    if posixpath.basename(sub) != "subagents":
        return None
    main = posixpath.dirname(sub) + ".jsonl"
    try:
        fh = opener(main)
    except OSError:
        return None
    with fh:
        try:
            size = fh.seek(0, 2)
            fh.seek(0)
        except (OSError, ValueError):
            size = -1
        hit = _LINKS.get(main)
        if hit is None or hit[0] != size or size < 0:
            hit = (size, _agent_links(fh, main))
            _LINKS[main] = hit
            while len(_LINKS) > 64:
                _LINKS.pop(next(iter(_LINKS)))
    return hit[1].get(agent_id)


#: main transcript -> (its size, {agent id: Task tool-use id}) in this process.
_LINKS: dict[str, tuple[int, dict[str, str]]] = {}


def _agent_links(fh: IO[bytes], main: str) -> dict[str, str]:
    links: dict[str, str] = {}
    scratch = Quality()  # the main file's own problems are reported when it is read
    for _n, line in iter_lines(fh, scratch, main):
        if b'"agentId"' not in line:
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if type(rec) is not dict:
            continue
        data = rec.get("data")
        if type(data) is dict and isinstance(data.get("agentId"), str):
            parent = rec.get("parentToolUseID") or data.get("parentToolUseID")
            if isinstance(parent, str) and parent:
                links.setdefault(data["agentId"], parent)
        result = rec.get("toolUseResult")
        msg = rec.get("message")
        if type(result) is dict and isinstance(result.get("agentId"), str) \
                and type(msg) is dict and type(msg.get("content")) is list:
            for block in msg["content"]:
                if type(block) is dict and block.get("type") == "tool_result" \
                        and isinstance(block.get("tool_use_id"), str):
                    links.setdefault(result["agentId"], block["tool_use_id"])
    return links


def parse_file(path: str, raw: bytes, q: Quality) -> CanonicalBatch:
    """Bytes of one transcript in, canonical rows out (tests and non-streaming callers)."""
    import io

    batch = CanonicalBatch()
    parse_stream(path, io.BytesIO(raw), q, into=batch, opener=lambda p: open(p, "rb"))
    return batch


def parse_stream(path: str, fh: IO[bytes], q: Quality, *, into: CanonicalBatch,
                 opener: Callable[[str], IO[bytes]]) -> None:
    """Stream one transcript into ``into``; ``opener`` opens a sibling (the main
    transcript of a subagent file)."""
    m = _AGENT_FILE.match(posixpath.basename(path))
    file_agent = m.group(1) if m else None
    q.count_audit("files")

    calls: dict[str, _Call] = {}          # message id (or request id) -> merged response
    order: list[str] = []
    uses: dict[str, tuple[int, datetime | None, str | None, str, dict[str, Any],
                          str | None]] = {}
    results: dict[str, tuple[int, datetime | None, str, bool | None]] = {}
    errors: list[tuple[int, datetime | None, str, str]] = []
    sessions: dict[str, dict[str, Any]] = {}
    agent_of_file = file_agent
    sidechain_file = file_agent is not None
    lines = 0

    for n, line in iter_lines(fh, q, path):
        lines += 1
        if not line.strip():
            q.count_audit("lines:blank")
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            try:  # one bad value (NaN, 1e400, deep nesting) costs that value, not the line
                rec = decode_json(line, q, f"{path}:{n + 1}")
            except ValueError:
                q.malformed("bad_json", f"{path}:{n + 1}")
                continue
        if type(rec) is not dict:
            q.malformed("not_object", f"{path}:{n + 1}")
            continue
        rtype = rec.get("type")
        if rtype is None and type(rec.get("message")) is dict \
                and rec["message"].get("role") in ("assistant", "user"):
            rtype = rec["message"]["role"]  # minimal records (early versions, ccusage fixtures)
        if not isinstance(rtype, str):
            q.malformed("no_type", f"{path}:{n + 1}")
            continue
        q.count_audit(f"lines:{rtype}")
        sid = rec.get("sessionId")
        if rtype not in ("assistant", "user"):
            if rtype in ("system", "progress") and isinstance(sid, str) and sid:
                _touch(sessions, sid, rec, q, path, n, count_turn=False)
            if b'"usage"' in line and rtype != "assistant":
                q.count_audit("usage_copies_ignored")
            continue
        if not isinstance(sid, str) or not sid:
            q.malformed("no_session_id", f"{path}:{n + 1}")
            continue
        if agent_of_file is None and rec.get("isSidechain") is True:
            aid = rec.get("agentId")
            if isinstance(aid, str) and aid:
                agent_of_file, sidechain_file = aid, True
        msg = rec.get("message")
        if type(msg) is not dict:
            q.malformed("no_message", f"{path}:{n + 1}")
            continue
        content = msg.get("content")
        ts = _touch(sessions, sid, rec, q, path, n,
                    count_turn=rtype == "user" and not sidechain_file and _is_prompt(rec))
        if rtype == "user":
            for block in content if type(content) is list else ():
                if type(block) is dict and block.get("type") == "tool_result":
                    tid = block.get("tool_use_id")
                    if not isinstance(tid, str) or not tid:
                        q.malformed("tool_result_without_id", f"{path}:{n + 1}")
                        continue
                    if tid in results:
                        q.count_audit("tool_results_repeated")
                        continue
                    # the Messages API's is_error defaults to false: no flag is a success
                    results[tid] = (n, ts, sid, block.get("is_error") is not True)
            continue
        # assistant
        model = msg.get("model")
        if model == "<synthetic>":
            q.count_audit("synthetic_skipped")
            if rec.get("isApiErrorMessage") is True:
                errors.append((n, ts, sid, _text_of(content)))
            continue
        mid = msg.get("id")
        rid = rec.get("requestId")
        mid = mid if isinstance(mid, str) and mid else None
        rid = rid if isinstance(rid, str) and rid else None
        response = mid or (f"req:{rid}" if rid else None)
        for block in content if type(content) is list else ():
            if type(block) is dict and block.get("type") == "tool_use":
                tid = block.get("id")
                if not isinstance(tid, str) or not tid:
                    q.malformed("tool_use_without_id", f"{path}:{n + 1}")
                    continue
                if tid in uses:
                    q.count_audit("tool_uses_repeated")
                    continue
                name = block.get("name")
                args = block.get("input")
                uses[tid] = (n, ts, name if isinstance(name, str) else None, sid,
                             args if isinstance(args, dict) else {}, response)
        usage = msg.get("usage")
        if type(usage) is not dict:
            continue
        key = response or f"line:{n}"
        side = rec.get("isSidechain") is True
        prev = calls.get(key)
        if prev is None:
            calls[key] = _Call(line=n, seq=n, ts=ts, usage=usage, sidechain=side,
                               request_id=rid, message_id=mid,
                               model=model if isinstance(model, str) else None,
                               cost=rec.get("costUSD"), session=sid,
                               raw_ts=rec.get("timestamp"), data=None)
            order.append(key)
            continue
        if prev.request_id == rid:
            q.count_audit("usage_lines_merged")
        else:
            q.count_audit("replays_merged")
            if prev.sidechain and not side:  # the main agent's line wins over a replay
                prev.sidechain, prev.request_id, prev.session = False, rid, sid
        if _usage_total(usage) > _usage_total(prev.usage):
            prev.usage = usage
        if prev.cost is None and rec.get("costUSD") is not None:
            prev.cost = rec.get("costUSD")

    q.count_audit("lines_read", lines)
    agent = agent_of_file or "main"
    parent = None
    if agent_of_file is not None:
        parent = _parent_of(opener, path, agent_of_file, q) or agent_of_file
    _emit(into, path, q, agent, parent, calls, order, uses, results, errors, sessions,
          sidechain_file)


def _is_prompt(rec: dict[str, Any]) -> bool:
    """A user line the person typed (not a tool result, meta caveat or command echo)."""
    if rec.get("isMeta") is True or rec.get("isCompactSummary") is True:
        return False
    content = (rec.get("message") or {}).get("content")
    if isinstance(content, str):
        return not content.startswith(_NOT_PROMPTS)
    if type(content) is list:
        texts = [b.get("text") for b in content if type(b) is dict and b.get("type") == "text"]
        return bool(texts) and not any(
            type(b) is dict and b.get("type") == "tool_result" for b in content) and not all(
            isinstance(t, str) and t.startswith(_NOT_PROMPTS) for t in texts)
    return False


#: User lines Claude Code writes itself: slash-command echoes, their output, interruptions.
_NOT_PROMPTS = ("<command-", "<local-command-", "[Request interrupted")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content[:500]
    for block in content if type(content) is list else ():
        if type(block) is dict and isinstance(block.get("text"), str):
            return str(block["text"])[:500]
    return ""


def _touch(sessions: dict[str, dict[str, Any]], sid: str, rec: dict[str, Any], q: Quality,
           path: str, n: int, *, count_turn: bool) -> datetime | None:
    s = sessions.get(sid)
    if s is None:
        s = sessions[sid] = {"start": None, "end": None, "cwd": None, "turns": 0,
                             "version": None, "branch": None, "models": {}}
    ts = parse_ts(rec.get("timestamp"), q, f"{path}:{n + 1}")
    if ts is not None:
        if s["start"] is None or ts < s["start"]:
            s["start"] = ts
        if s["end"] is None or ts > s["end"]:
            s["end"] = ts
    cwd = rec.get("cwd")
    if isinstance(cwd, str) and cwd:
        s["cwd"] = cwd
    for key, field in (("version", "version"), ("branch", "gitBranch")):
        v = rec.get(field)
        if isinstance(v, str) and v:
            s[key] = v
    if count_turn:
        s["turns"] += 1
    return ts


def _mcp_server(tool: str | None) -> str | None:
    m = _MCP.match(tool or "")
    return m.group(1) if m else None


def _emit(into: CanonicalBatch, path: str, q: Quality, agent: str, parent: str | None,
          calls: dict[str, _Call], order: list[str],
          uses: dict[str, tuple[int, datetime | None, str | None, str, dict[str, Any],
                                str | None]],
          results: dict[str, tuple[int, datetime | None, str, bool | None]],
          errors: list[tuple[int, datetime | None, str, str]],
          sessions: dict[str, dict[str, Any]], sidechain_file: bool) -> None:
    dumps = orjson.dumps
    for key in order:
        c = calls[key]
        u = c.usage
        where = f"{path}:{c.line + 1}"
        split = u.get("cache_creation")
        one_hour = to_int(split.get("ephemeral_1h_input_tokens"), q, where) if type(
            split) is dict else None
        cost = c.cost if type(c.cost) in (int, float) and not isinstance(c.cost, bool) else None
        model = c.model
        s = sessions.get(c.session)
        if s is not None and model:
            s["models"][model] = s["models"].get(model, 0) + 1
        data = {"message_id": c.message_id, "request_id": c.request_id}
        for key in ("service_tier", "speed"):
            if isinstance(u.get(key), str):
                data[key] = u[key]
        into.add_event(
            session_id=c.session, seq=c.seq, ts=c.ts, event_type="llm_call", model=model,
            prompt_tokens=to_int(u.get("input_tokens"), q, where),
            completion_tokens=to_int(u.get("output_tokens"), q, where),
            cache_read_tokens=to_int(u.get("cache_read_input_tokens"), q, where),
            cache_creation_tokens=to_int(u.get("cache_creation_input_tokens"), q, where),
            cache_creation_1h_tokens=one_hour,
            cost_usd=float(cost) if cost is not None else None,
            agent=agent, parent_id=parent,
            response_id=c.message_id or (f"req:{c.request_id}" if c.request_id else None),
            event_key=(f"claude:{c.message_id}" if c.message_id
                       else f"claude:req:{c.request_id}" if c.request_id else None),
            data=dumps(data).decode(), file=path)
    for tid, (n, ts, tool, sid, _input, response) in uses.items():
        into.add_event(session_id=sid, seq=n, ts=ts, event_type="tool_call", tool=tool,
                       tool_call_id=tid, response_id=response,
                       mcp_server=_mcp_server(tool), agent=agent,
                       parent_id=parent, event_key=f"claude:tool_call:{tid}",
                       data=dumps({"tool": tool, "tool_use_id": tid}).decode(), file=path)
    for tid, (n, ts, sid, ok) in results.items():
        use = uses.get(tid)
        tool = use[2] if use else None
        duration = None
        if use and use[1] is not None and ts is not None:
            duration = max((ts - use[1]).total_seconds() * 1000.0, 0.0)
        into.add_event(session_id=sid, seq=n, ts=ts, event_type="tool_output", tool=tool,
                       success=ok, duration_ms=duration, tool_call_id=tid,
                       mcp_server=_mcp_server(tool), agent=agent, parent_id=parent,
                       event_key=f"claude:tool_output:{tid}",
                       data=dumps({"tool": tool, "tool_use_id": tid,
                                   "success": ok}).decode(), file=path)
    for n, ts, sid, text in errors:
        into.add_event(session_id=sid, seq=n, ts=ts, event_type="error",
                       error_type="api_error", error_message=text or None, agent=agent,
                       parent_id=parent, data=dumps({"message": text}).decode(), file=path)
    for sid, s in sessions.items():
        models = s["models"]
        extra = {k: s[k] for k in ("version", "branch") if s[k]}
        # A subagent file adds to its parent's session but does not speak for it:
        # its first prompt is not a turn, and its times do not end the session.
        into.add_session(
            session_id=sid, start_ts=s["start"],
            end_ts=None if sidechain_file else s["end"],
            model=max(models, key=lambda m: (models[m], m)) if models and not sidechain_file
            else None,
            turns=None if sidechain_file else s["turns"], project=s["cwd"], agent=AGENT,
            source=NAME, source_path=None if sidechain_file else path,
            extra=dumps(extra).decode() if extra and not sidechain_file else None)
