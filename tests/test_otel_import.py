"""The OpenTelemetry importer: real samples with hand-checked totals, every shape, and
constructed nested spans (each model call counted once)."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import fsspec
import orjson
import pytest

from agentkpi.ingestion import ingest
from agentkpi.quality import Quality
from agentkpi.sources import otel
from agentkpi.store import DuckDBStore
from tests.conftest import SHARED
from tests.otlp_build import T0, attrs, chat, request, span, span_id, trace_id, usage

REAL = SHARED / "data" / "realworld"
ANY_AGENT = REAL / "otel-genai-sdk-json" / "OPENAI_trace.json"
MS_AGENT = REAL / "langfuse-export" / "microsoft-agent-2025-10-14.json"
OTLP_EXAMPLE = REAL / "otlp-json" / "trace.json"


def parse(obj: Any, name: str = "t.json") -> tuple[dict[str, list[Any]], dict[str, list[Any]],
                                                    Quality]:
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    q = Quality()
    batch = otel.parse_file(name, raw, q)
    return batch.events, batch.sessions, q


def rows(events: dict[str, list[Any]], event_type: str) -> list[dict[str, Any]]:
    n = len(events["event_type"])
    return [{k: v[i] for k, v in events.items()} for i in range(n)
            if events["event_type"][i] == event_type]


def audit(q: Quality) -> dict[str, int]:
    return {k: n for k, n in q.audit.items() if k.startswith("otel_") and n}


# ------------------------------------------------------------------ real samples

def test_any_agent_sdk_json_hand_checked() -> None:
    """mozilla-ai/any-agent's recorded run: 3 call_llm spans, 2 execute_tool, 1 agent.

    By hand from the file: input 269 + 359 + 392 = 1020, output 16 + 14 + 46 = 76,
    cost (2.69e-05 + 4.8e-06) + (3.59e-05 + 4.2e-06) + (3.92e-05 + 1.38e-05)
    = 3.17e-05 + 4.01e-05 + 5.30e-05 = 1.248e-04;
    tools get_current_time (2.520 ms) and write_file (2.179 ms), both status ok.
    """
    ev, sess, q = parse(ANY_AGENT.read_bytes(), str(ANY_AGENT))
    calls = rows(ev, "llm_call")
    assert [c["prompt_tokens"] for c in calls] == [269, 359, 392]
    assert sum(c["completion_tokens"] for c in calls) == 76
    assert sum(c["cost_usd"] for c in calls) == pytest.approx(1.248e-04, rel=1e-9)
    assert {c["model"] for c in calls} == {"mistral/mistral-small-latest"}
    assert [c["latency_ms"] for c in calls] == pytest.approx([238.841, 313.643, 661.726])
    outs = rows(ev, "tool_output")
    assert [(t["tool"], t["success"]) for t in outs] == [("get_current_time", True),
                                                         ("write_file", True)]
    assert [t["duration_ms"] for t in outs] == pytest.approx([2.52, 2.179])
    assert [t["tool"] for t in rows(ev, "tool_call")] == ["get_current_time", "write_file"]
    # 128-bit integer trace id 100927429609276267646756448943279827607, as hex
    assert sess["session_id"] == ["4bedea77bb33b9c5f280371eae21ea97"]
    assert sess["agent"] == ["any_agent"]
    assert {e for e in ev["agent"]} == {"any_agent"}
    assert sess["project"] == [None]  # service.name "unknown_service" is no project
    assert q.data_errors == 0


def test_microsoft_agent_framework_langfuse_export_hand_checked() -> None:
    """Langfuse export of a Microsoft Agent Framework run (OTel attributes kept).

    Spans: invoke_agent (usage 631/35 = a repeat of its last child), chat #1 (no usage
    attributes), chat #2 (631/35, carries gen_ai.conversation.id), execute_tool
    get_weather. Two calls, 631 input and 35 output tokens; the agent's usage is ignored.
    """
    ev, sess, q = parse(MS_AGENT.read_bytes(), str(MS_AGENT))
    calls = rows(ev, "llm_call")
    assert len(calls) == 2
    assert sum(c["prompt_tokens"] or 0 for c in calls) == 631
    assert sum(c["completion_tokens"] or 0 for c in calls) == 35
    assert [c["prompt_tokens"] for c in calls] == [None, 631]
    assert all(c["cost_usd"] is None for c in calls)  # priced later, by the ingest step
    assert [(t["tool"], t["success"]) for t in rows(ev, "tool_output")] == [
        ("get_weather", True)]
    # the conversation id of one span is the session of the whole trace
    assert set(ev["session_id"]) == {"thread_G78qCSLpzn0YQwFwrvK5OivI"}
    assert sess["project"] == ["agent_framework"]
    assert sess["agent"] == ["99981f6a-abd1-4d09-9fba-00e2ab172193"]
    assert audit(q).get("otel_agent_usage_ignored") == 1
    assert q.data_errors == 0


def test_official_otlp_json_example_decodes_exactly() -> None:
    """opentelemetry-proto's examples/trace.json: upper-case hex ids, string int64s."""
    q = Quality()
    (s,) = otel.read_spans(str(OTLP_EXAMPLE), OTLP_EXAMPLE.read_bytes(), q)
    assert (s.trace_id, s.span_id, s.parent_id) == (
        "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173")
    assert (s.kind, s.start_ns, s.end_ns) == (2, 1544712660000000000, 1544712661000000000)
    assert s.attrs == {"my.span.attr": "some value"}
    assert s.resource == {"service.name": "my.service"} and s.scope == "my.library"
    ev, sess, q = parse(OTLP_EXAMPLE.read_bytes())
    assert ev["event_type"] == [] and q.data_errors == 0  # a server span, not GenAI


