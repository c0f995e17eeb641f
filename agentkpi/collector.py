"""``agentkpi collect``: an OTLP/HTTP trace endpoint that feeds the store.

Three parts, each on its own thread (docs/otel.md "The collector"):

* :class:`Receiver` - ``POST /v1/traces`` (JSON or protobuf, gzip or not): checks the API
  key, the size and the payload, then hands the request to the log and answers 200 only
  once it is on disk.
* :class:`DurableLog` - the SDK's crash-safe event log (:class:`EventLogWriter`): one
  ``otlp_traces`` line per accepted request, written with group commit (the requests
  that arrive while one ``fdatasync`` runs share the next one).
* :class:`TraceIngester` - tails the log, groups spans by trace across requests and writes
  each trace's canonical rows to the store (opened through :func:`open_store` for each
  write, so readers get in between), a second or so behind.

Crash safety: a request is answered 200 after its line is fsynced; the store write of a
trace's rows and of the log offset read so far is one transaction, so after ``kill -9``
the ingester resumes at the offset and re-derives what followed (trace rows are replaced,
never added twice).
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from agentkpi import pricing
from agentkpi.errors import UsageError
from agentkpi.model import CanonicalBatch
from agentkpi.quality import Quality
from agentkpi.sdk.eventlog import EventLogWriter, list_segments, pid_alive
from agentkpi.sources import otel
from agentkpi.store import Store

logger = logging.getLogger("agentkpi.collect")

RECORD_TYPE = "otlp_traces"
DEFAULT_MAX_BODY = 16 * 1024 * 1024
JSON_TYPES = ("application/json",)
PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")


class PayloadError(ValueError):
    """A request we refuse: ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_api_keys(path: str | os.PathLike[str]) -> frozenset[str]:
    """One key per line; blank lines and ``#`` comments ignored."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read API keys from {path}: {exc.strerror or exc}") from None
    keys = frozenset(line.strip() for line in text.splitlines()
                     if line.strip() and not line.strip().startswith("#"))
    if not keys:
        raise UsageError(f"{path} holds no API key; put one key per line")
    return keys


# ------------------------------------------------------------------ payload checks

@dataclass
class Accepted:
    """A request that passed the checks: the log record's ``data`` and the span counts."""

    data: dict[str, Any]
    spans: int
    rejected: int
    reason: str | None = None


def _hex_ok(value: Any, size: int) -> bool:
    if not isinstance(value, str) or len(value) != size * 2:
        return False
    try:
        return int(value, 16) != 0
    except ValueError:
        return False


def check_json(body: bytes) -> Accepted:
    """Validate an OTLP/JSON request; spans without valid ids are rejected (counted)."""
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(400, f"body is not valid JSON ({exc}); send an OTLP/JSON "
                                "ExportTraceServiceRequest") from None
    if not isinstance(req, dict):
        raise PayloadError(400, f"body is a JSON {type(req).__name__}; expected an object "
                                "with resourceSpans")
    groups = req.get("resourceSpans", req.get("resource_spans", []))
    if not isinstance(groups, list):
        raise PayloadError(400, "resourceSpans must be a list")
    total = bad = 0
    for rs in groups:
        if not isinstance(rs, dict):
            raise PayloadError(400, "every resourceSpans entry must be an object")
        for key in ("scopeSpans", "scope_spans"):
            scopes = rs.get(key)
            if scopes is None:
                continue
            if not isinstance(scopes, list):
                raise PayloadError(400, f"{key} must be a list")
            for ss in scopes:
                spans = ss.get("spans") if isinstance(ss, dict) else None
                if spans is None:
                    continue
                if not isinstance(spans, list):
                    raise PayloadError(400, "spans must be a list")
                for s in spans:
                    total += 1
                    if not isinstance(s, dict) or not _hex_ok(
                            s.get("traceId", s.get("trace_id")), 16) or not _hex_ok(
                            s.get("spanId", s.get("span_id")), 8):
                        bad += 1
    return Accepted({"encoding": "json", "request": req}, total, bad,
                    "spans without a valid traceId (32 hex digits) or spanId (16 hex digits)"
                    if bad else None)


