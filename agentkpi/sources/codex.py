"""Codex CLI rollout transcripts: ``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl``.

One file is one thread (session): a ``session_meta`` line, then ``turn_context``,
``response_item``, ``event_msg`` and ``compacted`` lines, each
``{timestamp, type, payload}``. The rules (docs/sources.md, "Codex CLI"):

* **LLM calls.** One per ``event_msg`` ``token_count`` whose cumulative
  ``info.total_token_usage`` changed. Codex re-emits the same counters (after each
  tool output and on rate-limit updates): those are ignored and counted in the
  import audit (``counters_ignored``); ``info: null`` is not a call
  (``counters_without_usage``). Tokens come from ``info.last_token_usage`` (the delta of the
  totals when a build writes no ``last_token_usage``).
* **Tokens.** OpenAI counts cached tokens inside ``input_tokens`` and reasoning
  tokens inside ``output_tokens``: ``prompt = input - cached``, ``cache_read =
  cached``, ``cache_creation = cache_write_input_tokens`` (0 for OpenAI),
  ``completion = output`` (reasoning included), ``reasoning_tokens`` kept apart as
  information. No cost is in the file (``cost_usd`` stays NULL for the pricing step).
* **Model** from the latest ``turn_context`` (a call before the first one takes the
  first one's model).
* **Tools.** ``function_call`` / ``custom_tool_call`` / ``local_shell_call`` /
  ``web_search_call`` items are tool calls, each ``call_id`` once; their outputs
  (``function_call_output`` / ``custom_tool_call_output``, or an ``exec_command_end``
  event) are tool runs: a non-zero exit code, ``isError`` or a failed status is a
  failure. ``mcp__<server>__<tool>`` names fill ``mcp_server``. A response's tool
  items come before the ``token_count`` that closes it: each tool call's
  ``response_id`` is that next call's (the llm_call's own: its event key).
* **Forks and subagents** (``forked_from_id`` or ``source.subagent.thread_spawn``)
  start by replaying the parent's history. When the parent's rollout is in the same
  tree, every ``token_count`` whose cumulative snapshot and every tool ``call_id``
  that the parent holds is skipped (exact). Without the parent file, lines stamped no
  later than the second the fork was created are taken as the replay (the re-stamped
  or verbatim copy Codex writes at fork time). Both count as ``replays_merged``.

Session id = ``session_meta.payload.id``; project = the working directory; agent =
``main``, or the subagent's role/nickname for a spawned thread (``parent_id`` names
the parent thread).
"""

from __future__ import annotations

import glob
import os
import posixpath
import re
from collections.abc import Callable
from datetime import datetime, timedelta
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

NAME = "codex"
REPLACES_SESSIONS = True  # one rollout file holds one whole thread

_ROLLOUT = re.compile(r"^rollout-.*\.jsonl$")
_UUID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.jsonl$")
_TOOL_ITEMS = {"function_call": None, "custom_tool_call": None,
               "local_shell_call": "local_shell", "web_search_call": "web_search"}
_OUTPUT_ITEMS = frozenset({"function_call_output", "custom_tool_call_output"})
# The exit-code header a shell tool writes before the output (not text inside the output).
_EXIT = re.compile(rb"(?m)^(?:Process exited with code|Exit code:)[ \t]*(-?\d+)")
_WALL = re.compile(rb"Wall time:\s*([0-9.]+)\s*s")


def default_roots() -> list[str]:
    """Where Codex keeps its transcripts: ``$CODEX_HOME``, else ``~/.codex``."""
    home = os.environ.get("CODEX_HOME")
    return [home or os.path.join(os.path.expanduser("~"), ".codex")]


# ------------------------------------------------------------------ layout

def _keep(_dir: str, name: str) -> bool:
    return bool(_ROLLOUT.match(name))


def detect(fs: Any, root: str) -> bool:
    """A rollout file under ``root`` (a Codex home, its ``sessions/`` or a day folder)."""
    root = root.rstrip("/")
    for pattern in ("sessions/*/*/*/rollout-*.jsonl", "archived_sessions/rollout-*.jsonl",
                    "*/*/*/rollout-*.jsonl", "*/rollout-*.jsonl", "rollout-*.jsonl"):
        try:
            if fs.glob(f"{root}/{pattern}", maxdepth=None)[:1]:
                return True
        except (OSError, ValueError, TypeError):
            continue
    return False


