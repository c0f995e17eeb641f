"""Recorder: the public recording API, its counters and its never-raise promise."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

import agentkpi
import agentkpi.sdk as sdk
from agentkpi.model import EVENT_TYPES, LIFECYCLE_EVENT_TYPES
from agentkpi.sdk import Recorder
from agentkpi.sdk.eventlog import list_segments, read_events

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("raise_errors")  # tests/conftest.py


def _run(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=60)


def test_readme_example_records_the_session_exactly(tmp_path: Path) -> None:
    rec = agentkpi.Recorder(tmp_path / "telemetry")
    with rec.session(user_id="alice", model="claude-sonnet-4") as s:
        s.llm_call(model="claude-sonnet-4", prompt_tokens=1200, completion_tokens=80,
                   cache_read_tokens=900, cost_usd=0.004, latency_ms=850)
        s.tool_call("bash", arguments={"cmd": "ls"})
        s.tool_output("bash", success=True, duration_ms=35)
        s.feedback("up")
    assert rec.flush() is True
    events, bad = read_events(tmp_path / "telemetry")
    rec.close()
    assert bad == 0
    assert [e["event_type"] for e in events] == [
        "session_start", "llm_call", "tool_call", "tool_output", "feedback", "session_end"]
    assert len({e["session_id"] for e in events}) == 1
    assert len({e["id"] for e in events}) == 6
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    start = events[0]
    assert (start["user_id"], start["model"]) == ("alice", "claude-sonnet-4")
    llm = events[1]["data"]
    assert {k: llm[k] for k in ("model", "prompt_tokens", "completion_tokens",
                                "cache_read_tokens", "cost_usd", "latency_ms")} == {
        "model": "claude-sonnet-4", "prompt_tokens": 1200, "completion_tokens": 80,
        "cache_read_tokens": 900, "cost_usd": 0.004, "latency_ms": 850}
    assert events[2]["data"]["arguments"] == {"cmd": "ls"}
    assert events[3]["data"]["success"] is True and events[3]["data"]["duration_ms"] == 35
    assert events[4]["data"] == {"rating": "up"}
    for e in events:
        ts = datetime.fromisoformat(e["ts"])
        assert ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0
    st = rec.stats()
    assert (st["recorded"], st["written"], st["dropped"], st["lost"], st["write_errors"]) == \
        (6, 6, 0, 0, 0)


def test_session_end_is_recorded_when_the_block_raises(tmp_path: Path) -> None:
    rec = Recorder(tmp_path)
    with pytest.raises(KeyError), rec.session(session_id="s-err") as s:
        s.llm_call(model="m", prompt_tokens=1)
        raise KeyError("boom")
    rec.flush()
    events, _ = read_events(tmp_path)
    rec.close()
    assert [e["event_type"] for e in events] == ["session_start", "llm_call", "error",
                                                 "session_end"]
    assert events[2]["data"]["error_type"] == "KeyError"
    assert events[3]["data"] == {"status": "error"}
    assert all(e["session_id"] == "s-err" for e in events)


def test_every_typed_helper_uses_the_documented_vocabulary(tmp_path: Path) -> None:
    rec = Recorder(tmp_path)
    s = rec.session(project="p1", agent="a1")
    s.error("RateLimit", "slow down")
    s.undo()
    s.job_submit("a10g-large", job_id="j1")
    s.job_complete("a10g-large", final_status="COMPLETED", wall_time_s=60.0)
    s.sandbox_create("cpu-basic")
    s.performance("latency", 12.5, unit="ms")
    s.agent_execution("sub-1", duration_ms=5)
    s.checkpoint("c1")
    s.hook("pre_tool")
    s.command("/compact", success=True)
    s.event("pro_cta_click", source="banner")
    s.end()
    s.end()  # once only
    rec.flush()
    events, _ = read_events(tmp_path)
    rec.close()
    types = [e["event_type"] for e in events]
    assert types == ["session_start", "error", "undo_complete", "hf_job_submit",
                     "hf_job_complete", "sandbox_create", "metric", "agent_execution",
                     "checkpoint_created", "hook_triggered", "command_executed",
                     "pro_cta_click", "session_end"]
    known = set(EVENT_TYPES) | LIFECYCLE_EVENT_TYPES | {"checkpoint_created", "hook_triggered",
                                                        "command_executed"}
    assert set(types) <= known
    by = {e["event_type"]: e for e in events}
    assert by["session_start"]["project"] == "p1" and by["session_start"]["agent"] == "a1"
    assert by["error"]["data"]["error_type"] == "RateLimit"
    assert by["error"]["data"]["error"] == "slow down"
    assert by["metric"]["data"] == {"name": "latency", "value": 12.5, "unit": "ms"}
    assert by["hf_job_complete"]["data"]["final_status"] == "COMPLETED"
    assert by["pro_cta_click"]["data"] == {"source": "banner"}


def test_injected_clock_sets_timestamps_and_segment_names(tmp_path: Path) -> None:
    t = [datetime(2026, 5, 20, 14, 0, 0, 250000, tzinfo=UTC)]
    rec = Recorder(tmp_path, clock=lambda: t[0])
    rec.record("feedback", session_id="s", rating="up")
    t[0] = datetime(2026, 5, 20, 14, 0, 1)  # naive = UTC
    rec.record("feedback", session_id="s", rating="down")
    rec.flush()
    events, _ = read_events(tmp_path)
    rec.close()
    assert [e["ts"] for e in events] == ["2026-05-20T14:00:00.250000Z",
                                         "2026-05-20T14:00:01.000000Z"]
    assert [s.stamp for s in list_segments(tmp_path)] == ["20260520T140000"]


def test_module_level_default_recorder_needs_no_setup(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTKPI_LOG_DIR", str(tmp_path / "default"))
    monkeypatch.setenv("AGENTKPI_DURABILITY", "os")
    old = sdk.set_default_recorder(None)
    try:
        sdk.record("feedback", session_id="s1", rating="up")
        with sdk.session(user_id="bob") as s:
            s.tool_call("grep")
        assert sdk.flush() is True
        rec = sdk.default_recorder()
        assert rec.durability == "os"
        events, _ = read_events(tmp_path / "default")
        assert [e["event_type"] for e in events] == ["feedback", "session_start", "tool_call",
                                                     "session_end"]
        assert agentkpi.record is sdk.record and agentkpi.flush is sdk.flush
        assert agentkpi.session is sdk.session
        rec.close()
    finally:
        sdk.set_default_recorder(old)


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    code = ("import threading, os, agentkpi, agentkpi.sdk, agentkpi.sdk.recorder\n"
            "r = agentkpi.Recorder('logs')\n"
            "print(threading.active_count(), os.path.exists('logs'))\n")
    out = _run(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "False"]


def test_atexit_flushes_without_an_explicit_flush(tmp_path: Path) -> None:
    code = ("import agentkpi\n"
            "r = agentkpi.Recorder('logs', flush_interval=60)\n"
            "for i in range(1000): r.record('metric', session_id='s', name='n', value=i)\n")
    out = _run(code, tmp_path)
    assert out.returncode == 0, out.stderr
    events, bad = read_events(tmp_path / "logs")
    assert (len(events), bad) == (1000, 0)


def test_full_queue_drops_and_counts_every_drop(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, queue_size=50, on_full="drop", durability="os")
    n = 50_000
    for i in range(n):
        rec.record("metric", session_id="s", value=i)
    rec.flush()
    st = rec.stats()
    events, _ = read_events(tmp_path)
    rec.close()
    assert st["dropped"] > 0
    assert st["recorded"] + st["dropped"] == n
    assert st["written"] == st["recorded"] == len(events)


def test_block_mode_waits_instead_of_dropping(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, queue_size=50, on_full="block", durability="os")
    for i in range(20_000):
        rec.record("metric", session_id="s", value=i)
    rec.flush()
    st = rec.stats()
    rec.close()
    assert (st["dropped"], st["written"]) == (0, 20_000)
    events, _ = read_events(tmp_path)
    assert [e["data"]["value"] for e in events] == list(range(20_000))


def test_unwritable_directory_keeps_host_running_and_counts_the_loss(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file where the log's parent should be")
    rec = Recorder(blocker / "logs")
    with caplog.at_level(logging.WARNING, logger="agentkpi"):
        with rec.session(user_id="u") as s:
            for _ in range(100):
                s.llm_call(model="m", prompt_tokens=1)
        assert rec.flush() is True  # returns: the writer processed everything
    st = rec.stats()
    rec.close()
    assert st["written"] == 0
    assert st["lost"] == 102 and st["write_errors"] >= 1
    assert st["recorded"] == st["written"] + st["lost"] + st["queued"]
    assert "could not write the event log" in caplog.text
    assert blocker.read_text().startswith("a regular file")


def test_file_size_limit_loses_only_what_did_not_fit(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes writes fail mid-batch; the host survives, the segment
    is cut back to whole lines and every loss is counted."""
    code = r"""
import json, resource, signal, agentkpi
from agentkpi.sdk.eventlog import read_events
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
r = agentkpi.Recorder('logs', durability='batch')
for i in range(2000):
    r.record('metric', session_id='s', name='n', value=i, pad='x' * 40)
    if i % 100 == 99:
        r.flush()
r.flush()
st = r.stats()
ev, bad = read_events('logs')
print(json.dumps({'st': st, 'n': len(ev), 'bad': bad,
                  'values': [e['data']['value'] for e in ev]}))
"""
    out = _run(code, tmp_path)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    st = res["st"]
    assert st["write_errors"] >= 1 and st["lost"] > 0 and st["written"] > 0
    assert st["written"] + st["lost"] == 2000
    assert res["bad"] == 0                      # no torn line left behind
    assert res["n"] == st["written"]
    assert res["values"] == list(range(res["n"]))   # a prefix, in order, no gaps


