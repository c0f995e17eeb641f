"""kill -9 of a real ``agentkpi collect`` process under load loses nothing answered 200
and doubles nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson

from agentkpi.store import DuckDBStore
from tests.otlp_build import chat, request, span, usage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentkpi", "collect", "--port", str(port), "--log-dir",
         str(tmp_path / "log"), "--store", str(tmp_path / "store.duckdb"), "--interval", "0.2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"collector exited: {proc.stderr.read().decode()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("collector did not start")


def _trace_parts(n: int) -> tuple[str, list[bytes]]:
    """Trace ``n``: agent > wrapper > provider span, all repeating usage 100/10.

    Odd traces come in two requests (provider span first), even ones in one."""
    t = f"{n:032x}"
    agent, wrapper, leaf = f"{3 * n + 1:016x}", f"{3 * n + 2:016x}", f"{3 * n + 3:016x}"
    u = usage(100, 10)
    spans = [span(t, agent, None, "invoke_agent a", **{"gen_ai.operation.name":
                                                        "invoke_agent", **u}),
             chat(t, agent, sid=wrapper, **u), chat(t, wrapper, sid=leaf, **u)]
    if n % 2:
        return t, [orjson.dumps(request(spans[2:])), orjson.dumps(request(spans[:2]))]
    return t, [orjson.dumps(request(spans))]


def test_kill_9_under_load_loses_nothing_answered_200(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1/traces"
    proc = _start(tmp_path, port)
    acked: set[str] = set()  # traces whose every request was answered 200
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(1, 10**9))

    def client() -> None:
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                with lock:
                    n = next(counter)
                t, parts = _trace_parts(n)
                try:
                    for body in parts:
                        r = c.post(url, content=body,
                                   headers={"Content-Type": "application/json"})
                        if r.status_code != 200:
                            break
                    else:
                        with lock:
                            acked.add(t)
                except httpx.HTTPError:
                    return

    threads = [threading.Thread(target=client) for _ in range(8)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 60
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # mid-load: requests in flight, writes in progress
    proc.wait()
    stop.set()
    for th in threads:
        th.join(30)
    assert len(acked) >= 300

    proc = _start(tmp_path, port)  # catches up from the log
    proc.send_signal(signal.SIGTERM)  # stops after a final ingest of everything logged
    assert proc.wait(120) == 0, proc.stderr.read().decode()

    with DuckDBStore(tmp_path / "store.duckdb") as st:
        per_trace = {r["session_id"]: r for r in st.sql(
            "SELECT session_id, count(*) AS calls, sum(prompt_tokens) AS tokens "
            "FROM events WHERE event_type = 'llm_call' GROUP BY 1").to_pylist()}
    missing = acked - set(per_trace)
    assert not missing, f"{len(missing)} acknowledged traces lost, e.g. {sorted(missing)[:3]}"
    doubled = {t: r for t, r in per_trace.items() if r["calls"] != 1 or r["tokens"] != 100}
    assert not doubled, f"{len(doubled)} traces counted more than once: " \
                        f"{list(doubled.items())[:3]}"
