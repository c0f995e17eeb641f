"""Log-shaped sources: the SDK event log, seed-003 metric files, seed-002 metrics.jsonl."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import fsspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkpi import sources
from agentkpi.quality import Quality
from agentkpi.sdk import Recorder
from agentkpi.sources import eventlog, seed002, seed003

from .conftest import CONSTRUCTED

SEED003_FILE = CONSTRUCTED / "CONSTRUCTED_shannon_metrics_20250731_231502.jsonl"
SEED002_FILE = CONSTRUCTED / "CONSTRUCTED_afterimage_metrics.jsonl"
FS = fsspec.filesystem("file")

EVENT_KEYS = ("session_id", "seq", "ts", "event_type", "tool", "success", "duration_ms",
              "error_type", "error_message", "model")


pytestmark = pytest.mark.usefixtures("raise_errors")  # tests/conftest.py


def _events(batch: Any, keys: tuple[str, ...] = EVENT_KEYS) -> list[tuple[Any, ...]]:
    return list(zip(*(batch.events[k] for k in keys), strict=True))


def _parse(src: Any, path: Path) -> tuple[Any, Quality]:
    q = Quality()
    return src.parse_file(str(path), path.read_bytes(), q), q


# ---------------------------------------------------------------- seed 003

@pytest.fixture
def seed003_dir(tmp_path: Path) -> Path:
    d = tmp_path / "analytics" / "metrics"
    d.mkdir(parents=True)
    shutil.copy(SEED003_FILE, d / "metrics_20250731_231502.jsonl")
    return tmp_path / "analytics"


def test_seed003_constructed_file_maps_onto_canonical_rows(seed003_dir: Path) -> None:
    path = seed003_dir / "metrics" / "metrics_20250731_231502.jsonl"
    batch, q = _parse(seed003, path)
    assert q.data_errors == 0
    sess = batch.session_table().to_pylist()
    assert sess == [{
        "session_id": "sess_7f3a91c2", "user_id": "nick",
        "start_ts": datetime(2025, 7, 31, 23, 15, 2, 118734),
        "end_ts": datetime(2025, 7, 31, 23, 21, 47, 330512),
        "model": "claude-3-5-sonnet-20241022", "turns": None,
        "project": "/home/nick/code/shannon-mcp", "agent": None, "source": "seed003",
        "source_path": str(path), "extra": None, "machine": None}]
    s = "sess_7f3a91c2"
    assert _events(batch) == [
        (s, 0, datetime(2025, 7, 31, 23, 15, 2, 118734), "session_start", None, None, None,
         None, None, "claude-3-5-sonnet-20241022"),
        (s, 1, datetime(2025, 7, 31, 23, 15, 9, 402215), "tool_output", "Read", True, 41.7,
         None, None, None),
        (s, 2, datetime(2025, 7, 31, 23, 15, 13, 990041), "tool_output", "Bash", False,
         30012.4, None, None, None),
        (s, 3, datetime(2025, 7, 31, 23, 15, 14, 1187), "error", None, None, None,
         "TimeoutError", "Command timed out after 30s", None),
        (s, 4, datetime(2025, 7, 31, 23, 15, 20, 557903), "performance", None, True, 182.3,
         None, None, None),
        (s, 5, datetime(2025, 7, 31, 23, 21, 47, 330512), "session_end", None, None, None,
         None, None, None),
    ]
    assert orjson.loads(batch.events["data"][2]) == {
        "tool_name": "Bash", "success": False, "duration_ms": 30012.4, "exit_code": 124}
    assert set(batch.events["file"]) == {str(path)}


def test_seed003_rotated_gzip_file_reads_the_same_and_wins_over_its_plain_twin(
        seed003_dir: Path) -> None:
    d = seed003_dir / "metrics"
    plain = d / "metrics_20250731_231502.jsonl"
    gz = d / "metrics_20250731_231502.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    other = d / "metrics_20250801_000000.jsonl"
    other.write_bytes(b'{"id":"1","timestamp":"2025-08-01T00:00:00+00:00","type":"agent_execution",'
                      b'"session_id":"s2","user_id":null,"data":{"agent_id":"planner"},'
                      b'"metadata":{"host":"h1"}}\n{"id":"2","timestamp":"2025-08-01T00:0')
    assert seed003.detect(FS, str(seed003_dir))
    assert list(seed003.list_files(FS, str(seed003_dir))) == [str(gz), str(other)]
    a, _ = _parse(seed003, plain)
    b, _ = _parse(seed003, gz)
    assert _events(a) == _events(b)
    c, q = _parse(seed003, other)
    assert q.counts["line_bad_json"] == 1
    assert (c.events["event_type"], c.events["agent"]) == (["agent_execution"], ["planner"])
    assert orjson.loads(c.events["data"][0]) == {"agent_id": "planner",
                                                 "_metadata": {"host": "h1"}}


def test_seed003_bad_values_are_counted_not_fatal(tmp_path: Path) -> None:
    p = tmp_path / "metrics_1.jsonl"
    p.write_bytes(b'not json\n'
                  b'{"type":"tool_use","session_id":"s","timestamp":"yesterday",'
                  b'"data":{"tool_name":"Bash","success":"maybe","duration_ms":"abc"}}\n'
                  b'[1,2]\n')
    batch, q = _parse(seed003, p)
    assert batch.n_events == 1
    assert (batch.events["ts"], batch.events["success"], batch.events["duration_ms"]) == \
        ([None], [None], [None])
    assert q.counts == {"line_bad_json": 2, "ts_unparseable": 1, "bool_unparseable": 1,
                        "number_unparseable": 1}


# ---------------------------------------------------------------- seed 002

def test_seed002_constructed_file_is_one_synthetic_session(tmp_path: Path) -> None:
    batch, q = _parse(seed002, SEED002_FILE)
    assert q.data_errors == 0
    sid = "seed002:CONSTRUCTED_afterimage_metrics"
    (sess,) = batch.session_table().to_pylist()
    # no session model: a line without one is the seed's "unknown", not the first model
    assert (sess["session_id"], sess["model"], sess["source"]) == (sid, None, "seed002")
    assert sess["start_ts"] == datetime(2026, 3, 2, 10, 14, 7, 512339)
    assert sess["end_ts"] == datetime(2026, 3, 2, 10, 14, 52, 118090)
    lines = [orjson.loads(x) for x in SEED002_FILE.read_bytes().splitlines() if x.strip()]
    assert batch.n_events == len(lines) == 16
    token_lines = {"prompt_token_count", "completion_token_count", "total_token_count"}
    assert batch.events["event_type"] == [
        "token_usage" if line["metric"] in token_lines else "metric" for line in lines]
    assert batch.events["seq"] == list(range(16))
    for line, data in zip(lines, batch.events["data"], strict=True):
        d = orjson.loads(data)
        assert (d["name"], d["value"]) == (line["metric"], line["value"])
        assert {k: v for k, v in d.items() if k not in ("name", "value")} == \
            {k: v for k, v in line.items() if k not in ("metric", "value", "timestamp")}
    models = dict(zip([orjson.loads(d)["name"] for d in batch.events["data"]],
                      batch.events["model"], strict=True))
    assert models["model_usage:gemini-2.5-flash"] == "gemini-2.5-flash"
    assert models["prompt_token_count"] == "gemini-2.5-flash"
    assert models["generation_time"] is None
    success = [s for s, d in zip(batch.events["success"], batch.events["data"], strict=True)
               if orjson.loads(d)["name"] == "model_creation_time"]
    assert success == [True]


def test_seed002_naive_local_times_follow_the_configured_zone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(seed002.TZ_ENV, "Europe/Paris")
    batch, _ = _parse(seed002, SEED002_FILE)
    assert batch.events["ts"][0] == datetime(2026, 3, 2, 9, 14, 7, 512339)  # UTC+1 in March
    run = tmp_path / "monitoring" / "2026-03-02-10-14-00"
    run.mkdir(parents=True)
    shutil.copy(SEED002_FILE, run / "metrics.jsonl")
    assert seed002.detect(FS, str(tmp_path / "monitoring"))
    (path,) = seed002.list_files(FS, str(tmp_path))
    assert seed002.session_id_for(path) == "seed002:2026-03-02-10-14-00"


# ---------------------------------------------------------------- SDK event log

def test_eventlog_source_turns_sdk_sessions_into_canonical_rows(tmp_path: Path) -> None:
    log = tmp_path / "telemetry"
    rec = Recorder(log, clock=lambda: datetime(2026, 5, 20, 14, 5, 0))
    with rec.session(session_id="s1", user_id="alice", model="claude-sonnet-4",
                     project="proj", agent="intern") as s:
        s.llm_call(model="claude-sonnet-4", prompt_tokens=1200, completion_tokens=80,
                   cache_read_tokens=900, cost_usd=0.004, latency_ms=850)
        s.tool_call("bash", arguments={"cmd": "ls"})
        s.tool_output("bash", success=False, duration_ms=35)
        s.error("RateLimit", "slow down")
        s.feedback("down")
        s.job_complete("a10g-large", "COMPLETED", 3600)
    rec.close()
    assert eventlog.detect(FS, str(log)) and not seed003.detect(FS, str(log))
    assert sources.detect(FS, str(log)) is eventlog
    (path,) = eventlog.list_files(FS, str(log))
    batch, q = _parse(eventlog, Path(path))
    assert q.data_errors == 0
    (sess,) = batch.session_table().to_pylist()
    assert {k: sess[k] for k in ("session_id", "user_id", "model", "project", "agent",
                                 "start_ts", "end_ts", "source")} == {
        "session_id": "s1", "user_id": "alice", "model": "claude-sonnet-4", "project": "proj",
        "agent": "intern", "start_ts": datetime(2026, 5, 20, 14, 5),
        "end_ts": datetime(2026, 5, 20, 14, 5), "source": "eventlog"}
    rows = batch.event_table().to_pylist()
    assert [r["event_type"] for r in rows] == ["session_start", "llm_call", "tool_call",
                                               "tool_output", "error", "feedback",
                                               "hf_job_complete", "session_end"]
    llm = rows[1]
    assert (llm["model"], llm["prompt_tokens"], llm["completion_tokens"],
            llm["cache_read_tokens"], llm["cache_creation_tokens"], llm["cost_usd"],
            llm["latency_ms"]) == ("claude-sonnet-4", 1200, 80, 900, None, 0.004, 850.0)
    assert (rows[2]["tool"], rows[3]["tool"], rows[3]["success"], rows[3]["duration_ms"]) == \
        ("bash", "bash", False, 35.0)
    assert (rows[4]["error_type"], rows[4]["error_message"]) == ("RateLimit", "slow down")
    assert rows[5]["rating"] == "down"
    assert (rows[6]["flavor"], rows[6]["status"], rows[6]["wall_time_s"]) == \
        ("a10g-large", "COMPLETED", 3600.0)
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    assert all(r["ts"] == datetime(2026, 5, 20, 14, 5) for r in rows)


def test_eventlog_source_reads_compressed_segments_and_prefers_them(tmp_path: Path) -> None:
    log = tmp_path / "log"
    rec = Recorder(log, max_segment_bytes=2_000, compression="zstd")
    for i in range(100):
        rec.record("metric", session_id="s", name="n", value=i)
    rec.close()
    listing = list(eventlog.list_files(FS, str(log)))
    assert any(p.endswith(".zst") for p in listing) and listing[-1].endswith(".jsonl")
    values = []
    for p in listing:
        batch, q = _parse(eventlog, Path(p))
        assert q.data_errors == 0
        values += [orjson.loads(d)["value"] for d in batch.events["data"]]
    assert values == list(range(100))


def test_eventlog_source_skips_a_corrupt_compressed_segment(tmp_path: Path) -> None:
    p = tmp_path / "events-20260520T140000-1-0.jsonl.gz"
    p.write_bytes(b"\x1f\x8bnot really gzip")
    batch, q = _parse(eventlog, p)
    assert batch.n_events == 0
    assert q.skipped and q.skipped[0]["kind"] == "file_bad_json"


def test_detection_picks_the_right_source_per_directory(tmp_path: Path,
                                                        seed003_dir: Path) -> None:
    d2 = tmp_path / "mon"
    d2.mkdir()
    shutil.copy(SEED002_FILE, d2 / "metrics.jsonl")
    assert sources.detect(FS, str(seed003_dir)) is seed003
    assert sources.detect(FS, str(d2)) is seed002
    assert not eventlog.detect(FS, str(d2)) and not seed003.detect(FS, str(d2))
    assert sources.by_name("eventlog") is eventlog


def test_compressed_segments_name_the_plain_file_they_replace() -> None:
    assert eventlog.supersedes("/l/events-20260520T140000-1-0.jsonl.gz") == \
        ["/l/events-20260520T140000-1-0.jsonl"]
    assert eventlog.supersedes("/l/events-20260520T140000-1-0.jsonl.zst") == \
        ["/l/events-20260520T140000-1-0.jsonl"]
    assert eventlog.supersedes("/l/events-20260520T140000-1-0.jsonl") == []
    assert seed003.supersedes("/m/metrics_1.jsonl.gz") == ["/m/metrics_1.jsonl"]
    assert seed003.supersedes("/m/metrics_1.jsonl") == []


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(
                         ["data", "type", "ts", "timestamp", "session_id", "event_type",
                          "metric", "value", "success", "tool_name", "prompt_tokens", "seq",
                          "user_id", "model_name", "x"]), inner, max_size=5), max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(_json.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=30),
                      max_size=8),
       name=st.sampled_from(["events-20260520T140000-1-0.jsonl", "metrics_1.jsonl",
                             "metrics.jsonl", "events-20260520T140000-1-0.jsonl.gz",
                             "metrics_1.jsonl.gz"]))
def test_log_sources_never_raise_on_arbitrary_input(lines: list[bytes], name: str) -> None:
    raw = b"\n".join(lines)
    if name.endswith(".gz"):
        raw = gzip.compress(raw) if lines and len(lines) % 2 else raw
    for src in (eventlog, seed003, seed002):
        q = Quality()
        batch = src.parse_file(f"/x/{name}", raw, q)
        batch.event_table()     # every column has the canonical type
        batch.session_table()


def test_numbers_too_large_for_the_store_are_counted_not_fatal(tmp_path: Path) -> None:
    p = tmp_path / "events-20260520T140000-1-0.jsonl"
    p.write_bytes(b'{"event_type":"llm_call","session_id":"s","seq":99999999999,'
                  b'"ts":"2026-05-20T14:00:00Z","data":{"prompt_tokens":1e30,'
                  b'"completion_tokens":123456789012345678901234567890}}\n'
                  b'{"event_type":"session_end","session_id":"s","data":{"turns":1e20}}\n')
    batch, q = _parse(eventlog, p)
    table = batch.event_table()
    assert table.column("prompt_tokens").to_pylist() == [None, None]
    assert table.column("completion_tokens").to_pylist() == [None, None]
    assert table.column("seq").to_pylist() == [1, 2]
    assert batch.session_table().column("turns").to_pylist() == [None]
    assert q.counts["number_unparseable"] == 3
