"""Scaling curve: cold rollup, incremental hour, store size, peak memory, dashboard overview
and export memory at several dataset sizes, on DuckDB and on ClickHouse (chDB), with the
seed-style baseline beside each.

    python benchmarks/bench_scaling.py --sizes 20000,200000 --workdir /tmp/akscale \\
        [--outdir DIR] [--engines duckdb,clickhouse] [--baseline-hours 2] [--json-out FILE]

Per size N (dataset: ``generate_sessions(N, 2026-05-20T00Z, 48 h, seed 0)``, reused
between runs; ``bench_rollup.py`` makes and restores it):

* baseline: ``benchmarks/baseline_seed.py`` on ``--baseline-hours`` hours spread over the
  48, extrapolated to 48 (measured in the same run, so the ratio holds under load);
* per engine, each step a child process (wall seconds, peak RSS via ``wait4``):
  cold ``agentkpi rollup`` of the 48 hours into a fresh store; one more hour of
  N/48 sessions appended and rolled up (the hourly cron run); store size on disk;
  the dashboard's overview (7 days hourly + totals, ``agentkpi.views.overview``)
  and the by-user breakdown, computed in a fresh process (nothing cached);
  ``agentkpi export events`` to Parquet (DuckDB only) with its peak RSS.

Prints one markdown table per engine plus the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench_rollup import (  # benchmarks/ is on sys.path
    _BASELINE_CHILD,
    HERE,
    START,
    append_new_hour,
    ensure_dataset,
    hour_arg,
    machine,
    pick_hours,
    run_child,
)

_DASHBOARD_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from agentkpi.store import open_store
from agentkpi import views as data
st = open_store({engine!r}, {dsn!r}, {path!r}, read_only=True)
t1 = time.perf_counter()
o = data.overview(st)
t2 = time.perf_counter()
b = data.breakdown(st, "user")
t3 = time.perf_counter()
o2 = data.overview(st, grain="day")
t4 = time.perf_counter()
print(json.dumps({{"open_s": t1 - t0, "overview_s": t2 - t1, "by_user_s": t3 - t2,
                   "overview_day_s": t4 - t3, "users": b["total_rows"],
                   "sessions": o["totals"].get("sessions")}}))
"""


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def bench_engine(engine: str, src: Path, workdir: Path, n: int, hours: int) -> dict:
    end = START + timedelta(hours=hours)
    tag = f"{engine}-{src.name}"
    out = workdir / f"out-{tag}"
    if engine == "duckdb":
        loc = workdir / f"store-{tag}.duckdb"
        for p in workdir.glob(loc.name + "*"):
            p.unlink()
        where = ["--store", str(loc)]
        dsn = None
    else:
        loc = workdir / f"chdb-{tag}"
        shutil.rmtree(loc, ignore_errors=True)
        dsn = f"chdb://{loc}"
        where = ["--engine", "clickhouse", "--dsn", dsn]
    shutil.rmtree(out, ignore_errors=True)
    rollup = [sys.executable, "-m", "agentkpi", "rollup", "--quiet", "--source", str(src),
              "--target", str(out), *where]
    res: dict = {"engine": engine, "load_before": loadavg()}
    res["cold"] = run_child(rollup + ["--from", hour_arg(START), "--to", hour_arg(end)],
                            f"{engine} {n:,}: cold rollup {hours} h")
    n_new = max(1, n // hours)
    res["append"] = append_new_hour(workdir, src, end, n_new, 0)
    res["incremental"] = run_child(
        rollup + ["--from", hour_arg(end), "--to", hour_arg(end + timedelta(hours=1))],
        f"{engine} {n:,}: incremental hour (+{n_new:,} sessions)")
    res["store_bytes"] = size_of(loc)
    code = _DASHBOARD_CHILD.format(engine=engine, dsn=dsn, path=str(loc))
    dash = run_child([sys.executable, "-c", code], f"{engine} {n:,}: dashboard overview")
    if dash["returncode"] == 0:
        dash.update(json.loads(dash["_stdout"].strip().splitlines()[-1]))
    res["dashboard"] = dash
    if engine == "duckdb":
        res["export"] = run_child(
            [sys.executable, "-m", "agentkpi", "export", "events", "--format", "parquet",
             "--out", str(workdir / f"events-{tag}.parquet"), "--store", str(loc)],
            f"{engine} {n:,}: export events to Parquet")
        (workdir / f"events-{tag}.parquet").unlink(missing_ok=True)
    for rel in json.loads((workdir / f"{src.name}.appended.json").read_text()):
        (src / rel).unlink(missing_ok=True)
    (workdir / f"{src.name}.appended.json").unlink()
    res["load_after"] = loadavg()
    for v in res.values():
        if isinstance(v, dict):
            v.pop("_stdout", None)
            v.pop("stdout_tail", None)
    return res


def bench_baseline(src: Path, hours: int, k: int) -> dict:
    timed_hours = pick_hours(START, hours, k)
    code = _BASELINE_CHILD.format(here=str(HERE), root=str(src),
                                  hours=[h.isoformat() for h in timed_hours])
    res = run_child([sys.executable, "-c", code], f"baseline, {len(timed_hours)} h timed")
    if res["returncode"] == 0:
        per_hour = json.loads(res.pop("_stdout"))
        timed = sum(v["seconds"] for v in per_hour.values())
        res["seconds_per_hour"] = round(timed / len(timed_hours), 3)
        res["seconds_48h"] = round(timed / len(timed_hours) * hours, 1)
        res["hours_timed"] = len(timed_hours)
    res.pop("stdout_tail", None)
    return res


def report(n: int, info: dict, base: dict, runs: list[dict]) -> None:
    b48 = base.get("seconds_48h")
    bh = base.get("seconds_per_hour")
    print(f"\n### {n:,} sessions ({info['n_events']:,} events, {info['bytes'] / 1e9:.2f} GB)\n")
    print(f"Baseline (seed-style, extrapolated from {base.get('hours_timed')} hour(s)): "
          f"{bh} s per hour, ~{b48} s for 48 h, peak {base.get('peak_rss_mb')} MB.\n")
    print("| engine | cold 48 h | vs baseline | cold peak RSS | incremental hour | inc. peak RSS "
          "| store | overview (7 d hourly + totals) | by user | export peak RSS | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in runs:
        c, i, d = r["cold"], r["incremental"], r["dashboard"]
        ok = c["returncode"] == 0
        ratio = f"{b48 / c['seconds']:.0f}x" if (b48 and ok) else ""
        exp = r.get("export")
        print(f"| {r['engine']} | {c['seconds']:.1f} s{'' if ok else ' FAILED'} | {ratio} | "
              f"{c['peak_rss_mb']:.0f} MB | {i['seconds']:.2f} s | {i['peak_rss_mb']:.0f} MB | "
              f"{r['store_bytes'] / 1e6:.0f} MB | {d.get('overview_s', float('nan')):.2f} s | "
              f"{d.get('by_user_s', float('nan')):.2f} s | "
              f"{(str(round(exp['peak_rss_mb'])) + ' MB') if exp else '—'} | "
              f"{r['load_before']} → {r['load_after']} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="20000,200000")
    ap.add_argument("--workdir", default="/tmp/akscale")
    ap.add_argument("--outdir", help="stores and outputs here (default: --workdir); the "
                                     "datasets stay in --workdir")
    ap.add_argument("--engines", default="duckdb,clickhouse")
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--baseline-hours", type=int, default=2)
    ap.add_argument("--gen-workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json-out")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    outdir = Path(args.outdir or args.workdir)
    outdir.mkdir(parents=True, exist_ok=True)
    everything = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime()), "sizes": {}}
    for n in (int(x) for x in args.sizes.split(",")):
        src, info = ensure_dataset(workdir, n, 0, args.hours, args.gen_workers)
        base = bench_baseline(src, args.hours, args.baseline_hours)
        runs = [bench_engine(e, src, outdir, n, args.hours) for e in args.engines.split(",")]
        report(n, info, base, runs)
        everything["sizes"][n] = {"dataset": info, "baseline": base, "runs": runs}
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(everything, indent=1, default=str))
    m = everything["machine"]
    print(f"\nMachine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, Python "
          f"{m['python']}, DuckDB {m['duckdb']}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
