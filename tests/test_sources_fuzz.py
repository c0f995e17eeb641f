"""Every importer in the registry, fed arbitrary bytes and arbitrary rows, never raises, and
one bad value costs at most that value: every event object of a session row is kept."""

from __future__ import annotations

import gzip
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkpi import sources
from agentkpi.quality import Quality
from agentkpi.sources import session_dataset

#: Written out here: a source module deleted or silently not registered turns this red.
SOURCE_NAMES = {"session_dataset", "eventlog", "seed003", "seed002", "otel", "codex",
                "gemini-cli", "claude-code"}

_words = st.sampled_from(["2026-05-20T14:00:00Z", "2026-05-20T14:00:00+02:00", "12.7",
                          "false", "yes", "-3", "", "not-a-date", "1779285600"])
_scalar = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | _words)
# Values of a valid JSON row (a real file holds no NaN / Infinity; those are the bytes test's)
_value = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
          | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12) | _words)
_json = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["data", "type", "ts", "timestamp", "session_id", "event_type", "metric",
                     "value", "success", "tool", "tool_name", "prompt_tokens", "seq",
                     "user_id", "model_name", "cost_usd", "resourceSpans", "x",
                     "payload", "info", "total_token_usage", "last_token_usage", "call_id",
                     "output", "id", "tokens", "toolCalls", "$rewindTo", "$set",
                     "messages", "sessionId", "forked_from_id", "message", "usage",
                     "content", "requestId", "input_tokens", "tool_use_id", "is_error",
                     "isSidechain", "agentId"]),
    inner, max_size=5), max_leaves=12)
_event = st.fixed_dictionaries(
    {}, optional={"timestamp": _value, "event_type": st.sampled_from(
        ["llm_call", "tool_call", "tool_output", "error", "feedback", "hf_job_complete",
         "sandbox_create", "pro_cta_click", "made_up"]) | _value,
        "data": st.dictionaries(st.sampled_from(
            ["prompt_tokens", "completion_tokens", "cost_usd", "tool", "success", "rating",
             "flavor", "wall_time_s", "final_status", "hardware", "source", "model"]),
            _value, max_size=6) | _value})
_row = st.fixed_dictionaries(
    {"events": st.lists(_event, max_size=6)},
    optional={"session_id": _value, "session_start_time": _value, "user_id": _value,
              "model_name": _value, "messages": st.lists(
                  st.dictionaries(st.sampled_from(["role", "content"]), _value), max_size=3)
              | _value, "project": _value})


def test_the_registry_holds_every_source_module() -> None:
    assert {s.NAME for s in sources.SOURCES} == SOURCE_NAMES


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_json.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=30),
                      max_size=6),
       name=st.sampled_from(["sessions/2026-05-20/s1.jsonl", "events-20260520T140000-1-0.jsonl",
                             "metrics_1.jsonl", "metrics.jsonl", "traces.json",
                             "sessions/2026/05/20/rollout-2026-05-20T10-00-00-a.jsonl",
                             "tmp/h/chats/session-2026-05-20T10-00-0f0e0d0c.jsonl",
                             "tmp/h/chats/session-2026-05-20T10-00-0f0e0d0c.json",
                             "events-20260520T140000-1-0.jsonl.gz",
                             "projects/-p/s/subagents/agent-a.jsonl"]),
       packed=st.booleans())
def test_no_importer_raises_on_arbitrary_bytes(lines: list[bytes], name: str,
                                               packed: bool) -> None:
    raw = b"\n".join(lines)
    if name.endswith(".gz") and packed:
        raw = gzip.compress(raw)
    for src in sources.SOURCES:
        q = Quality()
        batch = src.parse_file(f"/x/{name}", raw, q)
        batch.event_table()  # every column has its canonical type
        batch.session_table()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=_row, as_text=st.booleans())
def test_a_session_row_keeps_every_event_object_whatever_its_values(row: dict[str, Any],
                                                                    as_text: bool) -> None:
    if as_text:  # the real uploader stores events and messages as JSON text
        row = {**row, "events": json.dumps(row["events"])}
        if isinstance(row.get("messages"), list):
            row["messages"] = json.dumps(row["messages"])
    q = Quality()
    raw = json.dumps(row, allow_nan=False).encode()
    batch = session_dataset.parse_file("/x/sessions/2026-05-20/s1.jsonl", raw, q)
    events = batch.event_table()
    sessions = batch.session_table()
    assert q.skipped == []  # a row that is an object is never a skipped file
    assert sessions.num_rows == 1
    n = len(json.loads(row["events"]) if as_text else row["events"])
    assert events.num_rows == n, (row, q.counts)
