"""Benchmark: Claude Code transcript ingest beside a naive line count of the same bytes.

    python benchmarks/bench_claude_code.py --workdir /tmp/akcc --files 10000 --mb 1100
        [--json-out FILE]

Steps, in one run:

1. dataset: a synthetic ``.claude/projects`` tree under WORKDIR: FILES transcripts
   (a fifth of them subagent files under ``<session>/subagents/``), sizes drawn
   from a log-normal (median ~55 KB, a few of tens of MB) scaled to ~MB in total.
   Lines have Claude Code's real shape: every response written as 1-4 lines (one
   per content block) repeating its usage, the first with a partial output count;
   tool_use / tool_result pairs with result text; hook progress lines;
   file-history-snapshot lines. Reused when ``tree.json`` records the same
   parameters. The generator knows the exact number of responses and tokens.
2. naive line count: read every file in 1 MB chunks and count newlines (what a
   naive "sum the usage lines" tool must at least do), and ``wc -l`` over the tree.
3. cold ingest: ``python -m agentkpi ingest --source TREE --format claude-code
   --store S -q`` in a child process (wall seconds, peak RSS from ``os.wait4``), then
   the stored calls and tokens are checked against the generator's counts.
4. incremental: append 3 new responses to 100 files, ingest again; checked again.

Prints a markdown table with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model, measured, measured_popen

PARAMS_VERSION = 1


def _line(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec, separators=(",", ":")).encode() + b"\n"


class Writer:
    """Writes transcript lines and keeps the exact expected totals."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.calls = 0
        self.tokens = 0
        self.n = 0

    def response(self, out: Any, sid: str, agent: str | None, ts: str, pad: str) -> None:
        rnd = self.rnd
        self.n += 1
        mid, rid = f"msg_{self.n:012d}{rnd.getrandbits(32):08x}", f"req_{self.n:012d}"
        usage = {"input_tokens": rnd.randrange(1, 60),
                 "cache_creation_input_tokens": rnd.randrange(0, 9000),
                 "cache_read_input_tokens": rnd.randrange(0, 120_000),
                 "output_tokens": rnd.randrange(20, 2000), "service_tier": "standard"}
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": 0,
                                   "ephemeral_1h_input_tokens":
                                       usage["cache_creation_input_tokens"]}
        final = usage["output_tokens"]
        self.calls += 1
        self.tokens += (usage["input_tokens"] + usage["cache_creation_input_tokens"]
                        + usage["cache_read_input_tokens"] + final)
        blocks = rnd.randrange(1, 5)
        tools = []
        env = {"parentUuid": "p", "isSidechain": agent is not None, "userType": "external",
               "cwd": "/home/u/proj", "sessionId": sid, "version": "2.1.38",
               "gitBranch": "main"}
        if agent:
            env["agentId"] = agent
        for b in range(blocks):
            u = dict(usage, output_tokens=final if b == blocks - 1 else max(1, final // 7))
            if b < blocks - 1 or rnd.random() < 0.5:
                tid = f"toolu_{self.n:012d}_{b}"
                block = {"type": "tool_use", "id": tid, "name": rnd.choice(
                    ["Bash", "Read", "Edit", "Grep", "mcp__github__search_code"]),
                    "input": {"command": pad[:200]}}
                tools.append(tid)
            else:
                block = {"type": "text", "text": pad[:400]}
            out.write(_line({**env, "type": "assistant", "requestId": rid, "uuid": f"u{b}",
                             "timestamp": ts, "message": {
                                 "model": "claude-opus-4-6", "id": mid, "type": "message",
                                 "role": "assistant", "content": [block],
                                 "stop_reason": None, "usage": u}}))
        for tid in tools:
            out.write(_line({**env, "type": "progress", "timestamp": ts,
                             "data": {"type": "hook_progress", "hookEvent": "PostToolUse"}}))
            size = int(rnd.lognormvariate(7.5, 1.2))
            out.write(_line({**env, "type": "user", "timestamp": ts, "message": {
                "role": "user", "content": [{"type": "tool_result", "tool_use_id": tid,
                                             "content": pad[: min(size, len(pad))],
                                             "is_error": rnd.random() < 0.05}]},
                "toolUseResult": {"stdout": "", "stderr": ""}}))


def generate(root: Path, files: int, mb: int, seed: int) -> dict[str, Any]:
    meta = root / "tree.json"
    params = {"files": files, "mb": mb, "seed": seed, "v": PARAMS_VERSION}
    if meta.exists():
        saved = json.loads(meta.read_text())
        if saved.get("params") == params:
            return saved  # type: ignore[no-any-return]
    shutil.rmtree(root, ignore_errors=True)
    rnd = random.Random(seed)
    pad = "".join(rnd.choice("abcdefghij klmnop\n") for _ in range(200_000))
    weights = [rnd.lognormvariate(0, 1.3) for _ in range(files)]
    scale = mb * 1_000_000 / sum(weights)
    w = Writer(rnd)
    projects = root / ".claude" / "projects"
    mains: list[tuple[Path, str]] = []
    total = 0
    for i in range(files):
        target = int(weights[i] * scale)
        proj = projects / f"-home-u-proj{i % 50}"
        if i % 5 == 4 and mains:
            main_path, sid = mains[rnd.randrange(len(mains))]
            agent = f"a{i:07x}"
            path = main_path.with_suffix("") / "subagents" / f"agent-{agent}.jsonl"
        else:
            sid = f"{rnd.getrandbits(128):032x}"
            agent = None
            path = proj / f"{sid}.jsonl"
            mains.append((path, sid))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            out.write(_line({"type": "file-history-snapshot", "messageId": "m",
                             "snapshot": {"trackedFileBackups": {}}}))
            k = 0
            while out.tell() < target:
                ts = f"2026-0{1 + i % 9}-{1 + k % 28:02d}T{k % 24:02d}:00:00.000Z"
                out.write(_line({"type": "user", "sessionId": sid, "timestamp": ts,
                                 "cwd": "/home/u/proj", "message": {
                                     "role": "user", "content": "please " + pad[:80]}}))
                w.response(out, sid, agent, ts, pad)
                k += 1
            total += out.tell()
    saved = {"params": params, "files": files, "bytes": total, "calls": w.calls,
             "tokens": w.tokens, "responses_written": w.n,
             "paths": [str(p) for p, _ in mains[:100]], "sids": [s for _, s in mains[:100]]}
    meta.write_text(json.dumps(saved))
    return saved


def _run(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB of the child tree, stdout) of a child process."""
    fd, report = tempfile.mkstemp(prefix="bench-rusage-", suffix=".json")
    os.close(fd)
    proc = measured_popen(cmd, report, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    out, _ = proc.communicate()
    m = measured(report)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out}")
    return m["wall_s"], m["peak_rss_mb"], out


def naive_count(root: Path) -> tuple[float, int]:
    t = time.perf_counter()
    lines = 0
    for path in root.rglob("*.jsonl"):
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                lines += chunk.count(b"\n")
    return time.perf_counter() - t, lines


def stored(store: Path) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        calls, tokens = con.execute(
            "SELECT count(*), sum(prompt_tokens + completion_tokens + cache_read_tokens + "
            "cache_creation_tokens) FROM events WHERE event_type = 'llm_call'").fetchone()
    finally:
        con.close()
    return {"calls": int(calls), "tokens": int(tokens or 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/akcc")
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--mb", type=int, default=1100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json-out")
    args = ap.parse_args()
    work = Path(args.workdir)
    tree = work / "tree"
    t = time.perf_counter()
    meta = generate(tree, args.files, args.mb, args.seed)
    gen_s = time.perf_counter() - t
    src = tree / ".claude"
    n_files = sum(1 for _ in src.rglob("*.jsonl"))
    results: dict[str, Any] = {"files": n_files, "bytes": meta["bytes"],
                               "generate_s": round(gen_s, 1)}

    naive_s, lines = naive_count(src)
    results.update(naive_count_s=round(naive_s, 2), lines=lines)
    t = time.perf_counter()
    subprocess.run(f"find {src} -name '*.jsonl' -print0 | xargs -0 cat | wc -l", shell=True,
                   check=True, capture_output=True)
    results["wc_l_s"] = round(time.perf_counter() - t, 2)

    store = work / "store.duckdb"
    for p in (store, Path(str(store) + ".wal")):
        p.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "agentkpi", "ingest", "--source", str(src), "--format",
           "claude-code", "--store", str(store), "--machine", "bench", "-q"]
    wall, rss, out = _run(cmd)
    got = stored(store)
    results.update(cold_s=round(wall, 2), cold_rss_mb=round(rss), cold_output=out.strip(),
                   cold_ok=got == {"calls": meta["calls"], "tokens": meta["tokens"]},
                   stored_calls=got["calls"], expected_calls=meta["calls"])

    # incremental: three more responses appended to 100 transcripts
    w = Writer(random.Random(args.seed + 1))
    w.n = meta["responses_written"] + 10_000_000  # fresh ids
    pad = "x" * 2000
    for path, sid in zip(meta["paths"], meta["sids"], strict=True):
        with open(path, "ab") as out:
            for _ in range(3):
                w.response(out, sid, None, "2026-10-01T00:00:00.000Z", pad)
    wall2, rss2, out2 = _run(cmd)
    got2 = stored(store)
    want2 = {"calls": meta["calls"] + w.calls, "tokens": meta["tokens"] + w.tokens}
    results.update(incr_s=round(wall2, 2), incr_rss_mb=round(rss2), incr_output=out2.strip(),
                   incr_ok=got2 == want2)
    # the appended files no longer match the recorded counts: regenerate next time
    meta_path = tree / "tree.json"
    meta_path.unlink()

    gb = meta["bytes"] / 1e9
    print(f"\nMachine: {os.cpu_count()} CPU ({cpu_model()}), Python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"Tree: {n_files:,} files, {gb:.2f} GB, {lines:,} lines, {meta['calls']:,} API "
          f"responses\n")
    print("| step | seconds | throughput | peak RSS | check |")
    print("|---|---:|---:|---:|---|")
    print(f"| naive line count (Python, 1 MB reads) | {naive_s:.1f} | "
          f"{gb / naive_s * 1000:.0f} MB/s | — | {lines:,} lines |")
    print(f"| `wc -l` over the tree | {results['wc_l_s']:.1f} | "
          f"{gb / results['wc_l_s'] * 1000:.0f} MB/s | — | — |")
    print(f"| cold `agentkpi ingest --format claude-code` | {wall:.1f} | "
          f"{gb / wall * 1000:.0f} MB/s | {rss:.0f} MB | calls and tokens exact: "
          f"{results['cold_ok']} |")
    print(f"| re-ingest after appending to 100 files | {wall2:.1f} | — | {rss2:.0f} MB | "
          f"exact: {results['incr_ok']} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
