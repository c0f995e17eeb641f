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
each version's median, with the load average. ``--engine clickhouse``: each version
builds a chDB store of its own from its copy of the dataset first (untimed), then the same.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
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
    ap.add_argument("--engine", choices=("duckdb", "clickhouse"), default="duckdb",
                    help="clickhouse: each version builds its own chDB store from its copy "
                         "of the dataset first (a cold ingest with its own code, untimed); "
                         "--store is then read only for the dataset's newest hour")
    ap.add_argument("--daily-rescan", action="store_true",
                    help="before each new day's first hour, run "
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
    where: dict[str, list[str]] = {}
    for name, code in versions:
        wd = workdir / name
        env = dict(bytecode_env(wd, False) or os.environ, PYTHONPATH=code)
        if args.engine == "clickhouse":
            src, st = _prepare_clickhouse(Path(args.source), wd, args.link, env, name)
            where[name] = ["--engine", "clickhouse", "--dsn", f"chdb://{st}"]
        else:
            src, st = prepare(Path(args.source), Path(args.store), wd, args.link)
            where[name] = ["--store", str(st)]
        copies[name] = (src, st, wd / "out", env)
        if not (wd / "warmed").exists():  # the first run lists everything: not measured
            run_child(_rollup(src, where[name], wd / "out", newest_hour(Path(args.store))),
                      f"{name}: full listing, nothing new", env)
            (wd / "warmed").write_text("")
    top = max(_newest(wd, Path(args.store)) for wd in (workdir / n for n, _ in versions))
    print("\n| hour | version | wall | CPU (user+sys) | peak RSS | sessions in CSV | load | "
          "at (UTC) |\n|---|---|---:|---:|---:|---:|---|---|")
    ok = True
    for i in range(args.hours):
        hour = top + timedelta(hours=i + 1)
        order = versions if i % 2 == 0 else versions[::-1]
        if args.daily_rescan and hour.hour == 0:
            for name, _ in order:
                src, st, _, env = copies[name]
                run_child([sys.executable, "-m", "agentkpi", "ingest", "--rescan", "--quiet",
                           "--source", str(src), *where[name]],
                          f"{name}: the daily full listing before {hour:%Y-%m-%d}", env)
        for name, _ in order:
            src, st, out, env = copies[name]
            added = append(src, hour, args.per_hour)
            load, at = loadavg(), time.strftime("%H:%M:%S", time.gmtime())
            r = run_child(_rollup(src, where[name], out, hour), f"{name} {hour:%Y-%m-%dT%H}",
                          env)
            (workdir / name / "newest_hour.txt").write_text(hour.isoformat())
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


def _rollup(src: Path, where: list[str], out: Path, hour: datetime) -> list[str]:
    """``agentkpi rollup`` of ``hour`` (``rollup_cmd``'s, on the store ``where`` names)."""
    cmd = rollup_cmd(src, Path("STORE"), out, hour, None)
    at = cmd.index("--store")
    return [*cmd[:at], *where, *cmd[at + 2:]]


def _newest(wd: Path, store: Path) -> datetime:
    """The newest hour of a copy: the last one this benchmark ran there, else the
    store's."""
    mark = wd / "newest_hour.txt"
    if mark.exists():
        return datetime.fromisoformat(mark.read_text())
    return newest_hour(store if not (wd / "store.duckdb").exists() else wd / "store.duckdb")


def _prepare_clickhouse(source: Path, wd: Path, link: bool, env: dict, name: str
                        ) -> tuple[Path, Path]:
    """A copy of the dataset and a chDB store built from it by this version (once)."""
    src, st = wd / "source", wd / "chdb"
    if not (wd / "prepared.json").exists():
        shutil.rmtree(wd, ignore_errors=True)
        wd.mkdir(parents=True)
        print(f"[bench] copying {source} -> {src} ({'hard links' if link else 'files'})",
              flush=True)
        subprocess.run(["cp", "-al" if link else "-a", str(source), str(src)], check=True)
        run_child([sys.executable, "-m", "agentkpi", "ingest", "--quiet", "--source", str(src),
                   "--engine", "clickhouse", "--dsn", f"chdb://{st}"],
                  f"{name}: cold ingest into ClickHouse", env)
        (wd / "prepared.json").write_text(json.dumps({"source": str(source), "link": link}))
    return src, st


if __name__ == "__main__":
    sys.exit(main())
