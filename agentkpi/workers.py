"""Worker processes that never outlive the process that started them.

Ingest parses (and lists large local datasets) in a pool of worker processes. A
``kill -9`` of the ingest gives it no chance to stop its pool; :func:`worker_pool`
makes every worker end when its parent is gone.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

#: How much lower than the parent the ingest's parse workers run (``nice`` increment).
#: The parent writes to the store, alone, while every worker parses: when they compete
#: for the cores (three busy processes on two), the writer, the pipeline's narrowest
#: stage, keeps its core and the workers share what is left (BENCHMARKS.md §11).
PARSE_NICENESS = 5


def worker_pool(max_workers: int, niceness: int = 0) -> ProcessPoolExecutor:
    """A process pool whose workers die with this process and run ``niceness`` lower."""
    return ProcessPoolExecutor(max_workers=max_workers, initializer=die_with_parent,
                               initargs=(os.getpid(), niceness))


def die_with_parent(parent: int, niceness: int = 0) -> None:
    """Worker initializer: Linux delivers SIGKILL when the parent dies
    (``PR_SET_PDEATHSIG``); a watchdog thread covers other systems. ``niceness``:
    lower the worker's priority by that much (where the system allows it)."""
    if niceness:
        try:
            os.nice(niceness)
        except (OSError, AttributeError):  # no nice() on this system: same priority
            pass
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="agentkpi-parent-watch", daemon=True).start()