def check_protobuf(body: bytes) -> Accepted:
    """Validate an OTLP protobuf request; spans without valid ids are rejected (counted)."""
    try:
        req = otel.parse_protobuf_request(body)
    except ValueError as exc:
        raise PayloadError(400, str(exc)) from None
    total = bad = 0
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                total += 1
                if len(s.trace_id) != 16 or len(s.span_id) != 8 or not s.trace_id.strip(
                        b"\0") or not s.span_id.strip(b"\0"):
                    bad += 1
    return Accepted({"encoding": "protobuf", "body": base64.b64encode(body).decode()},
                    total, bad, "spans without a valid 16-byte trace_id or 8-byte span_id"
                    if bad else None)


def decode_body(body: bytes, encoding: str, limit: int) -> bytes:
    enc = (encoding or "identity").strip().lower()
    if enc in ("identity", ""):
        return body
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise PayloadError(415, f"Content-Encoding {encoding!r} is not supported; use gzip "
                                "or none")
    d = zlib.decompressobj(wbits=47 if enc != "deflate" else 15)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise PayloadError(400, f"body is not valid {enc} ({exc})") from None
    if len(out) > limit or d.unconsumed_tail:
        raise PayloadError(413, f"decompressed body exceeds the {limit}-byte limit; send "
                                "smaller batches")
    if not d.eof:
        raise PayloadError(400, f"{enc} body is truncated")
    return out


# ------------------------------------------------------------------ durable log

