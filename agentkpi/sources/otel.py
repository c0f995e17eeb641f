"""OpenTelemetry GenAI traces: OTLP/JSON, the older envelope, the SDK's JSON, protobuf.

Spans in, canonical rows out. Four input shapes are read (see docs/otel.md):

* **OTLP/JSON** ``{"resourceSpans": [{"resource", "scopeSpans": [{"scope", "spans"}]}]}``
  (also snake_case, and one request per line as the collector's file exporter writes);
  64-bit integers as strings or numbers, hex ids in any case, enum kinds as integers or
  ``"SPAN_KIND_*"`` strings.
* **The older envelope** ``{"batches": [{"resource", "instrumentationLibrarySpans":
  [{"instrumentationLibrary", "spans"}]}]}`` (string enum kinds, numeric timestamps,
  base64 ids).
* **The OTel SDK's own JSON** (``ConsoleSpanExporter`` / ``span.to_json()`` and
  recorders such as any-agent): flat ``attributes``, ``context.trace_id`` as ``0x…`` hex
  or integer, ``parent_id`` or ``parent{span_id}``, ISO or nanosecond times; a file may
  hold one object, a list, ``{"spans": [...]}``, or pretty-printed objects back to back.
* **Langfuse trace exports** whose observations keep the original OTel attributes
  (``observations[].metadata.attributes``).

Plus ``otlp_traces`` records of an agentkpi event log (what ``agentkpi collect``
appends): ``data.encoding`` ``json`` (the request object) or ``protobuf`` (base64 body).

Mapping (docs/otel.md has the full table): model-call spans -> ``llm_call``;
``execute_tool`` spans -> ``tool_call`` + ``tool_output``; ``invoke_agent`` -> the
``agent`` dimension (and an ``agent_execution`` lifecycle event); session =
``gen_ai.conversation.id`` (own, an ancestor's, else the trace's) else the trace id;
project = the resource's ``service.name``. Token convention: ``prompt_tokens`` =
input tokens *not* read from or written to cache (OTel input includes them).

**Every model call once** (:func:`derive`): within a trace, a model-call span that has
model-call descendants is a wrapper of the same call; the innermost spans that carry
usage are counted, wrappers are merged into them; a wrapper whose descendants carry no
usage is itself the call. Agent spans never count as calls (their usage repeats their
children's). Merged spans are reported in the import audit.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import posixpath
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson

from agentkpi.model import EVENT_COLUMNS, CanonicalBatch
from agentkpi.quality import Quality, decode_json, to_float, to_int, to_str

NAME = "otel"
REPLACES_SESSIONS = False

FILE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
_SNIFF_BYTES = 65536
_MARKERS = (b'"resourceSpans"', b'"resource_spans"', b'"batches"', b'"otlp_traces"',
            b'"scopeSpans"', b'"instrumentationLibrarySpans"')

# span classes
MODEL, TOOL, AGENT, OTHER = "model", "tool", "agent", "other"

MODEL_OPERATIONS = frozenset({
    "chat", "text_completion", "generate_content", "embeddings", "completion", "call_llm",
    "responses", "generate", "create_response", "chat_completion", "inference",
})
AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent", "invoke_workflow"})
TOOL_OPERATIONS = frozenset({"execute_tool"})

# Attribute names, first present wins (standard name first, then deprecated names and
# common aliases of instrumentations: OpenLLMetry, OpenInference, pydantic-ai/Logfire).
INPUT_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
              "llm.token_count.prompt", "llm.usage.prompt_tokens")
OUTPUT_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
               "llm.token_count.completion", "llm.usage.completion_tokens")
CACHE_READ_KEYS = ("gen_ai.usage.cache_read.input_tokens",
                   "gen_ai.usage.cache_read_input_tokens", "gen_ai.usage.cache_read_tokens",
                   "gen_ai.usage.input_tokens.cached", "gen_ai.usage.cached_tokens",
                   "gen_ai.usage.details.cache_read_tokens",
                   "gen_ai.usage.details.cached_tokens",
                   "llm.token_count.prompt_details.cache_read",
                   "llm.usage.cache_read_input_tokens")
CACHE_CREATION_KEYS = ("gen_ai.usage.cache_creation.input_tokens",
                       "gen_ai.usage.cache_creation_input_tokens",
                       "gen_ai.usage.cache_write_tokens",
                       "gen_ai.usage.details.cache_write_tokens",
                       "gen_ai.usage.details.cache_creation_input_tokens",
                       "llm.token_count.prompt_details.cache_write",
                       "llm.usage.cache_creation_input_tokens")
CACHE_CREATION_1H_KEYS = ("gen_ai.usage.cache_creation.1h.input_tokens",
                          "gen_ai.usage.details.ephemeral_1h_input_tokens")
REASONING_KEYS = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                  "gen_ai.usage.output_tokens.reasoning",
                  "gen_ai.usage.details.reasoning_tokens",
                  "llm.token_count.completion_details.reasoning")
USAGE_KEYS = INPUT_KEYS + OUTPUT_KEYS + CACHE_READ_KEYS + CACHE_CREATION_KEYS
_USAGE_SET = frozenset(USAGE_KEYS)
_TOKEN_ALIASES: dict[str, tuple[str, int]] = {
    k: (bucket, rank)
    for bucket, keys in (("input", INPUT_KEYS), ("output", OUTPUT_KEYS),
                         ("read", CACHE_READ_KEYS), ("write", CACHE_CREATION_KEYS),
                         ("write_1h", CACHE_CREATION_1H_KEYS), ("reasoning", REASONING_KEYS))
    for rank, k in enumerate(keys)}
COST_KEYS = ("gen_ai.usage.cost", "gen_ai.usage.cost.amount", "llm.cost.total")
COST_PART_KEYS = ("gen_ai.usage.input_cost", "gen_ai.usage.output_cost")
CONVERSATION_KEYS = ("gen_ai.conversation.id", "session.id", "gen_ai.session.id")
USER_KEYS = ("user.id", "enduser.id", "gen_ai.user.id")
PROJECT_KEYS = ("agentkpi.project", "project.name", "service.name")
# Opt-in content attributes (prompts, outputs, schemas) are not copied into ``data``.
_CONTENT_PREFIXES = ("gen_ai.input.", "gen_ai.output", "gen_ai.prompt", "gen_ai.completion",
                     "gen_ai.system_instructions", "gen_ai.tool.definitions",
                     "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.tool.args",
                     "llm.input_messages", "llm.output_messages", "llm.tools",
                     "llm.invocation_parameters", "input.value", "output.value")
_MAX_ATTR_CHARS = 512

_KIND_NAMES = {"UNSPECIFIED": 0, "INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4,
               "CONSUMER": 5}
_STATUS_NAMES = {"UNSET": 0, "OK": 1, "ERROR": 2}
_EPOCH = datetime(1970, 1, 1)
_BIG_INT_ID = re.compile(rb'"(?:trace_id|span_id)"\s*:\s*\d{20,}')


class Span:
    """One span, whatever shape it came in. ``status``: 0 unset, 1 ok, 2 error."""

    __slots__ = ("trace_id", "span_id", "parent_id", "name", "kind", "start_ns", "end_ns",
                 "status", "status_message", "attrs", "resource", "scope")

    def __init__(self, trace_id: str, span_id: str, parent_id: str | None, name: str | None,
                 kind: int | None, start_ns: int | None, end_ns: int | None, status: int,
                 status_message: str | None, attrs: dict[str, Any],
                 resource: dict[str, Any], scope: str | None) -> None:
        self.trace_id, self.span_id, self.parent_id = trace_id, span_id, parent_id
        self.name, self.kind = name, kind
        self.start_ns, self.end_ns = start_ns, end_ns
        self.status, self.status_message = status, status_message
        self.attrs, self.resource, self.scope = attrs, resource, scope

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Span({self.name!r}, {self.trace_id}/{self.span_id} <- {self.parent_id})"


# ------------------------------------------------------------------ value decoding

def _int(value: Any) -> int | None:
    """OTLP 64-bit integer: a decimal string or a number."""
    if type(value) is int:
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return int(float(value))
            except ValueError:
                return None
    if isinstance(value, float) and value == value and abs(value) < 2**63:
        return int(value)
    return None


_ANY_KEYS = {
    "stringValue": "s", "string_value": "s", "boolValue": "b", "bool_value": "b",
    "intValue": "i", "int_value": "i", "doubleValue": "d", "double_value": "d",
    "arrayValue": "a", "array_value": "a", "kvlistValue": "k", "kvlist_value": "k",
    "bytesValue": "y", "bytes_value": "y",
}


def any_value(v: Any) -> Any:
    """An OTLP/JSON ``AnyValue`` -> Python value (scalars given bare are kept)."""
    if not isinstance(v, dict):
        return v
    for key, x in v.items():
        t = _ANY_KEYS.get(key)
        if t is None:
            continue
        if t == "s" or t == "b" or t == "y":
            return x
        if t == "i":
            n = _int(x)
            return x if n is None else n
        if t == "d":
            try:
                return float(x)
            except (TypeError, ValueError):
                return x
        if t == "a":
            return [any_value(i) for i in (x or {}).get("values") or ()] \
                if isinstance(x, dict) else []
        if t == "k":
            return attributes((x or {}).get("values")) if isinstance(x, dict) else {}
    return None


def attributes(kvs: Any) -> dict[str, Any]:
    """OTLP key/value list (or an already flat object) -> flat dict."""
    if isinstance(kvs, dict):
        return kvs
    out: dict[str, Any] = {}
    if isinstance(kvs, list):
        for kv in kvs:
            if isinstance(kv, dict):
                key = kv.get("key")
                if isinstance(key, str):
                    out[key] = any_value(kv.get("value"))
    return out


def _hex_id(value: Any, size: int) -> str | None:
    """Trace/span id -> lower-case hex of ``size`` bytes (hex, ``0x`` hex, int or base64)."""
    if value is None or value == "":
        return None
    if type(value) is int:
        if value <= 0:
            return None
        return format(value, f"0{size * 2}x")
    if not isinstance(value, str):
        return None
    s = value.strip()
    if s.startswith(("0x", "0X")):
        s = s[2:]
    if len(s) == size * 2:
        try:
            int(s, 16)
            low = s.lower()
            return None if low.strip("0") == "" else low
        except ValueError:
            pass
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) == size and raw.strip(b"\0"):
        return raw.hex()
    return None


def _kind(value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, str):
        name = value.upper().rsplit(".", 1)[-1].removeprefix("SPAN_KIND_")
        return _KIND_NAMES.get(name)
    return None


def _status(value: Any) -> tuple[int, str | None]:
    if not isinstance(value, dict):
        return 0, None
    code = value.get("code", value.get("status_code", value.get("statusCode")))
    message = to_str(value.get("message", value.get("description")))
    if type(code) is int:
        return (code if code in (0, 1, 2) else 0), message
    if isinstance(code, str):
        name = code.upper().rsplit(".", 1)[-1].removeprefix("STATUS_CODE_")
        return _STATUS_NAMES.get(name, 0), message
    return 0, message


def _time_ns(value: Any, q: Quality, where: str) -> int | None:
    """Nanoseconds since the epoch from a number, a decimal string or ISO-8601 text.

    A time that is present but unreadable, or outside the years 1..9999 in UTC, is
    missing and counted (``ts_unparseable``); the span is kept."""
    if value is None or value == "":
        return None
    n = _int(value)
    if n is None and isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            offset = dt.utcoffset()
            if offset is not None:
                dt = (dt - offset).replace(tzinfo=None)
        except (ValueError, OverflowError):  # overflow: e.g. 9999-12-31T23:30-01:00
            dt = None
        if dt is not None:
            delta = dt - _EPOCH
            n = (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if n is None or ns_to_dt(n) is None:
        q.note("ts_unparseable", f"{where}: time {str(value)[:40]!r}")
        return None
    return n


def ns_to_dt(ns: int | None) -> datetime | None:
    """Nanoseconds since the epoch -> naive UTC datetime; None when out of range."""
    if ns is None:
        return None
    try:
        return _EPOCH + timedelta(microseconds=ns // 1000)
    except OverflowError:
        return None


# ------------------------------------------------------------------ shapes -> spans

def _resource_scopes(rs: dict[str, Any]) -> Iterator[tuple[dict[str, Any], Any]]:
    """(scope spans container, scope name) of one resourceSpans/batches entry."""
    for key in ("scopeSpans", "scope_spans", "instrumentationLibrarySpans",
                "instrumentation_library_spans"):
        groups = rs.get(key)
        if isinstance(groups, list):
            for g in groups:
                if isinstance(g, dict):
                    scope = g.get("scope") or g.get("instrumentationLibrary") \
                        or g.get("instrumentation_library")
                    yield g, scope.get("name") if isinstance(scope, dict) else None


def spans_from_otlp(obj: dict[str, Any], q: Quality, where: str) -> list[Span]:
    """Spans of an OTLP/JSON request (or the older ``batches`` envelope)."""
    out: list[Span] = []
    groups = obj.get("resourceSpans", obj.get("resource_spans", obj.get("batches")))
    if not isinstance(groups, list):
        q.note("field_wrong_type", f"{where}: resourceSpans is not a list")
        return out
    for rs in groups:
        if not isinstance(rs, dict):
            q.note("field_wrong_type", f"{where}: resourceSpans entry is not an object")
            continue
        res = rs.get("resource")
        resource = attributes(res.get("attributes")) if isinstance(res, dict) else {}
        for group, scope in _resource_scopes(rs):
            spans = group.get("spans")
            if not isinstance(spans, list):
                continue
            for raw in spans:
                span = _otlp_span(raw, resource, scope, q, where)
                if span is not None:
                    out.append(span)
    return out


def _otlp_span(raw: Any, resource: dict[str, Any], scope: Any, q: Quality,
               where: str) -> Span | None:
    if not isinstance(raw, dict):
        q.note("event_not_object", where)
        return None
    g = raw.get
    trace_id = _hex_id(g("traceId", g("trace_id")), 16)
    span_id = _hex_id(g("spanId", g("span_id")), 8)
    if trace_id is None or span_id is None:
        q.note("span_id_invalid", f"{where}: span {g('name')!r}")
        return None
    status, message = _status(g("status"))
    return Span(trace_id, span_id, _hex_id(g("parentSpanId", g("parent_span_id")), 8),
                to_str(g("name")), _kind(g("kind")),
                _time_ns(g("startTimeUnixNano", g("start_time_unix_nano")), q, where),
                _time_ns(g("endTimeUnixNano", g("end_time_unix_nano")), q, where), status,
                message,
                attributes(g("attributes")), resource, to_str(scope))


def _sdk_span(raw: Any, q: Quality, where: str) -> Span | None:
    """One span as the OTel SDK writes it (``ReadableSpan.to_json()``) or any-agent."""
    if not isinstance(raw, dict):
        q.note("event_not_object", where)
        return None
    g = raw.get
    ctx_raw = g("context")
    ctx = ctx_raw if isinstance(ctx_raw, dict) else {}
    trace_id = _hex_id(ctx.get("trace_id"), 16)
    span_id = _hex_id(ctx.get("span_id"), 8)
    if trace_id is None or span_id is None:
        q.note("span_id_invalid", f"{where}: span {g('name')!r}")
        return None
    parent = g("parent_id")
    parent_raw = g("parent")
    if parent is None and isinstance(parent_raw, dict):
        parent = parent_raw.get("span_id")
    status, message = _status(g("status"))
    res = g("resource")
    resource = attributes(res.get("attributes")) if isinstance(res, dict) else {}
    scope = g("instrumentation_scope") or g("instrumentation_info")
    return Span(trace_id, span_id, _hex_id(parent, 8), to_str(g("name")), _kind(g("kind")),
                _time_ns(g("start_time"), q, where), _time_ns(g("end_time"), q, where), status,
                message,
                attributes(g("attributes")), resource,
                to_str(scope.get("name")) if isinstance(scope, dict) else None)


def _langfuse_spans(obj: dict[str, Any], q: Quality, where: str) -> list[Span]:
    """Observations of a Langfuse trace export that carry the original OTel attributes."""
    trace_raw = obj.get("trace")
    trace = trace_raw if isinstance(trace_raw, dict) else {}
    out: list[Span] = []
    for o in obj.get("observations") or ():
        if not isinstance(o, dict):
            q.note("event_not_object", where)
            continue
        meta = o.get("metadata")
        if isinstance(meta, str):
            try:
                meta = orjson.loads(meta)
            except orjson.JSONDecodeError:
                meta = None
        meta = meta if isinstance(meta, dict) else {}
        trace_id = _hex_id(o.get("traceId") or trace.get("id"), 16)
        span_id = _hex_id(o.get("id"), 8)
        if trace_id is None or span_id is None:
            q.note("span_id_invalid", f"{where}: observation {o.get('id')!r}")
            continue
        attrs = attributes(meta.get("attributes"))
        level = to_str(o.get("level"))
        status = 2 if level == "ERROR" else 0
        scope = meta.get("scope")
        out.append(Span(trace_id, span_id, _hex_id(o.get("parentObservationId"), 8),
                        to_str(o.get("name")), None, _time_ns(o.get("startTime"), q, where),
                        _time_ns(o.get("endTime"), q, where), status,
                        to_str(o.get("statusMessage")),
                        attrs, attributes(meta.get("resourceAttributes")),
                        to_str(scope.get("name")) if isinstance(scope, dict) else None))
    return out


def spans_from_object(obj: Any, q: Quality, where: str) -> list[Span]:
    """Spans of one decoded JSON value of any supported shape (see the module doc)."""
    if isinstance(obj, list):
        out: list[Span] = []
        for item in obj:
            out.extend(spans_from_object(item, q, where))
        return out
    if not isinstance(obj, dict):
        q.note("event_not_object", where)
        return []
    if "resourceSpans" in obj or "resource_spans" in obj or "batches" in obj:
        return spans_from_otlp(obj, q, where)
    if obj.get("event_type") == "otlp_traces":
        return spans_from_log_record(obj.get("data"), q, where)
    if "observations" in obj:
        return _langfuse_spans(obj, q, where)
    if isinstance(obj.get("spans"), list):
        return spans_from_object(obj["spans"], q, where)
    if "context" in obj:
        span = _sdk_span(obj, q, where)
        return [span] if span is not None else []
    if "traceId" in obj and "spanId" in obj:
        span = _otlp_span(obj, {}, None, q, where)
        return [span] if span is not None else []
    q.note("field_wrong_type", f"{where}: not a recognised trace shape")
    return []


def spans_from_log_record(data: Any, q: Quality, where: str) -> list[Span]:
    """Spans of the ``data`` of an ``otlp_traces`` event-log record."""
    if not isinstance(data, dict):
        q.note("field_wrong_type", f"{where}: otlp_traces data is not an object")
        return []
    encoding = data.get("encoding", "json")
    if encoding == "protobuf":
        try:
            body = base64.b64decode(data.get("body") or "", validate=True)
            return spans_from_protobuf(body)
        except (binascii.Error, ValueError, TypeError) as exc:
            q.note("field_bad_json", f"{where}: protobuf body unreadable ({exc})")
            return []
    return spans_from_object(data.get("request"), q, where)


# ------------------------------------------------------------------ protobuf

def _proto_modules() -> Any:
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    except ImportError as exc:  # pragma: no cover - the otel extra is in dev
        raise ImportError("OTLP protobuf needs the otel extra: pip install 'agentkpi[otel]' "
                          f"({exc})") from None
    return trace_service_pb2


def parse_protobuf_request(body: bytes) -> Any:
    """Bytes -> ``ExportTraceServiceRequest``; raises ``ValueError`` when malformed."""
    pb = _proto_modules()
    req = pb.ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except Exception as exc:  # noqa: BLE001 - google.protobuf.message.DecodeError
        raise ValueError(f"not a valid OTLP protobuf ExportTraceServiceRequest ({exc})") from None
    return req


def _pb_any(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_pb_any(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_any(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which)


def _pb_attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _pb_any(kv.value) for kv in kvs}


def spans_from_protobuf(body: bytes | Any) -> list[Span]:
    """Spans of a protobuf request (bytes or an already parsed message)."""
    req = parse_protobuf_request(body) if isinstance(body, (bytes, bytearray)) else body
    out: list[Span] = []
    for rs in req.resource_spans:
        resource = _pb_attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = ss.scope.name or None
            for s in ss.spans:
                trace_id = s.trace_id.hex() if len(s.trace_id) == 16 else None
                span_id = s.span_id.hex() if len(s.span_id) == 8 else None
                if not trace_id or not span_id or not s.trace_id.strip(b"\0") \
                        or not s.span_id.strip(b"\0"):
                    continue  # rejected (and counted) by the collector already
                parent = s.parent_span_id.hex() if len(s.parent_span_id) == 8 else None
                out.append(Span(trace_id, span_id, parent, s.name or None, s.kind,
                                s.start_time_unix_nano or None, s.end_time_unix_nano or None,
                                s.status.code, s.status.message or None,
                                _pb_attrs(s.attributes), resource, scope))
    return out


# ------------------------------------------------------------------ classification

def _first(attrs: dict[str, Any], keys: Iterable[str]) -> Any:
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return v
    return None


def has_usage(attrs: dict[str, Any]) -> bool:
    present = _USAGE_SET.intersection(attrs)  # in C: most spans carry none of the names
    return any(attrs[k] is not None for k in present)


def _token_values(a: dict[str, Any]) -> dict[str, Any]:
    """``{bucket: raw value}`` of the token attributes present, the first-listed name of
    each bucket winning (one set intersection instead of a lookup per alias)."""
    found: dict[str, tuple[int, Any]] = {}
    for k in _TOKEN_ALIASES.keys() & a.keys():
        v = a[k]
        if v is None or v == "":
            continue
        bucket, rank = _TOKEN_ALIASES[k]
        old = found.get(bucket)
        if old is None or rank < old[0]:
            found[bucket] = (rank, v)
    return {b: v for b, (_, v) in found.items()}


def classify(span: Span) -> str:
    a = span.attrs
    op = a.get("gen_ai.operation.name")
    op = op.lower() if isinstance(op, str) else None
    oi = a.get("openinference.span.kind")
    oi = oi.upper() if isinstance(oi, str) else None
    name = span.name or ""
    if op in AGENT_OPERATIONS or oi == "AGENT" or (op is None and name.startswith(
            ("invoke_agent", "create_agent", "invoke_workflow"))):
        return AGENT
    if op in TOOL_OPERATIONS or oi == "TOOL" or (op is None and name.startswith("execute_tool")):
        return TOOL
    if op in MODEL_OPERATIONS or oi in ("LLM", "EMBEDDING"):
        return MODEL
    if op is None and oi is None and has_usage(a) and (
            a.get("gen_ai.request.model") or a.get("gen_ai.response.model")
            or a.get("llm.model_name")):
        return MODEL
    return OTHER


def agent_name(span: Span) -> str | None:
    a = span.attrs
    name = to_str(_first(a, ("gen_ai.agent.name", "gen_ai.agent.id", "gen_ai.workflow.name",
                             "agent.name")))
    if name:
        return name
    n = span.name or ""
    for prefix in ("invoke_agent ", "create_agent ", "invoke_workflow "):
        if n.startswith(prefix):
            return n[len(prefix):].strip() or None
    return n or None if a.get("openinference.span.kind") == "AGENT" else None


def tool_name(span: Span) -> str | None:
    a = span.attrs
    name = to_str(_first(a, ("gen_ai.tool.name", "tool.name")))
    if name:
        return name
    n = span.name or ""
    return n[len("execute_tool "):].strip() or None if n.startswith("execute_tool ") else n or None


def _tool_call_id(span: Span) -> str | None:
    v = span.attrs.get("gen_ai.tool.call.id")
    if isinstance(v, list):  # seen in the wild: [run id, call id]
        v = v[-1] if v else None
    return to_str(v)


def _project(resource: dict[str, Any]) -> str | None:
    for k in PROJECT_KEYS:
        v = to_str(resource.get(k))
        if v and not v.startswith("unknown_service"):
            return v
    return None


def _slim(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes worth keeping in ``data``: no prompt/output content, no huge values."""
    out = {}
    for k, v in attrs.items():
        if k.startswith(_CONTENT_PREFIXES):
            continue
        if isinstance(v, str) and len(v) > _MAX_ATTR_CHARS:
            v = v[:_MAX_ATTR_CHARS] + "…"
        elif isinstance(v, (list, dict)) and len(str(v)) > _MAX_ATTR_CHARS:
            continue
        out[k] = v
    return out