def test_real_samples_through_the_store_and_auto_detection(tmp_path: Path) -> None:
    src = tmp_path / "traces"
    src.mkdir()
    for f in (ANY_AGENT, MS_AGENT, OTLP_EXAMPLE):
        shutil.copy(f, src / f.name)
    fs = fsspec.filesystem("file")
    assert otel.detect(fs, str(src))
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        r = ingest(str(src), st)  # auto-detected
        assert r.format == "otel" and r.files_read == 3
        calls, inp, out = st.sql("SELECT count(*), sum(prompt_tokens), sum(completion_tokens) "
                                 "FROM events WHERE event_type = 'llm_call'").to_pylist()[0] \
            .values()
        assert (calls, inp, out) == (5, 1020 + 631, 76 + 35)
        again = ingest(str(src), st, fmt="otel")
        assert again.files_read == 0
        assert st.counts()["events"] == r.events


# ------------------------------------------------------------------ every model call once

def test_three_nested_spans_of_one_call_and_an_agent_repeating_it() -> None:
    """framework span -> instrumentation span -> provider span, each with the same usage,
    under an invoke_agent span that repeats the total: one call."""
    t = trace_id(1)
    agent, a, b, c = span_id(), span_id(), span_id(), span_id()
    u = usage(1000, 50, read=600, write=100, reasoning=20)
    spans = [
        span(t, agent, None, "invoke_agent planner", dur_ms=500,
             **{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
                **u}),
        chat(t, agent, sid=a, start_ms=1, dur_ms=300, **u),
        chat(t, a, sid=b, start_ms=2, dur_ms=290, **u),
        chat(t, b, sid=c, start_ms=3, dur_ms=280, name="openai.chat", **u),
    ]
    ev, sess, q = parse(request(spans))
    (call,) = rows(ev, "llm_call")
    assert call["prompt_tokens"] == 300  # 1000 input includes 600 read + 100 written
    assert (call["cache_read_tokens"], call["cache_creation_tokens"]) == (600, 100)
    assert call["completion_tokens"] == 50  # output includes the 20 reasoning tokens
    assert call["agent"] == "planner"
    assert call["latency_ms"] == 280.0  # the innermost (provider) span is the call
    assert json.loads(call["data"])["merged_span_ids"] == [a, b]
    assert audit(q) == {"otel_spans_merged": 2, "otel_agent_usage_ignored": 1}


def test_wrapper_with_usage_over_a_child_without_usage_is_one_call() -> None:
    t = trace_id(2)
    a = span_id()
    ev, _, _ = parse(request([chat(t, None, sid=a, **usage(10, 5)),
                              chat(t, a, start_ms=1, dur_ms=50)]))
    (call,) = rows(ev, "llm_call")
    assert (call["prompt_tokens"], call["completion_tokens"], call["latency_ms"]) == (10, 5, 100)


def test_wrapper_over_two_provider_calls_counts_both_not_the_wrapper() -> None:
    """A retry: the wrapper's usage is the sum of its two children; count the children."""
    t = trace_id(3)
    w = span_id()
    ev, _, q = parse(request([
        chat(t, None, sid=w, dur_ms=400, **usage(30, 12)),
        chat(t, w, start_ms=1, **usage(10, 0), status=2, message="rate limited"),
        chat(t, w, start_ms=200, **usage(20, 12)),
    ]))
    calls = rows(ev, "llm_call")
    assert [c["prompt_tokens"] for c in calls] == [10, 20]
    assert json.loads(calls[0]["data"])["status"] == "error"
    assert audit(q)["otel_spans_merged"] == 1


