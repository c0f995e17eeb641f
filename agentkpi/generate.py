"""Deterministic, seeded generator of session-dataset files (the seed-000 layout).

This is the project's demo, test and benchmark data source. It writes
``root/sessions/YYYY-MM-DD/<session_id>.jsonl`` (folder = UTC date of
``session_start_time``), one JSON row per file plus a trailing newline, with
the fields of the real uploader: ``messages``, ``events`` and ``tools`` are
JSON *strings*, ``session_start_time`` carries an offset and
``session_end_time`` does not, ``user_id`` is absent in ~10% of rows, and
approval-gated tools (``hf_jobs``) emit ``tool_output`` without ``tool_call``.

Output depends only on the arguments (never on ``workers``): sessions are
generated in fixed-size chunks, each with its own RNG derived from
``(seed, stream, chunk index)``. The same call writes byte-identical files.

Sizes: ~25 events and ~5 KB per session on average, so 200,000 sessions are
about 1 GB and 5 M events.

``dirty=True`` also injects, at low rates and deterministically, every kind of
bad input real data has (see :data:`INJECTION_KINDS`); each kind is injected at
least once when there are enough sessions, and the counts are returned in
:attr:`GenerateResult.injected`.
"""

# JSON text is built with %-templates on purpose: braces make str.format unreadable.
# ruff: noqa: UP031

from __future__ import annotations

import json
import multiprocessing
import os
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

__all__ = [
    "GenerateResult",
    "INJECTION_KINDS",
    "MODELS",
    "append_hour",
    "generate_sessions",
]

#: Injected bad-input kinds (dirty mode) and what each one is. The first block
#: is per event, the second per file.
INJECTION_KINDS: dict[str, str] = {
    # event level
    "ts_naive": "event timestamp without offset (valid; means UTC)",
    "ts_z": "event timestamp ending in 'Z' (valid)",
    "ts_other_offset": "event timestamp with +02:00 / -05:00 offset, same instant (valid)",
    "ts_missing": "event without a timestamp (key absent or null) -> ts_missing",
    "ts_garbage": "event timestamp 'not-a-date' -> ts_unparseable",
    "number_as_string": "llm_call token field as a numeric string, e.g. \"123\" (valid)",
    "number_garbage": "llm_call token field 'abc' -> number_unparseable",
    "data_null": "event whose data is null although its type normally has data",
    "event_type_unknown": "extra event with a type outside the vocabulary",
    # file level
    "file_empty": "empty file (0 bytes) -> file_empty",
    "file_truncated": "row cut mid-line, no newline -> file_bad_json",
    "messages_bad_json": "messages is a string that is not valid JSON -> field_bad_json",
    "events_number": "events is a number -> field_wrong_type",
    "events_null": "events is null (no events)",
}
_EVENT_KINDS = [k for k in INJECTION_KINDS if not k.startswith(("file_", "messages_", "events_"))]
_FILE_KINDS = ["file_empty", "file_truncated", "messages_bad_json", "events_number", "events_null"]

_CHUNK = 500  # sessions per RNG chunk; fixed so output never depends on workers
_DIRTY_EVENT_RATE = 0.004  # per event, split over the event-level kinds
_DIRTY_FILE_RATE = 0.002  # per session, split over the file-level kinds
_LONG_RATE = 0.005  # sessions that run for up to 3 days

MODELS: list[tuple[str, float, float, float]] = [
    # name, $/M prompt, $/M completion, $/M cache read
    ("anthropic/claude-opus-4.8:fal-ai", 5.0, 25.0, 0.5),
    ("moonshotai/Kimi-K2.6", 0.6, 2.5, 0.15),
    ("Qwen/Qwen3-Coder-480B-A35B-Instruct", 0.45, 1.8, 0.1),
    ("openai/gpt-5.1", 1.25, 10.0, 0.125),
    ("deepseek-ai/DeepSeek-V3.2", 0.28, 0.42, 0.028),
]
_MODEL_WEIGHTS = [0.35, 0.25, 0.15, 0.15, 0.10]

_FLAVORS = ["a10g-large", "t4-small", "a10g-small", "l4x1", "a100-large", "h100", "cpu-basic",
            "l40sx4", "a10g-largex2", "h200x2"]  # h200x2: unknown to the GPU table on purpose
_FINAL = ["COMPLETED", "COMPLETED", "completed", "Completed", "COMPLETED", "ERROR", "error",
          "CANCELED", "canceled", "COMPLETED"]
