"""Hypothesis properties of the rollup: hours add up to the day; re-running changes nothing."""

from __future__ import annotations

import math
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkpi.kpis import CATALOGUE
from agentkpi.rollups import rollup

from .conftest import ev, write_session

DAY = datetime(2026, 5, 20)
TYPES = ["llm_call", "tool_call", "tool_output", "error", "feedback", "undo_complete",
         "hf_job_submit", "hf_job_complete", "sandbox_create", "pro_cta_click", "ready",
         "pro_conversion", "credits_topped_up", "jobs_access_blocked"]

event = st.builds(
    lambda minute, et, tokens, cost, ok, tool: ev(
        (DAY + timedelta(minutes=minute)).isoformat() + "+00:00", et, prompt_tokens=tokens,
        completion_tokens=tokens // 3, cache_read_tokens=tokens // 2, cost_usd=cost,
        success=ok, tool=tool, rating="up" if ok else "down", hardware="cpu-basic"
        if ok else "a10g-large", flavor="t4-small", wall_time_s=tokens, final_status="COMPLETED"),
    st.integers(min_value=-120, max_value=24 * 60 + 120),  # some events outside the day
    st.sampled_from(TYPES), st.integers(0, 5000),
    st.floats(0, 2, allow_nan=False).map(lambda x: round(x, 6)), st.booleans(),
    st.sampled_from(["research", "bash", "read", ""]),
)
session = st.tuples(st.sampled_from(["alice", "bob", None]),
                    st.lists(event, min_size=1, max_size=12))
ADDITIVE = [k.name for k in CATALOGUE if k.additive]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(session, min_size=1, max_size=6))
def test_hourly_rows_of_additive_kpis_sum_to_the_daily_row(sessions) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "d"
        for i, (user, events) in enumerate(sessions):
            write_session(root, f"s{i}", "2026-05-19T23:00:00+00:00", events, user_id=user)
        store = str(Path(tmp) / "s.duckdb")
        hourly = rollup(str(Path(tmp) / "o"), source=str(root), store=store,
                        start="2026-05-20T00", end="2026-05-21T00", workers=1)
        daily = rollup(str(Path(tmp) / "o"), store=store, daily="2026-05-20")
        day_row = daily.rows.get("2026-05-20")
        if not hourly.rows:
            assert day_row is None
            return
        assert day_row is not None
        for name in ADDITIVE:
            total = sum(r[name] for r in hourly.rows.values())
            if isinstance(total, float):
                assert math.isclose(total, day_row[name], abs_tol=1e-3 * len(hourly.rows)), name
            else:
                assert total == day_row[name], name
        # a session counts in a day once, in an hour at most once per hour
        assert max(r["sessions"] for r in hourly.rows.values()) <= day_row["sessions"]
        assert day_row["sessions"] <= sum(r["sessions"] for r in hourly.rows.values())


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(session, min_size=1, max_size=5))
def test_rerunning_a_rollup_changes_nothing(sessions) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "d", Path(tmp) / "o"
        for i, (user, events) in enumerate(sessions):
            write_session(root, f"s{i}", "2026-05-19T23:00:00+00:00", events, user_id=user)
        store = str(Path(tmp) / "s.duckdb")
        first = rollup(str(out), source=str(root), store=store, start="2026-05-19T22",
                       end="2026-05-21T03", workers=1)
        snapshot = {p: p.read_bytes() for p in out.rglob("*.csv")}
        second = rollup(str(out), source=str(root), store=store, start="2026-05-19T22",
                        end="2026-05-21T03", workers=1)
        assert second.written == [] and second.rows == first.rows
        assert {p: p.read_bytes() for p in out.rglob("*.csv")} == snapshot


def test_every_float_sum_is_added_in_a_fixed_order() -> None:
    """Floating-point addition is not associative: a float sum added in whatever order
    the engine's threads meet the rows may differ in its last digits from one run (or
    engine) to the next. Every sum of a DOUBLE event column over a session's events (in
    event order) and every float KPI sum over sessions (in the seed's order) names its
    order; integer sums are exact in any order."""
    from agentkpi.kpis.catalogue import HIDDEN, MEASURES, QUERY_KPIS
    from agentkpi.model import EVENT_COLUMNS

    doubles = {name for name, _, sql, _ in EVENT_COLUMNS if sql == "DOUBLE"}
    assert {"cost_usd", "duration_ms"} <= doubles
    unordered = [m.name for m in MEASURES if m.agg == "sum" and m.expr in doubles
                 and not m.order]
    unordered += [k.name for k in (*CATALOGUE, *HIDDEN, *QUERY_KPIS)
                  if k.agg == "sum" and k.kind == "float" and not k.order]
    assert unordered == []