def test_nesting_through_a_non_genai_span_and_calls_without_usage() -> None:
    t = trace_id(4)
    a, http = span_id(), span_id()
    ev, _, _ = parse(request([
        chat(t, None, sid=a),  # no usage anywhere: still one call
        span(t, http, a, "POST /v1/chat/completions", kind=3, **{"http.method": "POST"}),
        chat(t, http, start_ms=1, name="openai.chat"),
    ]))
    (call,) = rows(ev, "llm_call")
    assert call["prompt_tokens"] is None and call["latency_ms"] == 100.0


def test_separate_calls_and_sibling_traces_are_not_merged() -> None:
    t1, t2 = trace_id(5), trace_id(6)
    root1, root2 = span_id(), span_id()
    spans = [span(t1, root1, None, "invoke_agent", **{"gen_ai.operation.name": "invoke_agent"}),
             chat(t1, root1, **usage(7, 1)), chat(t1, root1, **usage(7, 1)),
             span(t2, root2, None, "job"), chat(t2, root2, **usage(7, 1))]
    ev, sess, _ = parse(request(spans))
    assert len(rows(ev, "llm_call")) == 3
    assert sorted(sess["session_id"]) == [t1, t2]


def test_the_same_span_exported_twice_counts_once() -> None:
    t = trace_id(7)
    s = chat(t, None, **usage(5, 5))
    ev, _, q = parse(request([s]) | {"resourceSpans": request([s])["resourceSpans"] * 2})
    assert len(rows(ev, "llm_call")) == 1
    assert audit(q)["otel_duplicate_spans"] == 1


# ------------------------------------------------------------------ tools, sessions, names

def test_tool_spans_failure_duration_and_nested_tool_spans() -> None:
    t = trace_id(8)
    outer, ok = span_id(), span_id()
    ev, _, q = parse(request([
        span(t, outer, None, "execute_tool search", dur_ms=40, status=2, message="timeout",
             **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                "gen_ai.tool.call.id": "call_1"}),
        span(t, span_id(), outer, "execute_tool search", start_ms=1, dur_ms=30,
             **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
        span(t, ok, None, "execute_tool read_file", start_ms=50, dur_ms=5,
             **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read_file"}),
    ]))
    outs = rows(ev, "tool_output")
    assert [(o["tool"], o["success"], o["duration_ms"]) for o in outs] == [
        ("search", False, 40.0), ("read_file", True, 5.0)]
    assert json.loads(outs[0]["data"])["error"] == "timeout"
    assert [c["tool"] for c in rows(ev, "tool_call")] == ["search", "read_file"]
    assert audit(q)["otel_tool_spans_merged"] == 1


def test_deprecated_token_names_string_values_and_bad_values() -> None:
    t = trace_id(9)
    ev, _, q = parse(request([
        chat(t, None, **{"gen_ai.usage.prompt_tokens": "631", "gen_ai.usage.completion_tokens":
                         35, "gen_ai.system": "openai"}),
        chat(t, None, **{"gen_ai.usage.input_tokens": "lots", "gen_ai.usage.output_tokens": 3}),
    ]))
    a, b = rows(ev, "llm_call")
    assert (a["prompt_tokens"], a["completion_tokens"]) == (631, 35)
    assert json.loads(a["data"])["provider"] == "openai"
    # one bad value costs that value only
    assert (b["prompt_tokens"], b["completion_tokens"]) == (None, 3)
    assert q.counts["number_unparseable"] == 1


def test_input_below_cache_tokens_is_counted_not_made_negative() -> None:
    ev, _, q = parse(request([chat(trace_id(10), None, **usage(5, 1, read=100))]))
    (call,) = rows(ev, "llm_call")
    assert call["prompt_tokens"] == 5 and call["cache_read_tokens"] == 100
    assert q.counts["tokens_inconsistent"] == 1


def test_cache_aliases_and_openinference_names() -> None:
    t = trace_id(11)
    ev, _, _ = parse(request([
        chat(t, None, **{"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 9,
                         "gen_ai.usage.cache_read_input_tokens": 40,
                         "gen_ai.usage.cache_creation_input_tokens": 10}),
        span(t, span_id(), None, "response", **{
            "openinference.span.kind": "LLM", "llm.model_name": "gpt-4.1",
            "llm.token_count.prompt": "85", "llm.token_count.completion": "29",
            "llm.token_count.prompt_details.cache_read": "5"}),
    ]))
    a, b = rows(ev, "llm_call")
    assert (a["prompt_tokens"], a["cache_read_tokens"], a["cache_creation_tokens"]) == (50, 40,
                                                                                        10)
    assert (b["model"], b["prompt_tokens"], b["cache_read_tokens"]) == ("gpt-4.1", 80, 5)


def test_session_project_user_and_agent_error() -> None:
    t = trace_id(12)
    root = span_id()
    ev, sess, _ = parse(request([
        span(t, root, None, "invoke_agent helper", status=2, message="gave up", dur_ms=900,
             **{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper",
                "gen_ai.conversation.id": "conv-1", "user.id": "alice"}),
        chat(t, root, **usage(3, 4)),
    ], service="billing-bot", host__name="box-7"))
    assert set(ev["session_id"]) == {"conv-1"}
    assert sess["project"] == ["billing-bot"] and sess["user_id"] == ["alice"]
    (err,) = rows(ev, "error")
    assert err["error_message"] == "gave up" and err["agent"] == "helper"
    assert sess["start_ts"][0].isoformat() == "2025-10-09T08:53:20"


# ------------------------------------------------------------------ other shapes

def test_older_envelope_batches_string_enums_numeric_times_base64_ids() -> None:
    tid = bytes(range(1, 17))
    sid = bytes(range(1, 9))
    doc = {"batches": [{"resource": {"attributes": attrs({"service.name": "legacy"})},
                        "instrumentationLibrarySpans": [{
                            "instrumentationLibrary": {"name": "old"},
                            "spans": [{
                                "traceId": base64.b64encode(tid).decode(),
                                "spanId": base64.b64encode(sid).decode(),
                                "name": "chat gpt-4o", "kind": "SPAN_KIND_CLIENT",
                                "startTimeUnixNano": T0, "endTimeUnixNano": T0 + 2_000_000,
                                "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                                "attributes": [
                                    {"key": "gen_ai.operation.name",
                                     "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.usage.input_tokens",
                                     "value": {"intValue": 12}}]}]}]}]}
    ev, sess, q = parse(doc)
    (call,) = rows(ev, "llm_call")
    assert call["prompt_tokens"] == 12 and call["latency_ms"] == 2.0
    assert sess["session_id"] == [tid.hex()] and sess["project"] == ["legacy"]
    assert json.loads(call["data"])["status"] == "error"
    assert q.data_errors == 0


