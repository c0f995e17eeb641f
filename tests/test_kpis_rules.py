"""One test per KPI rule of DESIGN.md: each quirk of the seed's hourly row is pinned here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import ev, write_session

H = "2026-05-20T14"


def test_session_counts_in_an_hour_whatever_day_it_started(dataset: Path, hour_row) -> None:
    # started three days before the hour; its folder is three days old
    write_session(dataset, "old", "2026-05-17T09:00:00+00:00", [
        ev("2026-05-17T09:00:05+00:00", "llm_call", prompt_tokens=1),
        ev("2026-05-20T14:10:00+00:00", "llm_call", prompt_tokens=10, cost_usd=0.5),
    ])
    row = hour_row(dataset, H)
    assert row["sessions"] == 1 and row["llm_calls"] == 1 and row["tokens_prompt"] == 10


def test_window_is_half_open_start_included_end_excluded(dataset: Path, hour_row) -> None:
    write_session(dataset, "a", "2026-05-20T13:59:00+00:00", [
        ev("2026-05-20T13:59:59.999999+00:00", "llm_call"),
        ev("2026-05-20T14:00:00+00:00", "llm_call"),
        ev("2026-05-20T14:59:59.999999+00:00", "llm_call"),
        ev("2026-05-20T15:00:00+00:00", "llm_call"),
    ])
    assert hour_row(dataset, H)["llm_calls"] == 2


def test_midnight_crossing_session_lands_in_both_days_hours(dataset: Path, tmp_path) -> None:
    from agentkpi.rollups import rollup

    write_session(dataset, "night", "2026-05-20T23:50:00+00:00", [
        ev("2026-05-20T23:55:00+00:00", "llm_call"),
        ev("2026-05-21T00:05:00+00:00", "llm_call"),
        ev("2026-05-21T00:06:00+00:00", "llm_call"),
    ])
    r = rollup(str(tmp_path / "o"), source=str(dataset), store=str(tmp_path / "s.duckdb"),
               start="2026-05-20T23", end="2026-05-21T01")
    assert r.rows["2026-05-20T23"]["llm_calls"] == 1
    assert r.rows["2026-05-21T00"]["llm_calls"] == 2
    assert (tmp_path / "o" / "hourly" / "2026-05-21" / "00.csv").exists()


@pytest.mark.parametrize("stamp", ["2026-05-20T14:30:00", "2026-05-20T14:30:00Z",
                                   "2026-05-20T14:30:00+00:00", "2026-05-20T16:30:00+02:00",
                                   "2026-05-20T09:30:00-05:00"])
def test_timestamps_without_offset_are_utc_and_any_offset_is_honoured(
        dataset: Path, hour_row, stamp: str) -> None:
    write_session(dataset, "s", "2026-05-20T14:00:00+00:00", [ev(stamp, "llm_call")])
    assert hour_row(dataset, H)["llm_calls"] == 1


def test_missing_or_garbage_timestamps_are_ignored(dataset: Path, hour_row) -> None:
    write_session(dataset, "s", "2026-05-20T14:00:00+00:00", [
        ev("2026-05-20T14:01:00+00:00", "llm_call"),
        {"event_type": "llm_call", "data": {}},
        ev("not-a-date", "llm_call"),
        ev("", "llm_call"),
    ])
    assert hour_row(dataset, H)["llm_calls"] == 1


def test_turns_count_all_user_messages_not_windowed(dataset: Path, hour_row) -> None:
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}, {"role": "user", "content": "d"},
            {"role": "tool", "content": "e"}]
    write_session(dataset, "s", "2026-05-19T10:00:00+00:00",
                  [ev("2026-05-20T14:01:00+00:00", "processing")], messages=msgs)
    assert hour_row(dataset, H)["turns"] == 3


def test_users_fall_back_to_session_id_when_user_id_is_missing(dataset: Path, hour_row) -> None:
    for sid, user in (("s1", "alice"), ("s2", "alice"), ("s3", None), ("s4", None)):
        write_session(dataset, sid, "2026-05-20T14:00:00+00:00",
                      [ev("2026-05-20T14:01:00+00:00", "ready")], user_id=user)
    row = hour_row(dataset, H)
    assert (row["sessions"], row["users"]) == (4, 3)


def test_numbers_may_be_strings_or_null_and_garbage_is_missing(dataset: Path, hour_row) -> None:
    write_session(dataset, "s", "2026-05-20T14:00:00+00:00", [
        ev("2026-05-20T14:01:00+00:00", "llm_call", prompt_tokens="120", completion_tokens=None,
           cache_read_tokens="abc", cost_usd="0.25"),
        ev("2026-05-20T14:02:00+00:00", "llm_call", prompt_tokens=30, cost_usd=None),
    ])
    row = hour_row(dataset, H)
    assert row["tokens_prompt"] == 150
    assert row["tokens_completion"] == 0 and row["tokens_cache_read"] == 0
    assert row["cost_usd"] == 0.25


def test_cost_and_cache_ratio_rounding(dataset: Path, hour_row) -> None:
    write_session(dataset, "s1", "2026-05-20T14:00:00+00:00", [
        ev("2026-05-20T14:01:00+00:00", "llm_call", prompt_tokens=2, cache_read_tokens=1,
           cost_usd=0.123456789)])
    write_session(dataset, "s2", "2026-05-20T14:00:00+00:00", [
        ev("2026-05-20T14:01:00+00:00", "ready")])
    row = hour_row(dataset, H)
    assert row["cost_usd"] == 0.1235
    assert row["cache_hit_ratio"] == 0.3333
    assert row["cost_per_session_mean"] == round(0.123456789 / 2, 6)
    # percentiles over all sessions, zeros included: [0, 0.123456789]
    assert row["cost_per_session_p50"] == round(0.123456789 / 2, 6)
    assert row["cost_per_session_p95"] == round(0.123456789 * 0.95, 6)


def test_time_to_first_action_uses_first_in_window_tool_event(dataset: Path, hour_row) -> None:
    write_session(dataset, "a", "2026-05-20T14:00:00+00:00", [
        ev("2026-05-20T14:00:10+00:00", "llm_call"),
        ev("2026-05-20T14:00:30+00:00", "tool_output", tool="x", success=True),  # 30 s
        ev("2026-05-20T14:00:40+00:00", "tool_call", tool="y"),
    ])
    write_session(dataset, "b", "2026-05-20T13:00:00+00:00", [
        ev("2026-05-20T13:10:00+00:00", "tool_call", tool="y"),  # before the window
        ev("2026-05-20T14:00:00+00:00", "tool_call", tool="y"),  # 3600 s, first in window
    ])
    write_session(dataset, "c", "2026-05-20T14:30:00+00:00", [  # negative: left out
        ev("2026-05-20T14:20:00+00:00", "tool_call", tool="y")])
    write_session(dataset, "d", "2026-05-20T14:00:00+00:00", [  # no tool event: left out
        ev("2026-05-20T14:20:00+00:00", "llm_call")])
    row = hour_row(dataset, H)
    assert row["time_to_first_action_s_p50"] == round((30 + 3600) / 2, 2)
    assert row["time_to_first_action_s_p95"] == round(30 + 0.95 * 3570, 2)


def test_percentiles_are_zero_when_nothing_qualifies(dataset: Path, hour_row) -> None:
    write_session(dataset, "s", "2026-05-20T14:00:00+00:00",
                  [ev("2026-05-20T14:20:00+00:00", "llm_call")], messages=[])
    row = hour_row(dataset, H)
    for col in ("time_to_first_action_s_p50", "research_calls_per_session_p95",
                "distinct_tools_per_session_p50", "tool_calls_per_turn_p95"):
        assert row[col] == 0.0 and isinstance(row[col], float)


def test_tool_reliability_counts_come_from_tool_output(dataset: Path, hour_row) -> None:
    write_session(dataset, "s", "2026-05-20T14:00:00+00:00", [
        ev("2026-05-20T14:01:00+00:00", "tool_output", tool="a", success=True),
        ev("2026-05-20T14:02:00+00:00", "tool_output", tool="a", success=False),
        ev("2026-05-20T14:03:00+00:00", "tool_output", tool="a"),  # no success: failed
        ev("2026-05-20T14:04:00+00:00", "tool_output", tool="a", success="false"),
        ev("2026-05-20T14:05:00+00:00", "tool_call", tool="a"),
    ])
    row = hour_row(dataset, H)
    assert (row["tool_calls_total"], row["tool_calls_succeeded"], row["tool_calls_failed"]) == \
        (4, 1, 3)
    assert row["tool_success_rate"] == 0.25


def test_session_outcomes_and_rates(dataset: Path, hour_row) -> None:
    write_session(dataset, "e", "2026-05-20T14:00:00+00:00", [
        ev("2026-05-20T14:01:00+00:00", "error", error="boom"),
        ev("2026-05-20T14:02:00+00:00", "error", error="again"),
        ev("2026-05-20T14:03:00+00:00", "undo_complete")])
    write_session(dataset, "u", "2026-05-20T14:00:00+00:00", [
        {"timestamp": "2026-05-20T14:03:00+00:00", "event_type": "undo_complete", "data": None}])
    write_session(dataset, "ok", "2026-05-20T14:00:00+00:00", [
        ev("2026-05-20T14:03:00+00:00", "turn_complete")])
    row = hour_row(dataset, H)
    assert (row["errored_sessions"], row["successful_sessions"], row["regenerated_sessions"]) \
        == (1, 2, 2)
    assert (row["failure_rate"], row["regenerate_rate"]) == (0.3333, 0.6667)


def test_feedback_jobs_cta_and_conversions(dataset: Path, hour_row) -> None:
    t = "2026-05-20T14:05:00+00:00"
    write_session(dataset, "s", "2026-05-20T14:00:00+00:00", [
        ev(t, "feedback", rating="up"), ev(t, "feedback", rating="up"),
        ev(t, "feedback", rating="down"), ev(t, "feedback", rating="meh"),
        ev(t, "hf_job_submit", flavor="t4-small"),
        ev(t, "hf_job_complete", flavor="t4-small", final_status="COMPLETED", wall_time_s=3600),
        ev(t, "hf_job_complete", flavor="a100x8", final_status="Succeeded", wall_time_s="450"),
        ev(t, "hf_job_complete", flavor="mystery-gpu", final_status="ERROR", wall_time_s=100),
        ev(t, "hf_job_complete", final_status="canceled"),
        ev(t, "jobs_access_blocked"), ev(t, "pro_cta_click", source="banner"),
        ev(t, "pro_cta_click"), ev(t, "pro_cta_click", source="banner"),
        ev(t, "pro_conversion"), ev(t, "credits_topped_up"), ev(t, "credits_topped_up"),
    ])
    row = hour_row(dataset, H)
    assert (row["thumbs_up"], row["thumbs_down"]) == (2, 1)
    assert (row["hf_jobs_submitted"], row["hf_jobs_succeeded"], row["hf_jobs_blocked"]) == \
        (1, 2, 1)
    assert json.loads(row["gpu_hours_by_flavor_json"]) == {
        "a100x8": 1.0, "mystery-gpu": 0.0, "t4-small": 1.0, "unknown": 0.0}
    assert row["gpu_hours_by_flavor_json"] == json.dumps(
        {"a100x8": 1.0, "mystery-gpu": 0.0, "t4-small": 1.0, "unknown": 0.0})
    assert row["pro_cta_clicks"] == 3
    assert row["pro_cta_by_source_json"] == '{"banner": 2, "unknown": 1}'
    assert (row["pro_conversions"], row["credits_topped_up"]) == (1, 2)


def test_sandboxes_split_by_hardware_prefix_case_insensitive(dataset: Path, hour_row) -> None:
    t = "2026-05-20T14:05:00+00:00"
    write_session(dataset, "s", "2026-05-20T14:00:00+00:00", [
        ev(t, "sandbox_create", hardware="cpu-basic"),
        ev(t, "sandbox_create", hardware="CPU-Upgrade"),
        ev(t, "sandbox_create", hardware="t4-small"), ev(t, "sandbox_create"),
        ev(t, "sandbox_create", hardware="cpu")])
    row = hour_row(dataset, H)
    assert (row["sandboxes_created"], row["sandboxes_cpu"], row["sandboxes_gpu"]) == (5, 2, 3)


def test_tool_breadth_intensity_and_research(dataset: Path, hour_row) -> None:
    t = "2026-05-20T14:05:00+00:00"
    two_turns = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    write_session(dataset, "a", "2026-05-20T14:00:00+00:00", [
        ev(t, "tool_call", tool="research"), ev(t, "tool_call", tool="research"),
        ev(t, "tool_call", tool="research"), ev(t, "tool_call", tool="bash"),
        ev(t, "tool_call", tool=""), ev(t, "tool_call")], messages=two_turns)
    write_session(dataset, "b", "2026-05-20T14:00:00+00:00", [
        ev(t, "tool_call", tool="research")], model=None)
    write_session(dataset, "c", "2026-05-20T14:00:00+00:00", [ev(t, "llm_call")])  # 1 turn, 0
    write_session(dataset, "d", "2026-05-20T14:00:00+00:00", [ev(t, "tool_call", tool="bash")],
                  messages=[])  # no turns
    row = hour_row(dataset, H)
    assert (row["research_calls"], row["sessions_with_research"]) == (4, 2)
    assert row["research_calls_per_session_p50"] == 2.0  # [1, 3]
    assert row["research_calls_per_session_p95"] == 2.9
    assert row["distinct_tools_per_session_p50"] == 1.0  # [2, 1, 1]
    assert row["distinct_tools_per_session_p95"] == 1.9
    assert row["tool_calls_per_session_p50"] == 1.0  # [4, 1, 1]
    assert row["tool_calls_per_session_p95"] == 3.7
    assert row["tool_calls_per_turn_p50"] == 1.0  # [4/2, 1/1, 0/1]
    assert row["tool_calls_per_turn_p95"] == 1.9
    assert row["tool_calls_by_name_json"] == '{"bash": 2, "research": 4}'
    assert row["sessions_using_tool_json"] == '{"bash": 2, "research": 2}'
    assert row["sessions_by_model_json"] == '{"m1": 3, "unknown": 1}'


def test_decoded_lists_work_as_well_as_json_strings(dataset: Path, hour_row) -> None:
    write_session(dataset, "s", "2026-05-20T14:00:00+00:00",
                  [ev("2026-05-20T14:05:00+00:00", "llm_call", prompt_tokens=7)],
                  as_strings=False)
    assert hour_row(dataset, H)["tokens_prompt"] == 7


def test_unknown_event_types_and_null_data_never_fail(dataset: Path, hour_row) -> None:
    write_session(dataset, "s", "2026-05-20T14:00:00+00:00", [
        {"timestamp": "2026-05-20T14:05:00+00:00", "event_type": "brand_new_thing", "data": None},
        {"timestamp": "2026-05-20T14:05:00+00:00", "event_type": "llm_call", "data": None},
        {"timestamp": "2026-05-20T14:05:00+00:00", "event_type": "llm_call", "data": [1, 2]},
        "not an event", 42, None])
    row = hour_row(dataset, H)
    assert row["sessions"] == 1 and row["llm_calls"] == 2 and row["tokens_prompt"] == 0


def test_numbers_beyond_64_bits_are_counted_not_fatal(dataset: Path, tmp_path: Path) -> None:
    from agentkpi.rollups import rollup

    write_session(dataset, "s", "2026-05-20T14:00:00+00:00", [
        ev("2026-05-20T14:01:00+00:00", "llm_call", prompt_tokens=10**30, completion_tokens=1e30,
           cache_read_tokens=4)])
    r = rollup(str(tmp_path / "o"), source=str(dataset), store=str(tmp_path / "s.duckdb"), at=H)
    assert r.rows[H]["tokens_prompt"] == 0 and r.rows[H]["tokens_cache_read"] == 4
    assert r.ingest.quality.counts["number_unparseable"] == 2