def test_bugs_in_recording_are_logged_and_counted_not_raised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("AGENTKPI_RAISE_ERRORS")

    def broken_clock() -> float:
        raise RuntimeError("clock broke")

    rec = Recorder(tmp_path, clock=broken_clock)
    with caplog.at_level(logging.WARNING, logger="agentkpi"):
        rec.record("feedback", session_id="s", rating="up")
        s = rec.session()
        s.llm_call(model="m")
        s.end()
    assert rec.stats()["record_errors"] == 4
    assert "clock broke" in caplog.text
    monkeypatch.setenv("AGENTKPI_RAISE_ERRORS", "1")
    with pytest.raises(RuntimeError, match="clock broke"):
        rec.record("feedback", session_id="s", rating="up")
    rec.close()


def test_unserialisable_values_are_written_as_text(tmp_path: Path) -> None:
    rec = Recorder(tmp_path)
    s = rec.session(session_id="s")
    s.tool_call("py", arguments={"obj": object(), "tags": {"b"}, 3: "int key"})
    rec.flush()
    events, _ = read_events(tmp_path)
    rec.close()
    args = events[1]["data"]["arguments"]
    assert args["obj"].startswith("<object object")
    assert args["tags"] == ["b"] and args["3"] == "int key"


def test_threads_each_see_their_events_after_their_flush(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, durability="os")
    errors: list[str] = []

    def worker(k: int) -> None:
        for i in range(5000):
            rec.record("metric", session_id=f"t{k}", value=i)
        if not rec.flush():
            errors.append("flush timed out")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events, bad = read_events(tmp_path)
    rec.close()
    assert not errors and bad == 0
    assert len(events) == 40_000 and len({e["id"] for e in events}) == 40_000
    for k in range(8):
        assert [e["data"]["value"] for e in events if e["session_id"] == f"t{k}"] == \
            list(range(5000))