_HARDWARE = ["cpu-basic", "cpu-basic", "cpu-upgrade", "t4-small", "a10g-large", None]
_CTA_SOURCES = ["jobs_blocked", "header", "quota_banner", "settings", "sandbox_gpu"]
_UNKNOWN_TYPES = ["compaction", "heartbeat", "context_trimmed", "model_switch"]

_WEB_TOOLS = ["research", "explore_hf_docs", "web_search", "hf_inspect_dataset", "plan_tool",
              "hf_papers", "hf_repo_files", "fetch_hf_docs", "research", "web_search"]
_CLI_TOOLS = ["bash", "bash", "read", "read", "edit", "write", "bash", "research", "plan_tool",
              "edit"]

_ARGS = {
    "research": ['{"task": "Find a recent recipe for SFT of a small model with TRL"}',
                 '{"task": "Compare LoRA vs full fine-tuning memory for 7B models"}',
                 '{"task": "Which datasets are used for code instruction tuning?"}'],
    "explore_hf_docs": ['{"query": "SFTTrainer packing"}', '{"query": "push_to_hub private"}'],
    "fetch_hf_docs": ['{"url": "https://huggingface.co/docs/trl/sft_trainer"}'],
    "web_search": ['{"query": "qwen2.5 fine-tuning learning rate"}',
                   '{"query": "flash attention 3 install error"}'],
    "hf_inspect_dataset": ['{"dataset": "trl-lib/Capybara", "split": "train"}',
                           '{"dataset": "HuggingFaceH4/ultrachat_200k"}'],
    "plan_tool": ['{"todos": [{"id": "1", "content": "inspect data", "status": "pending"}]}'],
    "hf_papers": ['{"query": "direct preference optimization"}'],
    "hf_repo_files": ['{"repo_id": "Qwen/Qwen2.5-0.5B", "operation": "list"}'],
    "bash": ['{"command": "python train.py --epochs 1"}', '{"command": "ls -la"}',
             '{"command": "pip install -U trl"}', '{"command": "nvidia-smi"}'],
    "read": ['{"path": "train.py"}', '{"path": "config.yaml"}', '{"path": "README.md"}'],
    "write": ['{"path": "eval.py", "content": "import torch\\n..."}'],
    "edit": ['{"path": "train.py", "old": "lr=1e-4", "new": "lr=2e-5"}'],
}
_OUT_OK = {
    "research": "TRL SFTTrainer with packing=True; see trl/examples/scripts/sft.py ...",
    "explore_hf_docs": "Found 4 relevant pages: SFTTrainer, DataCollator, PEFT, Hub ...",
    "fetch_hf_docs": "# SFTTrainer\nThe SFTTrainer class ...",
    "web_search": "1. Fine-tuning Qwen2.5 with TRL (blog) 2. Learning rates for small LMs ...",
    "hf_inspect_dataset": "Dataset trl-lib/Capybara: 16,006 rows; columns: messages, source",
    "plan_tool": "Plan updated (3 items).",
    "hf_papers": "Direct Preference Optimization: Your Language Model is Secretly a Reward ...",
    "hf_repo_files": "config.json, model.safetensors, tokenizer.json, README.md",
    "bash": "Epoch 1/1: eval_loss=1.234",
    "read": "import torch\nfrom trl import SFTTrainer\n...",
    "write": "Wrote 412 bytes to eval.py",
    "edit": "Applied 1 edit to train.py",
    "hf_jobs": "Python job completed!\n\n**Job ID:** {job} ...",
}
_OUT_FAIL = {
    "bash": "Traceback (most recent call last): ... torch.OutOfMemoryError: CUDA out of memory.",
    "hf_jobs": "Job failed with status ERROR ...",
}
_OUT_FAIL_DEFAULT = "Error: request failed (timeout after 30s)"
_ERRORS = [
    "Rate limited by inference provider. Please retry in a few seconds.",
    "Context length exceeded: 131072 tokens.",
    "Internal error: tool execution failed",
    "Connection reset by peer",
]
_PROMPTS = [
    "Fine-tune Qwen2.5-0.5B on trl-lib/Capybara with SFT and push it to my namespace.",
    "Run train.py for one epoch and tell me the eval loss.",
    "Find a good dataset for Python code instruction tuning.",
    "Why does my training OOM on a T4?",
    "Evaluate my model on gsm8k and summarise the results.",
    "Convert this dataset to the chat format and upload it.",
    "Write a DPO script for my SFT model.",
    "Compare the last two runs and plot the loss curves.",
]
_FINALS = [
    "Training finished (loss 1.82 -> 0.94). Model pushed to your namespace.",
    "The eval loss is 1.234 after one epoch.",
    "Here are three candidate datasets with their licences and sizes.",
    "Done. Summary of the changes is above.",
]
_SYSTEM = "You are ML Intern, an assistant for ML engineering on the Hugging Face Hub..."