def list_files(fs: Any, root: str) -> dict[str, Any]:
    """``{path: info}`` of every ``rollout-*.jsonl`` under ``root`` (any depth)."""
    root = root.rstrip("/")
    if is_local(fs):
        return walk_local(root, _keep)
    try:
        found = fs.find(root, detail=True)
    except (OSError, ValueError):
        return {}
    return {p: found[p] for p in sorted(found) if _ROLLOUT.match(posixpath.basename(p))}


# ------------------------------------------------------------------ forks

def _parent_file(path: str, parent_id: str) -> str | None:
    """The parent's rollout in the same Codex tree (local files only), else None."""
    if not os.path.isabs(path) or not os.path.exists(path):
        return None
    norm = path.replace(os.sep, "/")
    for marker in ("/sessions/", "/archived_sessions/"):
        i = norm.rfind(marker)
        if i >= 0:
            home = norm[:i]
            break
    else:
        home = posixpath.dirname(norm)
    pid = glob.escape(parent_id)
    for pattern in (f"{home}/sessions/**/rollout-*{pid}.jsonl",
                    f"{home}/archived_sessions/**/rollout-*{pid}.jsonl",
                    f"{home}/**/rollout-*{pid}.jsonl"):
        hits = sorted(h for h in glob.glob(pattern, recursive=True) if h != path)
        if hits:
            return hits[0]
    return None


def _parent_history(parent: str) -> tuple[set[bytes], set[str]]:
    """(cumulative token snapshots, tool call ids) recorded in the parent's rollout."""
    snapshots: set[bytes] = set()
    calls: set[str] = set()
    try:
        with open(parent, "rb") as fh:
            for line in fh:
                if b'"total_token_usage"' in line:
                    try:
                        obj = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    info = _payload(obj).get("info")
                    if isinstance(info, dict) and isinstance(info.get("total_token_usage"),
                                                             dict):
                        snapshots.add(_snapshot(info["total_token_usage"]))
                elif b'"call_id"' in line or b'"web_search_call"' in line:
                    try:
                        obj = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    p = _payload(obj)
                    if obj.get("type") == "response_item" and p.get("type") in _TOOL_ITEMS:
                        cid = _call_id(p)
                        if cid:
                            calls.add(cid)
    except OSError:
        pass
    return snapshots, calls


def _snapshot(total: dict[str, Any]) -> bytes:
    return orjson.dumps(total, option=orjson.OPT_SORT_KEYS)


# ------------------------------------------------------------------ helpers

def _payload(obj: dict[str, Any]) -> dict[str, Any]:
    p = obj.get("payload")
    return p if isinstance(p, dict) else {}


def _call_id(p: dict[str, Any]) -> str | None:
    return to_str(p.get("call_id")) or to_str(p.get("id"))


def _num(d: dict[str, Any], key: str, q: Quality, where: str) -> int:
    v = to_int(d.get(key), q, where)
    return v if v is not None and v >= 0 else 0


def _usage(last: dict[str, Any], q: Quality, where: str) -> dict[str, int]:
    inp = _num(last, "input_tokens", q, where)
    cached = _num(last, "cached_input_tokens", q, where)
    write = _num(last, "cache_write_input_tokens", q, where)
    if cached + write > inp:
        q.note("number_unparseable", f"{where}: cached tokens exceed input tokens")
        cached, write = min(cached, inp), max(0, min(write, inp - cached))
    return {"prompt_tokens": inp - cached - write, "cache_read_tokens": cached,
            "cache_creation_tokens": write,
            "completion_tokens": _num(last, "output_tokens", q, where),
            "reasoning_tokens": _num(last, "reasoning_output_tokens", q, where)}


def _delta(total: dict[str, Any], prev: dict[str, Any] | None) -> dict[str, Any]:
    prev = prev or {}
    out = {}
    for k, v in total.items():
        p = prev.get(k)
        out[k] = v - p if type(v) is int and type(p) is int and v >= p else v
    return out