def test_async_code_can_use_sessions_and_flush(tmp_path: Path) -> None:
    rec = Recorder(tmp_path)

    async def agent() -> bool:
        async with rec.session(session_id="a1") as s:
            s.llm_call(model="m", prompt_tokens=3)
            await asyncio.sleep(0)
        return await rec.aflush()

    assert asyncio.run(agent()) is True
    events, _ = read_events(tmp_path)
    rec.close()
    assert [e["event_type"] for e in events] == ["session_start", "llm_call", "session_end"]


def test_events_after_close_are_dropped_and_counted(tmp_path: Path) -> None:
    rec = Recorder(tmp_path)
    rec.record("feedback", session_id="s", rating="up")
    rec.close()
    rec.record("feedback", session_id="s", rating="down")
    st = rec.stats()
    assert (st["written"], st["dropped"]) == (1, 1)


def test_invalid_configuration_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="durability"):
        Recorder("x", durability="sometimes")
    with pytest.raises(ValueError, match="on_full"):
        Recorder("x", on_full="explode")
    with pytest.raises(ValueError, match="compression"):
        Recorder("x", compression="lz4")


def test_many_llm_calls_from_the_caller_are_all_written(tmp_path: Path) -> None:
    """A burst of calls is queued and written in full. What a call costs the calling thread
    is a benchmark (benchmarks/bench_sdk.py, figures in BENCHMARKS.md), not a test."""
    rec = Recorder(tmp_path, durability="os", queue_size=100_000)
    s = rec.session(session_id="q")
    for _ in range(5000):
        s.llm_call(model="m", prompt_tokens=1, completion_tokens=2, cost_usd=0.1)
    rec.close()
    events, bad = read_events(tmp_path)
    assert bad == 0 and sum(e["event_type"] == "llm_call" for e in events) == 5000