class DurableLog:
    """Appends records to the event log; :meth:`append` returns once they are on disk.

    Group commit: request threads queue their line and wait; one writer thread writes
    everything queued in one ``os.write`` + ``fdatasync`` and wakes them all.
    """

    def __init__(self, directory: str | os.PathLike[str], *,
                 max_segment_bytes: int = 64 * 1024 * 1024) -> None:
        self.writer = EventLogWriter(directory, durability="batch", compression=None,
                                     max_segment_bytes=max_segment_bytes)
        self._cv = threading.Condition()
        self._queue: list[tuple[dict[str, Any], _Waiter]] = []
        self._closed = False
        self.records = 0
        self.syncs = 0
        self._thread = threading.Thread(target=self._run, name="agentkpi-collect-log",
                                        daemon=True)
        self._thread.start()

    def append(self, data: dict[str, Any], timeout: float = 30.0) -> None:
        """Queue one ``otlp_traces`` record; raises ``OSError`` if it could not be written."""
        w = _Waiter()
        with self._cv:
            if self._closed:
                raise OSError("the collector is shutting down")
            self._queue.append((data, w))
            self._cv.notify()
        if not w.event.wait(timeout):
            raise OSError("timed out writing the event log")
        if w.error is not None:
            raise w.error

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue and self._closed:
                    return
                batch, self._queue = self._queue, []
            now = time.time()
            buf = bytearray()
            for data, _ in batch:
                buf += self.writer.format(now, None, RECORD_TYPE, data, None)
            err: OSError | None = None
            try:
                self.writer.write(int(now // 86400), buf)
                self.syncs += 1
                self.records += len(batch)
            except OSError as exc:
                err = exc
                logger.error("agentkpi collect: writing the event log failed: %s", exc)
            for _, w in batch:
                w.error = err
                w.event.set()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(30)
        self.writer.close()


@dataclass
class _Waiter:
    event: threading.Event = field(default_factory=threading.Event)
    error: OSError | None = None


# ------------------------------------------------------------------ HTTP

class Receiver(ThreadingHTTPServer):
    """The OTLP/HTTP endpoint (one thread per connection, HTTP/1.1 keep-alive)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, log: DurableLog, *,
                 api_keys: frozenset[str] | None = None,
                 max_body: int = DEFAULT_MAX_BODY) -> None:
        family_v6 = ":" in host
        if family_v6:
            import socket

            self.address_family = socket.AF_INET6
        super().__init__((host.strip("[]"), port), _Handler)
        self.log = log
        self.api_keys = api_keys
        self.max_body = max_body
        self.accepted_requests = 0
        self.accepted_spans = 0
        self.rejected_spans = 0
        self.refused_requests = 0
        self._lock = threading.Lock()

    def count(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"
    server_version = "agentkpi-collect"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        logger.debug("%s " + format, self.address_string(), *args)

    # -- answers
    def _send(self, status: int, body: bytes, ctype: str, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", "1")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, proto: bool, close: bool = False) -> None:
        self.server.count(refused_requests=1)
        code = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 411: 3, 413: 8, 415: 3,
                503: 14}.get(status, 2)
        if proto:
            msg = message.encode()
            body = b"\x08" + _varint(code) + b"\x12" + _varint(len(msg)) + msg
            self._send(status, body, "application/x-protobuf", close)
        else:
            self._send(status, orjson.dumps({"code": code, "message": message}),
                       "application/json", close)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("", "/health", "/healthz"):
            s = self.server
            self._send(200, orjson.dumps({"status": "ok", "accepted_requests":
                                          s.accepted_requests, "accepted_spans":
                                          s.accepted_spans}), "application/json")
        else:
            self._error(404, f"no such endpoint {self.path}; POST traces to /v1/traces",
                        False)

    def do_PUT(self) -> None:
        self._error(405, "use POST /v1/traces", False, close=True)

    def do_POST(self) -> None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        proto = ctype in PROTOBUF_TYPES
        path = self.path.split("?", 1)[0]
        if path != "/v1/traces":
            self._drain_or_close()
            self._error(404, f"no such endpoint {path}; this collector accepts traces at "
                             "/v1/traces (metrics and logs are not collected)", proto)
            return
        keys = self.server.api_keys
        if keys is not None:
            auth = self.headers.get("Authorization") or ""
            if not auth.startswith("Bearer ") or not auth[7:].strip():
                self._drain_or_close()
                self._error(401, "missing API key: send 'Authorization: Bearer <key>' "
                                 "(OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<key>)",
                            proto)
                return
            given = auth[7:].strip().encode()
            if not any(hmac.compare_digest(given, k.encode()) for k in keys):
                self._drain_or_close()
                self._error(403, "API key not accepted", proto)
                return
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._error(411, "chunked bodies are not accepted; send Content-Length", proto,
                        close=True)
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._error(411, "Content-Length is required", proto, close=True)
            return
        limit = self.server.max_body
        if length < 0 or length > limit:
            self._error(413, f"body of {length} bytes exceeds the {limit}-byte limit; send "
                             "smaller batches (e.g. OTEL_BSP_MAX_EXPORT_BATCH_SIZE)", proto,
                        close=True)
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return
        if ctype not in JSON_TYPES and not proto:
            self._error(415, f"Content-Type {ctype or 'missing'!r} is not supported; use "
                             "application/json or application/x-protobuf", proto)
            return
        try:
            body = decode_body(body, self.headers.get("Content-Encoding", ""), limit)
            acc = check_protobuf(body) if proto else check_json(body)
        except PayloadError as exc:
            self._error(exc.status, str(exc), proto)
            return
        try:
            self.server.log.append(acc.data)
        except OSError as exc:
            self._error(503, f"could not store the request ({exc}); retry later", proto)
            return
        self.server.count(accepted_requests=1, accepted_spans=acc.spans - acc.rejected,
                          rejected_spans=acc.rejected)
        if proto:
            body_out = b""
            if acc.rejected:
                msg = f"{acc.rejected} {acc.reason}".encode()
                inner = b"\x08" + _varint(acc.rejected) + b"\x12" + _varint(len(msg)) + msg
                body_out = b"\x0a" + _varint(len(inner)) + inner
            self._send(200, body_out, "application/x-protobuf")
        else:
            out: dict[str, Any] = {}
            if acc.rejected:
                out["partialSuccess"] = {"rejectedSpans": str(acc.rejected),
                                         "errorMessage": f"{acc.rejected} {acc.reason}"}
            self._send(200, orjson.dumps(out), "application/json")

    def _drain_or_close(self) -> None:
        """Read a small body so the connection can be reused; close on a large one."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if 0 <= length <= 1 << 20:
            self.rfile.read(length)
        else:
            self.close_connection = True


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# ------------------------------------------------------------------ ingest

class _Trace:
    __slots__ = ("spans", "own", "unit", "written", "last_seen", "settled_at", "stats")

    def __init__(self) -> None:
        self.spans: dict[str, otel.Span] = {}
        self.own: set[str] = set()
        self.unit: str | None = None
        self.written = False
        self.last_seen = 0.0
        self.settled_at: float | None = None
        self.stats: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass
class IngestStats:
    records: int = 0  # records read from the log
    committed: int = 0  # records whose rows are in the store
    spans: int = 0
    traces_written: int = 0
    events: int = 0
    spans_merged: int = 0
    tool_spans_merged: int = 0
    agent_usage_ignored: int = 0
    duplicate_spans: int = 0
    cycles: int = 0
    last_write: float = 0.0
    quality: Quality = field(default_factory=Quality)


class TraceIngester:
    """Tails the collector's log and keeps the store up to date, trace by trace.

    A trace's rows are derived from all of its spans seen so far (so a wrapper span
    arriving after its children, or the agent span arriving last, is handled) and
    replace the trace's previous rows: ``events.file`` is the trace's *unit*
    ``<log dir>#trace=<trace id>@<segment>:<offset of its first record>``. A trace
    stays in memory until it is settled (its root arrived and no parent is missing) for
    ``settle`` seconds, or idle for ``window`` seconds; spans arriving after that start
    a new unit (earlier spans are not re-emitted, so nothing is counted twice).
    """

    def __init__(self, log_dir: str | os.PathLike[str], open_store: Callable[[], Store], *,
                 interval: float = 1.0, window: float = 300.0, settle: float = 30.0,
                 max_spans: int = 200_000, engine: str = "duckdb") -> None:
        self.dir = Path(log_dir).resolve()
        self.prefix = str(self.dir)
        self.open_store = open_store
        self.interval = interval
        self.window = window
        self.settle = settle
        self.max_spans = max_spans
        self.atomic = engine == "duckdb"
        self.hold = min(2.0, max(interval * 2, 0.5))
        self._store: Store | None = None
        self._store_since = 0.0
        self._yielded = False
        self._pending = [0, 0]
        self.offsets: dict[str, int] = {}
        self.traces: dict[str, _Trace] = {}
        self.n_spans = 0
        self.stats = IngestStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self.error: str | None = None

    # -- lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="agentkpi-collect-ingest",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(120)
        try:
            self.run_once()  # what arrived last
            record = getattr(self._store_open(), "record_audit", None)
            if record is not None:
                record(self.audit_rows())
        except Exception as exc:  # noqa: BLE001 - the log keeps it for the next start
            logger.error("agentkpi collect: final ingest failed (the next start catches "
                         "up): %s", exc)
        finally:
            self._store_release(busy=False)

    def audit_rows(self) -> list[dict[str, Any]]:
        """This run's import-audit counters as rows of the store's ``import_audit``."""
        st = self.stats
        counts = {"lines_read": st.records, "otel_spans_merged": st.spans_merged,
                  "otel_tool_spans_merged": st.tool_spans_merged,
                  "otel_agent_usage_ignored": st.agent_usage_ignored,
                  "otel_duplicate_spans": st.duplicate_spans,
                  **{k: n for k, n in st.quality.audit.items() if k.startswith("malformed")}}
        now = datetime.now(UTC).replace(tzinfo=None)
        return [{"run_at": now, "source": self.prefix, "format": "otel-collector",
                 "machine": None, "kind": k, "n": n} for k, n in sorted(counts.items()) if n]

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.run_once()
                self.error = None
            except Exception as exc:  # noqa: BLE001 - keep collecting; report and retry
                self.error = f"{type(exc).__name__}: {exc}"
                logger.error("agentkpi collect: ingest failed (will retry): %s", self.error)
            # after giving the store up under load, leave readers a moment to get in
            pause = 0.25 if self._yielded else 0.05
            self._yielded = False
            self._stop.wait(max(pause, self.interval - (time.monotonic() - t0)))

    # -- one cycle
    def recover(self, store: Store) -> None:
        """Offsets from the store's ledger; recent traces rebuilt as context."""
        ledger = store.fingerprints(self.prefix)
        units = {p: fp for p, fp in ledger.items() if "#trace=" in p}
        for p, fp in ledger.items():
            if "#trace=" not in p:
                try:
                    self.offsets[p] = int(fp.split(":", 1)[0])
                except ValueError:
                    pass
        horizon = time.time() - self.window
        for seg in list_segments(self.dir):
            path = str(seg.path)
            upto = self.offsets.get(path, 0)
            if not upto or seg.compression is not None:
                continue
            try:
                if seg.path.stat().st_mtime < horizon:
                    continue
                with open(seg.path, "rb") as fh:
                    raw = fh.read(upto)
            except OSError:
                continue
            self._consume(path, seg.path.name, raw, 0, Quality(), now=time.time())
        for tr in self.traces.values():
            if tr.unit is not None and units.get(tr.unit) == f"spans:{len(tr.own)}":
                tr.written = True
                tr.stats = (0, 0, 0, 0)
            else:  # its first spans came before what we re-read: keep them as context
                tr.own.clear()
                tr.unit = None
            tr.settled_at = None
        self.stats = IngestStats()  # count what this run ingests
        self._started = True

    def run_once(self) -> int:
        """Read what is new in the log and write it; returns the events written."""
        if not self._started:
            try:
                self.recover(self._store_open())
            finally:
                self._store_release(busy=False)
        q = Quality()
        now = time.time()
        dirty: set[str] = set()
        progress: list[dict[str, Any]] = []
        offsets: dict[str, int] = {}
        self._pending = [0, 0]  # records, spans read this cycle
        for seg in list_segments(self.dir):
            if seg.compression is not None:
                continue
            path = str(seg.path)
            try:
                st = seg.path.stat()
            except OSError:
                continue
            start = self.offsets.get(path, 0)
            if st.st_size <= start:
                continue
            try:
                with open(seg.path, "rb") as fh:
                    fh.seek(start)
                    raw = fh.read(st.st_size - start)
            except OSError:
                continue
            end = raw.rfind(b"\n") + 1
            if end < len(raw) and not pid_alive(seg.pid):
                # a dead writer's torn last line (it was never answered 200)
                q.note("line_bad_json", f"{path}: torn last line")
                end = len(raw)
            if end == 0:
                continue
            dirty |= self._consume(path, seg.path.name, raw[:end], start, q, now)
            offsets[path] = start + end
            mtime = st.st_mtime
            progress.append({"path": path, "fingerprint": f"{start + end}:{mtime}",
                             "source": "otel-collector", "status": "ok", "reason": None,
                             "n_sessions": 0, "n_events": 0})
        written = 0
        try:
            if dirty or progress:
                written = self._write(dirty, progress, q)
        finally:
            self._store_release(busy=bool(dirty or progress))
        # only now: a failed write is retried from the same offsets next cycle (the
        # spans already buffered are the same spans, keyed by id)
        self.offsets.update(offsets)
        self.stats.records += self._pending[0]
        self.stats.spans += self._pending[1]
        self.stats.committed = self.stats.records
        self._evict(now)
        self.stats.cycles += 1
        self.stats.quality.merge(q)
        return written

    def _consume(self, path: str, name: str, raw: bytes, base: int, q: Quality,
                 now: float) -> set[str]:
        """Spans of the records in ``raw`` (read from ``base``) into their traces."""
        dirty: set[str] = set()
        pos = 0
        for line in raw.split(b"\n"):
            at = base + pos
            pos += len(line) + 1
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                q.note("line_bad_json", f"{path}@{at}")
                continue
            if not isinstance(rec, dict) or rec.get("event_type") != RECORD_TYPE:
                continue
            self._pending[0] += 1
            spans = otel.spans_from_log_record(rec.get("data"), q, f"{path}@{at}")
            self._pending[1] += len(spans)
            for s in spans:
                tr = self.traces.get(s.trace_id)
                if tr is None:
                    tr = self.traces[s.trace_id] = _Trace()
                if tr.unit is None:
                    tr.unit = f"{self.prefix}#trace={s.trace_id}@{name}:{at}"
                    tr.written = False
                if s.span_id not in tr.spans:
                    self.n_spans += 1
                tr.spans[s.span_id] = s
                tr.own.add(s.span_id)
                tr.last_seen = now
                tr.settled_at = None
                dirty.add(s.trace_id)
        return dirty

    def _write(self, dirty: set[str], progress: list[dict[str, Any]], q: Quality) -> int:
        batch = CanonicalBatch()
        ledger = list(progress)
        fresh = self.atomic
        spans: list[otel.Span] = []
        emit: set[tuple[str, str]] = set()
        files: dict[str, str] = {}
        for tid in dirty:
            tr = self.traces[tid]
            assert tr.unit is not None
            spans.extend(tr.spans.values())
            emit.update((tid, sid) for sid in tr.own)
            files[tid] = tr.unit
            if tr.written:
                fresh = False
        d = otel.derive(spans, batch, q, self.prefix, emit=emit, source_path=self.prefix,
                        files=files)
        per_unit: dict[str | None, int] = {}
        for f in batch.events["file"]:
            per_unit[f] = per_unit.get(f, 0) + 1
        for tid in dirty:
            tr = self.traces[tid]
            ledger.append({"path": tr.unit, "fingerprint": f"spans:{len(tr.own)}",
                           "source": otel.NAME, "status": "ok", "reason": None,
                           "n_sessions": 0, "n_events": per_unit.get(tr.unit, 0)})
        # the ingest's one pricing step (a source cost wins; unknown models stay NULL);
        # its counters are not added up here: a trace may be re-derived several times
        events = pricing.price_events(batch.event_table(), Quality())
        store = self._store_open()
        store.write_batch(batch.session_table(), events, ledger, replace_sessions=False,
                          fresh=fresh)
        st = self.stats
        for tid in dirty:
            tr = self.traces[tid]
            tr.written = True
            got = (d.by_trace or {}).get(tid)
            new = (got[0], got[1], got[2], got[3]) if got else (0, 0, 0, 0)
            old = tr.stats
            st.spans_merged += new[0] - old[0]
            st.tool_spans_merged += new[1] - old[1]
            st.agent_usage_ignored += new[2] - old[2]
            st.duplicate_spans += new[3] - old[3]
            tr.stats = new
        st.traces_written += len(dirty)
        st.events += batch.n_events
        st.last_write = time.time()
        return batch.n_events

    def _store_open(self) -> Store:
        if self._store is None:
            self._store = self.open_store()
            self._store_since = time.monotonic()
        return self._store

    def _store_release(self, busy: bool) -> None:
        """Close the store when idle, or after holding it ``hold`` seconds under load, so
        readers (query, dashboard) get in; reopening costs a checkpoint, hence the hold."""
        if self._store is not None and (not busy or
                                        time.monotonic() - self._store_since >= self.hold):
            store, self._store = self._store, None
            store.close()
            self._yielded = busy

    def _evict(self, now: float) -> None:
        for tid, tr in list(self.traces.items()):
            if tr.settled_at is None and _settled(tr):
                tr.settled_at = now
            idle = now - tr.last_seen
            if idle > self.window or (tr.settled_at is not None and
                                      now - tr.settled_at > self.settle):
                self.n_spans -= len(tr.spans)
                del self.traces[tid]
        if self.n_spans > self.max_spans:
            for tid, tr in sorted(self.traces.items(), key=lambda kv: kv[1].last_seen):
                if self.n_spans <= self.max_spans * 0.8:
                    break
                self.n_spans -= len(tr.spans)
                del self.traces[tid]


def _settled(tr: _Trace) -> bool:
    """The root span is there and every span's parent is known."""
    has_root = False
    for s in tr.spans.values():
        if s.parent_id is None:
            has_root = True
        elif s.parent_id not in tr.spans:
            return False
    return has_root


# ------------------------------------------------------------------ the whole thing

class Collector:
    """Receiver + log + ingester; :meth:`serve_forever` until :meth:`shutdown`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 4318,
                 log_dir: str | os.PathLike[str] = "agentkpi-otlp",
                 open_store: Callable[[], Store], engine: str = "duckdb",
                 api_keys: frozenset[str] | None = None, max_body: int = DEFAULT_MAX_BODY,
                 interval: float = 1.0, window: float = 300.0, settle: float = 30.0,
                 max_segment_bytes: int = 64 * 1024 * 1024) -> None:
        if api_keys is None and not is_loopback(host):
            raise UsageError(f"binding {host} exposes the collector beyond this machine: "
                             "pass --api-keys FILE (one key per line), or bind 127.0.0.1")
        self.log = DurableLog(log_dir, max_segment_bytes=max_segment_bytes)
        try:
            self.server = Receiver(host, port, self.log, api_keys=api_keys, max_body=max_body)
        except OSError as exc:
            self.log.close()
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick "
                             "another --port or stop what uses it") from None
        self.ingester = TraceIngester(log_dir, open_store, interval=interval, window=window,
                                      settle=settle, engine=engine)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def serve_forever(self) -> None:
        self.ingester.start()
        try:
            self.server.serve_forever(poll_interval=0.2)
        finally:
            self.server.server_close()
            self.log.close()
            self.ingester.stop()

    def shutdown(self) -> None:
        self.server.shutdown()

