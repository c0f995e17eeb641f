"""The declarative field map (agentkpi.model.DATA_FIELDS): one rule for every importer.

The session-dataset and event-log importers used to hand-code which ``data`` key fills
which column and disagreed (``status``; a ``data`` that is not an object). Both now go
through the same map, so the same event gives the same canonical row whichever file
format it arrived in.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentkpi.model import DATA_FIELDS, EVENT_COLUMNS, DataField, field_map
from agentkpi.quality import COERCIONS, Quality, event_row_builder
from agentkpi.sources import eventlog, seed003, session_dataset

TS = "2026-05-20T14:05:00+00:00"

#: (event_type, data) pairs covering every mapped column, a fallback key, bad values
#: and data that is not an object.
EVENTS: list[tuple[str, Any]] = [
    ("llm_call", {"model": "m1", "prompt_tokens": "12", "completion_tokens": 3.9,
                  "cache_read_tokens": None, "cache_creation_tokens": "x", "cost_usd": "0.5",
                  "latency_ms": 40, "agent_id": "", "agent": "sub-1"}),
    ("tool_output", {"tool": "bash", "success": "false", "duration_ms": "12.5"}),
    ("hf_job_complete", {"flavor": "t4-small", "status": "COMPLETED", "wall_time_s": 60}),
    ("hf_job_complete", {"final_status": "ERROR", "status": "COMPLETED"}),
    ("error", {"type": "ValueError", "message": "boom", "error": {"nested": 1}}),
    ("error", {"error_type": "E", "error": "text wins"}),
    ("tool_call", {"tool": "x", "error_type": "not an error event", "message": "m"}),
    ("feedback", {"rating": "up"}),
    ("pro_cta_click", {"source": "banner"}),
    ("sandbox_create", {"hardware": "cpu-basic"}),
    ("llm_call", [1, 2]),
    ("llm_call", "just text"),
    ("llm_call", {}),
    ("llm_call", None),
]

TYPED = [n for n, *_ in EVENT_COLUMNS if n not in ("session_id", "seq", "ts", "file")]


def _via_session_dataset() -> tuple[list[dict[str, Any]], Quality]:
    q = Quality()
    row = {"session_id": "s", "session_start_time": TS,
           "events": [{"timestamp": TS, "event_type": et, "data": d} for et, d in EVENTS]}
    batch = session_dataset.parse_file("/x/sessions/2026-05-20/s.jsonl",
                                       json.dumps(row).encode(), q)
    return batch.event_table().select(TYPED).to_pylist(), q


def _via_event_log() -> tuple[list[dict[str, Any]], Quality]:
    q = Quality()
    lines = [json.dumps({"id": f"e{i}", "seq": i, "ts": TS, "session_id": "s",
                         "event_type": et, "data": d}) for i, (et, d) in enumerate(EVENTS)]
    batch = eventlog.parse_file("/x/events-20260520T140000-1-0.jsonl",
                                "\n".join(lines).encode(), q)
    return batch.event_table().select(TYPED).to_pylist(), q


def test_session_dataset_and_event_log_map_data_the_same_way() -> None:
    a, qa = _via_session_dataset()
    b, qb = _via_event_log()
    assert a == b
    assert qa.counts["number_unparseable"] == qb.counts["number_unparseable"] == 1  # "x"
    assert qa.counts["bool_unparseable"] == qb.counts["bool_unparseable"] == 0
    llm, tool, job, job2, err, err2, call = a[:7]
    assert (llm["model"], llm["prompt_tokens"], llm["completion_tokens"], llm["cost_usd"],
            llm["latency_ms"], llm["agent"]) == ("m1", 12, 3, 0.5, 40.0, "sub-1")
    assert llm["cache_creation_tokens"] is None
    assert (tool["tool"], tool["success"], tool["duration_ms"]) == ("bash", False, 12.5)
    assert (job["status"], job["flavor"], job["wall_time_s"]) == ("COMPLETED", "t4-small", 60.0)
    assert job2["status"] == "ERROR"  # final_status comes first
    assert (err["error_type"], err["error_message"]) == ("ValueError", "boom")
    assert (err2["error_type"], err2["error_message"]) == ("E", "text wins")
    assert call["error_type"] is None and call["error_message"] is None
    # data that is not an object fills no column and is kept; {} and null are no data
    assert [r["data"] for r in a[-4:]] == ["[1,2]", '"just text"', None, None]
    assert all(r["model"] is None for r in a[-4:])
    assert json.loads(a[0]["data"])["cache_creation_tokens"] == "x"  # the raw value is kept


def test_seed003_declares_its_own_keys() -> None:
    q = Quality()
    lines = [
        {"type": "tool_use", "session_id": "s", "timestamp": TS,
         "data": {"tool_name": "grep", "success": True}},
        {"type": "error_occurred", "session_id": "s", "timestamp": TS,
         "data": {"error_type": "Timeout", "error_message": "slow"}},
    ]
    batch = seed003.parse_file("/x/metrics_1.jsonl",
                               "\n".join(json.dumps(x) for x in lines).encode(), q)
    rows = batch.event_table().to_pylist()
    assert (rows[0]["event_type"], rows[0]["tool"], rows[0]["success"]) == (
        "tool_output", "grep", True)
    assert (rows[1]["event_type"], rows[1]["error_type"], rows[1]["error_message"]) == (
        "error", "Timeout", "slow")


def test_a_field_map_is_data_and_is_checked() -> None:
    assert all(isinstance(f, DataField) and f.keys for f in DATA_FIELDS)
    columns = {n for n, *_ in EVENT_COLUMNS}
    assert {f.column for f in DATA_FIELDS} <= columns
    assert field_map(tool=("name",))[0] == DataField("tool", ("name",), "text")
    with pytest.raises(ValueError, match="no column"):
        field_map(nonsense=("x",))
    with pytest.raises(ValueError, match="coercion"):
        event_row_builder((DataField("tool", ("tool",), "uppercase"),))
    with pytest.raises(ValueError, match="not a typed event column"):
        event_row_builder((DataField("file", ("path",), "text"),))
    # a map may fill a later (migration 2) column: rows then carry every column
    row = event_row_builder((*DATA_FIELDS, DataField("tool_call_id", ("id",), "text")))
    got = row("s", 0, None, "tool_call", {"id": "c1", "tool": "t"}, "f", Quality(), "w")
    assert len(got) == len(EVENT_COLUMNS)
    names = [n for n, *_ in EVENT_COLUMNS]
    assert got[names.index("tool_call_id")] == "c1" and got[names.index("tool")] == "t"


def test_a_batch_takes_rows_of_both_widths_in_order() -> None:
    """An event log holding OTLP records mixes field-map rows (migration-1 width) with
    OTel rows (every column) in one batch; both fold into the columns in order."""
    from agentkpi.model import EVENT_COLUMNS_V1, CanonicalBatch

    names = [n for n, *_ in EVENT_COLUMNS]
    batch = CanonicalBatch()
    batch.event_rows.append(("a", 0, None, "llm_call", *[None] * (len(EVENT_COLUMNS_V1) - 4)))
    full = [None] * len(EVENT_COLUMNS)
    full[:4] = ["b", 1, None, "llm_call"]
    full[names.index("event_key")] = "k1"
    batch.event_rows.append(tuple(full))
    batch.add_event(session_id="c", seq=2, event_type="error")
    t = batch.event_table()
    assert t.column("session_id").to_pylist() == ["a", "b", "c"]
    assert t.column("event_key").to_pylist() == [None, "k1", None]
    assert batch.event_rows == [] and batch.n_events == 3


#: Values of every JSON kind at the edges of each coercion's fast path.
EDGE_VALUES: list[Any] = [
    None, "", " ", "x", "12", "-3.5", "1e3", "true", "no", "NaN", 0, 1, -1, 2**63 - 1, 2**63,
    -(2**63), -(2**63) - 1, 10**400, 0.0, -0.0, 1.5, 2.0**70, float("nan"), float("inf"), True,
    False, [], [1], {}, {"a": 1},
]


@pytest.mark.parametrize("coerce", sorted(COERCIONS))
def test_the_compiled_row_coerces_exactly_as_the_coercion_functions(coerce: str) -> None:
    """The builder inlines each coercion's fast path; every value must still come out as
    the coercion function gives it, counted the same way and reported at the same place
    (``where`` given, or derived from file and position when None)."""
    build = event_row_builder((DataField("tool", ("a", "b"), coerce),))
    col = [n for n, *_ in EVENT_COLUMNS].index("tool")
    fn = COERCIONS[coerce]
    for first in EDGE_VALUES:
        for second in (None, "y", 7, 2.5, True):
            data = {"a": first, "b": second}
            want_q = Quality()
            want = fn(first, want_q, "f.jsonl: events[4]")
            if want is None:
                want = fn(second, want_q, "f.jsonl: events[4]")
            for where in ("f.jsonl: events[4]", None):
                got_q = Quality()
                got = build("s", 4, None, "llm_call", data, "f.jsonl", got_q, where)[col]
                assert got == want or (got != got and want != want), (coerce, data)
                assert type(got) is type(want), (coerce, data)
                assert got_q.counts == want_q.counts and got_q.examples == want_q.examples