def _outcome(output: Any) -> tuple[bool | None, float | None]:
    """(failed?, duration ms) read from a tool output: exit code, isError, wall time."""
    failed: bool | None = None
    duration: float | None = None
    if isinstance(output, str):
        head = output[:400].encode()
        if output[:1] == "{":
            try:
                output = orjson.loads(output)
            except orjson.JSONDecodeError:
                pass
        if isinstance(output, str):
            m = _EXIT.search(head)
            if m:
                failed = int(m.group(1)) != 0
            w = _WALL.search(head)
            if w:
                try:
                    duration = float(w.group(1)) * 1000
                except ValueError:
                    pass
            return failed, duration
    if isinstance(output, dict):
        meta = output.get("metadata")
        if isinstance(meta, dict):
            code = meta.get("exit_code")
            if type(code) is int:
                failed = code != 0
            secs = meta.get("duration_seconds")
            if isinstance(secs, (int, float)) and not isinstance(secs, bool):
                duration = float(secs) * 1000
        for key in ("isError", "is_error"):
            if output.get(key) is True:
                failed = True
        if output.get("success") is False:
            failed = True
        elif output.get("success") is True and failed is None:
            failed = False
    return failed, duration


def _dumps(value: Any) -> str | None:
    if value in (None, {}):
        return None
    return dump_json(value)  # any depth, any integer


# ------------------------------------------------------------------ parse

