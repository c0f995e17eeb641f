"""Benchmark the recording SDK and the event log against simple baselines.

    python benchmarks/bench_sdk.py [--events 300000] [--out DIR]

Measures, in one run on this machine:

1. cost on the calling thread of ``Session.llm_call`` with the writer thread
   running (median and p99 over blocks of 100 calls, in microseconds);
2. sustained events/s to disk per durability mode: one producer thread
   records N events, then ``flush()``; time from first record to flush return;
3. baselines: (a) plain ``json.dumps`` + ``write`` + ``flush`` per event on the
   calling thread; (b) the seed-003 writer's approach re-implemented minimally
   (asyncio lock, a buffer list of entries, ``json.dumps`` per entry, append on
   every 100 entries, uuid4 + ``datetime.now`` per entry as its track_* helpers do).

Prints a markdown table. Besides wall-clock rates it reports CPU time per
event (calling thread + writer thread, ``time.thread_time``), which is stable
on a shared machine where wall-clock rates depend on other tenants' load;
"events/s per CPU-second" is the rate one free core sustains.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentkpi.sdk import Recorder
from agentkpi.sdk.eventlog import read_events

LLM = dict(model="claude-sonnet-4", prompt_tokens=1200, completion_tokens=80,
           cache_read_tokens=900, cost_usd=0.004, latency_ms=850.0)


def per_call_cost(root: Path, blocks: int = 2000, block: int = 100) -> dict[str, float]:
    rec = Recorder(root / "percall", durability="batch", queue_size=1_000_000)
    s = rec.session(user_id="bench")
    pc = time.perf_counter
    samples = []
    for _ in range(blocks):
        t0 = pc()
        for _ in range(block):
            s.llm_call(**LLM)
        samples.append((pc() - t0) / block * 1e6)
    rec.flush()
    st = rec.stats()
    rec.close()
    samples.sort()
    return {"median_us": statistics.median(samples),
            "p99_us": samples[int(len(samples) * 0.99) - 1],
            "events": blocks * block, "dropped": st["dropped"]}


def sustained(root: Path, durability: str, n: int) -> dict[str, float]:
    d = root / f"sustained-{durability}"
    rec = Recorder(d, durability=durability, on_full="block", queue_size=100_000)
    s = rec.session(user_id="bench")
    t0 = time.perf_counter()
    c0 = time.thread_time()
    for _ in range(n):
        s.llm_call(**LLM)
    c1 = time.thread_time()
    t1 = time.perf_counter()
    rec.flush()
    t2 = time.perf_counter()
    st = rec.stats()
    rec.close()
    events, bad = read_events(d)
    assert len(events) == n + 1 and bad == 0, (len(events), bad)
    cpu_us = ((c1 - c0) + st["writer_cpu_s"]) / n * 1e6
    return {"events_per_s": n / (t2 - t0), "caller_us": (t1 - t0) / n * 1e6,
            "cpu_us": cpu_us, "capacity": 1e6 / cpu_us,
            "bytes_per_event": st["bytes_written"] / (n + 1), "dropped": st["dropped"]}


def baseline_plain(root: Path, n: int) -> dict[str, float]:
    path = root / "plain.jsonl"
    c0 = time.thread_time()
    t0 = time.perf_counter()
    with open(path, "a", encoding="utf-8") as f:
        for i in range(n):
            rec = {"ts": datetime.now(UTC).isoformat(), "session_id": "s",
                   "event_type": "llm_call", "data": dict(LLM), "i": i}
            f.write(json.dumps(rec) + "\n")
            f.flush()
    dt = time.perf_counter() - t0
    cpu_us = (time.thread_time() - c0) / n * 1e6
    return {"events_per_s": n / dt, "caller_us": dt / n * 1e6, "cpu_us": cpu_us,
            "capacity": 1e6 / cpu_us}


class Seed003Writer:
    """Minimal equivalent of seed 003's JSONLWriter + MetricsWriter hot path."""

    def __init__(self, path: Path, buffer_size: int = 100) -> None:
        self.path = path
        self.buffer: list[dict] = []
        self.buffer_size = buffer_size
        self.lock = asyncio.Lock()

    async def track(self, session_id: str, data: dict) -> None:
        entry = {"id": str(uuid.uuid4()), "timestamp": datetime.now(UTC),
                 "type": "token_usage", "session_id": session_id, "user_id": None,
                 "data": data, "metadata": {}}
        async with self.lock:
            self.buffer.append(entry)
            if len(self.buffer) >= self.buffer_size:
                await self._flush()

    async def _flush(self) -> None:
        with open(self.path, "a") as f:  # the seed opens the file per flush (aiofiles)
            for e in self.buffer:
                e = {**e, "timestamp": e["timestamp"].isoformat()}
                f.write(json.dumps(e, separators=(",", ":")) + "\n")
        self.buffer.clear()

    async def flush(self) -> None:
        async with self.lock:
            await self._flush()


def baseline_seed003(root: Path, n: int) -> dict[str, float]:
    w = Seed003Writer(root / "seed003.jsonl")

    async def run() -> tuple[float, float]:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        for _ in range(n):
            await w.track("s", dict(LLM))
        await w.flush()
        return time.perf_counter() - t0, time.thread_time() - c0

    dt, cpu = asyncio.run(run())
    return {"events_per_s": n / dt, "caller_us": dt / n * 1e6, "cpu_us": cpu / n * 1e6,
            "capacity": n / cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--always-events", type=int, default=5_000)
    ap.add_argument("--out", default=None, help="scratch directory (default: a temp dir)")
    args = ap.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="agentkpi-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        pc = per_call_cost(root)
        rows = []
        for mode in ("os", "batch", "always"):
            n = args.always_events if mode == "always" else args.events
            r = sustained(root, mode, n)
            rows.append((f"agentkpi Recorder, durability={mode}", n, r["events_per_s"],
                         r["capacity"], r["cpu_us"], r["caller_us"],
                         f"{r['bytes_per_event']:.0f} B/event, dropped {r['dropped']}"))
        b = baseline_plain(root, args.events)
        rows.append(("baseline: json.dumps + write + flush per event", args.events,
                     b["events_per_s"], b["capacity"], b["cpu_us"], b["caller_us"],
                     "all work on the calling thread"))
        s3 = baseline_seed003(root, args.events)
        rows.append(("baseline: seed-003 writer approach (asyncio lock, buffer 100)",
                     args.events, s3["events_per_s"], s3["capacity"], s3["cpu_us"],
                     s3["caller_us"], "all work on the calling thread"))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print()
    print("| measurement | value |")
    print("|---|---|")
    print(f"| `llm_call` cost on the calling thread, median (writer running) | "
          f"{pc['median_us']:.2f} µs |")
    print(f"| `llm_call` cost on the calling thread, p99 of 100-call blocks | "
          f"{pc['p99_us']:.2f} µs |")
    print(f"| events recorded in that test / dropped | {pc['events']:,} / {pc['dropped']} |")
    print()
    print("| writer | events | events/s to disk (wall) | events/s per CPU-second | "
          "CPU µs/event (all threads) | wall µs/event on caller | notes |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, n, eps, cap, cpu, us, note in rows:
        print(f"| {name} | {n:,} | {eps:,.0f} | {cap:,.0f} | {cpu:.2f} | {us:.2f} | {note} |")


if __name__ == "__main__":
    main()
