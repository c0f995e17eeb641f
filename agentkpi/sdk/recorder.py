"""The in-process Recorder: a cheap, thread-safe, never-raising event API.

The calling thread only builds ``(time, session_id, type, data, attrs)`` and
appends those five values to a bounded in-memory queue with one
``collections.deque.extend`` (atomic under the GIL, and under the per-object
lock of free-threaded builds); the queue stays flat so no GC-tracked object
waits in it. A single writer thread, started
lazily on the first event, drains the queue, serialises with orjson and
appends whole lines to the event log (:mod:`agentkpi.sdk.eventlog`).

Nothing is lost silently and nothing is raised into the host: a full queue
drops (``on_full="drop"``) or waits (``"block"``, bounded by
``block_timeout``), a failed disk write is logged to the ``agentkpi`` logger,
and every loss increments a counter in :meth:`Recorder.stats`. Set
``AGENTKPI_RAISE_ERRORS=1`` to re-raise errors made *while recording*
(e.g. a bad argument) - the test suite does, so bugs show.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from agentkpi import config
from agentkpi.sdk.eventlog import DURABILITY_MODES, EventLogWriter

logger = logging.getLogger("agentkpi")

_UTC = UTC
_SLOTS = 5  # queue entries per event: time, session_id, event_type, data, attrs
_LINE = b'{"id":"%s%d","seq":%d,"ts":"%s.%06dZ","session_id":%s,"event_type":%s,"data":%s}\n'
_LIVE: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _raise_errors() -> bool:
    return bool(config.get("raise_errors"))


def _epoch(value: Any) -> float:
    """What a clock returned -> epoch seconds (naive datetimes are UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_UTC)
        return value.timestamp()
    return float(value)


class _Flush:
    """A marker in the queue; the writer sets it once everything before it is written."""

    __slots__ = ("done", "sync")

    def __init__(self, sync: bool) -> None:
        self.done = threading.Event()
        self.sync = sync