# ------------------------------------------------------------------ derivation

def audit(q: Quality, name: str, n: int = 1) -> None:
    """Count an import-audit item (``AUDIT_KINDS``: merged spans, ignored agent usage)."""
    if n > 0:
        q.count_audit(name, n)


class Derived:
    """What :func:`derive` did: counts for the audit and for tests."""

    __slots__ = ("spans", "llm_calls", "merged", "agent_usage_ignored", "tools",
                 "tools_merged", "duplicates", "by_trace")

    def __init__(self) -> None:
        self.by_trace: dict[str, list[int]] | None = None
        self.spans = self.llm_calls = self.merged = self.agent_usage_ignored = 0
        self.tools = self.tools_merged = self.duplicates = 0


def derive(spans: Iterable[Span], batch: CanonicalBatch, q: Quality, file: str, *,
           emit: set[tuple[str, str]] | None = None, source_path: str | None = None,
           files: dict[str, str] | None = None) -> Derived:
    """Spans -> canonical rows in ``batch``, each logical model call once.

    ``emit``: only spans whose (trace id, span id) is in it produce rows; the others
    are context (their parents/children still decide what is a wrapper). ``file`` is
    the value of ``events.file`` (what a re-read replaces); ``files`` maps trace ids to
    their own ``file`` (the collector's trace units), and then ``Derived.by_trace``
    holds each trace's audit counts.
    """
    stats = Derived()
    by_trace = stats.by_trace = {} if files is not None else None
    by_key: dict[tuple[str, str], Span] = {}
    for s in spans:
        key = (s.trace_id, s.span_id)
        if key in by_key:
            stats.duplicates += 1  # the same span exported twice (an exporter retry)
            if by_trace is not None:
                by_trace.setdefault(s.trace_id, [0, 0, 0, 0])[3] += 1
        by_key[key] = s
    stats.spans = len(by_key)
    if not by_key:
        return stats
    cls = {k: classify(s) for k, s in by_key.items()}

    parents: dict[tuple[str, str], tuple[str, str]] = {}
    for k, s in by_key.items():
        if s.parent_id is not None:
            pk = (k[0], s.parent_id)
            if pk in by_key:
                parents[k] = pk
    parent_of = parents.get

    # nearest ancestor of each class, memoised; guards against parent cycles
    nearest: dict[str, dict[tuple[str, str], tuple[str, str] | None]] = {
        MODEL: {}, TOOL: {}, AGENT: {}}

    def ancestor(k: tuple[str, str], want: str) -> tuple[str, str] | None:
        """Nearest strict ancestor of class ``want`` (memoised; parent cycles end a walk)."""
        memo = nearest[want]
        if k in memo:
            return memo[k]
        chain = []
        seen = set()
        cur: tuple[str, str] | None = k
        while cur is not None and cur not in memo and cur not in seen:
            seen.add(cur)
            chain.append(cur)
            cur = parent_of(cur)
        if cur is None or cur in seen:
            above = None
        else:
            above = cur if cls[cur] == want else memo[cur]
        for node in reversed(chain):
            memo[node] = above
            if cls[node] == want:
                above = node
        return memo[k]

    # ---- model calls: the forest of model-call spans
    models = [k for k, c in cls.items() if c == MODEL]
    kids: dict[tuple[str, str], list[tuple[str, str]]] = {}
    roots = []
    for k in models:
        p = ancestor(k, MODEL)
        if p is None:
            roots.append(k)
        else:
            kids.setdefault(p, []).append(k)
    usage = {k: has_usage(by_key[k].attrs) for k in models}
    desc_usage: dict[tuple[str, str], bool] = {}

    def fill(k: tuple[str, str]) -> bool:
        stack = [(k, False)]
        while stack:
            node, done = stack.pop()
            if done:
                desc_usage[node] = any(usage[c] or desc_usage[c] for c in kids.get(node, ()))
                continue
            stack.append((node, True))
            stack.extend((c, False) for c in kids.get(node, ()))
        return desc_usage[k]

    counted: dict[tuple[str, str], list[tuple[str, str]]] = {}  # call -> merged spans
    for r in roots:
        fill(r)
        stack: list[tuple[tuple[str, str], tuple[str, str] | None]] = [(r, None)]
        while stack:
            node, owner = stack.pop()
            children = kids.get(node, ())
            if owner is not None:  # inside a wrapper that is itself the call
                counted[owner].append(node)
                stack.extend((c, owner) for c in children)
            elif not children:
                counted.setdefault(node, [])
            elif desc_usage[node]:  # a wrapper: its usage is its descendants'
                stack.extend((c, None) for c in children)
                wrapped_by = _leaf_owner(node, kids, usage, desc_usage)
                counted.setdefault(wrapped_by, []).append(node)
            else:  # no descendant carries usage: the wrapper is the call
                counted.setdefault(node, [])
                stack.extend((c, node) for c in children)
    stats.llm_calls = len(counted)
    stats.merged = sum(len(v) for v in counted.values())
    if by_trace is not None:
        for k, v in counted.items():
            if v:
                by_trace.setdefault(k[0], [0, 0, 0, 0])[0] += len(v)

    # ---- tools: nested execute_tool spans of the same tool are one run (outermost)
    tools: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for k, c in cls.items():
        if c != TOOL:
            continue
        p = ancestor(k, TOOL)
        name = tool_name(by_key[k])
        top = None
        while p is not None and tool_name(by_key[p]) == name:
            top = p
            p = ancestor(p, TOOL)
        if top is None:
            tools.setdefault(k, [])
        else:
            tools.setdefault(top, []).append(k)
    stats.tools = len(tools)
    stats.tools_merged = sum(len(v) for v in tools.values())

    requested_by = _requesters(by_key, counted, tools)

    # ---- agent usage repeating children's totals is ignored
    for k, c in cls.items():
        if c == AGENT and has_usage(by_key[k].attrs):
            stats.agent_usage_ignored += 1
            if by_trace is not None:
                by_trace.setdefault(k[0], [0, 0, 0, 0])[2] += 1
    if by_trace is not None:
        for k, v in tools.items():
            if v:
                by_trace.setdefault(k[0], [0, 0, 0, 0])[1] += len(v)

    # ---- sessions: conversation id (own/ancestor, else the trace's), else trace id
    trace_conv: dict[str, tuple[int, str]] = {}
    own_conv: dict[tuple[str, str], str] = {}
    for k, s in by_key.items():
        conv = to_str(_first(s.attrs, CONVERSATION_KEYS))
        if conv:
            own_conv[k] = conv
            t = s.start_ns or 0
            if k[0] not in trace_conv or t < trace_conv[k[0]][0]:
                trace_conv[k[0]] = (t, conv)
    conv_memo: dict[tuple[str, str], str | None] = {}

    def session_of(k: tuple[str, str]) -> str:
        path = []
        cur: tuple[str, str] | None = k
        found = None
        seen = set()
        while cur is not None and cur not in seen:
            if cur in conv_memo:
                found = conv_memo[cur]
                break
            path.append(cur)
            seen.add(cur)
            if cur in own_conv:
                found = own_conv[cur]
                break
            cur = parent_of(cur)
        for node in path:
            conv_memo[node] = found
        if found:
            return found
        return trace_conv[k[0]][1] if k[0] in trace_conv else k[0]

    def agent_of(k: tuple[str, str]) -> str | None:
        a = k if cls[k] == AGENT else ancestor(k, AGENT)
        return agent_name(by_key[a]) if a is not None else None

    rows: list[tuple[int, dict[str, Any]]] = []
    sess: dict[str, dict[str, Any]] = {}
    projects: dict[int, str | None] = {}

    def touch(k: tuple[str, str]) -> tuple[str, dict[str, Any]]:
        s = by_key[k]
        sid = session_of(k)
        row = sess.get(sid)
        if row is None:
            row = sess[sid] = {"session_id": sid, "source": NAME,
                               "source_path": source_path or file, "_start": None,
                               "_end": None, "_model": None, "_agent": None}
        if s.start_ns is not None and (row["_start"] is None or s.start_ns < row["_start"]):
            row["_start"] = s.start_ns
        if s.end_ns is not None and (row["_end"] is None or s.end_ns > row["_end"]):
            row["_end"] = s.end_ns
        if row.get("project") is None:
            res_key = id(s.resource)
            if res_key not in projects:
                projects[res_key] = _project(s.resource)
            row["project"] = projects[res_key]
        if row.get("user_id") is None:
            row["user_id"] = to_str(_first(s.attrs, USER_KEYS))
        if row.get("machine") is None:
            row["machine"] = to_str(s.resource.get("host.name"))
        return sid, row

    def wanted(k: tuple[str, str]) -> bool:
        return emit is None or k in emit

    def file_of(k: tuple[str, str]) -> str:
        return files.get(k[0], file) if files is not None else file

    for k, merged in counted.items():
        if not wanted(k):
            continue
        s = by_key[k]
        sid, srow = touch(k)
        where = f"{file}: span {k[1]}"
        row = _llm_row(s, q, where)
        row.update(session_id=sid, agent=agent_of(k), file=file_of(k),
                   parent_id=s.parent_id, event_key=f"otel:llm_call:{k[0]}:{k[1]}",
                   response_id=f"{k[0]}:{k[1]}")
        if merged:
            row["_data"]["merged_span_ids"] = [m[1] for m in merged]
        if srow["_model"] is None or (s.start_ns or 0) < srow["_model"][0]:
            srow["_model"] = (s.start_ns or 0, row["model"])
        rows.append((s.start_ns or 0, row))
    for k, merged in tools.items():
        if not wanted(k):
            continue
        s = by_key[k]
        sid, _ = touch(k)
        name = tool_name(s)
        call_id = _tool_call_id(s)
        failed = s.status == 2 or s.attrs.get("error.type") is not None
        dur = (s.end_ns - s.start_ns) / 1e6 if s.start_ns is not None and \
            s.end_ns is not None and s.end_ns >= s.start_ns else None
        data: dict[str, Any] = {
                "trace_id": k[0], "span_id": k[1], "parent_span_id": s.parent_id,
                "name": s.name, "tool": name, "tool_call_id": call_id,
                "attributes": _slim(s.attrs)}
        if merged:
            data["merged_span_ids"] = [m[1] for m in merged]
        agent = agent_of(k)
        common = dict(session_id=sid, tool=name, agent=agent, file=file_of(k),
                      tool_call_id=call_id, parent_id=s.parent_id,
                      mcp_server=to_str(s.attrs.get("mcp.server.name")))
        asker = requested_by.get(k)
        rows.append((s.start_ns or 0, dict(common, event_type="tool_call", ts=ns_to_dt(
            s.start_ns), event_key=f"otel:tool_call:{k[0]}:{k[1]}", _data=data,
            response_id=f"{asker[0]}:{asker[1]}" if asker else None)))
        out_data: dict[str, Any] = {"trace_id": k[0], "span_id": k[1], "tool": name,
                                    "success": not failed, "duration_ms": dur}
        if failed:
            out_data["error"] = s.status_message or to_str(s.attrs.get("error.type"))
        rows.append(((s.end_ns or s.start_ns or 0), dict(
            common, event_type="tool_output", ts=ns_to_dt(s.end_ns or s.start_ns),
            success=not failed, duration_ms=dur, event_key=f"otel:tool_output:{k[0]}:{k[1]}",
            _data=out_data)))
    for k, c in cls.items():
        if c != AGENT or not wanted(k):
            continue
        s = by_key[k]
        sid, srow = touch(k)
        name = agent_name(s)
        outer = ancestor(k, AGENT)
        if outer is None and name and srow["_agent"] is None:
            srow["_agent"] = name
        dur = (s.end_ns - s.start_ns) / 1e6 if s.start_ns is not None and \
            s.end_ns is not None and s.end_ns >= s.start_ns else None
        data = {"trace_id": k[0], "span_id": k[1], "parent_span_id": s.parent_id,
                "name": s.name, "agent": name, "success": s.status != 2,
                "duration_ms": dur, "attributes": _slim(s.attrs)}
        rows.append((s.start_ns or 0, dict(session_id=sid, event_type="agent_execution",
                                           ts=ns_to_dt(s.start_ns), agent=name,
                                           file=file_of(k),
                                           duration_ms=dur, parent_id=s.parent_id,
                                           _data=data)))
        if s.status == 2 and outer is None:
            err = {"trace_id": k[0], "span_id": k[1], "agent": name,
                   "error_type": to_str(s.attrs.get("error.type")) or "agent_error",
                   "message": s.status_message}
            rows.append((s.end_ns or s.start_ns or 0, dict(
                session_id=sid, event_type="error", ts=ns_to_dt(s.end_ns or s.start_ns),
                agent=name, file=file_of(k), error_type=err["error_type"],
                error_message=s.status_message, _data=err)))

    rows.sort(key=lambda r: r[0])
    names = _event_names()
    known = names.keys()
    append = batch.event_rows.append
    for seq, (_, row) in enumerate(rows):
        data = row.pop("_data")
        row["seq"] = seq
        row["data"] = orjson.dumps(data, default=str,
                                   option=orjson.OPT_NON_STR_KEYS).decode()
        if row.keys() <= known:  # one tuple in column order, built in C
            full = names.copy()
            full.update(row)
            append(tuple(full.values()))
        else:
            batch.add_event(**row)
    for row in sess.values():
        start, end, model, agent = (row.pop("_start"), row.pop("_end"), row.pop("_model"),
                                    row.pop("_agent"))
        batch.add_session(**row, start_ts=ns_to_dt(start), end_ts=ns_to_dt(end),
                          model=model[1] if model else None, agent=agent)
    if emit is None:
        audit(q, "otel_spans_merged", stats.merged)
        audit(q, "otel_tool_spans_merged", stats.tools_merged)
        audit(q, "otel_agent_usage_ignored", stats.agent_usage_ignored)
        audit(q, "otel_duplicate_spans", stats.duplicates)
    return stats


