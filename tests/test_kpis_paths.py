"""Every path that shows a KPI against the independent reference (tests/reference_seed.py).

One generated dataset (dirty, crossing midnight) is ingested once; then the daily backfill,
``query`` over a multi-hour range, by day, by model, by tool and filtered by user must each
equal the reference's row over the same ``[start, end)`` and the same events.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import agentkpi

from .reference_seed import Keep, hourly_row, read_rows

START = datetime(2026, 5, 20, 19, tzinfo=UTC)
HOURS = 9  # 19:00 .. 04:00 next day: both days hold data
DAY1, DAY2 = datetime(2026, 5, 20, tzinfo=UTC), datetime(2026, 5, 21, tzinfo=UTC)
Data = tuple[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    tmp = tmp_path_factory.mktemp("paths")
    agentkpi.generate_sessions(str(tmp / "data"), 240, START, hours=HOURS, seed=23, dirty=True,
                               workers=1)
    store = str(tmp / "s.duckdb")
    with agentkpi.open_store("duckdb", path=store) as st:
        agentkpi.ingest(str(tmp / "data"), st, workers=1)
    return store, read_rows(tmp / "data")


def reference(rows: list[dict[str, Any]], start: datetime, end: datetime,
              keep: Keep | None = None) -> dict[str, Any]:
    want = hourly_row(rows, start, end, keep)
    assert want is not None and want["sessions"] > 0, (start, end)
    return want


def run_query(store: str, metrics: list[str], start: datetime, end: datetime,
              **kw: Any) -> list[dict[str, Any]]:
    from agentkpi.queries import query

    return query(metrics=metrics, start=start.strftime("%Y-%m-%dT%H"),
                 end=end.strftime("%Y-%m-%dT%H"), store=store, **kw).to_pylist()


def test_the_daily_backfill_row_of_each_day_equals_the_reference(data: Data,
                                                                 tmp_path: Path) -> None:
    store, rows = data
    for day in (DAY1, DAY2):
        key = day.strftime("%Y-%m-%d")
        r = agentkpi.rollup(str(tmp_path / "out"), store=store, daily=key)
        want = reference(rows, day, day + timedelta(days=1))
        assert want["sessions"] > 20
        assert r.rows[key] == want, key


@pytest.mark.parametrize(("lo", "hi"), [(20, 23), (21, 27), (19, 28)],
                         ids=["3h", "6h-over-midnight", "whole"])
def test_a_multi_hour_query_total_equals_the_reference(data: Data, lo: int, hi: int) -> None:
    store, rows = data
    start, end = DAY1 + timedelta(hours=lo), DAY1 + timedelta(hours=hi)
    want = reference(rows, start, end)
    (got,) = run_query(store, list(want), start, end, grain=None)
    assert got == want


def test_query_by_day_equals_the_reference_per_day(data: Data) -> None:
    store, rows = data
    want = reference(rows, DAY1, DAY2)
    got = run_query(store, list(want), DAY1, DAY2 + timedelta(days=1), grain="day")
    assert [g.pop("bucket") for g in got] == [DAY1, DAY2]
    assert got == [want, reference(rows, DAY2, DAY2 + timedelta(days=1))]


def _model_of(model: str) -> Keep:
    def keep(e: dict[str, Any], row: dict[str, Any]) -> bool:
        d = e.get("data") if isinstance(e.get("data"), dict) else {}
        return (d.get("model") or row.get("model_name")) == model
    return keep


def _tool_is(tool: str) -> Keep:
    def keep(e: dict[str, Any], row: dict[str, Any]) -> bool:
        d = e.get("data") if isinstance(e.get("data"), dict) else {}
        return d.get("tool") == tool
    return keep


def test_query_by_model_equals_the_reference_restricted_to_each_model(data: Data) -> None:
    store, rows = data
    start, end = DAY1 + timedelta(hours=19), DAY1 + timedelta(hours=28)
    cols = list(reference(rows, start, end))
    got = {g.pop("model"): g for g in run_query(store, cols, start, end, grain=None,
                                                by=["model"])}
    models = json.loads(reference(rows, start, end)["sessions_by_model_json"])
    assert set(got) == set(models) and len(got) >= 2
    for model, n in models.items():
        want = reference(rows, start, end, _model_of(model))
        assert want["sessions"] == n
        assert got[model] == want, model


def test_query_by_tool_equals_the_reference_restricted_to_each_tool(data: Data) -> None:
    store, rows = data
    start, end = DAY1 + timedelta(hours=19), DAY1 + timedelta(hours=28)
    cols = list(reference(rows, start, end))
    got = {g.pop("tool"): g for g in run_query(store, cols, start, end, grain=None, by=["tool"])}
    using = json.loads(reference(rows, start, end)["sessions_using_tool_json"])
    assert len(using) >= 5 and set(using) <= set(got)
    for tool, n in using.items():
        want = reference(rows, start, end, _tool_is(tool))
        assert json.loads(want["sessions_using_tool_json"]) == {tool: n}
        assert got[tool] == want, tool


def test_query_where_user_equals_the_reference_of_that_users_sessions(data: Data) -> None:
    store, rows = data
    start, end = DAY1 + timedelta(hours=19), DAY1 + timedelta(hours=28)
    users = sorted({r.get("user_id") for r in rows if r.get("user_id")})[:3]
    cols = list(reference(rows, start, end))
    for u in users:
        mine = [r for r in rows if r.get("user_id") == u]
        (got,) = run_query(store, cols, start, end, grain=None, where={"user": u})
        assert got == reference(mine, start, end), u


# ----------------------------------------------------------------------------- the dashboard


@pytest.fixture(scope="module")
def web(data: Data) -> Any:
    from starlette.testclient import TestClient

    from agentkpi.web import create_app

    return TestClient(create_app(data[0], poll=10))


def _pick(want: dict[str, Any], keys: Any) -> dict[str, Any]:
    return {k: want[k] for k in keys}


def test_dashboard_totals_and_every_hour_equal_the_reference(data: Data, web: Any) -> None:
    _, rows = data
    d = web.get("/api/overview?from=2026-05-20T19&to=2026-05-21T04").json()
    shown = set(d["kpis"])
    assert set(d["totals"]) == shown and {"sessions", "cost_usd", "tool_success_rate"} <= shown
    assert d["totals"] == _pick(reference(rows, START, START + timedelta(hours=HOURS)), shown)
    assert len(d["series"]) == HOURS
    for i, point in enumerate(d["series"]):
        lo = START + timedelta(hours=i)
        assert point.pop("bucket") == lo.strftime("%Y-%m-%dT%H:00:00")
        assert point == _pick(reference(rows, lo, lo + timedelta(hours=1)), shown), lo


def test_dashboard_day_series_equals_the_reference_per_day(data: Data, web: Any) -> None:
    _, rows = data
    d = web.get("/api/overview?from=2026-05-20&to=2026-05-22&grain=day").json()
    shown = set(d["kpis"])
    assert [p.pop("bucket")[:10] for p in d["series"]] == ["2026-05-20", "2026-05-21"]
    assert d["series"] == [_pick(reference(rows, DAY1, DAY2), shown),
                           _pick(reference(rows, DAY2, DAY2 + timedelta(days=1)), shown)]
    assert d["totals"] == _pick(reference(rows, DAY1, DAY2 + timedelta(days=1)), shown)


def test_dashboard_breakdowns_equal_the_reference_per_model_and_tool(data: Data,
                                                                      web: Any) -> None:
    _, rows = data
    end = START + timedelta(hours=HOURS)
    total = reference(rows, START, end)
    rng = "from=2026-05-20T19&to=2026-05-21T04"
    model = web.get(f"/api/breakdown/model?{rng}").json()
    models = json.loads(total["sessions_by_model_json"])
    assert {r["model"] for r in model["rows"]} == set(models)
    for r in model["rows"]:
        m = r.pop("model")
        assert r == _pick(reference(rows, START, end, _model_of(m)), model["columns"][1:]), m
        assert r["sessions"] == models[m]
    tool = web.get(f"/api/breakdown/tool?{rng}").json()
    using = json.loads(total["sessions_using_tool_json"])
    got = {r.pop("tool"): r for r in tool["rows"]}
    assert set(using) <= set(got)
    for t, n in using.items():
        assert got[t] == _pick(reference(rows, START, end, _tool_is(t)), tool["columns"][1:]), t
        assert got[t]["sessions"] == n


def test_dashboard_user_breakdown_equals_the_reference_per_user(data: Data, web: Any) -> None:
    _, rows = data
    end = START + timedelta(hours=HOURS)
    b = web.get("/api/breakdown/user?from=2026-05-20T19&to=2026-05-21T04").json()
    assert b["total_rows"] == len(b["rows"]) > 10
    for r in b["rows"]:
        user = r.pop("user")
        # the users KPI's rule: a session without a user_id is its own user
        mine = [x for x in rows if (x.get("user_id") or x.get("session_id")) == user]
        assert r == _pick(reference(mine, START, end), b["columns"][1:]), user
    assert sum(r["sessions"] for r in b["rows"]) == reference(rows, START, end)["sessions"]


def test_dashboard_filters_equal_the_reference_of_the_filtered_events(data: Data,
                                                                      web: Any) -> None:
    _, rows = data
    end = START + timedelta(hours=HOURS)
    user = sorted({r["user_id"] for r in rows if isinstance(r.get("user_id"), str)})[0]
    model = sorted(json.loads(reference(rows, START, end)["sessions_by_model_json"]))[0]
    for params, want in (
            ({"user": user}, reference([r for r in rows if r.get("user_id") == user], START, end)),
            ({"tool": "bash"}, reference(rows, START, end, _tool_is("bash"))),
            ({"model": model}, reference(rows, START, end, _model_of(model)))):
        d = web.get("/api/overview", params={"from": "2026-05-20T19", "to": "2026-05-21T04",
                                             **params}).json()
        assert d["filters"] == params
        assert d["totals"] == _pick(want, d["kpis"]), params


# ----------------------------------------------------------------------------- the report


def test_report_json_numbers_equal_the_reference(data: Data) -> None:
    from click.testing import CliRunner

    from agentkpi.cli import main

    store, rows = data
    end = START + timedelta(hours=HOURS)
    r = CliRunner().invoke(main, ["report", "--format", "json", "--store", store,
                                  "--from", "2026-05-20T19", "--to", "2026-05-21T04"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    want = reference(rows, START, end)
    compared = 0
    for section in ("summary", "tokens", "performance"):
        for k, v in rep[section].items():
            if k in want:
                assert v == want[k], (section, k)
                compared += 1
    assert compared >= 20
    assert rep["by_model"]
    for m in rep["by_model"]:
        ref = reference(rows, START, end, _model_of(m["model"]))
        assert (m["llm_calls"], m["cost_usd"]) == (ref["llm_calls"], ref["cost_usd"]), m
