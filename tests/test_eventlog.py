"""Event log on disk: segments, rotation, compression, retention, many writers."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkpi.sdk import Recorder
from agentkpi.sdk.eventlog import (
    SEGMENT_RE,
    EventLogWriter,
    apply_retention,
    decompress,
    list_segments,
    read_events,
)

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("raise_errors")  # tests/conftest.py


#: A clock for tests that count segments: the wall clock's UTC midnight would add one.
NOON = datetime(2026, 5, 20, 12, tzinfo=UTC)


def _noon() -> datetime:
    return NOON


def _fill(rec: Recorder, n: int, session: str = "s") -> None:
    for i in range(n):
        rec.record("metric", session_id=session, name="n", value=i, pad="p" * 60)


def test_segment_names_carry_time_pid_and_counter(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, clock=_noon)
    _fill(rec, 10)
    rec.close()
    names = os.listdir(tmp_path)
    assert len(names) == 1
    m = SEGMENT_RE.match(names[0])
    assert m and int(m.group(2)) == os.getpid()
    assert names[0].endswith(".jsonl")


@pytest.mark.parametrize("compression,suffix", [("gzip", ".gz"), ("zstd", ".zst"),
                                                (None, "")])
def test_size_rotation_compresses_closed_segments_and_loses_nothing(
        tmp_path: Path, compression: str | None, suffix: str) -> None:
    rec = Recorder(tmp_path, max_segment_bytes=40_000, compression=compression,
                   durability="os")
    n = 20_000
    _fill(rec, n)
    rec.close()
    segs = list_segments(tmp_path)
    assert len(segs) > 20
    closed, last = segs[:-1], segs[-1]
    assert all(s.path.name.endswith(".jsonl" + suffix) for s in closed)
    assert last.path.name.endswith(".jsonl")
    for s in closed:
        plain, complete = decompress(s.path.name, s.path.read_bytes())
        assert complete and len(plain) < 40_000 + 20_000  # rotated near the limit
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    events, bad = read_events(tmp_path)
    assert bad == 0
    assert [e["data"]["value"] for e in events] == list(range(n))
    assert len({e["id"] for e in events}) == n


def test_rotation_at_utc_day_boundary(tmp_path: Path) -> None:
    t = [datetime(2026, 5, 20, 23, 59, 59, tzinfo=UTC)]
    rec = Recorder(tmp_path, clock=lambda: t[0], compression=None)
    for _ in range(3):
        rec.record("metric", session_id="s", value=1)
    rec.flush()
    t[0] = datetime(2026, 5, 21, 0, 0, 1, tzinfo=UTC)
    for _ in range(3):
        rec.record("metric", session_id="s", value=2)
    rec.close()
    segs = list_segments(tmp_path)
    assert [s.stamp for s in segs] == ["20260520T235959", "20260521T000001"]
    for s, day in zip(segs, ("2026-05-20", "2026-05-21"), strict=True):
        evs = [e for e in read_events_file(s.path)]
        assert len(evs) == 3 and all(e["ts"].startswith(day) for e in evs)


def test_day_change_inside_one_batch_splits_the_batch(tmp_path: Path) -> None:
    ticks = iter([datetime(2026, 5, 20, 23, 59, 59, 900000), datetime(2026, 5, 21, 0, 0, 0),
                  datetime(2026, 5, 21, 0, 0, 0, 100)])
    rec = Recorder(tmp_path, clock=lambda: next(ticks), compression=None, flush_interval=30)
    for _ in range(3):
        rec.record("metric", session_id="s", value=1)
    rec.close()
    assert [len(read_events_file(s.path)) for s in list_segments(tmp_path)] == [1, 2]


def read_events_file(path: Path) -> list[dict]:
    from agentkpi.sdk.eventlog import iter_lines

    plain, _ = decompress(path.name, path.read_bytes())
    return [o for _, o in iter_lines(plain) if o is not None]


def test_retention_by_count_keeps_the_newest_segments_under_load(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, max_segment_bytes=20_000, retention_count=3, durability="os")
    _fill(rec, 10_000)
    rec.close()
    segs = list_segments(tmp_path)
    counters = [int(SEGMENT_RE.match(s.path.name).group(3)) for s in segs]  # type: ignore
    assert len(counters) > 0 and max(counters) > 10  # it did rotate many times
    # exactly the three newest closed segments (compressed) and the last one
    assert counters == list(range(max(counters) - 3, max(counters) + 1))
    assert [bool(s.compression) for s in segs] == [True, True, True, False]
    events, bad = read_events(tmp_path)
    values = [e["data"]["value"] for e in events]
    assert bad == 0 and values[-1] == 9_999
    assert values == list(range(values[0], 10_000))  # a contiguous newest tail


def test_retention_by_total_bytes(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, max_segment_bytes=20_000, retention_total_bytes=30_000,
                   compression=None, durability="os")
    _fill(rec, 5_000)
    rec.close()
    segs = list_segments(tmp_path)
    counters = [int(SEGMENT_RE.match(s.path.name).group(3)) for s in segs]  # type: ignore
    sizes = [s.path.stat().st_size for s in segs]
    # the newest segments survive, and the closed ones among them fit the budget (retention
    # runs at rotation, when the new segment is empty); exact survivors of each limit are
    # pinned on fixed files in test_apply_retention_keeps_exactly_the_newest_allowed
    assert max(counters) > 5
    assert counters == list(range(max(counters) - len(counters) + 1, max(counters) + 1))
    assert sum(sizes[:-1]) <= 30_000
    events, bad = read_events(tmp_path)
    values = [e["data"]["value"] for e in events]
    assert bad == 0 and values == list(range(values[0], 5_000))


def _segments(tmp_path: Path, sizes: list[int], ages_days: list[float]) -> list[Path]:
    now = time.time()
    out = []
    for i, (size, age) in enumerate(zip(sizes, ages_days, strict=True)):
        p = tmp_path / f"events-20260101T0000{i:02d}-7-{i}.jsonl.gz"
        p.write_bytes(b"x" * size)
        os.utime(p, (now - age * 86400, now - age * 86400))
        out.append(p)
    return out


@pytest.mark.parametrize(("kw", "survivors"), [
    ({"count": 2}, [3, 4, 5]),                         # 2 newest closed + the live one
    ({"age": 1.5 * 86400}, [2, 3, 4, 5]),              # closed ones older than 1.5 days go
    ({"total_bytes": 350}, [3, 4, 5]),                 # 100+100 closed + 100 live <= 350
    ({"total_bytes": 10}, [5]),                        # the live one is never deleted
    ({"count": 3, "age": 2.5 * 86400}, [2, 3, 4, 5]),  # each limit applies
    ({"count": 0}, [5]),
    ({}, [0, 1, 2, 3, 4, 5]),                          # no limit: nothing deleted
])
def test_apply_retention_keeps_exactly_the_newest_allowed(tmp_path: Path, kw: dict,
                                                         survivors: list[int]) -> None:
    paths = _segments(tmp_path, [100] * 5, [5, 4, 1, 1, 1])
    live = tmp_path / "events-20260101T000005-7-5.jsonl"
    live.write_bytes(b"y" * 100)
    paths.append(live)
    deleted = apply_retention(tmp_path, live=live, **kw)
    assert sorted(os.listdir(tmp_path)) == sorted(paths[i].name for i in survivors)
    assert sorted(deleted) == sorted(p for i, p in enumerate(paths) if i not in survivors)


def test_retention_by_age_deletes_only_old_closed_segments(tmp_path: Path) -> None:
    old = tmp_path / "events-20200101T000000-1-0.jsonl.gz"
    old.write_bytes(gzip.compress(b'{"id":"x","event_type":"metric"}\n'))
    past = time.time() - 3 * 86400
    os.utime(old, (past, past))
    other_live = tmp_path / "events-20200101T000000-2-0.jsonl"  # newest of pid 2: may be live
    other_live.write_bytes(b"")
    os.utime(other_live, (past, past))
    rec = Recorder(tmp_path, max_segment_bytes=5_000, retention_age=timedelta(days=1))
    _fill(rec, 500)
    rec.close()
    names = os.listdir(tmp_path)
    assert old.name not in names
    assert other_live.name in names


def test_apply_retention_never_deletes_the_live_segment(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"events-20260101T00000{i}-7-{i}.jsonl.gz").write_bytes(b"x")
    live = tmp_path / "events-20260101T000009-7-9.jsonl"
    live.write_bytes(b"y")
    deleted = apply_retention(tmp_path, count=0, live=live)
    assert len(deleted) == 5 and os.listdir(tmp_path) == [live.name]


def test_compressed_twin_wins_after_a_crash_between_rename_and_delete(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, compression=None, clock=_noon)
    _fill(rec, 100)
    rec.close()
    (seg,) = list_segments(tmp_path)
    twin = seg.path.with_name(seg.path.name + ".gz")
    twin.write_bytes(gzip.compress(seg.path.read_bytes()))
    assert [s.path for s in list_segments(tmp_path)] == [twin]
    events, bad = read_events(tmp_path)
    assert (len(events), bad) == (100, 0)


def test_durability_always_writes_each_event(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, durability="always")
    _fill(rec, 200)
    rec.close()
    events, bad = read_events(tmp_path)
    assert (len(events), bad) == (200, 0)


def test_writer_restores_the_last_whole_line_after_a_failed_write(tmp_path: Path) -> None:
    w = EventLogWriter(tmp_path, compression=None)
    now = time.time()  # one instant: the line's day is the day it is written under
    day = int(now) // 86400
    line = w.format(now, "s", "metric", {"v": 1}, None)
    w.write(day, line)
    path = w.current_path
    assert path is not None
    good = path.read_bytes()
    os.close(w._fd)  # swap in a read-only descriptor: the next write fails
    w._fd = os.open(path, os.O_RDONLY)
    with pytest.raises(OSError):
        w.write(day, line * 3)
    w.write(day, line)  # starts a fresh segment, old data untouched
    assert path.read_bytes() == good
    events, bad = read_events(tmp_path)
    assert (len(events), bad) == (2, 0)


WRITER = r"""
import sys, agentkpi
k, n = int(sys.argv[1]), int(sys.argv[2])
r = agentkpi.Recorder(sys.argv[3], durability='batch', on_full='block',
                      max_segment_bytes=2_000_000)
