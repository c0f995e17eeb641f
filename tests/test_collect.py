"""``agentkpi collect``: driven by the real OpenTelemetry SDK exporter and by raw HTTP."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from agentkpi.cli import main
from agentkpi.collector import Collector
from agentkpi.errors import UsageError
from agentkpi.sdk.eventlog import read_events
from agentkpi.store import DuckDBStore
from tests.otlp_build import chat, request, span, span_id, trace_id, usage


@contextmanager
def running(tmp_path: Path, **kw: Any) -> Iterator[tuple[Collector, str, Path]]:
    store = tmp_path / "store.duckdb"
    col = Collector(host="127.0.0.1", port=0, log_dir=tmp_path / "log",
                    open_store=lambda: DuckDBStore(store), interval=0.1, **kw)
    t = threading.Thread(target=col.serve_forever, daemon=True)
    t.start()
    host, port = col.address
    try:
        yield col, f"http://{host}:{port}", store
    finally:
        col.shutdown()
        t.join(60)


def settle(col: Collector, until: Callable[[], bool] | None = None) -> None:
    """Wait (not a timing assertion) until the ingester has caught up with the log."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if col.log.records and col.ingester.stats.committed >= col.log.records and (
                until is None or until()):
            return
        time.sleep(0.05)
    raise AssertionError(f"ingester did not catch up: {col.ingester.stats}, "
                         f"error {col.ingester.error}")


def query(store: Path, sql: str) -> list[dict[str, Any]]:
    # read-write like the in-process ingester: DuckDB refuses one file opened twice in a
    # process with different configurations
    with DuckDBStore(store) as st:
        return st.sql(sql).to_pylist()


def log_records(tmp_path: Path) -> int:
    events, _ = read_events(tmp_path / "log")
    return len(events)


# ------------------------------------------------------------------ the real SDK exporter

