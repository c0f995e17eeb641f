"""agentkpi.query: seed 001's nine aggregation types against hand-computed values.

The fixture (four sessions, thirteen events) is small enough to count by hand;
every expectation below is written out, not recomputed.

    s1  alice  project p1            2026-05-04 (Monday) 10:00-11:30 UTC
        llm_call 100+10 tokens, tool_call bash, tool_output bash ok 100 ms,
        tool_output bash failed 300 ms, error Timeout, session_end 999999 ms
    s2  alice  project p2 agent coder  2026-05-04 23:40 - 05-05 00:20
        tool_output read (no success) 200 ms, llm_call 50+5,
        tool_output read ok 400 ms (agent_id sub)
    s3  (no user)                     2026-05-11 01:05-01:10 (offset +02:00 stamps)
        error ValueError, error (no type), tool_output bash ok 1000 ms
    s4  bob    project p1            2026-06-01 00:40 (naive stamp = UTC)
        llm_call 10+1
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from agentkpi.errors import UsageError
from agentkpi.ingestion import ingest
from agentkpi.queries import OTHER, query
from agentkpi.store import DuckDBStore
from tests.conftest import ev, write_session

RANGE = {"start": "2026-05-01", "end": "2026-07-01"}


def build_fixture(root: Path) -> None:
    write_session(root, "s1", "2026-05-04T09:55:00Z", [
        ev("2026-05-04T10:00:00Z", "llm_call", model="m-a", prompt_tokens=100,
           completion_tokens=10, cost_usd=0.01),
        ev("2026-05-04T10:05:00Z", "tool_call", tool="bash"),
        ev("2026-05-04T10:06:00Z", "tool_output", tool="bash", success=True, duration_ms=100),
        ev("2026-05-04T10:10:00Z", "tool_output", tool="bash", success=False, duration_ms=300),
        ev("2026-05-04T11:00:00Z", "error", error_type="Timeout", error="took too long"),
        ev("2026-05-04T11:30:00Z", "session_end", duration_ms=999999),
    ], user_id="alice", model="m-a", project="p1")
    write_session(root, "s2", "2026-05-04T23:30:00Z", [
        ev("2026-05-04T23:40:00Z", "tool_output", tool="read", duration_ms=200),
        ev("2026-05-05T00:10:00Z", "llm_call", model="m-b", prompt_tokens=50,
           completion_tokens=5),
        ev("2026-05-05T00:20:00Z", "tool_output", tool="read", success=True, duration_ms=400,
           agent_id="sub"),
    ], user_id="alice", model="m-b", project="p2", agent="coder")
    write_session(root, "s3", "2026-05-11T01:00:00Z", [
        ev("2026-05-11T03:05:00+02:00", "error", error_type="ValueError"),
        ev("2026-05-11T03:06:00+02:00", "error"),
        ev("2026-05-11T03:10:00+02:00", "tool_output", tool="bash", success=True,
           duration_ms=1000, flavor="a10g-small"),
    ], user_id=None, model=None)
    write_session(root, "s4", "2026-06-01T00:30:00Z", [
        ev("2026-06-01T00:40:00", "llm_call", model="m-a", prompt_tokens=10,
           completion_tokens=1),
    ], user_id="bob", model="m-a", project="p1")


def fixture_store(tmp: Path) -> DuckDBStore:
    """The hand-counted fixture ingested into a store under ``tmp``, opened read-only."""
    build_fixture(tmp / "data")
    with DuckDBStore(tmp / "s.duckdb") as st:
        ingest(str(tmp / "data"), st, workers=1)
    return DuckDBStore(tmp / "s.duckdb", read_only=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DuckDBStore:
    st = fixture_store(tmp_path_factory.mktemp("query"))
    yield st
    st.close()


def rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ----------------------------------------------------------------------------- time grains

def test_hourly_time_series(store: DuckDBStore) -> None:
    t = query(["events", "errors", "duration_ms_total", "tokens_total"], grain="hour",
              start="2026-05-04", end="2026-05-06", store=store)
    assert rows(t) == [
        {"bucket": utc(2026, 5, 4, 10), "events": 4, "errors": 0, "duration_ms_total": 400.0,
         "tokens_total": 110},
        {"bucket": utc(2026, 5, 4, 11), "events": 2, "errors": 1, "duration_ms_total": 0.0,
         "tokens_total": 0},
        {"bucket": utc(2026, 5, 4, 23), "events": 1, "errors": 0, "duration_ms_total": 200.0,
         "tokens_total": 0},
        {"bucket": utc(2026, 5, 5, 0), "events": 2, "errors": 0, "duration_ms_total": 400.0,
         "tokens_total": 55},
    ]


def test_daily_time_series(store: DuckDBStore) -> None:
    t = query(["events", "sessions", "errors", "duration_ms_total", "tokens_total"],
              grain="day", **RANGE, store=store)
    assert rows(t) == [
        {"bucket": utc(2026, 5, 4), "events": 7, "sessions": 2, "errors": 1,
         "duration_ms_total": 600.0, "tokens_total": 110},
        {"bucket": utc(2026, 5, 5), "events": 2, "sessions": 1, "errors": 0,
         "duration_ms_total": 400.0, "tokens_total": 55},
        {"bucket": utc(2026, 5, 11), "events": 3, "sessions": 1, "errors": 2,
         "duration_ms_total": 1000.0, "tokens_total": 0},
        {"bucket": utc(2026, 6, 1), "events": 1, "sessions": 1, "errors": 0,
         "duration_ms_total": 0.0, "tokens_total": 11},
    ]


def test_weekly_time_series_weeks_start_monday(store: DuckDBStore) -> None:
    t = query(["events", "sessions", "users", "errors"], grain="week", **RANGE, store=store)
    assert rows(t) == [
        {"bucket": utc(2026, 5, 4), "events": 9, "sessions": 2, "users": 1, "errors": 1},
        {"bucket": utc(2026, 5, 11), "events": 3, "sessions": 1, "users": 1, "errors": 2},
        {"bucket": utc(2026, 6, 1), "events": 1, "sessions": 1, "users": 1, "errors": 0},
    ]
    sunday = query(["events"], grain="week", week_start="sunday", **RANGE, store=store)
    assert [r["bucket"] for r in rows(sunday)] == [utc(2026, 5, 3), utc(2026, 5, 10),
                                                   utc(2026, 5, 31)]


def test_monthly_time_series(store: DuckDBStore) -> None:
    t = query(["events", "sessions", "users", "errors", "tokens_total"], grain="month",
              **RANGE, store=store)
    assert rows(t) == [
        {"bucket": utc(2026, 5, 1), "events": 12, "sessions": 3, "users": 2, "errors": 3,
         "tokens_total": 165},
        {"bucket": utc(2026, 6, 1), "events": 1, "sessions": 1, "users": 1, "errors": 0,
         "tokens_total": 11},
    ]


# ----------------------------------------------------------------------------- dimensions

def test_by_session(store: DuckDBStore) -> None:
    t = query(["events", "errors", "duration_ms_total", "tokens_total", "first_event_at",
               "last_event_at"], grain=None, by=["session"], **RANGE, store=store)
    got = {r["session"]: r for r in rows(t)}
    assert got["s1"] == {"session": "s1", "events": 6, "errors": 1, "duration_ms_total": 400.0,
                         "tokens_total": 110, "first_event_at": utc(2026, 5, 4, 10),
                         "last_event_at": utc(2026, 5, 4, 11, 30)}
    assert got["s3"]["first_event_at"] == utc(2026, 5, 11, 1, 5)
    assert got["s3"]["errors"] == 2
    assert {s: r["events"] for s, r in got.items()} == {"s1": 6, "s2": 3, "s3": 3, "s4": 1}


def test_by_user_falls_back_to_session_id(store: DuckDBStore) -> None:
    t = query(["sessions", "events", "errors", "tokens_total"], grain=None, by=["user"],
              **RANGE, store=store)
    assert rows(t) == [
        {"user": "alice", "sessions": 2, "events": 9, "errors": 1, "tokens_total": 165},
        {"user": "bob", "sessions": 1, "events": 1, "errors": 0, "tokens_total": 11},
        {"user": "s3", "sessions": 1, "events": 3, "errors": 2, "tokens_total": 0},
    ]


def test_by_tool_null_success_is_not_a_failure(store: DuckDBStore) -> None:
    t = query(["events", "sessions", "success_count", "failure_count", "success_rate",
               "duration_ms_total", "duration_ms_avg"], grain=None, by=["tool"], **RANGE,
              store=store)
    got = {r["tool"]: r for r in rows(t)}
    assert got["bash"] == {"tool": "bash", "events": 4, "sessions": 2, "success_count": 2,
                           "failure_count": 1, "success_rate": 0.6667,
                           "duration_ms_total": 1400.0, "duration_ms_avg": 466.667}
    assert got["read"] == {"tool": "read", "events": 2, "sessions": 1, "success_count": 1,
                           "failure_count": 0, "success_rate": 1.0,
                           "duration_ms_total": 600.0, "duration_ms_avg": 300.0}
    assert got[None]["events"] == 7  # events without a tool keep their own row


def test_by_agent_event_agent_then_session_agent(store: DuckDBStore) -> None:
    t = query(["events", "sessions"], grain=None, by=["agent"], **RANGE, store=store)
    assert rows(t) == [
        {"agent": "coder", "events": 2, "sessions": 1},
        {"agent": "sub", "events": 1, "sessions": 1},
        {"agent": None, "events": 10, "sessions": 3},
    ]


def test_by_project_counts_every_event_of_the_session(store: DuckDBStore) -> None:
    # The seed only counted session_start events per project; every event counts here.
    t = query(["events", "sessions", "users", "errors"], grain=None, by=["project"], **RANGE,
              store=store)
    assert rows(t) == [
        {"project": "p1", "events": 7, "sessions": 2, "users": 2, "errors": 1},
        {"project": "p2", "events": 3, "sessions": 1, "users": 1, "errors": 0},
        {"project": None, "events": 3, "sessions": 1, "users": 1, "errors": 2},
    ]


def test_other_dimensions_and_data_keys(store: DuckDBStore) -> None:
    by_type = {r["error_type"]: r["events"] for r in rows(query(
        ["events"], grain=None, by=["error_type"], where={"event_type": "error"}, **RANGE,
        store=store))}
    assert by_type == {"Timeout": 1, "ValueError": 1, None: 1}
    by_model = {r["model"]: r["tokens_total"] for r in rows(query(
        ["tokens_total"], grain=None, by=["model"], where={"event_type": "llm_call"}, **RANGE,
        store=store))}
    assert by_model == {"m-a": 121, "m-b": 55}
    flavor = rows(query(["events"], grain=None, by=["data.flavor"],
                        where={"data.flavor": "a10g-small"}, **RANGE, store=store))
    assert flavor == [{"data.flavor": "a10g-small", "events": 1}]
    mixed = rows(query(["events"], grain="day", by=["user", "tool"],
                       where={"tool": ["bash", "read"]}, **RANGE, store=store))
    assert mixed == [
        {"bucket": utc(2026, 5, 4), "user": "alice", "tool": "bash", "events": 3},
        {"bucket": utc(2026, 5, 4), "user": "alice", "tool": "read", "events": 1},
        {"bucket": utc(2026, 5, 5), "user": "alice", "tool": "read", "events": 1},
        {"bucket": utc(2026, 5, 11), "user": "s3", "tool": "bash", "events": 1},
    ]


# ----------------------------------------------------------------------------- statistics

def test_totals_every_seed_statistic(store: DuckDBStore) -> None:
    t = query(["events", "sessions", "users", "errors", "duration_count", "duration_ms_total",
               "duration_ms_avg", "duration_ms_min", "duration_ms_max", "duration_ms_p50",
               "duration_ms_p95", "duration_ms_p99", "tokens_total", "tokens_per_session",
               "success_count", "failure_count", "outcome_count", "success_rate"],
              grain=None, **RANGE, store=store)
    # Durations 100, 200, 300, 400, 1000: session_end's 999999 ms is not among them, and
    # percentiles interpolate (the seed's index picking gave p95 = p99 = 1000).
    assert rows(t) == [{
        "events": 13, "sessions": 4, "users": 3, "errors": 3, "duration_count": 5,
        "duration_ms_total": 2000.0, "duration_ms_avg": 400.0, "duration_ms_min": 100.0,
        "duration_ms_max": 1000.0, "duration_ms_p50": 300.0, "duration_ms_p95": 880.0,
        "duration_ms_p99": 976.0, "tokens_total": 176, "tokens_per_session": 44.0,
        "success_count": 3, "failure_count": 1, "outcome_count": 4, "success_rate": 0.75}]


def test_breakdowns_as_json_maps(store: DuckDBStore) -> None:
    (row,) = rows(query(["events_by_type_json", "errors_by_type_json",
                         "tool_outputs_by_name_json"], grain=None, **RANGE, store=store))
    assert json.loads(row["events_by_type_json"]) == {
        "error": 3, "llm_call": 3, "session_end": 1, "tool_call": 1, "tool_output": 5}
    assert json.loads(row["errors_by_type_json"]) == {"Timeout": 1, "ValueError": 1,
                                                      "unknown": 1}
    assert json.loads(row["tool_outputs_by_name_json"]) == {"bash": 3, "read": 2}


def test_empty_buckets_give_zeros_not_nan(store: DuckDBStore) -> None:
    (row,) = rows(query(["duration_ms_p95", "success_rate", "events"], grain=None,
                        by=["user"], where={"user": "bob"}, **RANGE, store=store))
    assert row == {"user": "bob", "duration_ms_p95": 0.0, "success_rate": 0.0, "events": 1}


# ----------------------------------------------------------------------------- top, compare

def test_top_folds_the_rest_into_other(store: DuckDBStore) -> None:
    t = query(["events", "sessions", "users"], grain=None, by=["session"], top=2, **RANGE,
              store=store)
    assert rows(t) == [
        {"session": "s1", "events": 6, "sessions": 1, "users": 1},
        {"session": "s2", "events": 3, "sessions": 1, "users": 1},
        {"session": OTHER, "events": 4, "sessions": 2, "users": 2},
    ]


def test_compare_previous_period(store: DuckDBStore) -> None:
    t = query(["events", "sessions"], grain="week", start="2026-05-11", end="2026-05-18",
              compare="previous", store=store)
    assert rows(t) == [{"bucket": utc(2026, 5, 11), "events": 3, "events_previous": 9,
                        "events_change": -6, "events_change_pct": -66.67, "sessions": 1,
                        "sessions_previous": 2, "sessions_change": -1,
                        "sessions_change_pct": -50.0}]
    months = rows(query(["events"], grain="month", start="2026-06-01", end="2026-07-01",
                        compare="previous", store=store))
    assert months == [{"bucket": utc(2026, 6, 1), "events": 1, "events_previous": 12,
                       "events_change": -11, "events_change_pct": -91.67}]
    by_tool = {r["tool"]: r for r in rows(query(
        ["events"], grain=None, by=["tool"], start="2026-05-11", end="2026-05-18",
        compare="previous", store=store))}
    assert by_tool["read"] == {"tool": "read", "events": 0, "events_previous": 2,
                               "events_change": -2, "events_change_pct": -100.0}
    assert by_tool["bash"]["events_previous"] == 3


# ----------------------------------------------------------------------------- time inputs

def test_time_zone_buckets_and_inputs(store: DuckDBStore) -> None:
    # 2026-05-04 23:40 UTC is 2026-05-05 05:10 in Kolkata; s1's events stay on 05-04.
    t = query(["events"], grain="day", tz="Asia/Kolkata", start="2026-05-04",
              end="2026-05-06", store=store)
    kolkata = ZoneInfo("Asia/Kolkata")
    assert rows(t) == [{"bucket": datetime(2026, 5, 4, tzinfo=kolkata), "events": 6},
                       {"bucket": datetime(2026, 5, 5, tzinfo=kolkata), "events": 3}]
    assert t.schema.field("bucket").type == pa.timestamp("us", tz="Asia/Kolkata")
    forms = [("2026-05-04T10", "2026-05-04T11"), (datetime(2026, 5, 4, 10),
                                                  datetime(2026, 5, 4, 11)),
             (utc(2026, 5, 4, 10), utc(2026, 5, 4, 11)),
             (datetime(2026, 5, 4, 12, tzinfo=ZoneInfo("Europe/Paris")),
              datetime(2026, 5, 4, 13, tzinfo=ZoneInfo("Europe/Paris")))]
    for a, b in forms:
        assert rows(query(["events"], grain=None, start=a, end=b, store=store)) == [
            {"events": 4}], (a, b)
    paris = query(["events"], grain=None, start="2026-05-04T12", end="2026-05-04T13",
                  tz="Europe/Paris", store=store)
    assert rows(paris) == [{"events": 4}]
    assert rows(query(["events"], grain=None, start=date(2026, 5, 4), end=date(2026, 5, 5),
                      store=store)) == [{"events": 7}]


def test_default_range_is_the_whole_store(store: DuckDBStore) -> None:
    assert rows(query(["events"], grain=None, store=store)) == [{"events": 13}]


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"metrics": ["nope"]}, "unknown metric 'nope'; choose from sessions, users"),
    ({"by": ["colour"]}, "unknown dimension 'colour'; choose from session, user, tool"),
    ({"where": {"colour": "red"}}, "unknown dimension 'colour'"),
    ({"grain": "year"}, "unknown grain 'year'; choose from hour, day, week, month"),
    ({"start": "2026-05-02", "end": "2026-05-01"}, "empty range"),
    ({"start": "yesterday"}, "cannot read start 'yesterday'"),
    ({"tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"week_start": "someday"}, "bad week start 'someday'; choose from monday"),
    ({"by": ["data.a b"]}, "bad data key"),
    ({"top": 0}, "top must be a positive integer"),
    ({"compare": "last_year"}, "unknown comparison"),
])
def test_bad_requests_name_the_valid_choices(store: DuckDBStore, kwargs: dict,
                                             message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        query(**{"metrics": ["events"], **kwargs}, store=store)


def test_empty_store_gives_an_empty_table_with_the_columns(tmp_path: Path) -> None:
    st = DuckDBStore(tmp_path / "empty.duckdb")
    t = query(["events", "duration_ms_p95", "first_event_at"], grain="day", by=["tool"],
              store=st, compare="previous")
    assert t.num_rows == 0
    assert t.column_names[:5] == ["bucket", "tool", "events", "events_previous",
                                  "events_change"]
    st.close()


def test_facade_and_store_path(store: DuckDBStore) -> None:
    # The stage modules are named apart from the facade functions, so importing them
    # (as the CLI does) never shadows agentkpi.query / .rollup / .ingest.
    import agentkpi.cli.core
    import agentkpi.ingestion
    import agentkpi.queries
    import agentkpi.rollups

    assert agentkpi.query is agentkpi.queries.query
    assert agentkpi.rollup is agentkpi.rollups.rollup
    assert agentkpi.ingest is agentkpi.ingestion.ingest
    assert agentkpi.cli.core.rollup is agentkpi.rollup
    t = agentkpi.query(["events"], grain=None, store=store.path)
    assert t.to_pandas()["events"].tolist() == [13]
