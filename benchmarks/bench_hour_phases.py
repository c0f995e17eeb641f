"""Where one hourly cron run's time goes: phases and SQL statements, in-process.

    python benchmarks/bench_hour_phases.py --source WORKDIR/source --store WORKDIR/store.duckdb \\
        --hour 2026-05-22T14 [--sessions 4166] [--top 25]

Appends ``--sessions`` new sessions starting in ``--hour`` to the source, in a child
process (as ``bench_incremental.py`` does; use that script's workdir copies, never a
dataset you keep), then starts as the program does (``agentkpi.startup.prepare``: numpy
and pandas kept out, the newest day folder read by a child while the libraries import) and
runs ``agentkpi.rollups.rollup`` for that hour in this process, as the CLI does, with
timers around the ingest's phases and the store's methods, and around every SQL statement
the store runs. Prints the wall and CPU time of each (CPU of this process;
the parse workers' CPU is reported once as ``children``), slowest first.

The timers cost a few milliseconds in all; the run's total is the CLI's minus its
start-up (``imports`` is printed apart). The figures vary from run to run by 10-20% on
this machine kind: compare two versions by alternating them (``--code`` runs another
checkout's ``agentkpi`` in a child process with the same arguments).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def _faults() -> int:
    """Minor page faults of this process so far (each costs ~4 us of system time here)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class _Timers:
    def __init__(self) -> None:
        self.stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0])

    def add(self, key: str, wall: float, cpu: float, faults: int) -> None:
        s = self.stats[key]
        s[0] += 1
        s[1] += wall
        s[2] += cpu
        s[3] += faults

    @contextmanager
    def timing(self, key: str) -> Iterator[None]:
        t, c, f = time.perf_counter(), time.process_time(), _faults()
        try:
            yield
        finally:
            self.add(key, time.perf_counter() - t, time.process_time() - c, _faults() - f)

    def wrap(self, owner: Any, name: str, label: str) -> None:
        fn: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.timing(label):
                return fn(*args, **kwargs)

        setattr(owner, name, timed)


class _Connection:
    """A DuckDB connection whose ``execute`` is timed per statement (its first 90 chars)."""

    def __init__(self, con: Any, timers: _Timers) -> None:
        self._con, self._timers = con, timers

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        with self._timers.timing("SQL " + " ".join(sql.split())[:90]):
            return self._con.execute(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


_APPEND = """import sys
from datetime import datetime
from agentkpi.generate import append_hour
hour = datetime.strptime(sys.argv[2], "%Y-%m-%dT%H")
append_hour(sys.argv[1], hour, int(sys.argv[3]), seed=int(hour.timestamp()) % 1000)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="a session dataset (a scratch copy)")
    ap.add_argument("--store", required=True, help="its DuckDB store (a scratch copy)")
    ap.add_argument("--hour", required=True, help="YYYY-MM-DDTHH of the new sessions")
    ap.add_argument("--sessions", type=int, default=4166)
    ap.add_argument("--top", type=int, default=25, help="lines to print")
    ap.add_argument("--code", help="run another checkout (its directory) in a child process")
    args = ap.parse_args()
    if args.code:
        at = sys.argv.index("--code")  # the same arguments, without --code DIR
        argv = sys.argv[1:at] + sys.argv[at + 2:]
        env = dict(os.environ, PYTHONPATH=args.code)
        return subprocess.run([sys.executable, __file__, *argv], env=env).returncode

    # The new hour's sessions land first, written by another process (as they land before
    # a cron run starts), so that this process starts as the program does.
    subprocess.run([sys.executable, "-c", _APPEND, args.source, args.hour, str(args.sessions)],
                   check=True, env={**os.environ, "PYTHONSAFEPATH": "1"})
    t0 = time.perf_counter()
    try:  # what the agentkpi program does first (numpy and pandas kept out, the newest day
        # folder read by a child meanwhile); code older than agentkpi.startup: below
        from agentkpi.startup import prepare

        prepare(["agentkpi", "rollup", "--source", args.source])
        lean = True
    except ImportError:
        lean = False
    import agentkpi.ingestion as ingestion
    import agentkpi.rollups as rollups
    from agentkpi.store.duckdb import DuckDBStore

    imports = time.perf_counter() - t0
    if not lean:
        ingestion.without_pandas()
    timers = _Timers()
    timers.wrap(ingestion, "_list", "ingest._list")
    for name in ("compute_rows", "write_files"):
        timers.wrap(rollups, name, f"rollup.{name}")
    for name in ("write_batch", "changed_files", "skipped_files", "live_files",
                 "save_scan_state", "record_audit", "fetch", "counts", "close"):
        timers.wrap(DuckDBStore, name, f"store.{name}")
    c0 = os.times()
    f0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    store = DuckDBStore(args.store)
    opened = time.perf_counter() - t
    store.con = _Connection(store.con, timers)  # type: ignore[assignment]
    t = time.perf_counter()
    result = rollups.rollup(os.path.join(os.path.dirname(args.store), "hour-phases-out"),
                            source=args.source, store=store, at=args.hour)
    run = time.perf_counter() - t
    t = time.perf_counter()
    store.close()
    closed = time.perf_counter() - t
    c1 = os.times()
    f1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    own = c1.user - c0.user + c1.system - c0.system
    children = c1.children_user - c0.children_user + c1.children_system - c0.children_system
    files = result.ingest.files_read if result.ingest else 0
    events = result.ingest.events if result.ingest else 0
    print(f"imports {imports:.3f} s  open {opened:.3f} s  rollup {run:.3f} s  "
          f"close {closed:.3f} s  ({files} files, {events} events)  CPU: this process "
          f"{own:.2f} s (system {c1.system - c0.system:.2f} s), parse workers {children:.2f} s "
          f"(system {c1.children_system - c0.children_system:.2f} s)\n"
          f"minor page faults: this process {f1[0].ru_minflt - f0[0].ru_minflt:,}, "
          f"parse workers {f1[1].ru_minflt - f0[1].ru_minflt:,}")
    print(f"{'wall':>9} {'CPU':>9} {'faults':>7}  calls  what")
    for key, (n, wall, cpu, faults) in sorted(timers.stats.items(), key=lambda kv: -kv[1][1])[
            :args.top]:
        print(f"{wall * 1000:6.0f} ms {cpu * 1000:6.0f} ms {int(faults):7,}  x{int(n):<4} {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
