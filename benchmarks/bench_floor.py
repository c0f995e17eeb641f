"""The floor of a cold ingest on this machine: the steps no implementation can skip, alone.

    python benchmarks/bench_floor.py --source /tmp/akscale/source-200000 \\
        --store /tmp/s7/cold200k.duckdb --workdir /tmp/floor [--baseline-hours 2]

Each step runs on its own, with nothing else to do, so its time is a lower bound for what
a whole ingest spends on it:

1. ``read``: every session file read, one process per CPU (no parsing);
2. ``decode``: read, then orjson of the file and of its ``events`` text (JSON only: no field
   rules, no columns, nothing kept);
3. ``store``: the events of ``--store`` (a store built from the same dataset), already
   columnar in memory, inserted into a fresh store with agentkpi's schema and committed
   (and again without the raw ``data`` column, the one column a leaner store could drop);
4. ``aggregates``: the aggregate tables the dashboard reads, built from those events
   (``build_aggregates(force=True)``).

Run it twice in a row: the first ``read`` may come from disk. Prints each step's wall and
CPU time (all threads and workers), the floor of a cold ingest that keeps all four (their
CPU over the CPUs: the steps can overlap, they cannot share a core's second), and with the
seed-style baseline measured in the same run (``baseline_seed.py`` on ``--baseline-hours``
of the 48 hours, as ``bench_scaling.py``) the highest cold ratio such an ingest could reach,
with and without the aggregate tables.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench_scaling import bench_baseline  # benchmarks/ is on sys.path


def _files(root: Path) -> list[str]:
    out: list[str] = []
    for day in sorted(os.scandir(root / "sessions"), key=lambda e: e.name):
        out.extend(e.path for e in os.scandir(day.path) if e.name.endswith(".jsonl"))
    return out


def _read(paths: list[str], decode: bool) -> tuple[int, int, float]:
    import orjson

    t = time.process_time()
    size = events = 0
    for p in paths:
        with open(p, "rb") as fh:
            raw = fh.read()
        size += len(raw)
        if decode:
            row = orjson.loads(raw)
            ev = row.get("events") if isinstance(row, dict) else None
            if isinstance(ev, str):
                ev = orjson.loads(ev)
            events += len(ev) if isinstance(ev, list) else 0
    return size, events, time.process_time() - t


def step_files(paths: list[str], decode: bool, cpus: int) -> dict:
    t = time.perf_counter()
    with ProcessPoolExecutor(cpus) as pool:
        parts = list(pool.map(_read, [paths[i::cpus] for i in range(cpus)], [decode] * cpus))
    return {"wall_s": time.perf_counter() - t, "cpu_s": sum(p[2] for p in parts),
            "bytes": sum(p[0] for p in parts), "events": sum(p[1] for p in parts)}


def step_store(store: Path, workdir: Path) -> tuple[dict, dict, dict]:
    import duckdb

    with duckdb.connect(str(store), read_only=True) as con:
        events = con.sql("SELECT * FROM events").to_arrow_table()
    lean = _insert(events.drop_columns(["data"]), workdir / "floor-lean.duckdb", False)[0]
    ins, agg = _insert(events, workdir / "floor.duckdb", True)
    return ins, lean, agg


def _insert(events: Any, fresh: Path, build: bool) -> tuple[dict, dict]:
    from agentkpi.store import DuckDBStore

    for p in (fresh, Path(f"{fresh}.wal")):
        p.unlink(missing_ok=True)
    st = DuckDBStore(fresh)
    try:
        con = st.con
        t, c = time.perf_counter(), time.process_time()
        con.register("_floor_events", events)
        con.execute("BEGIN")
        con.execute("INSERT INTO events BY NAME SELECT * FROM _floor_events")
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
        ins = {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
               "events": events.num_rows}
        con.unregister("_floor_events")
        del events
        if not build:
            return ins, {}
        t, c = time.perf_counter(), time.process_time()
        built = st.build_aggregates(force=True)
        agg = {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
               "tables": len(built)}
    finally:
        st.close()
        shutil.rmtree(f"{fresh}.tmp", ignore_errors=True)
        for p in (fresh, Path(f"{fresh}.wal")):
            p.unlink(missing_ok=True)
    return ins, agg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, help="a session dataset (read only)")
    ap.add_argument("--store", required=True, help="a DuckDB store built from it (read only)")
    ap.add_argument("--workdir", required=True, help="the fresh store goes here")
    ap.add_argument("--hours", type=int, default=48, help="hours the dataset spans")
    ap.add_argument("--baseline-hours", type=int, default=2,
                    help="seed-style hours to time (0: no baseline, no ratio)")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cpus = os.cpu_count() or 1
    paths = _files(Path(args.source))
    steps = {"read": step_files(paths, False, cpus), "decode": step_files(paths, True, cpus)}
    steps["store"], steps["store without data"], steps["aggregates"] = step_store(
        Path(args.store), workdir)
    print(f"{len(paths):,} files, {steps['decode']['events']:,} events, "
          f"{steps['read']['bytes'] / 1e9:.2f} GB, {cpus} CPUs, "
          f"load {os.getloadavg()[0]:.1f}\n")
    print("| step | wall | CPU |\n|---|---:|---:|")
    for name, s in steps.items():
        print(f"| {name} | {s['wall_s']:.2f} s | {s['cpu_s']:.2f} s |")
    need = steps["decode"]["cpu_s"] + steps["store"]["cpu_s"]
    floors = {"decode + store without the raw `data`":
              (steps["decode"]["cpu_s"] + steps["store without data"]["cpu_s"]) / cpus,
              "decode + store": need / cpus,
              "decode + store + aggregates": (need + steps["aggregates"]["cpu_s"]) / cpus}
    print()
    for name, f in floors.items():
        print(f"floor of a cold ingest doing {name}: {f:.2f} s (CPU over {cpus} CPUs)")
    if args.baseline_hours:
        base = bench_baseline(Path(args.source), args.hours, args.baseline_hours)
        b48 = base.get("seconds_48h")
        if b48:
            print(f"\nseed-style baseline: {base['seconds_per_hour']} s per hour, "
                  f"{b48} s for {args.hours} h; 100x would be {b48 / 100:.2f} s")
            for name, f in floors.items():
                print(f"highest cold ratio with {name}: {b48 / f:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
