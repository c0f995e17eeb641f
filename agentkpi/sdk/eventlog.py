"""The agentkpi event log: append-only JSONL segments, crash- and multi-process safe.

Format
------
A log is a directory of *segments*. Each segment is UTF-8 JSON Lines, one
event per line, written only by the process whose pid is in its name::

    events-20260520T140259-12345-0.jsonl        # live (or last) segment of pid 12345
    events-20260520T000000-12345-1.jsonl.gz     # rotated + compressed (gzip)
    events-20260520T000000-12345-2.jsonl.zst    # rotated + compressed (zstd)

``events-<UTC time of the segment's first event, YYYYMMDDTHHMMSS>-<pid>-<n>``;
``n`` counts segments within the process, so writers sharing a directory
never touch each other's files. A line is one JSON object::

    {"id": "12345-lq9x1c-17", "seq": 17, "ts": "2026-05-20T14:02:59.104211Z",
     "session_id": "3f6c...", "event_type": "llm_call",
     "data": {"model": "claude-sonnet-4", "prompt_tokens": 1200, ...}}

* ``id`` - unique event id ``<pid>-<writer start, base36 ms>-<n>``; unique across
  processes and restarts (pid + start time), ``n`` is ``seq``.
* ``seq`` - per-writer counter in recording order (ordering within a session).
* ``ts`` - ISO-8601 UTC with ``Z``, microseconds.
* ``session_id`` - may be null for events outside any session.
* ``event_type`` - see :data:`agentkpi.model.EVENT_TYPES` (other names are kept).
* ``data`` - the event's payload object (or null).
* ``session_start`` lines also carry the session attributes at top level:
  ``user_id``, ``model``, ``project``, ``agent`` (only those given).

Writing
-------
A batch of events becomes one byte string written with a single ``os.write``
on an ``O_APPEND`` descriptor, so a line is never interleaved with another
writer's and a killed process leaves at most its last, partial batch - a torn
*last* line, which readers skip and count. After a failed or short write the
file is truncated back to the last whole line when possible, otherwise the
segment is abandoned and a new one started, so earlier data is never damaged.

Durability (``durability=``): ``"os"`` - data handed to the kernel (survives
a crash of the process, not of the machine); ``"batch"`` (default) -
``fdatasync`` after every written batch, so everything acknowledged by
``Recorder.flush()`` survives power loss; ``"always"`` - one write +
``fdatasync`` per event (slow; for low-volume audit trails).

Rotation: when a segment reaches ``max_segment_bytes`` and when the UTC day of
the events changes. A rotated segment is compressed in a background thread
(gzip default, zstd when ``zstandard`` is installed and chosen, or none):
``<name>.gz.tmp`` is written and fsynced, renamed to ``<name>.gz``, then the
plain file is deleted. A reader that finds both keeps the compressed one.

Retention (``retention_count``, ``retention_age`` seconds or timedelta,
``retention_total_bytes``) deletes the oldest *closed* segments: compressed
ones, and plain ones that are not the newest segment of their pid (the newest
may be live in another process).
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger("agentkpi")

SEGMENT_RE = re.compile(r"^events-(\d{8}T\d{6})-(\d+)-(\d+)\.jsonl(\.gz|\.zst)?$")
DURABILITY_MODES = ("os", "batch", "always")
COMPRESSIONS = ("gzip", "zstd", None)

_DUMPS_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if not n:
            return out


def _default(obj: Any) -> Any:
    """orjson fallback: sets/tuples -> lists, everything else -> str."""
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------ segments

@dataclass(frozen=True, order=True)
class Segment:
    """One segment file of a log directory."""

    stamp: str
    pid: int
    n: int
    path: Path
    compression: str | None

    @property
    def closed_name(self) -> str:
        return self.path.name


def list_segments(directory: str | os.PathLike[str]) -> list[Segment]:
    """Segments in ``directory`` in write order; a plain file whose compressed
    twin exists (crash between rename and delete) is left out."""
    d = Path(directory)
    try:
        names = os.listdir(d)
    except OSError:
        return []
    found: dict[tuple[str, int, int], Segment] = {}
    for name in names:
        m = SEGMENT_RE.match(name)
        if not m:
            continue
        comp = {".gz": "gzip", ".zst": "zstd", None: None}[m.group(4)]
        key = (m.group(1), int(m.group(2)), int(m.group(3)))
        seg = Segment(key[0], key[1], key[2], d / name, comp)
        old = found.get(key)
        if old is None or (old.compression is None and comp is not None):
            found[key] = seg
    return sorted(found.values())


def decompress(name: str, raw: bytes) -> tuple[bytes, bool]:
    """Bytes of a segment file -> (plain bytes, complete). A truncated
    compressed file yields what could be recovered and ``complete=False``."""
    if name.endswith(".gz"):
        d = zlib.decompressobj(wbits=47)
        try:
            out = d.decompress(raw)
        except zlib.error:
            return b"", False
        return out, d.eof
    if name.endswith(".zst"):
        import zstandard

        dctx = zstandard.ZstdDecompressor()
        try:
            return dctx.decompressobj().decompress(raw), True
        except zstandard.ZstdError:
            chunks = []
            try:
                with dctx.stream_reader(raw) as r:
                    while True:
                        c = r.read(65536)
                        if not c:
                            break
                        chunks.append(c)
            except zstandard.ZstdError:
                pass
            return b"".join(chunks), False
    return raw, True


def iter_lines(raw: bytes) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(1-based line number, event object or None when the line is bad)."""
    for i, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield i, None
            continue
        yield i, obj if isinstance(obj, dict) else None