def _js(s: str | None) -> str:
    """JSON text of a string, in json.dumps style (what the uploader writes)."""
    return json.dumps(s)


def _tools_text(names: list[str]) -> str:
    return json.dumps([
        {"type": "function", "function": {"name": n, "description": "...",
                                          "parameters": {"type": "object", "properties": {}}}}
        for n in names
    ])


# real rows list ~20 tool definitions; a few keep files at the target size
_TOOLS_WEB = _tools_text(["research", "web_search", "hf_jobs"])
_TOOLS_CLI = _tools_text(["bash", "edit", "hf_jobs"])
_J_ARGS = {k: [(a, _js(a), json.loads(a)) for a in v] for k, v in _ARGS.items()}
_J_OUT_OK = {k: _js(v) for k, v in _OUT_OK.items()}
_J_OUT_FAIL = {k: _js(v) for k, v in _OUT_FAIL.items()}
_J_OUT_FAIL_DEFAULT = _js(_OUT_FAIL_DEFAULT)
_J_ERRORS = [_js(e) for e in _ERRORS]
_J_PROMPTS = [_js(p) for p in _PROMPTS]
_J_FINALS = [_js(p) for p in _FINALS]
_J_SYSTEM = _js(_SYSTEM)
_MSG_SYSTEM = '{"content": %s, "role": "system", "tool_calls": null, "function_call": null}' % (
    _J_SYSTEM)
# arguments as they appear inside messages (a JSON string holding JSON text)
_J_ARGS_IN_MSG = {k: [_js(a) for a in v] for k, v in _ARGS.items()}