class Recorder:
    """Records agent telemetry events into an event-log directory.

    Args:
        log_dir: directory of the event log (created on first write).
        clock: callable returning epoch seconds or a datetime (default ``time.time``).
        durability: ``"os"``, ``"batch"`` (default) or ``"always"``; see eventlog.
        queue_size: maximum number of events waiting for the writer.
        on_full: ``"drop"`` (count and discard) or ``"block"`` (wait up to
            ``block_timeout`` seconds, then drop and count).
        max_segment_bytes: rotate a segment when it reaches this size.
        retention_count / retention_age / retention_total_bytes: delete the
            oldest closed segments beyond these limits.
        compression: ``"gzip"`` (default), ``"zstd"`` or ``None`` for rotated segments.
        flush_interval: how often (s) the writer drains the queue when idle.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        clock: Callable[[], Any] | None = None,
        durability: str = "batch",
        queue_size: int = 100_000,
        on_full: str = "drop",
        max_segment_bytes: int = 64 * 1024 * 1024,
        retention_count: int | None = None,
        retention_age: float | timedelta | None = None,
        retention_total_bytes: int | None = None,
        compression: str | None = "gzip",
        *,
        flush_interval: float = 0.2,
        block_timeout: float | None = 10.0,
        batch_max: int = 20_000,
    ) -> None:
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, got {durability!r}; "
                             "use 'batch' unless you know you need another")
        if on_full not in ("drop", "block"):
            raise ValueError(f"on_full must be 'drop' or 'block', got {on_full!r}")
        self.log_dir = Path(log_dir)
        self._clock: Callable[[], Any] = clock or time.time
        self.durability = durability
        self.queue_size = max(1, int(queue_size))
        self.on_full = on_full
        self.block_timeout = block_timeout
        self.flush_interval = flush_interval
        self.batch_max = batch_max
        self._log_kwargs: dict[str, Any] = dict(
            durability=durability, max_segment_bytes=max_segment_bytes,
            compression=compression, retention_count=retention_count,
            retention_age=retention_age, retention_total_bytes=retention_total_bytes)
        EventLogWriter(self.log_dir, **self._log_kwargs)  # validate arguments now
        self._q: deque[Any] = deque()
        self._wake = threading.Event()
        # The queue is flat: each event is 5 consecutive entries appended with one
        # (atomic) deque.extend, so no tracked tuple survives in the queue for the
        # cyclic GC to walk (that walk was a third of the per-event cost).
        self._qcap = self.queue_size * _SLOTS
        self._wake_at = max(1, min(self.queue_size // 4, 8192)) * _SLOTS
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._log: EventLogWriter | None = None
        self._closed = False
        self._stop = False
        self._pid = os.getpid()
        # counters (writer-thread owned unless noted)
        self._taken = 0
        self._written = 0
        self._lost = 0
        self._write_errors = 0
        self._dropped = 0          # under self._lock
        self._record_errors = 0    # under self._lock
        self._flushes = 0
        self._writer_cpu = 0.0
        self._writer_exited = False
        self._last_error: str | None = None
        self._last_logged = 0.0

    # ------------------------------------------------------------ hot path
    def _put(self, item: tuple[Any, ...]) -> None:
        q = self._q
        if len(q) >= self._qcap or self._closed:
            self._full(item)
            return
        q.extend(item)
        if self._thread is None:
            self._start()
        elif len(q) >= self._wake_at:
            self._wake.set()

    def _now(self) -> float:
        """Current time as epoch seconds (the clock may return a datetime)."""
        return _epoch(self._clock())

    def event(self, event_type: str, session_id: str | None = None, /, **data: Any) -> None:
        """Record one event of any type; ``data`` becomes the event's payload."""
        try:
            self._put((self._clock(), session_id, event_type, data or None, None))
        except Exception as exc:  # noqa: BLE001 - never break the host
            self._record_failed(exc)

    def record(self, event_type: str, /, session_id: str | None = None, **data: Any) -> None:
        """Same as :meth:`event` (keyword ``session_id``)."""
        try:
            self._put((self._clock(), session_id, event_type, data or None, None))
        except Exception as exc:  # noqa: BLE001
            self._record_failed(exc)

    def _full(self, item: tuple[Any, ...]) -> None:
        if self._closed:
            with self._lock:
                self._dropped += 1
            self._note("recorder is closed; event dropped")
            return
        if self.on_full == "block":
            deadline = None if self.block_timeout is None else time.monotonic() + self.block_timeout
            while len(self._q) >= self._qcap:
                if self._thread is None:
                    self._start()
                self._wake.set()
                if deadline is not None and time.monotonic() > deadline:
                    break
                time.sleep(0.0005)
            else:
                self._q.extend(item)
                return
        with self._lock:
            self._dropped += 1
        self._note("event queue full; event dropped (see Recorder.stats()['dropped'])")

    def _record_failed(self, exc: BaseException) -> None:
        with self._lock:
            self._record_errors += 1
        logger.warning("agentkpi: recording failed: %r", exc)
        if _raise_errors():
            raise exc

    def _note(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_logged > 5.0:
            self._last_logged = now
            logger.warning("agentkpi: %s", message)

    # ------------------------------------------------------------ sessions
    def session(self, session_id: str | None = None, user_id: str | None = None,
                model: str | None = None, project: str | None = None,
                agent: str | None = None, **data: Any) -> Session:
        """Start a session: records ``session_start`` now and ``session_end``
        when the handle is closed (``with`` block exit, also on exception)."""
        return Session(self, session_id, user_id, model, project, agent, data)

    # ------------------------------------------------------------ writer
    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            t = threading.Thread(target=self._run, name="agentkpi-writer", daemon=True)
            self._thread = t
            _install_process_hooks()
            _LIVE.add(self)
            t.start()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._writer_exited = True

    def _loop(self) -> None:
        q = self._q
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            c0 = time.thread_time()
            try:
                while q:
                    self._drain()
            except Exception as exc:
                self._last_error = repr(exc)
                logger.exception("agentkpi: writer thread error")
            self._writer_cpu += time.thread_time() - c0
            if self._stop and not q:
                return

    def _drain(self) -> None:
        """Format up to ``batch_max`` queued events into one buffer per (day,
        segment room) and write each with one ``os.write``; then release flushers
        (also if something unexpected raised, so ``flush()`` never hangs).
        """
        markers: list[_Flush] = []
        try:
            self._drain_batch(markers)
        finally:
            for m in markers:
                self._flushes += 1
                m.done.set()

    def _drain_batch(self, markers: list[_Flush]) -> None:
        # The common case (known session id / event type, no attributes) is
        # formatted inline: this loop is the writer's whole per-event cost.
        q = self._q
        pop = q.popleft
        log = self._log
        if log is None:
            log = self._log = EventLogWriter(self.log_dir, **self._log_kwargs)
        always = self.durability == "always"
        sid_cache, et_cache = log._sid_cache, log._et_cache
        dumps = orjson.dumps
        idp = log._id_prefix_b
        strftime, gmtime = time.strftime, time.gmtime
        seq = log.seq
        last_sec = -1
        prefix = b""
        buf = bytearray()
        count = 0          # events in buf
        room = log.room()
        n = 0
        day = -1
        limit = self.batch_max
        while q and n < limit:
            t = pop()
            sid = pop()
            et = pop()
            data = pop()
            attrs = pop()
            if type(t) is _Flush:
                if count:
                    self._write(log, day, buf, count)
                    buf, count, room = bytearray(), 0, log.room()
                markers.append(t)
                continue
            n += 1
            try:
                if type(t) is not float:
                    t = _epoch(t)
                sec = int(t)
                if sec != last_sec:
                    d = sec // 86400
                    if d != day:
                        if count:
                            self._write(log, day, buf, count)
                            buf, count, room = bytearray(), 0, log.room()
                        day = d
                    last_sec = sec
                    prefix = strftime("%Y-%m-%dT%H:%M:%S", gmtime(sec)).encode()
                sb = sid_cache.get(sid) if attrs is None else None
                eb = et_cache.get(et)
                if sb is None or eb is None:
                    log.seq = seq
                    buf += log.format(t, sid, et, data, attrs)
                    seq = log.seq
                else:
                    try:
                        body = dumps(data)
                    except TypeError:
                        body = log.dump_data(data)
                    seq += 1
                    buf += _LINE % (idp, seq, seq, prefix, int((t - sec) * 1e6), sb, eb, body)
            except Exception as exc:  # noqa: BLE001
                self._lost += 1
                self._last_error = repr(exc)
                self._note(f"could not serialise an event: {exc!r}")
                continue
            count += 1
            if always or len(buf) >= room:
                self._write(log, day, buf, count)
                buf, count, room = bytearray(), 0, log.room()
        log.seq = seq
        self._taken += n
        if count:
            self._write(log, day, buf, count)

    def _write(self, log: EventLogWriter, day: int, buf: bytearray, count: int) -> None:
        try:
            log.write(day, buf)
            self._written += count
        except Exception as exc:  # noqa: BLE001 - OSError mostly; never kill the writer
            # count what did not make it (lines written before the failure stay)
            self._write_errors += 1
            self._lost += count
            self._last_error = f"{type(exc).__name__}: {exc}"
            self._note(f"could not write the event log in {self.log_dir}: {exc} "
                       "(events lost are counted in Recorder.stats()['lost'])")

    # ------------------------------------------------------------ control
    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until every event recorded before the call is written (and
        fsynced in ``batch``/``always`` mode). False on timeout."""
        try:
            if self._thread is None:
                return True
            if self._pid != os.getpid():
                return False
            if self._writer_exited and not self._closed:
                # (only a writer that ran and ended; one still starting is not dead)
                logger.warning("agentkpi: the writer thread had stopped; restarting it")
                with self._lock:
                    if self._writer_exited:
                        self._writer_exited = False
                        self._thread = None
                self._start()
            marker = _Flush(True)
            self._q.extend((marker, None, None, None, None))
            self._wake.set()
            return marker.done.wait(timeout)
        except Exception as exc:  # noqa: BLE001
            self._record_failed(exc)
            return False

    async def aflush(self, timeout: float | None = 30.0) -> bool:
        """``flush`` for async code (runs in a worker thread)."""
        return await asyncio.to_thread(self.flush, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, stop the writer and close the log; later events are dropped and counted."""
        if self._closed:
            return
        try:
            self.flush(timeout)
            self._closed = True
            self._stop = True
            self._wake.set()
            t = self._thread
            if t is not None and t is not threading.current_thread():
                t.join(timeout)
            self._thread = None
            if t is not None and not t.is_alive():
                while self._queued():  # events that raced with close
                    self._drain()
            if self._log is not None:
                self._log.close(timeout)
        except Exception as exc:  # noqa: BLE001
            self._record_failed(exc)
        finally:
            _LIVE.discard(self)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Counters. ``recorded`` = accepted = written + lost + queued."""
        queued = self._queued()
        log = self._log
        return {
            "recorded": self._taken + queued,
            "written": self._written,
            "queued": queued,
            "dropped": self._dropped,
            "lost": self._lost,
            "write_errors": self._write_errors,
            "record_errors": self._record_errors,
            "flushes": self._flushes,
            "segments": log.segments_opened if log else 0,
            "bytes_written": log.bytes_written if log else 0,
            "compress_errors": log.compress_errors if log else 0,
            "current_segment": str(log.current_path) if log and log.current_path else None,
            "writer_cpu_s": self._writer_cpu,
            "last_error": self._last_error,
        }

    def _queued(self) -> int:
        heads = list(self._q)[::_SLOTS]
        return sum(1 for x in heads if type(x) is not _Flush)

    def _after_fork(self) -> None:
        # the child gets its own writer, segment names and queue
        self._q = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        self._log = None
        self._writer_exited = False
        self._pid = os.getpid()
        # ... and its own counters: stats() of a child describe the child only
        self._taken = self._written = self._lost = self._write_errors = 0
        self._dropped = self._record_errors = self._flushes = 0
        self._writer_cpu = 0.0
        self._last_error = None


class Session:
    """Handle of one session; every method records one event and never raises.

    Use as ``with rec.session(...) as s:`` (or ``async with``), or call
    :meth:`end` yourself.
    """

    __slots__ = ("_rec", "session_id", "user_id", "model", "project", "agent", "_ended",
                 "turns")

    def __init__(self, rec: Recorder, session_id: str | None, user_id: str | None,
                 model: str | None, project: str | None, agent: str | None,
                 data: dict[str, Any]) -> None:
        self._rec = rec
        self.session_id = session_id or uuid.uuid4().hex
        self.user_id, self.model, self.project, self.agent = user_id, model, project, agent
        self._ended = False
        self.turns = 0
        try:
            attrs = {k: v for k, v in (("user_id", user_id), ("model", model),
                                       ("project", project), ("agent", agent)) if v is not None}
            rec._put((rec._clock(), self.session_id, "session_start", data or None, attrs or None))
        except Exception as exc:  # noqa: BLE001
            rec._record_failed(exc)

    def _emit(self, event_type: str, data: dict[str, Any] | None) -> None:
        rec = self._rec
        try:
            item = (rec._clock(), self.session_id, event_type, data, None)
            q = rec._q
            n = len(q)
            if n < rec._wake_at and rec._thread is not None:
                q.extend(item)     # fast path: room, writer running, no wake needed
            else:
                rec._put(item)
        except Exception as exc:  # noqa: BLE001
            rec._record_failed(exc)

    # -- typed events (vocabulary: agentkpi.model.EVENT_TYPES) -----------
    def llm_call(self, model: str | None = None, prompt_tokens: int | None = None,
                 completion_tokens: int | None = None, cache_read_tokens: int | None = None,
                 cache_creation_tokens: int | None = None, cost_usd: float | None = None,
                 latency_ms: float | None = None, finish_reason: str | None = None,
                 **extra: Any) -> None:
        """One model call (KPIs: llm_calls, tokens_*, cost_usd, cache_hit_ratio)."""
        rec = self._rec
        try:
            data = {"model": model or self.model, "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "cache_read_tokens": cache_read_tokens,
                    "cache_creation_tokens": cache_creation_tokens,
                    "cost_usd": cost_usd, "latency_ms": latency_ms,
                    "finish_reason": finish_reason}
            if extra:
                data.update(extra)
            item = (rec._clock(), self.session_id, "llm_call", data, None)
            q = rec._q
            if len(q) < rec._wake_at and rec._thread is not None:
                q.extend(item)     # fast path: room, writer running, no wake needed
            else:
                rec._put(item)
        except Exception as exc:  # noqa: BLE001
            rec._record_failed(exc)

    def tool_call(self, tool: str, arguments: Any = None, tool_call_id: str | None = None,
                  **extra: Any) -> None:
        """The agent asked for a tool."""
        self._emit("tool_call", {"tool": tool, "arguments": arguments,
                                 "tool_call_id": tool_call_id, **extra})

    def tool_output(self, tool: str, success: bool, duration_ms: float | None = None,
                    output: Any = None, tool_call_id: str | None = None, **extra: Any) -> None:
        """A tool finished (KPIs: tool_calls_total/_succeeded/_failed)."""
        self._emit("tool_output", {"tool": tool, "success": success, "duration_ms": duration_ms,
                                   "output": output, "tool_call_id": tool_call_id, **extra})

    def error(self, type: str, message: str | None = None, **extra: Any) -> None:  # noqa: A002
        """An error surfaced to the user (KPI: errored_sessions)."""
        self._emit("error", {"error_type": type, "error": message, **extra})

    def user_message(self, content: str | None = None, **extra: Any) -> None:
        """A user turn (event ``user_message``); the count goes into ``session_end``
        as ``turns`` (KPI: turns, tool_calls_per_turn_*)."""
        self.turns += 1
        self._emit("user_message", {"content": content, **extra})

    def feedback(self, rating: str, **extra: Any) -> None:
        """Thumbs ``"up"`` / ``"down"``."""
        self._emit("feedback", {"rating": rating, **extra})

    def undo(self, **extra: Any) -> None:
        """The user undid / regenerated a turn (event ``undo_complete``)."""
        self._emit("undo_complete", extra or None)

    def job_submit(self, flavor: str, job_id: str | None = None, **extra: Any) -> None:
        """A compute job was submitted (event ``hf_job_submit``)."""
        self._emit("hf_job_submit", {"flavor": flavor, "job_id": job_id, **extra})

    def job_complete(self, flavor: str, final_status: str, wall_time_s: float,
                     job_id: str | None = None, **extra: Any) -> None:
        """A compute job finished (event ``hf_job_complete``)."""
        self._emit("hf_job_complete", {"flavor": flavor, "final_status": final_status,
                                       "wall_time_s": wall_time_s, "job_id": job_id, **extra})

    def sandbox_create(self, hardware: str, **extra: Any) -> None:
        self._emit("sandbox_create", {"hardware": hardware, **extra})

    def event(self, type: str, **data: Any) -> None:  # noqa: A002
        """Any other event type."""
        self._emit(type, data or None)

    # -- seed-003 helper capabilities, expressed in the same vocabulary -----
    def performance(self, name: str, value: float, unit: str | None = None,
                    **extra: Any) -> None:
        """A named measurement -> event ``metric`` (data name/value/unit)."""
        self._emit("metric", {"name": name, "value": value, "unit": unit, **extra})

    def agent_execution(self, agent: str, duration_ms: float | None = None,
                        success: bool | None = None, **extra: Any) -> None:
        self._emit("agent_execution", {"agent_id": agent, "duration_ms": duration_ms,
                                       "success": success, **extra})

    def checkpoint(self, checkpoint_id: str | None = None, **extra: Any) -> None:
        self._emit("checkpoint_created", {"checkpoint_id": checkpoint_id, **extra})

    def hook(self, hook: str, **extra: Any) -> None:
        self._emit("hook_triggered", {"hook": hook, **extra})

    def command(self, command: str, success: bool | None = None,
                duration_ms: float | None = None, **extra: Any) -> None:
        self._emit("command_executed", {"command": command, "success": success,
                                        "duration_ms": duration_ms, **extra})

    # -- lifecycle --------------------------------------------------------
    def end(self, **data: Any) -> None:
        """Record ``session_end`` (once)."""
        if self._ended:
            return
        self._ended = True
        if self.turns and "turns" not in data:
            data["turns"] = self.turns
        self._emit("session_end", data or None)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.error(exc_type.__name__, str(exc))
            self.end(status="error")
        else:
            self.end()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)


# ---------------------------------------------------------------- process hooks

def _close_all() -> None:
    for rec in list(_LIVE):
        try:
            rec.close(timeout=5.0)
        except Exception:  # noqa: BLE001,S110 - interpreter is exiting
            pass


def _after_fork_in_child() -> None:
    for rec in list(_LIVE):
        rec._after_fork()
    _LIVE.clear()


_HOOKS: list[bool] = []


def _install_process_hooks() -> None:
    """atexit flush + fork handling, installed on first use (not at import)."""
    if _HOOKS:
        return
    _HOOKS.append(True)
    atexit.register(_close_all)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