#: Span attributes whose value lists a model response's tool calls with their ids:
#: ``gen_ai.output.messages`` (parts ``{"type": "tool_call", "id"}``) and the flattened
#: spellings of OpenLLMetry (``gen_ai.completion.0.tool_calls.0.id``) and OpenInference
#: (``llm.output_messages.0.message.tool_calls.0.tool_call.id``).
_OUTPUT_MESSAGES = ("gen_ai.output.messages",)
_FLAT_TOOL_CALL_ID = re.compile(
    r"^(?:gen_ai\.completion|llm\.output_messages)\.\d+\..*tool_calls\.\d+\.(?:tool_call\.)?id$")


def _asked_ids(span: Span) -> Iterator[str]:
    """The tool-call ids a model span's recorded output asked for (content capture on)."""
    for key, v in span.attrs.items():
        if _FLAT_TOOL_CALL_ID.match(key):
            if isinstance(v, str) and v:
                yield v
        elif key in _OUTPUT_MESSAGES:
            if isinstance(v, str):
                try:
                    v = json.loads(v)
                except ValueError:
                    continue
            for msg in v if isinstance(v, list) else ():
                for part in msg.get("parts", ()) if isinstance(msg, dict) else ():
                    if isinstance(part, dict) and part.get("type") == "tool_call" \
                            and isinstance(part.get("id"), str) and part["id"]:
                        yield part["id"]