class _Rollout:
    """State of one rollout file while its lines stream by."""

    def __init__(self, path: str, q: Quality) -> None:
        self.path, self.q = path, q
        m = _UUID.search(posixpath.basename(path))
        self.session_id: str | None = m.group(1) if m else None
        self.meta_seen = False
        self.cwd: str | None = None
        self.start: datetime | None = None
        self.last_ts: Any = None
        self.parent_id: str | None = None
        self.agent = "main"
        self.fork = False
        self.replay_snapshots: set[bytes] | None = None  # exact rule when the parent is here
        self.replay_calls: set[str] = set()
        self.replay_until: datetime | None = None  # fallback rule: fork creation second
        self.model: str | None = None
        self.models: dict[str, int] = {}
        self.prev_total: bytes | None = None
        self.prev_total_obj: dict[str, Any] | None = None
        self.turns = 0
        self.replayed_turns = 0  # user messages up to the last replayed call (forks)
        self.calls: list[dict[str, Any]] = []  # llm_call / tool_call rows, in order
        self.waiting_model: list[dict[str, Any]] = []
        self.tool_calls: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}

    # -- session_meta
    def meta(self, p: dict[str, Any], ts: Any, where: str) -> None:
        if self.meta_seen:
            return  # a replayed parent's session_meta (fork): not ours
        self.meta_seen = True
        self.session_id = to_str(p.get("id")) or self.session_id
        self.cwd = to_str(p.get("cwd"))
        self.start = parse_ts(p.get("timestamp") or ts, self.q, where)
        source = p.get("source")
        spawn = None
        sub = source.get("subagent") if isinstance(source, dict) else None
        if isinstance(sub, str):  # "review", "compact", ...
            self.agent = sub
        elif isinstance(sub, dict):
            spawn = sub.get("thread_spawn")
            if isinstance(spawn, dict):
                self.agent = (to_str(spawn.get("agent_nickname"))
                              or to_str(spawn.get("agent_role")) or "subagent")
            else:
                self.agent = to_str(sub.get("other")) or "subagent"
        forked = to_str(p.get("forked_from_id"))
        parent = (to_str(spawn.get("parent_thread_id")) if isinstance(spawn, dict) else None)
        self.parent_id = parent or forked
        if self.parent_id:
            self.fork = True
            pfile = _parent_file(self.path, self.parent_id)
            if pfile is not None:
                self.replay_snapshots, self.replay_calls = _parent_history(pfile)
            else:
                created = parse_ts(ts, self.q, where) or self.start
                if created is not None:
                    self.replay_until = created.replace(microsecond=0) + timedelta(seconds=1)

    def in_replay(self, ts: Any, where: str) -> bool:
        """Fallback rule (no parent file): stamped no later than the fork's creation second."""
        if self.replay_until is None:
            return False
        t = parse_ts(ts, Quality(), where)
        return t is not None and t < self.replay_until

    # -- token_count
    def token_count(self, p: dict[str, Any], ts: Any, where: str) -> None:
        q = self.q
        info = p.get("info")
        if not isinstance(info, dict):
            q.count_audit("counters_without_usage")
            return
        total = info.get("total_token_usage")
        last = info.get("last_token_usage")
        key: tuple[str | bytes, ...]
        if isinstance(total, dict) and total:
            snap = _snapshot(total)
            key = ("total", snap)
            if snap == self.prev_total:
                q.count_audit("counters_ignored")
                return
            prev_obj = self.prev_total_obj
            self.prev_total, self.prev_total_obj = snap, total
            if self.fork and ((self.replay_snapshots is not None and snap in self.replay_snapshots)
                              or self.in_replay(ts, where)):
                q.count_audit("replays_merged")
                self.replayed_turns = self.turns
                return
            if not (isinstance(last, dict) and last):
                last = _delta(total, prev_obj)
        elif isinstance(last, dict) and last:
            snap = b"last:" + _snapshot(last)
            key = ("line", where.rsplit(":", 1)[-1])
            if snap == self.prev_total:
                q.count_audit("counters_ignored")
                return
            self.prev_total = snap
            if self.fork and self.in_replay(ts, where):
                q.count_audit("replays_merged")
                self.replayed_turns = self.turns
                return
        else:
            q.count_audit("counters_without_usage")
            return
        row = {"event_type": "llm_call", "ts": parse_ts(ts, q, where), "model": self.model,
               "key": key,
               **_usage(last, q, where),
               "data": _dumps({"last_token_usage": last, "total_token_usage": total,
                               "model_context_window": info.get("model_context_window")})}
        if self.model is None:
            self.waiting_model.append(row)
        else:
            self.models[self.model] = self.models.get(self.model, 0) + 1
        self.calls.append(row)

    def turn_context(self, p: dict[str, Any]) -> None:
        model = to_str(p.get("model"))
        if model:
            self.model = model
            for row in self.waiting_model:
                row["model"] = model
                self.models[model] = self.models.get(model, 0) + 1
            self.waiting_model.clear()
        self.cwd = self.cwd or to_str(p.get("cwd"))

    # -- tools
    def tool_call(self, p: dict[str, Any], kind: str, ts: Any, where: str) -> None:
        q = self.q
        cid = _call_id(p)
        if cid is not None and cid in self.tool_calls:
            q.count_audit("tool_calls_merged")
            return
        if self.fork and ((cid is not None and cid in self.replay_calls)
                          or self.in_replay(ts, where)):
            q.count_audit("replays_merged")
            if cid is not None:
                self.replay_calls.add(cid)
            return
        tool = to_str(p.get("name")) or _TOOL_ITEMS[kind] or kind
        row = {"event_type": "tool_call", "ts": parse_ts(ts, q, where), "tool": tool,
               "key": ("call", cid or where),
               "tool_call_id": cid, "mcp_server": mcp_server(tool),
               "data": _dumps({"call_id": cid, "name": tool, "item": kind})}
        self.calls.append(row)
        if cid is None:
            cid = f"{where}"
        self.tool_calls[cid] = row
        status = to_str(p.get("status"))
        if kind == "web_search_call" and status is not None:
            # A web search has no output item: its status is its outcome.
            self.output(cid, ts, where, failed=status not in ("completed", "in_progress"),
                        duration=None)
        elif kind == "custom_tool_call" and status in ("failed", "incomplete"):
            self.output(cid, ts, where, failed=True, duration=None)

    def output(self, cid: str | None, ts: Any, where: str, *, failed: bool | None,
               duration: float | None) -> None:
        if cid is None:
            return
        if cid in self.replay_calls:
            return  # the parent's tool run, replayed
        if self.fork and cid not in self.tool_calls and self.in_replay(ts, where):
            return
        known = self.outputs.get(cid)
        if known is None:
            self.outputs[cid] = {"ts": ts, "where": where, "failed": failed,
                                 "duration": duration}
            return
        # A second report of the same run (output item + exec_command_end): merge.
        if known["failed"] is None:
            known["failed"] = failed
        if known["duration"] is None:
            known["duration"] = duration

    def emit(self, batch: CanonicalBatch) -> None:
        q, sid = self.q, self.session_id or self.path
        for cid, out in self.outputs.items():
            call = self.tool_calls.get(cid)
            tool = call["tool"] if call else None
            self.calls.append({
                "event_type": "tool_output", "ts": parse_ts(out["ts"], q, out["where"]),
                "key": ("run", cid),
                "tool": tool, "tool_call_id": cid, "mcp_server": mcp_server(tool),
                "success": not out["failed"], "duration_ms": out["duration"],
                "data": _dumps({"call_id": cid, "exit_ok": None if out["failed"] is None
                                else not out["failed"]})})
        # A response's function_call items are written before the token_count that
        # closes it: the tool calls since the last counted call belong to the next one.
        keys = [event_key(NAME, sid, *row.pop("key")) for row in self.calls]
        asked: list[dict[str, Any]] = []
        for row, key in zip(self.calls, keys, strict=True):
            if row["event_type"] == "tool_call":
                asked.append(row)
            elif row["event_type"] == "llm_call":
                row["response_id"] = key
                for call in asked:
                    call["response_id"] = key
                asked.clear()
        for i, (row, key) in enumerate(zip(self.calls, keys, strict=True)):
            add_event(batch, session_id=sid, seq=i, agent=self.agent, parent_id=self.parent_id,
                            file=self.path, event_key=key, **row)
        model = max(self.models, key=lambda m: self.models[m]) if self.models else self.model
        end = parse_ts(self.last_ts, q, self.path) if self.last_ts else None
        batch.add_session(session_id=sid, start_ts=self.start, end_ts=end, model=model,
                          turns=self.turns - self.replayed_turns, project=self.cwd,
                          agent=self.agent, source=NAME, source_path=self.path,
                          extra=_dumps({"parent_id": self.parent_id} if self.parent_id else None))