def read_events(directory: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int]:
    """Every readable event of a log directory, plus the count of bad lines."""
    events: list[dict[str, Any]] = []
    bad = 0
    for seg in list_segments(directory):
        try:
            raw = seg.path.read_bytes()
        except OSError:
            continue  # deleted by retention while listing
        plain, _ = decompress(seg.path.name, raw)
        for _, obj in iter_lines(plain):
            if obj is None:
                bad += 1
            else:
                events.append(obj)
    return events, bad


# ------------------------------------------------------------------ writer

def _seconds(value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


_PROCESS_SEGMENTS = iter(range(1 << 62))
_PROCESS_SEGMENTS_LOCK = threading.Lock()


def _next_segment_number() -> int:
    with _PROCESS_SEGMENTS_LOCK:
        return next(_PROCESS_SEGMENTS)


class EventLogWriter:
    """Appends formatted events to the segments of one directory.

    Used from one thread (the Recorder's writer thread); compression runs on
    a helper thread. Raises ``OSError`` on write failures after restoring the
    segment to its last whole line; the caller counts the loss.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        durability: str = "batch",
        max_segment_bytes: int = 64 * 1024 * 1024,
        compression: str | None = "gzip",
        retention_count: int | None = None,
        retention_age: float | timedelta | None = None,
        retention_total_bytes: int | None = None,
        rotate_daily: bool = True,
    ) -> None:
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, got {durability!r}")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        if compression == "zstd" and not zstd_available():
            logger.warning("agentkpi: zstandard is not installed; compressing with gzip")
            compression = "gzip"
        self.directory = Path(directory)
        self.durability = durability
        self.max_segment_bytes = max(1, int(max_segment_bytes))
        self.compression = compression
        self.retention_count = retention_count
        self.retention_age = _seconds(retention_age)
        self.retention_total_bytes = retention_total_bytes
        self.rotate_daily = rotate_daily
        self.pid = os.getpid()
        self.id_prefix = f"{self.pid}-{_base36(int(time.time() * 1000))}-"
        self.seq = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._day = -1
        self._last_sec = -1
        self._prefix = b""
        self._id_prefix_b = self.id_prefix.encode()
        self._sid_cache: dict[Any, bytes] = {}
        self._et_cache: dict[Any, bytes] = {}
        self.segments_opened = 0
        self.bytes_written = 0
        self.compress_errors = 0
        self._compress_jobs: list[Path] = []
        self._compress_cv = threading.Condition()
        self._compress_thread: threading.Thread | None = None
        self._closing = False

    # -- formatting ----------------------------------------------------
    def format(self, t: float, session_id: Any, event_type: str, data: Any,
               attrs: dict[str, Any] | None) -> bytes:
        """One event -> one JSON line (bytes ending in newline)."""
        sec = int(t)
        if sec != self._last_sec:
            self._last_sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode()
        self.seq += 1
        n = self.seq
        if attrs:
            return self._format_dict(t, sec, n, session_id, event_type, data, attrs)
        sid = self._sid_cache.get(session_id)
        if sid is None:
            sid = self._json_key(session_id)
            if sid is None:
                return self._format_dict(t, sec, n, session_id, event_type, data, attrs)
            if len(self._sid_cache) > 4096:
                self._sid_cache.clear()
            self._sid_cache[session_id] = sid
        et = self._et_cache.get(event_type)
        if et is None:
            et = self._json_key(event_type)
            if et is None:
                return self._format_dict(t, sec, n, session_id, event_type, data, attrs)
            self._et_cache[event_type] = et
        body = self.dump_data(data)
        return b'{"id":"%s%d","seq":%d,"ts":"%s.%06dZ","session_id":%s,"event_type":%s,' \
               b'"data":%s}\n' % (self._id_prefix_b, n, n, self._prefix,
                                  int((t - sec) * 1e6), sid, et, body)

    @staticmethod
    def dump_data(data: Any) -> bytes:
        """The ``data`` payload as JSON; odd values become text, never an error."""
        try:
            return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)
        except (TypeError, orjson.JSONEncodeError):
            return orjson.dumps({"unserializable": repr(data)[:10000]})

    @staticmethod
    def _json_key(value: Any) -> bytes | None:
        if value is None or type(value) is str:
            return orjson.dumps(value)
        return None

    def _format_dict(self, t: float, sec: int, n: int, session_id: Any, event_type: Any,
                     data: Any, attrs: dict[str, Any] | None) -> bytes:
        rec = {
            "id": self.id_prefix + str(n),
            "seq": n,
            "ts": f"{self._prefix.decode()}.{int((t - sec) * 1e6):06d}Z",
            "session_id": session_id,
            "event_type": event_type,
            "data": data,
        }
        if attrs:
            for k, v in attrs.items():
                if k not in rec:
                    rec[k] = v
        try:
            return orjson.dumps(rec, default=_default, option=_DUMPS_OPTS)
        except (TypeError, orjson.JSONEncodeError):
            rec["data"] = {"unserializable": repr(data)[:10000]}
            return orjson.dumps(rec, default=_default, option=_DUMPS_OPTS)

    # -- writing -------------------------------------------------------
    def room(self) -> int:
        """Bytes left in the current segment before it rotates."""
        return self.max_segment_bytes - self._size if self._fd is not None \
            else self.max_segment_bytes

    def write(self, day: int, buf: bytes | bytearray) -> None:
        """Append whole lines (one ``os.write``) whose events fall on UTC day
        ``day`` (days since the epoch); rotates by day and by size first."""
        if not buf:
            return
        if self._fd is not None and self._unlinked():
            # the segment (or the whole directory) was deleted under us: writing
            # on would lose the data silently, so start a new segment
            logger.warning("agentkpi: segment %s was deleted; starting a new one", self._path)
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd, self._path, self._size = None, None, 0
        if self._fd is not None and (
            (self.rotate_daily and day != self._day) or self._size >= self.max_segment_bytes
        ):
            self.rotate()
        if self._fd is None:
            self._open(day, bytes(buf[: buf.find(b"\n")]))
        fd = self._fd
        assert fd is not None
        view = memoryview(buf)
        total = len(buf)
        done = 0
        try:
            while done < total:
                n = os.write(fd, view[done:])
                if n <= 0:
                    raise OSError("short write")
                done += n
            if self.durability != "os":
                os.fdatasync(fd)
        except OSError:
            self._repair()
            raise
        finally:
            view.release()
        self._size += total
        self.bytes_written += total

    def _unlinked(self) -> bool:
        try:
            return os.fstat(self._fd).st_nlink == 0  # type: ignore[arg-type]
        except OSError:
            return True

    def _repair(self) -> None:
        """After a failed write: cut the segment back to its last whole line,
        or abandon it so the next write starts a fresh segment."""
        fd = self._fd
        if fd is None:
            return
        try:
            os.ftruncate(fd, self._size)
            return
        except OSError:
            pass
        try:
            os.close(fd)
        except OSError:
            pass
        self._fd = None
        self._path = None

    def _open(self, day: int, first_line: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.segments_opened:
            remove_orphan_tmp(self.directory)
            try:
                self._retention()  # age/size limits also apply to logs that rarely rotate
            except OSError as exc:
                logger.warning("agentkpi: retention failed in %s: %s", self.directory, exc)
        # name the segment after its first event's time (injected clocks too)
        try:
            ts = orjson.loads(first_line)["ts"]
            stamp = ts[0:4] + ts[5:7] + ts[8:10] + "T" + ts[11:13] + ts[14:16] + ts[17:19]
        except Exception:  # noqa: BLE001 - naming must not fail
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        while True:
            path = self.directory / f"events-{stamp}-{self.pid}-{_next_segment_number()}.jsonl"
            try:
                fd = os.open(path, flags, 0o644)
                break
            except FileExistsError:
                continue
        self._fd, self._path, self._size, self._day = fd, path, 0, day
        self.segments_opened += 1
        if self.durability != "os":
            self._fsync_dir()

    def _fsync_dir(self) -> None:
        try:
            dfd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    def sync(self) -> None:
        if self._fd is not None:
            os.fdatasync(self._fd)

    @property
    def current_path(self) -> Path | None:
        return self._path

    def rotate(self) -> None:
        """Close the current segment and queue it for compression/retention."""
        fd, path = self._fd, self._path
        self._fd, self._path, self._size = None, None, 0
        if fd is None or path is None:
            return
        try:
            os.close(fd)
        except OSError:
            pass
        if self.compression is None:
            self._retention()
            return
        with self._compress_cv:
            self._compress_jobs.append(path)
            self._compress_cv.notify()
            if self._compress_thread is None or not self._compress_thread.is_alive():
                self._compress_thread = threading.Thread(
                    target=self._compress_loop, name="agentkpi-compress", daemon=True)
                self._compress_thread.start()

    # -- compression + retention ----------------------------------------
    def _compress_loop(self) -> None:
        while True:
            with self._compress_cv:
                while not self._compress_jobs and not self._closing:
                    self._compress_cv.wait(1.0)
                if not self._compress_jobs:
                    return
                path = self._compress_jobs[0]
            try:
                compress_segment(path, self.compression)
            except Exception as exc:  # noqa: BLE001 - the plain segment stays readable
                self.compress_errors += 1
                logger.warning("agentkpi: could not compress %s: %s", path, exc)
            with self._compress_cv:
                self._compress_jobs.pop(0)
                self._compress_cv.notify_all()
            try:
                self._retention()
            except Exception as exc:  # noqa: BLE001
                logger.warning("agentkpi: retention failed in %s: %s", self.directory, exc)

    def wait_compressed(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._compress_cv:
            while self._compress_jobs:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._compress_cv.wait(left if left is not None else 1.0)
        return True

    def _retention(self) -> None:
        apply_retention(self.directory, count=self.retention_count, age=self.retention_age,
                        total_bytes=self.retention_total_bytes, live=self._path)

    def close(self, timeout: float | None = 30.0) -> None:
        fd = self._fd
        self._fd, self._path = None, None
        if fd is not None:
            try:
                if self.durability != "os":
                    os.fdatasync(fd)
            finally:
                os.close(fd)
        self.wait_compressed(timeout)
        with self._compress_cv:
            self._closing = True
            self._compress_cv.notify_all()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a live writer's last line may still be arriving)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_orphan_tmp(directory: Path) -> list[Path]:
    """Delete ``*.tmp`` files left by a writer killed while compressing."""
    removed: list[Path] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not name.endswith(".tmp"):
            continue
        m = SEGMENT_RE.match(name[:-4])
        if not m or int(m.group(2)) == os.getpid() or pid_alive(int(m.group(2))):
            continue
        try:
            (directory / name).unlink()
            removed.append(directory / name)
        except OSError:
            pass
    return removed


def compress_segment(path: Path, compression: str | None) -> Path:
    """Compress a closed segment atomically; returns the new path."""
    suffix = ".gz" if compression == "gzip" else ".zst"
    final = path.with_name(path.name + suffix)
    tmp = path.with_name(path.name + suffix + ".tmp")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        if compression == "gzip":
            with gzip.GzipFile(filename="", mode="wb", fileobj=dst, compresslevel=6,
                               mtime=0) as gz:
                while True:
                    block = src.read(1 << 20)
                    if not block:
                        break
                    gz.write(block)
        else:
            import zstandard

            zstandard.ZstdCompressor(level=3).copy_stream(src, dst)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, final)
    path.unlink()
    return final


def apply_retention(directory: Path, *, count: int | None = None, age: float | None = None,
                    total_bytes: int | None = None, live: Path | None = None) -> list[Path]:
    """Delete the oldest closed segments beyond the limits; returns deleted paths."""
    if count is None and age is None and total_bytes is None:
        return []
    segs = list_segments(directory)
    newest_plain: dict[int, Segment] = {}
    for s in segs:
        if s.compression is None:
            cur = newest_plain.get(s.pid)
            if cur is None or s > cur:
                newest_plain[s.pid] = s
    protected = {s.path for s in newest_plain.values()}
    if live is not None:
        protected.add(live)
    closed = [s for s in segs if s.path not in protected]
    sizes: dict[Path, int] = {}
    mtimes: dict[Path, float] = {}
    for s in segs:
        try:
            st = s.path.stat()
        except OSError:
            continue
        sizes[s.path], mtimes[s.path] = st.st_size, st.st_mtime
    closed = [s for s in closed if s.path in sizes]
    doomed: list[Segment] = []
    if age is not None:
        cutoff = time.time() - age
        doomed += [s for s in closed if mtimes[s.path] < cutoff]
    keep = [s for s in closed if s not in doomed]
    if count is not None and len(keep) > count:
        doomed += keep[: len(keep) - count]
        keep = keep[len(keep) - count:]
    if total_bytes is not None:
        total = sum(sizes.get(s.path, 0) for s in segs if s not in doomed)
        for s in list(keep):
            if total <= total_bytes:
                break
            doomed.append(s)
            total -= sizes[s.path]
    deleted = []
    for s in doomed:
        try:
            s.path.unlink()
            deleted.append(s.path)
        except OSError:
            pass
    return deleted


def iter_event_objects(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Events of the given segment files, bad lines skipped."""
    for p in paths:
        plain, _ = decompress(p.name, p.read_bytes())
        for _, obj in iter_lines(plain):
            if obj is not None:
                yield obj