_UTC = UTC
_TZS = [timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_US = 1_000_000


@dataclass
class GenerateResult:
    """What :func:`generate_sessions` wrote.

    ``n_sessions`` = ``n_files`` = session files written (broken ones included);
    ``n_events`` = events in rows that parse and have an events list (events
    with a bad timestamp are included, events of broken files are not);
    ``first_event``/``last_event`` = the true instants of the earliest/latest
    event with a valid timestamp in a readable row; ``injected`` = counts of
    each :data:`INJECTION_KINDS` kind (empty unless dirty). Event-level kinds
    are counted only in rows whose events can be read, so they equal what an
    ingest of the files can observe.
    """

    n_sessions: int
    n_events: int
    n_files: int
    bytes: int
    first_event: datetime | None
    last_event: datetime | None
    injected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    root: str = ""


# --------------------------------------------------------------------- one chunk

class _Session:
    """Builds one session's events (as JSON text) and messages. Internal."""

    __slots__ = ("rng", "events", "msgs", "n_ev", "dirty", "inj", "force", "first", "last",
                 "ncall", "sid8", "response")

    def __init__(self, rng: random.Random, dirty: bool, inj: dict[str, int],
                 force: str | None, sid8: str) -> None:
        self.rng = rng
        self.events: list[str] = []
        self.msgs: list[str] = [_MSG_SYSTEM]
        self.n_ev = 0
        self.dirty = dirty
        self.inj = inj
        self.force = force
        self.first: int | None = None
        self.last: int | None = None
        self.ncall = 0
        self.sid8 = sid8
        self.response = ""  # id of the last llm_call: the tool_call after it names it

    def ev(self, us: int, etype: str, data: str = "{}") -> None:
        """Append one event; ``data`` is JSON text."""
        ts = '"%s"' % (_EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds")
        valid = True
        if self.dirty:
            kind = None
            if self.force is not None and self.force in _EVENT_KINDS and \
                    self.force not in ("number_as_string", "number_garbage"):
                if self.force != "data_null" or data not in ("{}", "null"):
                    kind = self.force
                    self.force = None
            elif self.rng.random() < _DIRTY_EVENT_RATE:
                kind = _EVENT_KINDS[int(self.rng.random() * len(_EVENT_KINDS))]
                if kind in ("number_as_string", "number_garbage"):
                    kind = None  # applied where tokens are built
                elif kind == "data_null" and data in ("{}", "null"):
                    kind = None
            if kind is not None:
                self.inj[kind] = self.inj.get(kind, 0) + 1
                dt = _EPOCH + timedelta(microseconds=us)
                if kind == "ts_naive":
                    ts = '"%s"' % dt.replace(tzinfo=None).isoformat(timespec="microseconds")
                elif kind == "ts_z":
                    ts = '"%sZ"' % dt.replace(tzinfo=None).isoformat(timespec="microseconds")
                elif kind == "ts_other_offset":
                    tz = _TZS[int(self.rng.random() * 2)]
                    ts = '"%s"' % dt.astimezone(tz).isoformat(timespec="microseconds")
                elif kind == "ts_missing":
                    valid = False
                    if self.rng.random() < 0.5:
                        self.events.append('{"event_type": "%s", "data": %s}' % (etype, data))
                        self.n_ev += 1
                        return
                    ts = "null"
                elif kind == "ts_garbage":
                    valid = False
                    ts = '"not-a-date"'
                elif kind == "data_null":
                    data = "null"
                elif kind == "event_type_unknown":
                    self.events.append(
                        '{"timestamp": %s, "event_type": "%s", "data": {"note": "x"}}'
                        % (ts, _UNKNOWN_TYPES[int(self.rng.random() * len(_UNKNOWN_TYPES))]))
                    self.n_ev += 1
                    self._seen(us)
        self.events.append('{"timestamp": %s, "event_type": "%s", "data": %s}' % (ts, etype, data))
        self.n_ev += 1
        if valid:
            self._seen(us)

    def _seen(self, us: int) -> None:
        if self.first is None or us < self.first:
            self.first = us
        if self.last is None or us > self.last:
            self.last = us

    def tok(self, n: int) -> str:
        """A token count as JSON text (dirty: sometimes "123" or "abc")."""
        if self.dirty:
            kind = None
            if self.force in ("number_as_string", "number_garbage"):
                kind = self.force
                self.force = None
            elif self.rng.random() < _DIRTY_EVENT_RATE / 4:
                kind = "number_as_string" if self.rng.random() < 0.5 else "number_garbage"
            if kind is not None:
                self.inj[kind] = self.inj.get(kind, 0) + 1
                return '"%d"' % n if kind == "number_as_string" else '"abc"'
        return str(n)

    def call_id(self, cli: bool) -> str:
        self.ncall += 1
        return ("call_%s%02d" if cli else "toolu_%s%02d") % (self.sid8, self.ncall)


def _llm(s: _Session, us: int, model: tuple[str, float, float, float], kind: str,
         finish: str, ctx: int) -> tuple[int, float]:
    """Emit an llm_call at ``us``; returns (latency_us, cost)."""
    r = s.rng.random
    name, pp, pc, pr = model
    latency = 800 + int(r() * 9000)
    completion = 40 + int(r() * r() * 1500)
    if ctx > 4000 and r() < 0.75:
        cache_read = int(ctx * (0.6 + 0.35 * r()))
        prompt = max(ctx - cache_read, 200) + int(r() * 2000)
    else:
        cache_read = 0
        prompt = ctx + int(r() * 3000)
    cache_creation = int(prompt * 0.3) if r() < 0.15 else 0
    total = prompt + completion + cache_read
    cost = round((prompt * pp + completion * pc + cache_read * pr) / 1e6, 6)
    s.response = "resp_%s%02d" % (s.sid8, s.n_ev)
    data = ('{"model": "%s", "latency_ms": %d, "finish_reason": "%s", "cost_usd": %r, '
            '"kind": "%s", "prompt_tokens": %s, "completion_tokens": %s, "total_tokens": %d, '
            '"cache_read_tokens": %s, "cache_creation_tokens": %s, "response_id": "%s"}'
            % (name, latency, finish, cost, kind, s.tok(prompt), s.tok(completion), total,
               s.tok(cache_read), s.tok(cache_creation), s.response))
    s.ev(us + latency * 1000, "llm_call", data)
    return latency * 1000, cost


def _build_session(rng: random.Random, start_us: int, span_us: int, users: int,
                   dirty: bool, inj: dict[str, int], force: str | None,
                   not_after_us: int | None = None,
                   ) -> tuple[str, str, bytes, int, int | None, int | None]:
    """One session -> (session_id, date folder, file bytes, n_events, first_us, last_us)."""
    r = rng.random
    h = "%032x" % rng.getrandbits(128)
    sid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"
    ev_inj: dict[str, int] = {}  # event-level injections; kept only if the row is readable
    s = _Session(rng, dirty, ev_inj, force, h[:6])
    t0 = start_us + int(r() * span_us)
    cli = r() < 0.35
    mi = r()
    acc = 0.0
    model = MODELS[-1]
    for m, w in zip(MODELS, _MODEL_WEIGHTS, strict=True):
        acc += w
        if mi < acc:
            model = m
            break
    long_run = r() < _LONG_RATE
    tools = _CLI_TOOLS if cli else _WEB_TOOLS
    n_turns = 1 + int(r() * r() * 5)
    if long_run:
        n_turns += 2 + int(r() * 4)
        long_span = int((3 + r() * 69) * 3600 * _US)  # 3 h .. 3 days
        if not_after_us is not None:  # turns may run 1.5x their share: stay well inside
            long_span = max(0, min(long_span, (not_after_us - t0) // 2))
    cost_total = 0.0
    t = t0 + 100_000 + int(r() * 400_000)
    s.ev(t, "ready", '{"message": "Agent initialized", "tool_count": %d}' % (7 if cli else 21))
    ctx = 6000 + int(r() * 12000)
    first_action = True
    for turn in range(n_turns):
        if turn:
            if long_run:
                t += int(long_span / n_turns * (0.5 + r()))
            else:
                t += int((10 + r() * r() * 300) * _US)
        t += 500_000 + int(r() * 20 * _US)
        s.msgs.append('{"content": %s, "role": "user", "tool_calls": null, "function_call": null}'
                      % _J_PROMPTS[int(r() * len(_J_PROMPTS))])
        s.ev(t, "processing", '{"message": "Processing user input"}')
        n_steps = int(r() * 3.4) + (1 if first_action else 0)
        for _ in range(n_steps):
            lat, c = _llm(s, t, model, "main", "tool_calls", ctx)
            cost_total += c
            t += lat
            ctx += 1500 + int(r() * 3000)
            t += 5_000 + int(r() * 10_000)
            s.ev(t, "assistant_stream_end")
            t += 5_000 + int(r() * 10_000)
            x = r()
            if not cli and x < 0.07:
                # approval-gated hf_jobs: tool_output but no tool_call
                t, c = _hf_job(s, t, r, cli)
                cost_total += c
                continue
            tool = tools[int(r() * len(tools))]
            cid = s.call_id(cli)
            args_raw, _, _ = _J_ARGS[tool][int(r() * len(_J_ARGS[tool]))]
            s.ev(t, "tool_call", '{"tool": "%s", "arguments": %s, "tool_call_id": "%s", '
                 '"response_id": "%s"}' % (tool, args_raw, cid, s.response))
            first_action = False
            ok = r() < (0.8 if tool == "bash" else 0.93)
            dur = int((0.2 + r() * r() * 40) * _US)
            if tool == "research":
                s.ev(t + dur // 3, "tool_log", '{"tool": "research", "log": "Searching HF docs...",'
                     ' "agent_id": "r1", "label": "research"}')
                lat, c = _llm(s, t + dur // 3, model, "research", "stop", 4000)
                cost_total += c
                dur = max(dur, dur // 3 + lat + 100_000)
            elif r() < 0.2:
                s.ev(t + dur // 2, "tool_log", '{"tool": "%s", "log": "running..."}' % tool)
            t += dur
            out = _J_OUT_OK[tool] if ok else _J_OUT_FAIL.get(tool, _J_OUT_FAIL_DEFAULT)
            s.ev(t, "tool_output", '{"tool": "%s", "tool_call_id": "%s", "output": %s, '
                 '"success": %s}' % (tool, cid, out, "true" if ok else "false"))
            if r() < 0.25:
                s.msgs.append('{"content": null, "role": "assistant", "tool_calls": [{"id": '
                              '"%s", "type": "function", "function": {"name": "%s", '
                              '"arguments": %s}}], "function_call": null}'
                              % (cid, tool, _J_ARGS_IN_MSG[tool][0]))
                s.msgs.append('{"content": %s, "role": "tool", "tool_calls": null, '
                              '"function_call": null, "tool_call_id": "%s", "name": "%s"}'
                              % (out, cid, tool))
            t += 10_000 + int(r() * 50_000)
        # side events
        x = r()
        if x < 0.04:
            t += int(r() * 5 * _US)
            s.ev(t, "error", '{"error": %s}' % _J_ERRORS[int(r() * len(_J_ERRORS))])
            if r() < 0.5:
                t += int(r() * 30 * _US)
                s.ev(t, "undo_complete", "null")
            continue
        if x < 0.055:
            t += int(r() * 20 * _US)
            s.ev(t, "undo_complete", "null")
        if x > 0.985:
            t += int(r() * 3 * _US)
            hw = _HARDWARE[int(r() * len(_HARDWARE))]
            if hw is None:
                s.ev(t, "sandbox_create", '{"sandbox_id": "sb_%s%d"}' % (s.sid8, turn))
            else:
                s.ev(t, "sandbox_create", '{"sandbox_id": "sb_%s%d", "hardware": "%s"}'
                     % (s.sid8, turn, hw))
        lat, c = _llm(s, t, model, "main", "stop", ctx)
        cost_total += c
        t += lat + 5_000 + int(r() * 10_000)
        s.ev(t, "assistant_stream_end")
        t += 5_000 + int(r() * 10_000)
        final = _J_FINALS[int(r() * len(_J_FINALS))]
        s.ev(t, "turn_complete", '{"history_size": %d, "final_response": %s}'
             % (len(s.msgs) + 1, final))
        s.msgs.append('{"content": %s, "role": "assistant", "tool_calls": null, '
                      '"function_call": null}' % final)
        y = r()
        if y < 0.09:
            t += int((2 + r() * 60) * _US)
            s.ev(t, "feedback", '{"rating": "%s", "turn_index": %d, "message_id": "msg_%d", '
                 '"comment": ""}' % ("up" if r() < 0.7 else "down", turn, len(s.msgs)))
        elif y > 0.992:
            t += int((1 + r() * 30) * _US)
            s.ev(t, "pro_cta_click", '{"source": "%s"}'
                 % _CTA_SOURCES[int(r() * len(_CTA_SOURCES))])
            if r() < 0.3:
                t += int((30 + r() * 300) * _US)
                s.ev(t, "pro_conversion", '{"plan": "pro"}')
        elif y > 0.988:
            t += int((5 + r() * 100) * _US)
            s.ev(t, "credits_topped_up", '{"amount_usd": %d}' % (5 * (1 + int(r() * 4))))
    if r() < 0.85:
        t += int((1 + r() * 90) * _US)
        s.ev(t, "shutdown", "null")
    end_us = t + int(r() * 200_000)

    # ---- the row
    user = None if r() < 0.1 else "user_%05d" % int(r() * users)
    events_text = "[" + ", ".join(s.events) + "]"
    messages_text = "[" + ", ".join(s.msgs) + "]"
    n_events = s.n_ev
    first, last = s.first, s.last
    file_kind = force if force in _FILE_KINDS else None
    if dirty and file_kind is None and r() < _DIRTY_FILE_RATE:
        file_kind = _FILE_KINDS[int(r() * len(_FILE_KINDS))]
    events_field: Any = events_text
    messages_field: Any = messages_text
    if file_kind is not None:
        inj[file_kind] = inj.get(file_kind, 0) + 1
        if file_kind == "messages_bad_json":
            messages_field = messages_text[: max(1, len(messages_text) // 2)]
        elif file_kind == "events_number":
            events_field = 42
        elif file_kind == "events_null":
            events_field = None
    if file_kind in ("events_number", "events_null", "file_empty", "file_truncated"):
        n_events, first, last = 0, None, None
    else:
        for k, v in ev_inj.items():
            inj[k] = inj.get(k, 0) + v
    start_dt = _EPOCH + timedelta(microseconds=t0)
    end_dt = _EPOCH + timedelta(microseconds=end_us)
    cost_total = round(cost_total, 4)
    row: dict[str, Any] = {"session_id": sid}
    if user is not None:
        row["user_id"] = user
    row["session_start_time"] = start_dt.isoformat(timespec="microseconds")
    row["session_end_time"] = end_dt.replace(tzinfo=None).isoformat(timespec="microseconds")
    row["model_name"] = model[0]
    row["total_cost_usd"] = cost_total
    row["messages"] = messages_field
    row["events"] = events_field
    row["tools"] = _TOOLS_CLI if cli else _TOOLS_WEB
    row["usage_total_usd"] = cost_total
    row["usage_total_usd_source"] = "app_telemetry_fallback"
    row["usage_llm_calls"] = events_text.count('"llm_call"')
    row["usage_hf_job_submits"] = events_text.count('"hf_job_submit"')
    row["usage_sandbox_creates"] = events_text.count('"sandbox_create"')
    body = orjson.dumps(row) + b"\n"
    if file_kind == "file_empty":
        body = b""
    elif file_kind == "file_truncated":
        body = body[: 20 + int(r() * (len(body) - 40))]
    return sid, start_dt.strftime("%Y-%m-%d"), body, n_events, first, last


def _hf_job(s: _Session, t: int, r: Any, cli: bool) -> tuple[int, float]:
    """Approval-gated hf_jobs run starting at ``t``; returns (new t, llm cost)."""
    cid = s.call_id(cli)
    flavor = _FLAVORS[int(r() * len(_FLAVORS))]
    s.ev(t, "approval_required", '{"tools": [{"tool": "hf_jobs", "arguments": {"operation": "run",'
         ' "script": "from trl import SFTTrainer ...", "hardware_flavor": "%s", "timeout": "2h"}, '
         '"tool_call_id": "%s"}], "count": 1}' % (flavor, cid))
    t += int((3 + r() * 60) * _US)
    if r() < 0.12:
        s.ev(t, "tool_state_change", '{"tool_call_id": "%s", "tool": "hf_jobs", "state": '
             '"rejected"}' % cid)
        return t, 0.0
    s.ev(t, "tool_state_change", '{"tool_call_id": "%s", "tool": "hf_jobs", "state": "approved"}'
         % cid)
    t += 10_000
    if r() < 0.1:
        t += int(r() * 2 * _US)
        s.ev(t, "jobs_access_blocked", '{"tool": "hf_jobs", "reason": "Jobs require a PRO '
             'subscription or credits"}')
        if r() < 0.5:
            t += int((1 + r() * 20) * _US)
            s.ev(t, "pro_cta_click", '{"source": "jobs_blocked"}')
        s.ev(t + 5_000, "tool_output", '{"tool": "hf_jobs", "tool_call_id": "%s", "output": '
             '"Jobs access blocked", "success": false}' % cid)
        return t + 5_000, 0.0
    job = "%024x" % s.rng.getrandbits(96)
    t += int((1 + r() * 4) * _US)
    s.ev(t, "hf_job_submit", '{"job_id": "%s", "job_url": "https://huggingface.co/jobs/ns/%s", '
         '"flavor": "%s", "timeout": "2h", "job_type": "Python", "image": '
         '"ghcr.io/astral-sh/uv:python3.12-bookworm", "namespace": "ns", "push_to_hub": true}'
         % (job, job, flavor))
    wall = int(30 + r() * r() * 7200)
    status = _FINAL[int(r() * len(_FINAL))]
    s.ev(t + wall * _US // 3, "tool_log", '{"tool": "hf_jobs", "log": "{\'loss\': 1.82, '
         '\'epoch\': 0.1}"}')
    t += wall * _US
    s.ev(t, "hf_job_complete", '{"job_id": "%s", "flavor": "%s", "final_status": "%s", '
         '"wall_time_s": %d, "billable_seconds_estimate": %d}' % (job, flavor, status, wall, wall))
    t += 10_000
    ok = status.upper() == "COMPLETED"
    out = _J_OUT_OK["hf_jobs"].replace("{job}", job) if ok else _J_OUT_FAIL["hf_jobs"]
    s.ev(t, "tool_output", '{"tool": "hf_jobs", "tool_call_id": "%s", "output": %s, '
         '"success": %s}' % (cid, out, "true" if ok else "false"))
    s.msgs.append('{"content": %s, "role": "tool", "tool_calls": null, "function_call": null, '
                  '"tool_call_id": "%s", "name": "hf_jobs"}' % (out, cid))
    return t + 20_000, 0.0


def _gen_chunk(task: tuple) -> tuple[int, int, int, int | None, int | None, dict[str, int]]:
    """Generate sessions [i0, i1) of a stream; returns (files, events, bytes, first, last, inj)."""
    root, stream, seed, chunk, i0, i1, start_us, span_us, users, dirty, not_after_us = task
    rng = random.Random((seed * 1_000_003 + stream) * 10_000_019 + chunk)
    inj: dict[str, int] = {}
    made: set[str] = set()
    n_events = n_bytes = 0
    first = last = None
    forced = _EVENT_KINDS + _FILE_KINDS
    sess_dir = os.path.join(root, "sessions")
    for i in range(i0, i1):
        force = forced[i] if dirty and i < len(forced) else None
        sid, day, body, ne, f, la = _build_session(rng, start_us, span_us, users, dirty, inj,
                                                   force, not_after_us)
        d = os.path.join(sess_dir, day)
        if day not in made:
            os.makedirs(d, exist_ok=True)
            made.add(day)
        with open(os.path.join(d, sid + ".jsonl"), "wb") as fh:
            fh.write(body)
        n_events += ne
        n_bytes += len(body)
        if f is not None and (first is None or f < first):
            first = f
        if la is not None and (last is None or la > last):
            last = la
    return i1 - i0, n_events, n_bytes, first, last, inj


def _to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_UTC)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def _run(root: str | os.PathLike[str], n_sessions: int, start: datetime, span_s: float,
         seed: int, dirty: bool, workers: int, stream: int, users: int,
         not_after: datetime | None = None) -> GenerateResult:
    t_start = time.perf_counter()
    root_s = os.fspath(root)
    os.makedirs(os.path.join(root_s, "sessions"), exist_ok=True)
    start_us = _to_us(start)
    span_us = max(1, int(span_s * _US))
    cap = None if not_after is None else _to_us(not_after)
    tasks = [(root_s, stream, seed, c, i0, min(i0 + _CHUNK, n_sessions), start_us, span_us,
              users, dirty, cap)
             for c, i0 in enumerate(range(0, n_sessions, _CHUNK))]
    if workers > 1 and len(tasks) > 1:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(workers, len(tasks))) as pool:
            results = list(pool.imap(_gen_chunk, tasks, chunksize=1))
    else:
        results = [_gen_chunk(t) for t in tasks]
    files = events = nbytes = 0
    first = last = None
    inj: dict[str, int] = {}
    for nf, ne, nb, f, la, ij in results:
        files += nf
        events += ne
        nbytes += nb
        if f is not None and (first is None or f < first):
            first = f
        if la is not None and (last is None or la > last):
            last = la
        for k, v in ij.items():
            inj[k] = inj.get(k, 0) + v
    return GenerateResult(
        n_sessions=files, n_events=events, n_files=files, bytes=nbytes,
        first_event=None if first is None else _EPOCH + timedelta(microseconds=first),
        last_event=None if last is None else _EPOCH + timedelta(microseconds=last),
        injected={k: inj[k] for k in INJECTION_KINDS if k in inj},
        seconds=round(time.perf_counter() - t_start, 3), root=root_s,
    )


def generate_sessions(root: str | os.PathLike[str], n_sessions: int, start: datetime,
                      hours: int = 48, seed: int = 0, dirty: bool = False,
                      workers: int = 1, not_after: datetime | None = None) -> GenerateResult:
    """Write ``n_sessions`` sessions starting uniformly in ``[start, start + hours)``.

    ``start`` should be timezone-aware (naive is taken as UTC). Files go to
    ``root/sessions/YYYY-MM-DD/<session_id>.jsonl``. Same arguments -> the same
    bytes, whatever ``workers`` is. ``workers > 1`` uses a process pool.
    ``not_after``: the few sessions that run for days are shortened to end well
    before it (demo data must not reach into the future).
    """
    if n_sessions < 0 or hours <= 0:
        raise ValueError("n_sessions must be >= 0 and hours > 0")
    users = max(1, n_sessions // 6)
    return _run(root, n_sessions, start, hours * 3600, seed, dirty, workers, stream=0,
                users=users, not_after=not_after)


def append_hour(root: str | os.PathLike[str], start_of_hour: datetime, n_sessions: int,
                seed: int = 0, dirty: bool = False, workers: int = 1) -> GenerateResult:
    """Add ``n_sessions`` new sessions starting in ``[start_of_hour, +1h)``.

    Session ids come from a separate RNG stream keyed by the hour, so they never
    collide with :func:`generate_sessions` output or with other appended hours.
    Used by the incremental-run benchmark.
    """
    if start_of_hour.tzinfo is None:
        start_of_hour = start_of_hour.replace(tzinfo=_UTC)
    stream = 1 + _to_us(start_of_hour) // (3600 * _US)
    users = max(1, n_sessions * 8)
    return _run(root, n_sessions, start_of_hour, 3600, seed, dirty, workers, stream=stream,
                users=users)
