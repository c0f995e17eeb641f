"""The newest day folder read while the program starts (agentkpi.sources.dayfolders):
the same entries the listing would read, taken once, and a file added after the reading
found by the next run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentkpi.ingestion import ingest
from agentkpi.sources import dayfolders
from agentkpi.startup import source_arg
from agentkpi.store import DuckDBStore as Store

from .conftest import ev, write_session

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin",
                                reason="the prefetch forks (Linux and other Unixes)")


def _old(path: Path) -> None:
    t = time.time() - 3600
    os.utime(path, (t, t))


def _dataset(root: Path) -> None:
    for day, n in ((18, 2), (19, 3)):
        for i in range(n):
            ts = f"2026-05-{day}T{10 + i:02d}:00:00+00:00"
            p = write_session(root, f"d{day}s{i}", ts, [ev(ts, "llm_call", cost_usd=0.5)])
            _old(p)
    (root / "sessions" / "2026-05-19" / "notes.txt").write_text("not a session")
    (root / "sessions" / "2026-05-19" / "sub.jsonl").mkdir()
    for d in (root / "sessions").iterdir():
        _old(d)


#: Child code's first line: the prefetch runs on a machine of one core too (it does not
#: start there, as it would only slow the imports down).
TWO_CORES = "import os\nos.cpu_count = lambda: 2\n"


@pytest.fixture(autouse=True)
def _nothing_pending(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    yield
    dayfolders.drop()


def test_the_prefetch_reads_what_the_listing_would(dataset: Path) -> None:
    _dataset(dataset)
    newest = str(dataset / "sessions" / "2026-05-19")
    assert dayfolders.prefetch(str(dataset))
    assert dayfolders.take(str(dataset / "sessions" / "2026-05-18")) is None  # not read
    got = dayfolders.take(newest)
    assert got is not None
    here = dayfolders.read_day(newest)
    assert got.fingerprint == here.fingerprint == dayfolders.fingerprint(os.stat(newest))
    assert sorted(zip(got.paths, got.inos, strict=True)) == sorted(
        zip(here.paths, here.inos, strict=True))
    assert sorted(Path(p).name for p in got.paths) == ["d19s0.jsonl", "d19s1.jsonl",
                                                       "d19s2.jsonl"]
    assert [os.stat(p).st_ino for p in got.paths] == got.inos
    assert got.read_at_ns <= time.time_ns() and got.mtime_ns == os.stat(newest).st_mtime_ns
    assert dayfolders.take(newest) is None  # taken once


def test_one_core_starts_no_child(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _dataset(dataset)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert not dayfolders.prefetch(str(dataset))
    assert dayfolders.take(str(dataset / "sessions" / "2026-05-19")) is None


def test_nothing_is_started_without_a_dataset(tmp_path: Path) -> None:
    assert not dayfolders.prefetch(str(tmp_path / "missing"))
    (tmp_path / "sessions").mkdir()
    assert not dayfolders.prefetch(str(tmp_path))  # no day folder
    assert not dayfolders.prefetch(str(tmp_path / "sessions"))


def test_a_file_added_after_the_prefetch_is_read_by_the_next_run(dataset: Path,
                                                                tmp_path: Path) -> None:
    _dataset(dataset)
    with Store(tmp_path / "s.duckdb") as st:
        assert ingest(str(dataset), st, workers=1).files_read == 5
        # the last run was read while the program started; a session lands meanwhile
        assert dayfolders.prefetch(str(dataset))
        time.sleep(0.05)  # (the child has read the folder by then, or reads it later)
        late = write_session(dataset, "late", "2026-05-19T13:00:00+00:00",
                             [ev("2026-05-19T13:05:00+00:00", "llm_call", cost_usd=0.5)])
        assert late.parent.name == "2026-05-19"
        first = ingest(str(dataset), st, workers=1)
        assert dayfolders.take(str(late.parent)) is None  # the listing took it
        second = ingest(str(dataset), st, workers=1)
        # read exactly once, by whichever run saw it first: never lost, never twice
        assert first.files_read + second.files_read == 1
        assert st.counts()["sessions"] == 6
        # the folder recorded now is its state after the file came
        _, folders = st.scan_state(str(dataset))
        stat = os.stat(late.parent)
        assert folders.get(str(late.parent)) in (None, dayfolders.fingerprint(stat))


def test_the_program_prefetches_its_source(dataset: Path, tmp_path: Path) -> None:
    _dataset(dataset)
    store = tmp_path / "s.duckdb"
    cmd = [sys.executable, "-m", "agentkpi", "ingest", "--source", str(dataset),
           "--store", str(store), "--quiet"]
    for _ in range(2):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    write_session(dataset, "late", "2026-05-19T13:00:00+00:00",
                  [ev("2026-05-19T13:05:00+00:00", "llm_call", cost_usd=0.5)])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with Store(store, read_only=True) as st:
        assert st.counts()["sessions"] == 6


@pytest.mark.parametrize(("argv", "want"), [
    (["agentkpi", "rollup", "--source", "/d", "--target", "o"], "/d"),
    (["agentkpi", "rollup", "--source=/d"], "/d"),
    (["agentkpi", "rollup", "--source", "/a", "--source", "/b"], "/b"),
    (["agentkpi", "rollup", "--source"], None),
    (["agentkpi", "rollup"], None),
])
def test_source_arg(argv: list[str], want: str | None) -> None:
    assert source_arg(argv) == want


@pytest.mark.parametrize("spelling", ["relative", "file-url", "absolute"])
def test_the_program_prefetches_the_folder_its_listing_reads(dataset: Path, spelling: str
                                                            ) -> None:
    """A relative --source or a file:// URL is prefetched under the path the listing
    names it by (or the reading would be wasted: :func:`dayfolders.take` finds no match)."""
    _dataset(dataset)
    source = {"relative": dataset.name, "file-url": f"file://{dataset}",
              "absolute": str(dataset)}[spelling]
    newest = str(dataset / "sessions" / "2026-05-19")
    code = (TWO_CORES + "import sys\n"
            "from agentkpi.startup import prepare\n"
            "from agentkpi.sources import dayfolders\n"
            f"prepare(['agentkpi', 'rollup', '--source', {source!r}, '--target', 'out'])\n"
            f"got = dayfolders.take({newest!r})\n"
            "print(len(got.paths) if got else 'none')\n"
            f"prepare(['agentkpi', 'rollup', '--source', {source!r}, '--rescan'])\n"
            f"print(dayfolders.take({newest!r}) is None)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=dataset.parent,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "True"]  # --rescan lists everything: no prefetch


def test_no_temporary_folder_means_no_prefetch(dataset: Path, tmp_path: Path) -> None:
    """The prefetch never stops the program: without a writable temporary folder it is
    not started, and the run reads the folder itself."""
    _dataset(dataset)
    code = (TWO_CORES + "import tempfile\n"
            "tempfile.tempdir = '/nonexistent/agentkpi-no-tmp'\n"
            "from agentkpi.sources import dayfolders\n"
            f"print(dayfolders.prefetch({str(dataset)!r}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]


def test_the_child_does_not_hold_the_programs_output(dataset: Path) -> None:
    """A caller reading the program's output to its end gets it when the program ends,
    not when the prefetch child does (it closes the inherited output at once)."""
    _dataset(dataset)
    code = (TWO_CORES + "import os, time\n"
            "from agentkpi.sources import dayfolders\n"
            "dayfolders.entries = lambda day: (time.sleep(20), ([], []))[1]  # a slow disk\n"
            f"print(dayfolders.prefetch({str(dataset)!r}), flush=True)\n"
            "os._exit(0)  # the program ends without taking the answer\n")
    t = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]
    assert time.monotonic() - t < 10  # not the child's 20 s
