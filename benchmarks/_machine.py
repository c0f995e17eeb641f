"""Facts about the machine a benchmark ran on (shared by the benchmark scripts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def cpu_model(default: str = "unknown") -> str:
    """The CPU model name from /proc/cpuinfo, or ``default``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default


# A child forked from a large process starts with that process's resident set, and Linux
# keeps it as the child's high-water mark through exec: ``wait4``'s ``ru_maxrss`` of a
# command started by a benchmark that holds 5 GB says 5 GB, whatever the command used.
# So commands are started by this small launcher (``python -S``, ~10 MB), which forks and
# execs the command and reports the command's own rusage (its tree's, with its reaped
# workers) and wall time, measured around the fork.
_LAUNCHER = r"""
import json, os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t
with open(out, "w") as fh:
    json.dump({"wall_s": wall, "maxrss_kb": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime}, fh)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def measured_popen(cmd: list[str], report: str, **popen: object) -> subprocess.Popen:
    """Start ``cmd`` under the launcher above; once it has exited, :func:`measured` reads
    ``report`` (a scratch file path): wall seconds, peak RSS and CPU of ``cmd`` alone."""
    return subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, report, *cmd],
                            **popen)  # type: ignore[call-overload]


def measured(report: str) -> dict[str, float]:
    """``{"wall_s", "peak_rss_mb", "cpu_s"}`` written by the launcher of :func:`measured_popen`."""
    with open(report) as fh:
        r = json.load(fh)
    os.remove(report)
    return {"wall_s": r["wall_s"], "peak_rss_mb": r["maxrss_kb"] / 1024, "cpu_s": r["cpu_s"]}