_LAST_KEY = ("\U0010ffff", "\U0010ffff")  # sorts after every (trace id, span id)


def _requesters(by_key: dict[tuple[str, str], Span],
                counted: dict[tuple[str, str], list[tuple[str, str]]],
                tools: dict[tuple[str, str], list[tuple[str, str]]]
                ) -> dict[tuple[str, str], tuple[str, str]]:
    """Tool run -> the counted model call that asked for it (same trace).

    The call whose recorded output lists the tool's ``gen_ai.tool.call.id``; else the
    last call under the same parent span that ended by the time the tool started
    (agent loops run call, tools, call, ...: the tools follow the response that asked).
    """
    by_id: dict[tuple[str, str], tuple[str, str]] = {}
    siblings: dict[tuple[str, str | None], list[tuple[int, tuple[str, str]]]] = {}
    for k, merged in counted.items():
        group = [k, *merged]
        for m in group:
            for cid in _asked_ids(by_key[m]):
                by_id.setdefault((k[0], cid), k)
        keys = {m[1] for m in group}
        top = next((m for m in group if by_key[m].parent_id not in keys), k)
        s = by_key[top]
        end = s.end_ns if s.end_ns is not None else s.start_ns
        if end is not None:
            siblings.setdefault((k[0], s.parent_id), []).append((end, k))
    for calls in siblings.values():
        calls.sort()
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for k in tools:
        s = by_key[k]
        asked_id = _tool_call_id(s)
        hit = by_id.get((k[0], asked_id)) if asked_id else None
        if hit is None and s.start_ns is not None:
            before = siblings.get((k[0], s.parent_id), [])
            i = bisect.bisect_right(before, (s.start_ns, _LAST_KEY))
            hit = before[i - 1][1] if i else None
        if hit is not None:
            out[k] = hit
    return out


