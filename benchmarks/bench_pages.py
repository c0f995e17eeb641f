"""Every dashboard page's data, uncached, on one store: the time each view takes.

    python benchmarks/bench_pages.py STORE.duckdb [--repeat 3]

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
from agentkpi.store import DuckDBStore

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


def timed(path: str, fn: Callable[[Any], Any]) -> tuple[float, Any]:
    with DuckDBStore(path, read_only=True) as st:
        t0 = time.perf_counter()
        out = fn(st)
        return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with DuckDBStore(a.store, read_only=True) as st:
        counts = st.counts()
    print(f"store {a.store}: {counts}; cpu {cpu_model()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"| page | best | median (of {a.repeat}) |\n|---|---:|---:|")
    session_id = None
    for name, fn in PAGES:
        runs = []
        for _ in range(a.repeat):
            dt, out = timed(a.store, fn)
            runs.append(dt)
        if name == "sessions" and out["rows"]:
            session_id = out["rows"][0]["session_id"]
        print(f"| {name} | {min(runs) * 1000:.0f} ms | {statistics.median(runs) * 1000:.0f} ms |")
    if session_id:
        runs = [timed(a.store, lambda st: views.session_events(st, session_id))[0]
                for _ in range(a.repeat)]
        print(f"| session page (timeline) | {min(runs) * 1000:.0f} ms | "
              f"{statistics.median(runs) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