def _tracer(endpoint: str | None, **exporter_kw: Any) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-agent",
                                                        "host.name": "box-1"}))
    exporter = OTLPSpanExporter(endpoint=endpoint, **exporter_kw) if endpoint \
        else OTLPSpanExporter(**exporter_kw)
    # SimpleSpanProcessor: one request per span as it ends, so the provider span, its
    # wrapper and the agent span reach the collector in three separate requests.
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _agent_run(provider: Any, conversation: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    tracer = provider.get_tracer("test-agent")
    u = {"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 80,
         "gen_ai.usage.cache_read.input_tokens": 1000}
    with tracer.start_as_current_span("invoke_agent support") as agent:
        agent.set_attributes({"gen_ai.operation.name": "invoke_agent",
                              "gen_ai.agent.name": "support",
                              "gen_ai.conversation.id": conversation,
                              "gen_ai.usage.input_tokens": 1200,
                              "gen_ai.usage.output_tokens": 80})
        with tracer.start_as_current_span("chat claude-sonnet-4") as wrapper:
            wrapper.set_attributes({"gen_ai.operation.name": "chat",
                                    "gen_ai.request.model": "claude-sonnet-4", **u})
            with tracer.start_as_current_span("anthropic.chat") as provider_span:
                provider_span.set_attributes({"gen_ai.operation.name": "chat",
                                              "gen_ai.request.model": "claude-sonnet-4",
                                              "gen_ai.provider.name": "anthropic", **u})
        with tracer.start_as_current_span("execute_tool grep") as tool:
            tool.set_attributes({"gen_ai.operation.name": "execute_tool",
                                 "gen_ai.tool.name": "grep"})
            tool.set_status(Status(StatusCode.ERROR, "no such file"))


def test_real_sdk_exporter_via_the_standard_env_var(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with running(tmp_path) as (col, url, store):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)  # exporter adds /v1/traces
        provider = _tracer(None)
        _agent_run(provider, "conv-42")
        provider.shutdown()
        assert col.server.accepted_requests == 4  # one request per span
        settle(col)
        calls = query(store, "SELECT session_id, model, prompt_tokens, cache_read_tokens, "
                             "completion_tokens, agent, cost_source FROM events "
                             "WHERE event_type = 'llm_call'")
        # no cost on the spans: the ingest's pricing step prices the call
        assert calls == [{"session_id": "conv-42", "model": "claude-sonnet-4",
                          "prompt_tokens": 200, "cache_read_tokens": 1000,
                          "completion_tokens": 80, "agent": "support",
                          "cost_source": "priced"}]
        tools = query(store, "SELECT tool, success FROM events "
                             "WHERE event_type = 'tool_output'")
        assert tools == [{"tool": "grep", "success": False}]
        (sess,) = query(store, "SELECT project, agent, source FROM sessions "
                               "WHERE session_id = 'conv-42'")
        assert sess == {"project": "sdk-agent", "agent": "support", "source": "otel"}
        assert col.ingester.stats.spans_merged == 1
        assert col.ingester.stats.agent_usage_ignored == 1
    # the collector's log read back by `agentkpi ingest` into another store: the same call
    from agentkpi.ingestion import ingest

    with DuckDBStore(tmp_path / "other.duckdb") as other:
        r = ingest(str(tmp_path / "log"), other)
        assert r.format == "eventlog"
        again = other.sql("SELECT session_id, prompt_tokens, cache_read_tokens, "
                          "completion_tokens FROM events WHERE event_type = 'llm_call'"
                          ).to_pylist()
    assert again == [{"session_id": "conv-42", "prompt_tokens": 200, "cache_read_tokens": 1000,
                      "completion_tokens": 80}]
    audit = query(store, "SELECT kind, n FROM import_audit WHERE format = 'otel-collector' "
                         "ORDER BY kind")
    assert audit == [{"kind": "lines_read", "n": 4}, {"kind": "otel_agent_usage_ignored", "n": 1},
                     {"kind": "otel_spans_merged", "n": 1}]


def test_real_sdk_exporter_gzip_and_the_kpis(tmp_path: Path) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression

    from agentkpi.kpis.sql import KpiQuery
    from agentkpi.kpis.sql import run as run_kpis

    with running(tmp_path) as (col, url, store):
        provider = _tracer(f"{url}/v1/traces", compression=Compression.Gzip)
        for i in range(3):
            _agent_run(provider, f"conv-{i}")
        provider.shutdown()
        settle(col)
        with DuckDBStore(store) as st:
            lo, hi = st.time_range()
            hour = lo.replace(minute=0, second=0, microsecond=0)
            end = hi.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            (row,) = run_kpis(st, KpiQuery(start=hour, end=end, grain=None, kpis=[
                "sessions", "llm_calls", "tool_calls_total", "tool_calls_failed"]))
        assert (row["sessions"], row["llm_calls"], row["tool_calls_total"],
                row["tool_calls_failed"]) == (3, 3, 3, 3)


# ------------------------------------------------------------------ raw HTTP

def test_json_gzip_partial_success_and_cross_request_wrapper(tmp_path: Path) -> None:
    t = trace_id(100)
    wrapper, leaf = span_id(), span_id()
    with running(tmp_path) as (col, url, store):
        # the provider span first, in its own request
        r = httpx.post(f"{url}/v1/traces", content=orjson.dumps(request([
            chat(t, wrapper, sid=leaf, **usage(500, 20))])),
            headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()) == (200, {})
        settle(col)
        # then its wrapper (same usage) and one span with a broken id, gzipped
        body = gzip.compress(orjson.dumps(request([
            chat(t, None, sid=wrapper, **usage(500, 20)),
            span(t, "not-hex", None, "chat x")])))
        r = httpx.post(f"{url}/v1/traces", content=body,
                       headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert r.status_code == 200
        assert r.json()["partialSuccess"]["rejectedSpans"] == "1"
        assert "spanId" in r.json()["partialSuccess"]["errorMessage"]
        settle(col, lambda: col.ingester.stats.spans_merged == 1)
        calls = query(store, "SELECT prompt_tokens, latency_ms FROM events "
                             "WHERE event_type = 'llm_call'")
        assert calls == [{"prompt_tokens": 500, "latency_ms": 100.0}]


def test_protobuf_partial_success_answer(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb

    req = pb.ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    good = ss.spans.add(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="chat")
    kv = good.attributes.add(key="gen_ai.operation.name")
    kv.value.string_value = "chat"
    ss.spans.add(trace_id=b"\0" * 16, span_id=bytes(range(1, 9)), name="bad")
    with running(tmp_path) as (col, url, _):
        r = httpx.post(f"{url}/v1/traces", content=req.SerializeToString(),
                       headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 200
        resp = pb.ExportTraceServiceResponse.FromString(r.content)
        assert resp.partial_success.rejected_spans == 1
        assert "trace_id" in resp.partial_success.error_message
        assert col.server.accepted_spans == 1 and col.server.rejected_spans == 1


@pytest.mark.parametrize(("body", "headers", "status", "words"), [
    (b"{not json", {"Content-Type": "application/json"}, 400, "not valid JSON"),
    (b"[1, 2]", {"Content-Type": "application/json"}, 400, "expected an object"),
    (b'{"resourceSpans": 3}', {"Content-Type": "application/json"}, 400, "must be a list"),
    (b"\xff\xfe garbage", {"Content-Type": "application/x-protobuf"}, 400, "protobuf"),
    (b"{}", {"Content-Type": "text/plain"}, 415, "Content-Type"),
    (b"{}", {"Content-Type": "application/json", "Content-Encoding": "br"}, 415, "gzip"),
    (b"not gzip", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400,
     "gzip"),
])
def test_malformed_requests_are_refused_with_a_clear_message_and_not_logged(
        tmp_path: Path, body: bytes, headers: dict[str, str], status: int, words: str) -> None:
    with running(tmp_path) as (col, url, _):
        r = httpx.post(f"{url}/v1/traces", content=body, headers=headers)
        assert r.status_code == status
        message = r.json()["message"] if "json" in r.headers["content-type"] else \
            r.content.decode(errors="replace")
        assert words in message
        assert col.log.records == 0 and col.server.refused_requests == 1
    assert log_records(tmp_path) == 0


def test_size_limits_paths_and_methods(tmp_path: Path) -> None:
    big = orjson.dumps(request([chat(trace_id(101), None, **usage(1, 1),
                                     note="x" * 5000)]))
    with running(tmp_path, max_body=4096) as (col, url, _):
        r = httpx.post(f"{url}/v1/traces", content=big,
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "4096-byte limit" in r.json()["message"]
        # a small gzip body that inflates past the limit
        r = httpx.post(f"{url}/v1/traces", content=gzip.compress(b" " * 100_000),
                       headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert r.status_code == 413
        r = httpx.post(f"{url}/v1/metrics", content=b"{}",
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 404 and "/v1/traces" in r.json()["message"]
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
        assert col.log.records == 0


def test_api_keys(tmp_path: Path) -> None:
    body = orjson.dumps(request([chat(trace_id(102), None, **usage(3, 3))]))
    h = {"Content-Type": "application/json"}
    with running(tmp_path, api_keys=frozenset({"k-123", "k-456"})) as (col, url, store):
        r = httpx.post(f"{url}/v1/traces", content=body, headers=h)
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["message"]
        r = httpx.post(f"{url}/v1/traces", content=body,
                       headers={**h, "Authorization": "Bearer wrong"})
        assert r.status_code == 403
        assert col.log.records == 0
        r = httpx.post(f"{url}/v1/traces", content=body,
                       headers={**h, "Authorization": "Bearer k-456"})
        assert r.status_code == 200
        settle(col)
        assert query(store, "SELECT prompt_tokens FROM events") == [{"prompt_tokens": 3}]


def test_binding_beyond_loopback_needs_api_keys(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--api-keys"):
        Collector(host="0.0.0.0", port=0, log_dir=tmp_path / "log",
                  open_store=lambda: DuckDBStore(tmp_path / "s.duckdb"))
    r = CliRunner().invoke(main, ["collect", "--host", "0.0.0.0", "--port", "0",
                                  "--store", str(tmp_path / "s.duckdb"),
                                  "--log-dir", str(tmp_path / "log")])
    assert r.exit_code == 1 and "--api-keys" in r.output and "Traceback" not in r.output
    keys = tmp_path / "keys.txt"
    keys.write_text("# none yet\n\n")
    r = CliRunner().invoke(main, ["collect", "--api-keys", str(keys), "--port", "0"])
    assert r.exit_code == 1 and "holds no API key" in r.output


def test_restart_resumes_without_doubling_and_merges_across_the_restart(
        tmp_path: Path) -> None:
    """Stop after the provider span; its wrapper arrives after the restart: one call."""
    t = trace_id(103)
    wrapper, leaf = span_id(), span_id()
    h = {"Content-Type": "application/json"}
    with running(tmp_path) as (col, url, store):
        httpx.post(f"{url}/v1/traces", headers=h, content=orjson.dumps(request([
            chat(t, wrapper, sid=leaf, **usage(40, 4))])))
        httpx.post(f"{url}/v1/traces", headers=h, content=orjson.dumps(request([
            chat(trace_id(104), None, **usage(7, 7))])))
        settle(col)
    before = query(store, "SELECT count(*) AS n FROM events")[0]["n"]
    assert before == 2
    with running(tmp_path) as (col, url, store):
        httpx.post(f"{url}/v1/traces", headers=h, content=orjson.dumps(request([
            chat(t, None, sid=wrapper, **usage(40, 4))])))
        settle(col)
        rows = query(store, "SELECT session_id, prompt_tokens FROM events ORDER BY 1")
    assert rows == [{"session_id": t, "prompt_tokens": 40},
                    {"session_id": trace_id(104), "prompt_tokens": 7}]


def test_a_failed_store_write_is_retried_from_the_same_offset(tmp_path: Path) -> None:
    """The store is locked by another process for a while: nothing is skipped or doubled."""
    from agentkpi.errors import StoreError

    path = tmp_path / "store.duckdb"
    failures = [3]
    opened = [0]

    def opener() -> DuckDBStore:
        opened[0] += 1
        # the first open (recovery) works; the writes of the data then fail three times
        if opened[0] > 1 and failures[0] > 0:
            failures[0] -= 1
            raise StoreError("cannot open store: locked by another process")
        return DuckDBStore(path)

    col = Collector(host="127.0.0.1", port=0, log_dir=tmp_path / "log", open_store=opener,
                    interval=0.1)
    t = threading.Thread(target=col.serve_forever, daemon=True)
    t.start()
    host, port = col.address
    try:
        for n in (105, 106):
            r = httpx.post(f"http://{host}:{port}/v1/traces", content=orjson.dumps(request([
                chat(trace_id(n), None, **usage(n, 1))])),
                headers={"Content-Type": "application/json"})
            assert r.status_code == 200
        settle(col)
    finally:
        col.shutdown()
        t.join(60)
    assert failures == [0]
    assert query(path, "SELECT prompt_tokens FROM events ORDER BY 1") == [
        {"prompt_tokens": 105}, {"prompt_tokens": 106}]
    assert col.ingester.stats.records == 2


def test_collect_into_clickhouse_replaces_a_trace_rederived(tmp_path: Path) -> None:
    """--engine clickhouse: the same trace units, the wrapper arriving later merges."""
    from agentkpi.store import open_store

    dsn = f"chdb://{tmp_path / 'ch'}"
    col = Collector(host="127.0.0.1", port=0, log_dir=tmp_path / "log", engine="clickhouse",
                    open_store=lambda: open_store("clickhouse", dsn), interval=0.1)
    t = threading.Thread(target=col.serve_forever, daemon=True)
    t.start()
    host, port = col.address
    url = f"http://{host}:{port}/v1/traces"
    tr, wrapper, leaf = trace_id(107), span_id(), span_id()
    h = {"Content-Type": "application/json"}
    try:
        httpx.post(url, headers=h, content=orjson.dumps(request([
            chat(tr, wrapper, sid=leaf, **usage(900, 9))])))
        settle(col)
        httpx.post(url, headers=h, content=orjson.dumps(request([
            chat(tr, None, sid=wrapper, **usage(900, 9)),
            span(tr, span_id(), wrapper, "execute_tool ls",
                 **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "ls"})])))
        settle(col)
    finally:
        col.shutdown()
        t.join(60)
    with open_store("clickhouse", dsn, read_only=True) as st:
        rows = st.sql("SELECT event_type, prompt_tokens FROM events ORDER BY event_type"
                      ).to_pylist()
    assert rows == [{"event_type": "llm_call", "prompt_tokens": 900},
                    {"event_type": "tool_call", "prompt_tokens": None},
                    {"event_type": "tool_output", "prompt_tokens": None}]
