"""Ingest throughput of the Codex CLI and Gemini CLI importers on synthetic trees.

    python benchmarks/bench_transcripts.py --workdir /tmp/aktx --files 2000 --turns 40

Builds (once, deterministic) ``WORKDIR/codex/sessions/2026/05/DD/rollout-*.jsonl`` and
``WORKDIR/gemini/tmp/<hash>/chats/session-*.jsonl`` shaped like the real files (Codex:
turn_context, reasoning with encrypted content, a function call and its output, a
token_count and its re-emitted copy per turn; Gemini: each reply re-appended as tokens and
tool results arrive), then for each tree times: a naive line count of the same bytes,
a cold ingest into a fresh DuckDB store, a re-run (nothing changed), and a re-run after
appending one turn to 100 files. Prints one JSON object; figures go to BENCHMARKS.md with
the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentkpi.ingestion import ingest
from agentkpi.store import DuckDBStore as Store
from benchmarks._machine import cpu_model


def machine() -> dict[str, Any]:
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": sys.version.split()[0]}


def _codex_turn(rnd: random.Random, ts: str, i: int, total: dict[str, int]) -> list[str]:
    inp, cached, out = rnd.randint(20_000, 60_000), 0, rnd.randint(50, 800)
    cached = min(inp, rnd.randint(0, inp))
    last = {"input_tokens": inp, "cached_input_tokens": cached, "output_tokens": out,
            "reasoning_output_tokens": out // 3, "total_tokens": inp + out}
    for k, v in last.items():
        total[k] += v
    count = {"timestamp": ts, "type": "event_msg", "payload": {
        "type": "token_count", "info": {"total_token_usage": dict(total),
                                        "last_token_usage": last,
                                        "model_context_window": 258400},
        "rate_limits": {"primary": {"used_percent": 1.0, "window_minutes": 300}}}}
    lines = [
        {"timestamp": ts, "type": "turn_context", "payload": {
            "cwd": "/work/proj", "model": "gpt-5.3-codex", "effort": "medium",
            "user_instructions": "x" * 2000}},
        {"timestamp": ts, "type": "response_item", "payload": {
            "type": "reasoning", "summary": [{"type": "summary_text", "text": "thinking"}],
            "encrypted_content": "e" * rnd.randint(800, 3000)}},
        {"timestamp": ts, "type": "response_item", "payload": {
            "type": "function_call", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}",
            "call_id": f"call_{i}"}},
        count,
        {"timestamp": ts, "type": "response_item", "payload": {
            "type": "function_call_output", "call_id": f"call_{i}",
            "output": f"Process exited with code {rnd.choice([0, 0, 0, 1])}\nOutput:\n"
                      + "o" * rnd.randint(200, 6000)}},
        count,  # Codex re-emits the unchanged counter
    ]
    return [json.dumps(x) for x in lines]


def _gemini_turn(rnd: random.Random, ts: str, i: int) -> list[str]:
    tok = {"input": rnd.randint(5_000, 60_000), "output": rnd.randint(20, 900), "cached": 0,
           "thoughts": rnd.randint(0, 400), "tool": 0}
    tok["cached"] = rnd.randint(0, tok["input"])
    tok["total"] = tok["input"] + tok["output"] + tok["thoughts"]
    msg: dict[str, Any] = {"id": f"g{i}", "timestamp": ts, "type": "gemini",
                           "content": [{"text": "r" * rnd.randint(100, 3000)}],
                           "model": "gemini-2.5-pro", "tokens": None}
    tc = {"id": f"t{i}", "name": "run_shell_command", "args": {"command": "ls"},
          "status": "executing", "timestamp": ts}
    done = dict(msg, tokens=tok, toolCalls=[dict(tc, status=rnd.choice(
        ["success", "success", "error"]), result=[{"text": "o" * rnd.randint(100, 4000)}])])
    return [json.dumps(x) for x in (
        {"id": f"u{i}", "timestamp": ts, "type": "user", "content": [{"text": "do it"}]},
        msg, dict(msg, tokens=tok, toolCalls=[tc]), done,
        {"$set": {"lastUpdated": ts}})]


def build(work: Path, files: int, turns: int) -> dict[str, Path]:
    roots = {"codex": work / "codex", "gemini": work / "gemini"}
    if (work / ".built").exists():
        return roots
    shutil.rmtree(work, ignore_errors=True)
    rnd = random.Random(0)
    for f in range(files):
        day = 1 + f % 28
        sid = f"019c{f:04x}-0000-7000-8000-{f:012x}"
        ts = f"2026-05-{day:02d}T10:00:00.000Z"
        path = roots["codex"] / "sessions" / "2026" / "05" / f"{day:02d}" / \
            f"rollout-2026-05-{day:02d}T10-00-00-{sid}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        total = dict.fromkeys(("input_tokens", "cached_input_tokens", "output_tokens",
                               "reasoning_output_tokens", "total_tokens"), 0)
        out = [json.dumps({"timestamp": ts, "type": "session_meta", "payload": {
            "id": sid, "timestamp": ts, "cwd": "/work/proj", "cli_version": "0.104.0"}})]
        for t in range(turns):
            out += _codex_turn(rnd, ts, t, total)
        path.write_text("\n".join(out) + "\n")
        gpath = roots["gemini"] / "tmp" / f"h{f % 50:03d}" / "chats" / \
            f"session-2026-05-{day:02d}T10-00-{sid[:8]}{f:04d}.jsonl"
        gpath.parent.mkdir(parents=True, exist_ok=True)
        gout = [json.dumps({"sessionId": sid, "projectHash": f"h{f % 50:03d}",
                            "startTime": ts, "lastUpdated": ts, "kind": "main"})]
        for t in range(turns):
            gout += _gemini_turn(rnd, ts, t)
        gpath.write_text("\n".join(gout) + "\n")
    (work / ".built").write_text("ok")
    return roots


def _bytes(root: Path) -> tuple[int, int]:
    n = size = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            size += os.path.getsize(os.path.join(dirpath, name))
            n += 1
    return n, size


def naive_count(root: Path) -> tuple[float, int]:
    t = time.perf_counter()
    lines = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as fh:
                lines += fh.read().count(b"\n")
    return time.perf_counter() - t, lines


def run(root: Path, fmt: str, store: Path, workers: int) -> dict[str, Any]:
    store.unlink(missing_ok=True)
    n_files, size = _bytes(root)
    naive_s, lines = naive_count(root)
    with Store(store) as st:
        t = time.perf_counter()
        r = ingest(str(root), st, fmt=fmt, workers=workers)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        again = ingest(str(root), st, fmt=fmt, workers=workers)
        warm = time.perf_counter() - t
        grown = sorted(p for p in root.rglob("*.jsonl"))[:100]
        rnd = random.Random(1)
        for p in grown:
            with p.open("a") as fh:
                new = (_codex_turn(rnd, "2026-05-30T00:00:00.000Z", 10_000,
                                   dict.fromkeys(("input_tokens", "cached_input_tokens",
                                                  "output_tokens", "reasoning_output_tokens",
                                                  "total_tokens"), 10**9))
                       if fmt == "codex" else _gemini_turn(rnd, "2026-05-30T00:00:00.000Z",
                                                           10_000))
                fh.write("\n".join(new) + "\n")
        t = time.perf_counter()
        inc = ingest(str(root), st, fmt=fmt, workers=workers)
        incremental = time.perf_counter() - t
        calls = st.sql("SELECT count(*) AS n FROM events WHERE event_type='llm_call'"
                       ).to_pylist()[0]["n"]
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return {"format": fmt, "files": n_files, "mb": round(size / 1e6, 1), "lines": lines,
            "naive_line_count_s": round(naive_s, 2), "ingest_cold_s": round(cold, 2),
            "mb_per_s": round(size / 1e6 / cold, 1), "events": r.events,
            "events_per_s": round(r.events / cold), "rerun_unchanged_s": round(warm, 2),
            "rerun_files_read": again.files_read,
            "append_100_files_s": round(incremental, 2), "append_files_read": inc.files_read,
            "llm_calls_after": calls, "peak_rss_mb": round(rss)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default="/tmp/aktx")
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--turns", type=int, default=40)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    work = Path(a.workdir)
    roots = build(work, a.files, a.turns)
    out = {"machine": machine(), "command": " ".join(sys.argv),
           "codex": run(roots["codex"], "codex", work / "codex.duckdb", a.workers),
           "gemini": run(roots["gemini"], "gemini-cli", work / "gemini.duckdb", a.workers)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