def _event_names() -> dict[str, None]:
    """``{column: None}`` in ``EVENT_COLUMNS`` order (a template for one event row)."""
    return dict.fromkeys(name for name, *_ in EVENT_COLUMNS)


def _leaf_owner(node: tuple[str, str], kids: dict[tuple[str, str], list[tuple[str, str]]],
                usage: dict[tuple[str, str], bool],
                desc_usage: dict[tuple[str, str], bool]) -> tuple[str, str]:
    """The innermost usage-carrying descendant a wrapper is merged into (first path)."""
    cur = node
    while True:
        nxt = None
        for c in kids.get(cur, ()):
            if desc_usage.get(c):
                nxt = c
                break
        if nxt is None:
            for c in kids.get(cur, ()):
                if usage[c]:
                    return c
            return cur  # pragma: no cover - desc_usage says one exists
        cur = nxt


def _tokens(vals: dict[str, Any], bucket: str, q: Quality, where: str) -> int | None:
    v = vals.get(bucket)
    n = to_int(v, q, where) if v is not None else None
    if n is not None and n < 0:
        q.note("number_unparseable", where)
        return None
    return n


def _llm_row(s: Span, q: Quality, where: str) -> dict[str, Any]:
    a = s.attrs
    vals = _token_values(a)
    inp = _tokens(vals, "input", q, where)
    out = _tokens(vals, "output", q, where)
    read = _tokens(vals, "read", q, where)
    write = _tokens(vals, "write", q, where)
    write_1h = _tokens(vals, "write_1h", q, where)
    reasoning = _tokens(vals, "reasoning", q, where)
    prompt = None
    if inp is not None:
        prompt = inp - (read or 0) - (write or 0)
        if prompt < 0:  # an instrumentation that reports input without cache tokens
            q.note("tokens_inconsistent", f"{where}: input {inp} < cache read {read} + "
                                          f"creation {write}")
            prompt = inp
    cost = to_float(_first(a, COST_KEYS), q, where)
    if cost is None:
        parts = [to_float(a.get(k), q, where) for k in COST_PART_KEYS]
        if any(p is not None for p in parts):
            cost = sum(p for p in parts if p is not None)
    model = to_str(_first(a, ("gen_ai.response.model", "gen_ai.request.model",
                              "llm.model_name")))
    lat = (s.end_ns - s.start_ns) / 1e6 if s.start_ns is not None and s.end_ns is not None \
        and s.end_ns >= s.start_ns else None
    finish = a.get("gen_ai.response.finish_reasons")
    data = {"trace_id": s.trace_id, "span_id": s.span_id, "parent_span_id": s.parent_id,
            "name": s.name, "operation": to_str(a.get("gen_ai.operation.name")),
            "provider": to_str(_first(a, ("gen_ai.provider.name", "gen_ai.system",
                                          "llm.system", "llm.provider"))),
            "request_model": to_str(a.get("gen_ai.request.model")),
            "response_model": to_str(a.get("gen_ai.response.model")),
            "input_tokens": inp, "output_tokens": out, "reasoning_tokens": reasoning,
            "finish_reasons": finish, "status": ("error" if s.status == 2 else
                                                 "ok" if s.status == 1 else "unset"),
            "scope": s.scope, "attributes": _slim(a)}
    if s.status == 2 or a.get("error.type") is not None:
        data["error"] = s.status_message or to_str(a.get("error.type"))
    return dict(event_type="llm_call", ts=ns_to_dt(s.start_ns), model=model,
                prompt_tokens=prompt, completion_tokens=out, cache_read_tokens=read,
                cache_creation_tokens=write, cache_creation_1h_tokens=write_1h,
                reasoning_tokens=reasoning, cost_usd=cost,
                cost_source="source" if cost is not None else None, latency_ms=lat,
                _data=data)