def parse_stream(path: str, fh: IO[bytes], q: Quality, *, into: CanonicalBatch,
                 opener: Callable[[str], IO[bytes]] | None = None) -> None:
    """Stream one rollout file from ``fh`` into ``into``, line by line."""
    q.count_audit("files")
    r = _Rollout(path, q)
    for lineno, obj in json_lines(fh, q, path):
        where = f"{path}:{lineno}"
        kind = obj.get("type")
        ts = obj.get("timestamp")
        if ts is not None:
            r.last_ts = ts
        p = _payload(obj)
        ptype = p.get("type")
        if kind == "event_msg":
            if ptype == "token_count":
                r.token_count(p, ts, where)
            elif ptype == "user_message":
                r.turns += 1
            elif ptype == "exec_command_end":
                code = p.get("exit_code")
                r.output(_call_id(p), ts, where,
                         failed=(code != 0) if type(code) is int else None, duration=None)
            elif ptype == "patch_apply_end":
                ok = p.get("success")
                r.output(_call_id(p), ts, where,
                         failed=(not ok) if isinstance(ok, bool) else None, duration=None)
        elif kind == "response_item":
            if ptype in _TOOL_ITEMS:
                r.tool_call(p, ptype, ts, where)
            elif ptype in _OUTPUT_ITEMS:
                failed, duration = _outcome(p.get("output"))
                r.output(_call_id(p), ts, where, failed=failed, duration=duration)
        elif kind == "turn_context":
            r.turn_context(p)
        elif kind == "session_meta":
            r.meta(p, ts, where)
        elif not isinstance(kind, str):  # no line type: nothing to keep, counted
            q.malformed("no_type", where)
    if not r.meta_seen and not r.calls:
        q.skip(path, "file_empty", "no Codex session_meta and no usage in the file; "
                                   "is it a rollout transcript?")
        return
    r.emit(into)


#: One rollout held in memory, parsed by :func:`parse_stream`.
parse_file = parse_bytes_by_stream(parse_stream)