for i in range(n):
    r.record('metric', session_id=f'p{k}', value=i)
r.close()
print(r.stats()['written'])
"""


def test_four_processes_share_one_directory_without_interleaving(tmp_path: Path) -> None:
    log = tmp_path / "shared"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(k), "50000", str(log)],
                              env=env, stdout=subprocess.PIPE, text=True) for k in range(4)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert [int(o) for o in outs] == [50_000] * 4
    events, bad = read_events(log)
    assert bad == 0
    assert len(events) == 200_000
    assert len({e["id"] for e in events}) == 200_000
    pids = {s.pid for s in list_segments(log)}
    assert len(pids) == 4
    for k in range(4):
        vals = [e["data"]["value"] for e in events if e["session_id"] == f"p{k}"]
        assert vals == list(range(50_000))


def test_a_second_recorder_in_the_same_directory_appends_new_segments(tmp_path: Path) -> None:
    for _ in range(2):
        rec = Recorder(tmp_path, clock=_noon)
        _fill(rec, 10)
        rec.close()
    assert len(list_segments(tmp_path)) == 2
    events, _ = read_events(tmp_path)
    assert len({e["id"] for e in events}) == 20



def test_orphan_tmp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    orphan = tmp_path / f"events-20260101T000000-{dead}-0.jsonl.gz.tmp"
    orphan.write_bytes(b"partial")
    mine = tmp_path / f"events-20260101T000000-{os.getpid()}-99.jsonl.gz.tmp"
    mine.write_bytes(b"in progress")
    rec = Recorder(tmp_path)
    _fill(rec, 3)
    rec.close()
    assert not orphan.exists() and mine.exists()


json_scalars = (st.none() | st.booleans() | st.integers(-2**53, 2**53)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=8)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.tuples(st.one_of(st.none(), st.text(max_size=12)),
                                 st.text(min_size=1, max_size=12),
                                 st.dictionaries(st.text(max_size=8).filter(
                                     lambda k: k != "session_id"), json_values, max_size=4)),
                       min_size=1, max_size=30))
def test_written_events_read_back_equal(  # any session id, type and payload
tmp_path_factory: pytest.TempPathFactory,
                                        events: list[tuple]) -> None:
    log = tmp_path_factory.mktemp("prop")
    rec = Recorder(log, durability="os")
    for sid, et, data in events:
        rec.record(et, session_id=sid, **data)
    rec.close()
    back, bad = read_events(log)
    assert bad == 0
    assert [(e["session_id"], e["event_type"], e["data"]) for e in back] == \
        [(sid, et, data or None) for sid, et, data in events]