def test_collector_file_exporter_jsonl_gzip_and_snake_case(tmp_path: Path) -> None:
    t = trace_id(13)
    lines = [orjson.dumps(request([chat(t, None, **usage(1, 1))])),
             b"{not json",
             orjson.dumps(request([chat(t, None, **usage(2, 2))]))]
    raw = gzip.compress(b"\n".join(lines) + b"\n")
    ev, _, q = parse(raw, "export.jsonl.gz")
    assert [c["prompt_tokens"] for c in rows(ev, "llm_call")] == [1, 2]
    assert q.counts["line_bad_json"] == 1
    snake = {"resource_spans": [{"scope_spans": [{"spans": [{
        "trace_id": t, "span_id": span_id(), "name": "x",
        "attributes": attrs({"gen_ai.operation.name": "embeddings",
                             "gen_ai.usage.input_tokens": 8})}]}]}]}
    ev, _, _ = parse(snake)
    assert [c["prompt_tokens"] for c in rows(ev, "llm_call")] == [8]


def _nan_call(tid: Any, n: int, snake: bool = False) -> bytes:
    """One model-call request whose span carries a NaN literal (what Python's json writes)."""
    if snake:  # 128-bit integer ids, decoded exactly (not through orjson)
        doc = {"resource_spans": [{"scope_spans": [{"spans": [{
            "trace_id": tid, "span_id": 1000 + n, "name": "chat", "x_score": 0.123456,
            "attributes": attrs({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                                 "gen_ai.usage.input_tokens": n})}]}]}]}
    else:
        doc = request([chat(tid, None, **usage(n, 1), x_score=0.123456)])
    return json.dumps(doc).encode().replace(b"0.123456", b"NaN")


