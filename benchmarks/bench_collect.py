"""Benchmark ``agentkpi collect``: spans/s accepted, request latency, lag until queryable.

    python benchmarks/bench_collect.py [--clients 16] [--requests 1600] [--spans 200]
                                       [--encoding protobuf|json] [--out DIR]

Starts a real collector process on a free port (DuckDB store, default 1 s interval),
pre-builds every request body (each trace: invoke_agent > chat wrapper > chat provider
span repeating the usage, plus an execute_tool span; 4 spans), then sends them from
``--clients`` threads over keep-alive connections as fast as answers come back. Reports:

Clients are ``--clients`` threads spread over ``--procs`` processes, each thread with
one keep-alive connection (as an exporter keeps one).

* accepted spans/s: spans in requests answered 200 / wall time from the first send to
  the last answer; also per CPU-second of the collector process;
* request latency p50/p99 (send to 200, durable on disk);
* lag until queryable: from the last 200 until every trace's llm_call is in the store
  (read with a read-only connection, as ``agentkpi query`` does), and the lag of one
  small probe request sent afterwards;
* correctness: the store holds exactly one llm_call per trace.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson

from agentkpi.errors import StoreError
from agentkpi.store import DuckDBStore
from benchmarks._machine import cpu_model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _trace_spans(n: int, t0: int) -> list[dict[str, Any]]:
    tid = n.to_bytes(16, "big")
    ids = [(4 * n + i).to_bytes(8, "big") for i in range(1, 5)]
    u = {"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 80,
         "gen_ai.usage.cache_read.input_tokens": 1000}
    base = t0 + n * 1000
    return [
        dict(trace_id=tid, span_id=ids[0], parent=None, name="invoke_agent bench",
             start=base, end=base + 900_000_000,
             attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bench"}),
        dict(trace_id=tid, span_id=ids[1], parent=ids[0], name="chat gpt-4o", start=base + 1,
             end=base + 500_000_000, attrs={"gen_ai.operation.name": "chat",
                                            "gen_ai.request.model": "gpt-4o", **u}),
        dict(trace_id=tid, span_id=ids[2], parent=ids[1], name="openai.chat", start=base + 2,
             end=base + 490_000_000, attrs={"gen_ai.operation.name": "chat",
                                            "gen_ai.request.model": "gpt-4o",
                                            "gen_ai.provider.name": "openai", **u}),
        dict(trace_id=tid, span_id=ids[3], parent=ids[0], name="execute_tool search",
             start=base + 600_000_000, end=base + 700_000_000,
             attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
    ]


def _protobuf(spans: list[dict[str, Any]]) -> bytes:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb

    req = pb.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add(key="service.name")
    kv.value.string_value = "bench-agent"
    ss = rs.scope_spans.add()
    ss.scope.name = "bench"
    for s in spans:
        p = ss.spans.add(trace_id=s["trace_id"], span_id=s["span_id"], name=s["name"],
                         kind=1, start_time_unix_nano=s["start"], end_time_unix_nano=s["end"])
        if s["parent"]:
            p.parent_span_id = s["parent"]
        for k, v in s["attrs"].items():
            a = p.attributes.add(key=k)
            if isinstance(v, int):
                a.value.int_value = v
            else:
                a.value.string_value = v
    return req.SerializeToString()


def _json(spans: list[dict[str, Any]]) -> bytes:
    def val(v: Any) -> dict[str, Any]:
        return {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}

    out = [{"traceId": s["trace_id"].hex(), "spanId": s["span_id"].hex(),
            **({"parentSpanId": s["parent"].hex()} if s["parent"] else {}),
            "name": s["name"], "kind": 1, "startTimeUnixNano": str(s["start"]),
            "endTimeUnixNano": str(s["end"]),
            "attributes": [{"key": k, "value": val(v)} for k, v in s["attrs"].items()]}
           for s in spans]
    return orjson.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "bench-agent"}}]},
        "scopeSpans": [{"scope": {"name": "bench"}, "spans": out}]}]})


def build_bodies(n_requests: int, spans_per_request: int, encoding: str,
                 first_trace: int = 1) -> tuple[list[bytes], int]:
    per = max(1, spans_per_request // 4)
    t0 = time.time_ns()
    enc = _protobuf if encoding == "protobuf" else _json
    bodies = []
    n = first_trace
    for _ in range(n_requests):
        spans = []
        for _ in range(per):
            spans += _trace_spans(n, t0)
            n += 1
        bodies.append(enc(spans))
    return bodies, n - first_trace


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _llm_calls(store: Path) -> int | None:
    try:
        with DuckDBStore(store, read_only=True, lock_timeout=0.2) as st:
            return int(st.sql("SELECT count(*) AS n FROM events WHERE event_type = "
                              "'llm_call'").to_pylist()[0]["n"])
    except StoreError:
        return None


def _wait_calls(store: Path, want: int, timeout: float = 600) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        n = _llm_calls(store)
        if n is not None and n >= want:
            return time.perf_counter()
        time.sleep(0.05)
    raise SystemExit(f"the store never reached {want} llm_calls")


_BODIES: list[bytes] = []


def _client_proc(i: int, procs: int, clients: int, port: int, ctype: str, start: Any,
                 out: Any) -> None:
    """One client process: its share of the threads and of the request bodies."""
    import http.client

    mine = _BODIES[i::procs]
    n_threads = clients // procs + (1 if i < clients % procs else 0)
    lock = threading.Lock()
    it = iter(mine)
    lat: list[float] = []
    err = [0]

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                body = next(it, None)
            if body is None:
                conn.close()
                return
            t = time.perf_counter()
            conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": ctype})
            r = conn.getresponse()
            r.read()
            dt = time.perf_counter() - t
            with lock:
                if r.status == 200:
                    lat.append(dt)
                else:
                    err[0] += 1

    threads = [threading.Thread(target=client) for _ in range(n_threads)]
    start.wait()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out.put((lat, err[0]))


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.out or tempfile.mkdtemp(prefix="bench-collect-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    store = work / "store.duckdb"
    port = _free_port()
    ctype = "application/x-protobuf" if args.encoding == "protobuf" else "application/json"
    print(f"building {args.requests} {args.encoding} requests of {args.spans} spans ...",
          flush=True)
    bodies, n_traces = build_bodies(args.requests, args.spans, args.encoding)
    spans_per_body = (args.spans // 4) * 4
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentkpi", "collect", "--port", str(port), "--log-dir",
         str(work / "log"), "--store", str(store), "--interval", str(args.interval)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}/v1/traces"
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    cpu0 = _cpu_seconds(proc.pid)
    # 16 clients = ``--procs`` client processes x threads (forked after the bodies are
    # built, so they share them), each thread with its own keep-alive connection
    global _BODIES
    _BODIES = bodies
    procs = max(1, min(args.procs, args.clients))
    ctx = mp.get_context("fork")
    start = ctx.Event()
    out = ctx.Queue()
    workers = [ctx.Process(target=_client_proc, args=(
        i, procs, args.clients, port, ctype, start, out)) for i in range(procs)]
    for w in workers:
        w.start()
    time.sleep(0.5)
    t_start = time.perf_counter()
    start.set()
    latencies: list[float] = []
    errors = 0
    for _ in workers:
        lat, err = out.get()
        latencies += lat
        errors += err
    t_end = time.perf_counter()
    for w in workers:
        w.join()
    cpu_accept = _cpu_seconds(proc.pid) - cpu0
    accepted = len(latencies) * spans_per_body
    t_all = _wait_calls(store, n_traces)
    cpu_total = _cpu_seconds(proc.pid) - cpu0
    # one small probe after the load: the lag a user sees in steady state
    probe, _ = build_bodies(1, 4, args.encoding, first_trace=n_traces + 1)
    t_probe = time.perf_counter()
    httpx.post(url, content=probe[0], headers={"Content-Type": ctype})
    t_probe_done = _wait_calls(store, n_traces + 1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(300)
    calls = _llm_calls(store)
    lat = sorted(latencies)
    return {
        "machine": f"{platform.node()} {cpu_model()} x{os.cpu_count()}",
        "encoding": args.encoding, "clients": args.clients, "requests": args.requests,
        "spans_per_request": spans_per_body, "traces": n_traces, "errors": errors,
        "accepted_spans": accepted, "wall_s": t_end - t_start,
        "spans_per_s": accepted / (t_end - t_start),
        "collector_cpu_s_while_accepting": cpu_accept,
        "collector_cpu_s_total": cpu_total,
        "spans_per_cpu_s_total": accepted / cpu_total if cpu_total else None,
        "p50_ms": statistics.median(lat) * 1000, "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
        "lag_all_queryable_s": t_all - t_end, "lag_probe_s": t_probe_done - t_probe,
        "llm_calls_in_store": calls, "exactly_once": calls == n_traces + 1,
        "load_avg": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--procs", type=int, default=4, help="client processes the clients "
                    "are spread over")
    ap.add_argument("--requests", type=int, default=1600)
    ap.add_argument("--spans", type=int, default=200, help="spans per request (x4)")
    ap.add_argument("--encoding", choices=["protobuf", "json"], default="protobuf")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--out", help="work directory (default: a temp dir)")
    r = run(ap.parse_args())
    print("| measurement | value |\n|---|---:|")
    for k, v in r.items():
        print(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |")


if __name__ == "__main__":
    main()
