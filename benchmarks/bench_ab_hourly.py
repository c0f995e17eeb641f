"""Two versions of agentkpi on the hourly cron run, interleaved hour by hour.

    python benchmarks/bench_ab_hourly.py --source /tmp/akscale/source-200000 \\
        --store /tmp/akscale/store-duckdb-source-200000.duckdb --workdir /tmp/ab \\
        --code base=/path/to/checkout --code new=/path/to/other [--hours 8] [--link]

Each version gets its own copy of the dataset and the store (``WORKDIR/<name>``, made
once by ``bench_incremental.prepare`` and reused), so each writes on top of its own
history. Then, for every new hour: N/48 (``--per-hour``) sessions are appended to both
copies and ``agentkpi rollup --datetime H`` runs on each, the versions' order swapped
every hour, so a drift of the machine's speed (20-30% within an hour here) falls on both
alike. The code is chosen by ``PYTHONPATH`` (the children run with ``PYTHONSAFEPATH``, so
the directory the benchmark runs from is never imported instead). Prints every run and
each version's median, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench_incremental import (  # benchmarks/ is on sys.path
    append,
    bytecode_env,
    hour_sessions,
    loadavg,
    newest_hour,
    prepare,
    rollup_cmd,
)
from bench_rollup import machine, run_child


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, help="a session dataset (not modified)")
    ap.add_argument("--store", required=True, help="its DuckDB store (not modified)")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--code", action="append", required=True, metavar="NAME=DIR",
                    help="a version: a checkout whose agentkpi/ is run (give two)")
    ap.add_argument("--hours", type=int, default=8,
                    help="new hours, each run by both (0: only prepare the copies)")
    ap.add_argument("--per-hour", type=int, default=4166, help="sessions per new hour")
    ap.add_argument("--link", action="store_true", help="hard-link the dataset copies")
    ap.add_argument("--daily-rescan", action="store_true",
                    help="before each new day's first hour (not the first hour timed), run "
                         "`ingest --rescan` on every copy, untimed: the full listing a cron "
                         "job gets once a day (RESCAN_HOURS), which merges the row groups the "
                         "hourly runs left; without it a second day runs on two days of them")
    args = ap.parse_args(argv)
    versions = [tuple(c.split("=", 1)) for c in args.code]
    if len(versions) != 2 or any(len(v) != 2 for v in versions):
        ap.error("give two versions: --code NAME=DIR --code NAME=DIR")
    workdir = Path(args.workdir)
    runs: dict[str, list[dict]] = {name: [] for name, _ in versions}
    copies = {}
    for name, code in versions:
        wd = workdir / name
        src, st = prepare(Path(args.source), Path(args.store), wd, args.link)
        env = dict(bytecode_env(wd, False) or os.environ, PYTHONPATH=code)
        copies[name] = (src, st, wd / "out", env)
        if not (wd / "warmed").exists():  # the first run lists everything: not measured
            run_child(rollup_cmd(src, st, wd / "out", newest_hour(st), None),
                      f"{name}: full listing, nothing new", env)
            (wd / "warmed").write_text("")
    top = max(newest_hour(copies[name][1]) for name, _ in versions)
    print("\n| hour | version | wall | CPU (user+sys) | peak RSS | sessions in CSV | load | "
          "at (UTC) |\n|---|---|---:|---:|---:|---:|---|---|")
    ok = True
    for i in range(args.hours):
        hour = top + timedelta(hours=i + 1)
        order = versions if i % 2 == 0 else versions[::-1]
        if args.daily_rescan and i and hour.hour == 0:
            for name, _ in order:
                src, st, _, env = copies[name]
                run_child([sys.executable, "-m", "agentkpi", "ingest", "--rescan", "--quiet",
                           "--source", str(src), "--store", str(st)],
                          f"{name}: the daily full listing before {hour:%Y-%m-%d}", env)
        for name, _ in order:
            src, st, out, env = copies[name]
            added = append(src, hour, args.per_hour)
            load, at = loadavg(), time.strftime("%H:%M:%S", time.gmtime())
            r = run_child(rollup_cmd(src, st, out, hour, None), f"{name} {hour:%Y-%m-%dT%H}",
                          env)
            counted = hour_sessions(out, hour)
            good = r["returncode"] == 0 and (counted or 0) >= added
            ok = ok and good
            runs[name].append(r)
            print(f"| {hour:%Y-%m-%dT%H} | {name} | {r['seconds']:.2f} s"
                  f"{'' if good else ' **FAILED**'} | {r['cpu_s']:.2f} s | "
                  f"{r['peak_rss_mb']:.0f} MB | {counted} | {load} | {at} |", flush=True)
    print()
    for name, code in versions:
        if not runs[name]:  # --hours 0: the copies prepared and warmed, nothing timed
            continue
        walls = [r["seconds"] for r in runs[name]]
        cpus = [r["cpu_s"] for r in runs[name]]
        rss = [r["peak_rss_mb"] for r in runs[name]]
        # CPU varies less than wall time here, so a small gain shows in it sooner.
        print(f"{name} ({code}): wall median {statistics.median(walls):.2f} s "
              f"({min(walls):.2f}-{max(walls):.2f}), CPU median {statistics.median(cpus):.2f} s "
              f"(mean {statistics.mean(cpus):.2f}), peak RSS median "
              f"{statistics.median(rss):.0f} MB, {len(walls)} runs")
        half = len(walls) // 2
        if half:
            print(f"  first {half}: median {statistics.median(walls[:half]):.2f} s, last "
                  f"{len(walls) - half}: median {statistics.median(walls[half:]):.2f} s; "
                  f"{sum(w < 1.5 for w in walls)} of {len(walls)} under 1.5 s")
    m = machine()
    print(f"\nMachine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, Python "
          f"{m['python']}, DuckDB {m['duckdb']}.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