# ------------------------------------------------------------------ files

def _name_ok(path: str) -> bool:
    base = posixpath.basename(path).lower()
    return base.endswith(FILE_SUFFIXES)


def _plain(path: str, raw: bytes) -> tuple[bytes, bool]:
    if path.lower().endswith(".gz"):
        d = zlib.decompressobj(wbits=47)
        try:
            return d.decompress(raw), d.eof
        except zlib.error:
            return b"", False
    return raw, True


def detect(fs: Any, root: str) -> bool:
    """A directory (or file) holding JSON whose first bytes look like spans."""
    try:
        if fs.isfile(root):
            candidates = [root]
        elif fs.isdir(root):
            candidates = [p for p in fs.find(root.rstrip("/"), maxdepth=3) if _name_ok(p)][:20]
        else:
            return False
    except (OSError, ValueError):
        return False
    for p in candidates:
        try:
            with fs.open(p, "rb") as fh:
                head = fh.read(_SNIFF_BYTES)
        except OSError:
            continue
        head, _ = _plain(p, head) if p.endswith(".gz") else (head, True)
        if any(m in head for m in _MARKERS):
            return True
        if b'"context"' in head and b'"span_id"' in head and b'"trace_id"' in head:
            return True
        if b'"observations"' in head and b'gen_ai.' in head:
            return True
    return False