def test_user_messages_are_counted_into_turns(tmp_path: Path) -> None:
    rec = Recorder(tmp_path)
    with rec.session(session_id="t") as s:
        s.user_message("hi")
        s.user_message("more")
    rec.flush()
    events, _ = read_events(tmp_path)
    rec.close()
    assert [e["event_type"] for e in events] == ["session_start", "user_message",
                                                 "user_message", "session_end"]
    assert events[-1]["data"] == {"turns": 2}


def test_a_forked_child_gets_its_own_writer_and_segments(tmp_path: Path) -> None:
    rec = Recorder(tmp_path)
    rec.record("metric", session_id="parent", value=1)
    rec.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            rec.record("metric", session_id="child", value=2)
            code = 0 if rec.flush(10) else 3
            rec.close()
        except BaseException:  # noqa: BLE001
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    rec.record("metric", session_id="parent", value=3)
    rec.close()
    events, bad = read_events(tmp_path)
    assert bad == 0
    assert sorted((e["session_id"], e["data"]["value"]) for e in events) == [
        ("child", 2), ("parent", 1), ("parent", 3)]
    assert {s.pid for s in list_segments(tmp_path)} == {os.getpid(), pid}


def test_deleting_the_log_directory_while_recording_loses_nothing_later(
        tmp_path: Path) -> None:
    import shutil

    log = tmp_path / "log"
    rec = Recorder(log)
    rec.record("metric", session_id="s", value=1)
    rec.flush()
    shutil.rmtree(log)
    rec.record("metric", session_id="s", value=2)
    rec.flush()
    rec.close()
    events, _ = read_events(log)
    assert [e["data"]["value"] for e in events] == [2]


def test_flush_while_the_writer_is_still_starting_is_safe(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Regression: a flush racing the lazy writer start must not start a second
    writer (two consumers would split events and lose flush markers)."""
    for it in range(20):
        rec = Recorder(tmp_path / str(it), durability="os")
        barrier = threading.Barrier(12)
        ok: list[bool] = []

        def worker(k: int, rec: Recorder = rec, barrier: threading.Barrier = barrier,
                   ok: list[bool] = ok) -> None:
            barrier.wait()
            for i in range(50):
                rec.record("metric", session_id=f"t{k}", value=i)
            ok.append(rec.flush(10))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(12)]
        with caplog.at_level(logging.WARNING, logger="agentkpi"):
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        rec.close()
        events, bad = read_events(tmp_path / str(it))
        assert ok == [True] * 12 and bad == 0
        assert len(events) == 600
    assert "restarting" not in caplog.text
