"""The day folders of a session dataset (``sessions/YYYY-MM-DD``), read without libraries.

The one place that reads a day folder's entries: names and inode numbers for the
incremental listing (:func:`agentkpi.sources.session_dataset.list_changed`), names and
``stat`` fingerprints for the full one (:func:`stat_entries`). It imports only the
standard library, so that the ``agentkpi`` program can use it before it imports anything
heavy: an hourly cron run reads the current day folder whole
(its fingerprint changes with every file added), ~55 ms of Python at 90k entries, while
the program's imports take ~0.15 s on one core and leave the other idle.
:func:`prefetch` reads the newest day folder of the ``--source`` in a child process
meanwhile; the listing then takes that answer (:func:`take`) instead of reading the
folder itself. The answer is exactly what the listing would have read a moment earlier:
the folder's fingerprint is taken before its entries, so a file added after it changes
the fingerprint recorded and the next run reads the folder again.
"""

from __future__ import annotations

import marshal
import os
import posixpath
import re
import sys
import tempfile
import time
from collections.abc import Callable
from typing import IO, NamedTuple

#: A day folder's name.
DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class DayListing(NamedTuple):
    """One reading of a day folder: its fingerprint, then its ``*.jsonl`` entries."""

    folder: str
    fingerprint: str  #: ``inode:mtime_ns`` of the folder, taken before its entries
    mtime_ns: int  #: the folder's modification time then
    read_at_ns: int  #: when (``time.time_ns()``) the fingerprint was taken
    paths: list[str]
    inos: list[int]


def sessions_dir(root: str, isdir: Callable[[str], bool] = os.path.isdir) -> str | None:
    """The dataset's ``sessions`` folder (``root/sessions``, or ``root`` itself); ``isdir``:
    the filesystem's (fsspec's ``fs.isdir`` for other filesystems than this one)."""
    root = root.rstrip("/")
    if isdir(posixpath.join(root, "sessions")):
        return posixpath.join(root, "sessions")
    if posixpath.basename(root) == "sessions" and isdir(root):
        return root
    return None


def day_dirs(base: str) -> list[str]:
    """The day folders in ``base`` (a ``sessions`` folder), oldest first."""
    with os.scandir(base) as days:
        return sorted(d.path for d in days if d.is_dir() and DAY_DIR.match(d.name))


def fingerprint(st: os.stat_result) -> str:
    """A folder's fingerprint: unchanged exactly while no entry is created, removed or
    renamed in it (and the folder itself is not replaced)."""
    return f"{st.st_ino}:{st.st_mtime_ns}"


def entries(day: str) -> tuple[list[str], list[int]]:
    """Paths and inode numbers of the session files in ``day`` (no ``stat``)."""
    paths: list[str] = []
    inos: list[int] = []
    with os.scandir(day) as it:
        for e in it:
            if e.name.endswith(".jsonl") and e.is_file():
                paths.append(e.path)
                inos.append(e.inode())
    return paths, inos


def stat_entries(day: str) -> list[tuple[str, str]]:
    """``(path, "size:mtime_ns")`` of every session file in ``day`` (the full listing's)."""
    with os.scandir(day) as it:
        return [(e.path, f"{st.st_size}:{st.st_mtime_ns}") for e in it
                if e.name.endswith(".jsonl") and e.is_file() for st in (e.stat(),)]


def read_day(day: str) -> DayListing:
    """The folder's fingerprint, then its entries (``OSError`` when it cannot be read)."""
    read_at = time.time_ns()
    st = os.stat(day)
    paths, inos = entries(day)
    return DayListing(day, fingerprint(st), st.st_mtime_ns, read_at, paths, inos)


class _Pending(NamedTuple):
    pid: int
    out: IO[bytes]
    folder: str


_pending: _Pending | None = None


def prefetch(root: str) -> bool:
    """Start reading the newest day folder of the local session dataset ``root`` in a
    child process; :func:`take` collects it. False (nothing started) when ``root`` is no
    such dataset, this system cannot fork cheaply, or it has one core (the child would
    only slow the imports down). Speculative and harmless: an answer nobody takes is
    dropped (:func:`drop`, or with the process)."""
    global _pending
    if _pending is not None or not hasattr(os, "fork") or sys.platform == "darwin" or (
            os.cpu_count() or 1) < 2:
        return False
    try:
        base = sessions_dir(root)
        days = day_dirs(base) if base else []
    except OSError:
        return False
    if not days:
        return False
    try:
        out = tempfile.TemporaryFile()
    except OSError:  # no writable temporary folder: the listing reads the folder itself
        return False
    try:
        pid = os.fork()
    except OSError:  # no process to spare
        out.close()
        return False
    if pid == 0:  # the child: read, write the answer, leave without any clean-up
        code = 1
        try:
            # not holding the program's output open: a caller reading it to its end (a
            # pipe) must not wait for this child
            for fd in (0, 1, 2):
                try:
                    os.close(fd)
                except OSError:
                    pass
            out.write(marshal.dumps(tuple(read_day(days[-1]))))
            out.flush()
            code = 0
        finally:
            os._exit(code)
    _pending = _Pending(pid, out, days[-1])
    return True


def take(folder: str) -> DayListing | None:
    """The child's reading of ``folder`` (:func:`prefetch`), once; None when none was
    started for that folder or it failed (the caller reads the folder itself)."""
    global _pending
    pending = _pending
    if pending is None or pending.folder != folder:
        return None
    _pending = None
    with pending.out:
        try:
            _, status = os.waitpid(pending.pid, 0)
        except ChildProcessError:
            return None
        if status != 0:
            return None
        try:
            pending.out.seek(0)
            got = DayListing(*marshal.loads(pending.out.read()))
        except (OSError, ValueError, EOFError, TypeError):  # unreadable: read it here
            return None
    return got if got.folder == folder else None


def drop() -> None:
    """Forget a prefetch not taken (its child is waited for)."""
    global _pending
    pending, _pending = _pending, None
    if pending is not None:
        with pending.out:
            try:
                os.waitpid(pending.pid, 0)
            except ChildProcessError:
                pass
