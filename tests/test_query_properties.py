"""Hypothesis properties of agentkpi.query over random small stores.

* additive metrics summed over a dimension's rows equal the ungrouped total;
* a day's additive metrics equal the sum of its hours;
* week and month buckets in a non-UTC zone (America/New_York, Asia/Kolkata)
  hold exactly the events whose local time falls in them.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkpi.ingestion import ingest
from agentkpi.queries import query
from agentkpi.store import DuckDBStore
from tests.conftest import ev, write_session

# Around month and week edges on purpose: 2026-05-31 is a Sunday, 06-01 a Monday.
T0 = datetime(2026, 5, 30, 12, tzinfo=UTC)
SPAN_MIN = 4 * 24 * 60
ADDITIVE = ["events", "errors", "tokens_total", "duration_count", "duration_ms_total",
            "success_count", "failure_count", "outcome_count", "llm_calls"]

event = st.fixed_dictionaries({
    "minute": st.integers(0, SPAN_MIN - 1),
    "kind": st.sampled_from(["tool_output", "llm_call", "error", "tool_call", "session_end"]),
    "tool": st.sampled_from(["bash", "read", "edit", None]),
    "success": st.sampled_from([True, False, None]),
    "duration": st.one_of(st.none(), st.integers(1, 5000)),
    "tokens": st.integers(0, 500),
    "error_type": st.sampled_from(["Timeout", "ValueError", None]),
})
session = st.fixed_dictionaries({
    "user": st.sampled_from(["alice", "bob", "carol", None]),
    "project": st.sampled_from(["p1", "p2", None]),
    "events": st.lists(event, min_size=1, max_size=6),
})
dataset = st.lists(session, min_size=1, max_size=6)


def _events(s: dict) -> list[dict]:
    out = []
    for e in s["events"]:
        ts = (T0 + timedelta(minutes=e["minute"])).isoformat()
        data: dict = {}
        if e["kind"] in ("tool_output", "tool_call") and e["tool"]:
            data["tool"] = e["tool"]
        if e["kind"] == "tool_output" and e["success"] is not None:
            data["success"] = e["success"]
        if e["kind"] in ("tool_output", "session_end") and e["duration"] is not None:
            data["duration_ms"] = e["duration"]
        if e["kind"] == "llm_call":
            data.update(prompt_tokens=e["tokens"], completion_tokens=e["tokens"] // 3)
        if e["kind"] == "error" and e["error_type"]:
            data["error_type"] = e["error_type"]
        out.append(ev(ts, e["kind"], **data))
    return out


def _store(tmp: Path, sessions: list[dict]) -> DuckDBStore:
    for i, s in enumerate(sessions):
        write_session(tmp / "data", f"s{i}", T0.isoformat(), _events(s), user_id=s["user"],
                      project=s["project"])
    st_ = DuckDBStore(tmp / "s.duckdb")
    ingest(str(tmp / "data"), st_, workers=1)
    return st_


SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
RANGE = {"start": T0 - timedelta(days=3), "end": T0 + timedelta(days=6)}


@SETTINGS
@given(dataset, st.sampled_from(["tool", "user", "project", "event_type", "error_type",
                                 "session", "agent", "model"]))
def test_additive_metrics_over_a_dimension_sum_to_the_total(sessions: list[dict],
                                                            dim: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp), sessions)
        try:
            (total,) = query(ADDITIVE, grain=None, **RANGE, store=store).to_pylist()
            parts = query(ADDITIVE, grain=None, by=[dim], **RANGE, store=store).to_pylist()
            top = query(ADDITIVE, grain=None, by=[dim], top=1, **RANGE,
                        store=store).to_pylist()
        finally:
            store.close()
    for m in ADDITIVE:
        assert round(sum(r[m] for r in parts), 3) == round(total[m], 3), m
        assert round(sum(r[m] for r in top), 3) == round(total[m], 3), m


@SETTINGS
@given(dataset, st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]))
def test_a_day_is_the_sum_of_its_hours(sessions: list[dict], tz: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp), sessions)
        try:
            days = query(ADDITIVE, grain="day", tz=tz, **RANGE, store=store).to_pylist()
            hours = query(ADDITIVE, grain="hour", tz=tz, **RANGE, store=store).to_pylist()
        finally:
            store.close()
    zone = ZoneInfo(tz)
    by_day: dict = {}
    for h in hours:
        day = h["bucket"].astimezone(zone).date()
        acc = by_day.setdefault(day, Counter())
        for m in ADDITIVE:
            acc[m] += h[m]
    assert {d["bucket"].astimezone(zone).date() for d in days} == set(by_day)
    for d in days:
        acc = by_day[d["bucket"].astimezone(zone).date()]
        for m in ADDITIVE:
            assert round(acc[m], 3) == round(d[m], 3), m


@SETTINGS
@given(dataset, st.sampled_from(["America/New_York", "Asia/Kolkata"]),
       st.sampled_from(["monday", "sunday"]))
def test_week_and_month_buckets_follow_local_time(sessions: list[dict], tz: str,
                                                  week_start: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp), sessions)
        try:
            weeks = query(["events"], grain="week", tz=tz, week_start=week_start, **RANGE,
                          store=store).to_pylist()
            months = query(["events"], grain="month", tz=tz, **RANGE, store=store).to_pylist()
        finally:
            store.close()
    zone = ZoneInfo(tz)
    first = 0 if week_start == "monday" else 6
    want_weeks: Counter = Counter()
    want_months: Counter = Counter()
    for s in sessions:
        for e in s["events"]:
            local = (T0 + timedelta(minutes=e["minute"])).astimezone(zone)
            d = local.date()
            want_weeks[d - timedelta(days=(d.weekday() - first) % 7)] += 1
            want_months[d.replace(day=1)] += 1
    got_weeks = {w["bucket"].astimezone(zone): w["events"] for w in weeks}
    for b in got_weeks:
        assert (b.hour, b.minute) == (0, 0)  # local midnight
    assert {b.date(): n for b, n in got_weeks.items()} == dict(want_weeks)
    assert {m["bucket"].astimezone(zone).date(): m["events"] for m in months} \
        == dict(want_months)