@pytest.mark.parametrize("shape", ["jsonl", "jsonl-bad-utf8", "concatenated", "jsonl-int-ids"])
def test_a_bad_value_is_counted_once_whichever_reading_keeps_the_file(tmp_path: Path,
                                                                      shape: str) -> None:
    """The file is first tried as one document; that reading meets the first line's NaN
    (and bad UTF-8) before it fails, and its count must not add to the kept reading's."""
    counts = {"value_bad_json": 2}
    if shape == "jsonl-int-ids":
        lines = [_nan_call(2**100, 3, snake=True), _nan_call(2**100 + 1, 4, snake=True)]
    else:
        lines = [_nan_call(trace_id(31), 3), _nan_call(trace_id(32), 4)]
    if shape == "jsonl-bad-utf8":
        lines[0] = lines[0].replace(b'"resourceSpans"', b'"x": "\xff", "resourceSpans"')
        counts["text_bad_utf8"] = 1
    if shape == "concatenated":  # pretty-printed objects back to back (console exporter)
        raw = b"\n".join(json.dumps(json.loads(line), indent=2).encode() for line in lines)
    else:
        raw = b"\n".join(lines) + b"\n"
    src = tmp_path / "traces"
    src.mkdir()
    (src / "export.jsonl").write_bytes(raw)
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        r = ingest(str(src), st, fmt="otel")
        tokens = st.sql("SELECT prompt_tokens FROM events WHERE event_type = 'llm_call' "
                        "ORDER BY prompt_tokens").to_pylist()
    assert dict(r.quality.counts) == counts  # one NaN per line: two, not three
    assert [t["prompt_tokens"] for t in tokens] == [3, 4]  # each NaN cost only its value


def test_sdk_console_exporter_output_written_by_the_real_sdk(tmp_path: Path) -> None:
    """ConsoleSpanExporter writes pretty-printed span objects back to back."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    out = tmp_path / "console.json"
    with out.open("w") as fh:
        provider = TracerProvider(resource=Resource.create({"service.name": "console-app"}))
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=fh)))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("invoke_agent bot") as agent:
            agent.set_attribute("gen_ai.operation.name", "invoke_agent")
            agent.set_attribute("gen_ai.agent.name", "bot")
            with tracer.start_as_current_span("chat gpt-4o") as s:
                s.set_attribute("gen_ai.operation.name", "chat")
                s.set_attribute("gen_ai.request.model", "gpt-4o")
                s.set_attribute("gen_ai.usage.input_tokens", 120)
                s.set_attribute("gen_ai.usage.output_tokens", 7)
            with tracer.start_as_current_span("execute_tool ls") as s:
                s.set_attribute("gen_ai.operation.name", "execute_tool")
                s.set_attribute("gen_ai.tool.name", "ls")
                s.set_status(Status(StatusCode.ERROR, "denied"))
        provider.shutdown()
    ev, sess, q = parse(out.read_bytes(), str(out))
    (call,) = rows(ev, "llm_call")
    assert (call["prompt_tokens"], call["completion_tokens"], call["agent"]) == (120, 7, "bot")
    (tool,) = rows(ev, "tool_output")
    assert (tool["tool"], tool["success"]) == ("ls", False)
    assert sess["project"] == ["console-app"] and q.data_errors == 0


def test_bad_files_are_skipped_and_bad_spans_counted(tmp_path: Path) -> None:
    _, _, q = parse(b"\x00\x01 not json at all", "bad.json")
    assert q.skipped and q.skipped[0]["kind"] == "file_bad_json"
    _, _, q = parse(b"", "empty.json")
    assert q.skipped[0]["kind"] == "file_empty"
    t = trace_id(14)
    ev, _, q = parse(request([{"traceId": "xyz", "spanId": "1", "name": "chat"},
                              chat(t, None, **usage(4, 4)), "not a span"]))
    assert len(rows(ev, "llm_call")) == 1
    assert q.counts["span_id_invalid"] == 1 and q.counts["event_not_object"] == 1


def test_otlp_records_in_an_event_log_segment(tmp_path: Path) -> None:
    """What `agentkpi collect` appends is read back by the event-log importer."""
    t = trace_id(15)
    w = span_id()
    req = request([chat(t, None, sid=w, **usage(50, 5)), chat(t, w, **usage(50, 5))])
    log = tmp_path / "log"
    log.mkdir()
    rec = {"id": "1-a-1", "seq": 1, "ts": "2025-10-09T08:53:20.000000Z", "session_id": None,
           "event_type": "otlp_traces", "data": {"encoding": "json", "request": req}}
    (log / "events-20251009T085320-1-0.jsonl").write_bytes(orjson.dumps(rec) + b"\n")
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        r = ingest(str(log), st)
        assert r.format == "eventlog"
        got = st.sql("SELECT event_type, session_id, prompt_tokens FROM events").to_pylist()
    assert got == [{"event_type": "llm_call", "session_id": t, "prompt_tokens": 50}]