def list_files(fs: Any, root: str) -> dict[str, dict[str, Any]]:
    """``{path: info}`` of the JSON/JSONL trace files under ``root`` (or ``root`` itself)."""
    try:
        if fs.isfile(root):
            return {root: fs.info(root)}
        found = fs.find(root.rstrip("/"), detail=True)
    except (OSError, ValueError):
        return {}
    return {p: found[p] for p in sorted(found) if _name_ok(p)}


def iter_documents(path: str, text: bytes, q: Quality) -> Iterator[tuple[Any, str]]:
    """(decoded JSON value, "path:line") of a file: one document, JSONL, or objects
    written back to back (the SDK console exporter). Bad lines are counted.

    The readings are tried in turn and each counts its bad values in a scratch
    ``Quality``; only the reading that is kept adds them to ``q``, so a NaN that an
    abandoned reading had already met (the first line of a JSONL file is also the
    start of "one document") is counted once. Import audit: ``lines_read`` counts
    the records read (1 for one document, every non-blank line of JSON Lines, each
    object of objects back to back).
    """
    def constant_into(seen: Quality) -> Callable[[str], None]:
        def constant(name: str) -> None:  # NaN / Infinity: one missing value, counted
            seen.note("value_bad_json", f"{path}: {name}")
        return constant

    # One document: 128-bit integer ids read by json (orjson would round them to floats),
    # else orjson, where one bad value (NaN, 1e400, deep nesting, bad UTF-8) costs that value.
    readings: list[Callable[[Quality], Any]] = [lambda seen: decode_json(text, seen, path)]
    if _BIG_INT_ID.search(text):
        readings.insert(0, lambda seen: json.loads(text, parse_constant=constant_into(seen)))
    for read in readings:
        trial = Quality()
        try:
            value = read(trial)
        except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError among them
            continue
        q.merge(trial)
        q.count_audit("lines_read")
        yield value, path
        return
    lines = text.split(b"\n")
    good = bad = 0
    parsed: list[tuple[Any, str]] = []
    trial = Quality()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            parsed.append((decode_json(line, trial, f"{path}:{i}"), f"{path}:{i}"))
            good += 1
        except ValueError:
            bad += 1
    if good and (bad == 0 or good >= bad):
        q.merge(trial)
        q.count_audit("lines_read", good + bad)
        for _ in range(bad):
            q.note("line_bad_json", path)
        yield from parsed
        return
    # objects back to back (pretty-printed): decode one after another
    s = text.decode("utf-8", errors="replace")
    i, n, found = 0, len(s), False
    while i < n:
        while i < n and s[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        trial = Quality()
        try:
            obj, end = json.JSONDecoder(parse_constant=constant_into(trial)).raw_decode(s, i)
            q.merge(trial)
        except json.JSONDecodeError:
            if not found:
                q.skip(path, "file_bad_json", "not JSON, JSON Lines or concatenated JSON "
                       "objects; export the traces as OTLP/JSON")
                return
            q.note("line_bad_json", f"{path}: unreadable tail from character {i}")
            return
        found = True
        q.count_audit("lines_read")
        yield obj, f"{path}@{i}"
        i = end


def read_spans(path: str, raw: bytes, q: Quality) -> list[Span]:
    """Every span of one file (bad parts counted, a hopeless file skipped)."""
    q.count_audit("files")
    text, complete = _plain(path, raw)
    if not complete:
        if not text:
            q.skip(path, "file_bad_json", "gzip file is corrupt or truncated and nothing "
                                          "could be read; restore it")
            return []
        q.note("line_bad_json", f"{path}: truncated gzip (readable part kept)")
    if not text.strip():
        q.skip(path, "file_empty", "file is empty")
        return []
    spans: list[Span] = []
    for obj, where in iter_documents(path, text, q):
        spans.extend(spans_from_object(obj, q, where))
    return spans


def parse_file(path: str, raw: bytes, q: Quality) -> CanonicalBatch:
    """One trace file -> canonical rows; model calls deduplicated within the file."""
    batch = CanonicalBatch()
    derive(read_spans(path, raw, q), batch, q, path)
    return batch
