"""Every dashboard page's data, uncached, on one store: the time each view takes.

    python benchmarks/bench_pages.py STORE.duckdb [--repeat 3]
    python benchmarks/bench_pages.py chdb:///path/to/dir --engine clickhouse [--repeat 3]

Calls the view functions behind the pages (``agentkpi.views``: what the JSON twins
return) on a freshly opened read-only store, ``--repeat`` times each, and prints the
best and the median wall time per page, with the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import cpu_model

from agentkpi import views
from agentkpi.store import open_store

PAGES: list[tuple[str, Callable[[Any], Any]]] = [
    ("overview", lambda st: views.overview(st)),
    ("costs", lambda st: views.costs(st)),
    ("sources", lambda st: views.sources(st)),
    ("alerts (no rules file)", lambda st: views.alert_states(st, None)),
    ("breakdown model", lambda st: views.breakdown(st, "model")),
    ("breakdown tool", lambda st: views.breakdown(st, "tool")),
    ("breakdown user", lambda st: views.breakdown(st, "user")),
    ("sessions", lambda st: views.sessions(st)),
]


ENGINE = "duckdb"


def opened(where: str) -> Any:
    if ENGINE == "duckdb":
        return open_store("duckdb", path=where, read_only=True)
    return open_store(ENGINE, dsn=where, read_only=True)


CPU: list[float] = []  # process CPU seconds (every thread) of the last timed call


def timed(where: str, fn: Callable[[Any], Any]) -> tuple[float, Any]:
    st = opened(where)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(st)
        CPU.append(time.process_time() - c0)
        return time.perf_counter() - t0, out
    finally:
        st.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store", help="a DuckDB file, or a DSN with --engine clickhouse")
    ap.add_argument("--engine", default="duckdb", choices=["duckdb", "clickhouse"])
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    global ENGINE
    ENGINE = a.engine
    st = opened(a.store)
    try:
        counts, tables = st.counts(), sorted(st.aggregates)
    finally:
        st.close()
    print(f"store {a.store} ({a.engine}): {counts}; aggregate tables {tables}; "
          f"cpu {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"| page | best | median (of {a.repeat}) | CPU (best) | load |\n"
          "|---|---:|---:|---:|---:|")
    session_id = None
    for name, fn in PAGES:
        runs = []
        CPU.clear()
        for _ in range(a.repeat):
            dt, out = timed(a.store, fn)
            runs.append(dt)
        if name == "sessions" and out["rows"]:
            session_id = out["rows"][0]["session_id"]
        print(f"| {name} | {min(runs) * 1000:.0f} ms | {statistics.median(runs) * 1000:.0f} ms "
              f"| {min(CPU) * 1000:.0f} ms | {os.getloadavg()[0]:.1f} |", flush=True)
    if session_id:
        CPU.clear()
        runs = [timed(a.store, lambda st: views.session_events(st, session_id))[0]
                for _ in range(a.repeat)]
        print(f"| session page (timeline) | {min(runs) * 1000:.0f} ms | "
              f"{statistics.median(runs) * 1000:.0f} ms | {min(CPU) * 1000:.0f} ms | "
              f"{os.getloadavg()[0]:.1f} |")


if __name__ == "__main__":
    main()
