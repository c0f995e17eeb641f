"""Benchmark the query layer and the streaming export on a large store.

    python benchmarks/bench_query.py --store /tmp/akbench/query.duckdb
    python benchmarks/bench_query.py --source /tmp/akbench/source-200000 \
        --store /tmp/akbench/query.duckdb          # ingests first when the store is missing

Measures (warm, best and median of --repeat runs, in-process library calls):

* ``month x tool``: events, sessions, users, success_rate, duration_ms_p95 per
  calendar month and tool over all data;
* ``by user``: events, sessions, errors, tokens_total per user over all data
  (one row per user: tens of thousands of rows);
* ``by user, top 10``: the same folded to ten users plus ``(other)``;

and ``agentkpi export events --format parquet`` (and csv) in a child process:
seconds, rows/s, output MB/s and peak RSS of the child (``ru_maxrss``).
Prints one JSON document; ``--markdown`` also prints a table for RESULTS_query.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUERIES: dict[str, dict[str, Any]] = {
    "month x tool": dict(metrics=["events", "sessions", "users", "success_rate",
                                  "duration_ms_p95"], grain="month", by=["tool"]),
    "by user": dict(metrics=["events", "sessions", "errors", "tokens_total"], grain=None,
                    by=["user"]),
    "by user, top 10": dict(metrics=["events", "sessions", "errors", "tokens_total"],
                            grain=None, by=["user"], top=10),
    "day x model (tz Europe/Paris)": dict(metrics=["llm_calls", "tokens_total", "cost_usd"],
                                          grain="day", by=["model"], tz="Europe/Paris"),
}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as fh:
            mem = int(next(ln for ln in fh if ln.startswith("MemTotal")).split()[1]) // 1024
    except (OSError, StopIteration):
        pass
    import duckdb
    import pyarrow

    return {"cpu": cpu, "cpus": os.cpu_count(), "mem_mb": mem, "python": platform.python_version(),
            "duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__,
            "load_avg_1m": os.getloadavg()[0]}


def ensure_store(store: str, source: str | None) -> None:
    if Path(store).exists():
        return
    if not source:
        sys.exit(f"no store at {store}; pass --source DIR to ingest one")
    subprocess.run([sys.executable, "-m", "agentkpi", "ingest", "--source", source, "--store",
                    store, "-q"], check=True)


def bench_queries(store_path: str, repeat: int) -> dict[str, Any]:
    import agentkpi
    from agentkpi.store import DuckDBStore

    out: dict[str, Any] = {}
    with DuckDBStore(store_path, read_only=True) as st:
        out["store"] = {**st.counts(), "first_event": str(st.time_range()[0]),
                        "last_event": str(st.time_range()[1])}
        for name, kw in QUERIES.items():
            agentkpi.query(store=st, **kw)  # warm the file cache
            times, rows = [], 0
            for _ in range(repeat):
                t0 = time.perf_counter()
                rows = agentkpi.query(store=st, **kw).num_rows
                times.append(time.perf_counter() - t0)
            out[name] = {"best_s": round(min(times), 3),
                         "median_s": round(statistics.median(times), 3), "rows": rows,
                         "call": kw}
    return out


def bench_export(store_path: str, fmt: str, workdir: str) -> dict[str, Any]:
    dest = Path(workdir) / f"events.{fmt}"
    code = ("import resource, sys, time; from agentkpi.cli import main; t0 = time.perf_counter()\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            "print('ELAPSED', time.perf_counter() - t0, file=sys.stderr)\n"
            "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "file=sys.stderr)\nsys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code, "export", "events", "--store", store_path,
                        "--format", fmt, "--out", str(dest)], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(p.stderr)
    info = dict(line.split(" ", 1) for line in p.stderr.splitlines()
                if line.startswith(("ELAPSED", "MAXRSS_KB")))
    seconds = float(info["ELAPSED"])
    rss_mb = int(info["MAXRSS_KB"]) / 1024
    size = dest.stat().st_size
    import pyarrow.parquet as pq

    rows = pq.read_metadata(dest).num_rows if fmt == "parquet" else None
    if rows is None:
        with open(dest, "rb") as fh:
            rows = sum(1 for _ in fh) - 1  # no embedded newlines in the generated data
    dest.unlink()
    return {"seconds": round(seconds, 2), "rows": rows, "rows_per_s": int(rows / seconds),
            "out_mb": round(size / 1e6, 1), "out_mb_per_s": round(size / 1e6 / seconds, 1),
            "peak_rss_mb": round(rss_mb, 1)}


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cpus']} CPUs, {m['mem_mb']} MB RAM; Python "
             f"{m['python']}, DuckDB {m['duckdb']}, pyarrow {m['pyarrow']}; 1-minute load "
             f"average at start {m['load_avg_1m']:.1f}.", "",
             f"Store: {res['queries']['store']}", "",
             "| query | best (s) | median (s) | rows |", "|---|---:|---:|---:|"]
    for name in QUERIES:
        q = res["queries"][name]
        lines.append(f"| {name} | {q['best_s']} | {q['median_s']} | {q['rows']:,} |")
    lines += ["", "| export | seconds | rows/s | output MB | MB/s | peak RSS (MB) |",
              "|---|---:|---:|---:|---:|---:|"]
    for fmt, e in res["export"].items():
        lines.append(f"| events -> {fmt} | {e['seconds']} | {e['rows_per_s']:,} | "
                     f"{e['out_mb']} | {e['out_mb_per_s']} | {e['peak_rss_mb']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="/tmp/akbench/query.duckdb")
    ap.add_argument("--source", default=None)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--formats", default="parquet,csv")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    ensure_store(args.store, args.source)
    res: dict[str, Any] = {"machine": machine(), "queries": bench_queries(args.store,
                                                                         args.repeat)}
    with tempfile.TemporaryDirectory() as tmp:
        res["export"] = {fmt: bench_export(args.store, fmt, tmp)
                         for fmt in args.formats.split(",") if fmt}
    res["bench_rusage_children_maxrss_mb"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print(json.dumps(res, indent=2, default=str))
    if args.markdown:
        print(markdown(res))


if __name__ == "__main__":
    main()
