"""Crash safety: kill -9 a writer mid-stream; everything acknowledged survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest

from agentkpi.quality import Quality
from agentkpi.sdk.eventlog import decompress, iter_lines, list_segments, read_events
from agentkpi.sources import eventlog as eventlog_source

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import os, sys, agentkpi
print(os.getpid(), flush=True)
# one UTC day (2026-05-20 12:00): a wall-clock midnight would start one more segment
r = agentkpi.Recorder(sys.argv[1], durability=sys.argv[2], max_segment_bytes=int(sys.argv[3]),
                      on_full='block', clock=lambda: 1779278400.0)
i = 0
while True:
    for _ in range(250):
        r.record('metric', session_id='crash', value=i, pad='z' * 50)
        i += 1
    r.flush()
    print(i, flush=True)   # acknowledged: everything < i is on disk
"""


def _run_and_kill(log: Path, durability: str, segment_bytes: int, until: int) -> tuple[int, int]:
    """Run the child until ``until`` events are acknowledged, kill -9 it;
    returns (pid, acknowledged count)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(log), durability,
                          str(segment_bytes)], env=env, stdout=subprocess.PIPE, text=True)
    acked = 0
    try:
        assert p.stdout is not None
        pid = int(p.stdout.readline())
        for line in p.stdout:
            acked = int(line)
            if acked >= until:
                break
        # keep it writing a little longer so the kill lands mid-stream
        for _ in range(3):
            line = p.stdout.readline()
            if line:
                acked = int(line)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    return pid, acked


def _values(log: Path) -> tuple[list[int], int]:
    events, bad = read_events(log)
    return [e["data"]["value"] for e in events], bad


@pytest.mark.parametrize("durability", ["batch", "os"])
def test_kill_9_keeps_every_acknowledged_event(tmp_path: Path, durability: str) -> None:
    log = tmp_path / "log"
    _, acked = _run_and_kill(log, durability, 200_000, until=30_000)
    values, bad = _values(log)
    assert bad <= 1                                  # at most one torn last line
    assert values[:acked] == list(range(acked))     # every acknowledged event, in order
    assert values == list(range(len(values)))       # nothing damaged, duplicated or reordered
    # a torn line can only be the very last line of the newest segment
    for seg in list_segments(log)[:-1]:
        plain, complete = decompress(seg.path.name, seg.path.read_bytes())
        assert complete and all(o is not None for _, o in iter_lines(plain))


def test_restart_after_kill_appends_without_touching_old_data(tmp_path: Path) -> None:
    log = tmp_path / "log"
    pid1, acked1 = _run_and_kill(log, "batch", 100_000, until=5_000)
    before = {s.path.name: s.path.read_bytes() for s in list_segments(log)}
    pid2, acked2 = _run_and_kill(log, "batch", 100_000, until=5_000)
    for name, raw in before.items():   # the first run's files are untouched (or compressed
        seg = log / name               # by nobody: the dead writer's last segment stays)
        if seg.exists():
            assert seg.read_bytes() == raw
    events, bad = read_events(log)
    assert bad <= 2
    by_pid: dict[int, list[int]] = {}
    for e in events:
        by_pid.setdefault(int(e["id"].split("-")[0]), []).append(e["data"]["value"])
    assert set(by_pid) == {pid1, pid2}
    for pid, acked in ((pid1, acked1), (pid2, acked2)):
        vals = by_pid[pid]
        assert vals == list(range(len(vals))) and len(vals) >= acked


def test_eventlog_source_reads_a_torn_last_line_gracefully(tmp_path: Path) -> None:
    log = tmp_path / "log"
    _run_and_kill(log, "os", 10_000_000, until=2_000)
    (seg,) = list_segments(log)
    with open(seg.path, "ab") as f:
        f.write(b'{"id":"torn","seq":99,"ts":"2026-05-20T14:00:00Z","session_id":"cra')
    raw = seg.path.read_bytes()
    q = Quality()
    batch = eventlog_source.parse_file(str(seg.path), raw, q)
    n_lines = raw.count(b"\n")
    assert batch.n_events == n_lines
    assert q.counts["line_bad_json"] == 1
    assert batch.events["session_id"][-1] == "crash"
    fs = fsspec.filesystem("file")
    assert eventlog_source.detect(fs, str(log))
    assert list(eventlog_source.list_files(fs, str(log))) == [str(seg.path)]
