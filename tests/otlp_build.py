"""Build OTLP/JSON trace requests for tests (the shape the OTLP/HTTP JSON exporters send)."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(1)
T0 = 1_760_000_000_000_000_000  # 2025-10-09T08:53:20Z in ns


def span_id() -> str:
    return f"{next(_ids):016x}"


def trace_id(n: int) -> str:
    return f"{n:032x}"


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}  # 64-bit integers are strings in OTLP/JSON
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def attrs(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in d.items()]


def span(trace: str, sid: str, parent: str | None, name: str, *, start_ms: int = 0,
         dur_ms: int = 10, status: int = 0, message: str | None = None,
         kind: int = 1, **attributes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": trace, "spanId": sid, "name": name, "kind": kind,
        "startTimeUnixNano": str(T0 + start_ms * 1_000_000),
        "endTimeUnixNano": str(T0 + (start_ms + dur_ms) * 1_000_000),
        "attributes": attrs({k.replace("__", "."): v for k, v in attributes.items()}),
        "status": {"code": status, **({"message": message} if message else {})},
    }
    if parent:
        out["parentSpanId"] = parent
    return out


def request(spans: list[dict[str, Any]], service: str = "my-agent",
            **resource: Any) -> dict[str, Any]:
    res = {"service.name": service, **{k.replace("__", "."): v for k, v in resource.items()}}
    return {"resourceSpans": [{"resource": {"attributes": attrs(res)},
                               "scopeSpans": [{"scope": {"name": "test", "version": "1"},
                                               "spans": spans}]}]}


def usage(inp: int, out: int, **extra: int) -> dict[str, Any]:
    d: dict[str, Any] = {"gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out}
    for k, v in extra.items():
        d[{"read": "gen_ai.usage.cache_read.input_tokens",
           "write": "gen_ai.usage.cache_creation.input_tokens",
           "reasoning": "gen_ai.usage.reasoning.output_tokens"}[k]] = v
    return d


def chat(trace: str, parent: str | None, model: str = "gpt-4o", *, sid: str | None = None,
         start_ms: int = 0, dur_ms: int = 100, name: str | None = None,
         **attributes: Any) -> dict[str, Any]:
    a = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
         "gen_ai.provider.name": "openai", **attributes}
    return span(trace, sid or span_id(), parent, name or f"chat {model}", start_ms=start_ms,
                dur_ms=dur_ms, kind=3, **a)
