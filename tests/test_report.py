"""Reports: the numbers of the query fixture, every format, and empty data without NaN."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from agentkpi.errors import UsageError
from agentkpi.reports import FORMATS, build_report, render
from agentkpi.store import DuckDBStore
from tests.test_query import fixture_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DuckDBStore:
    st = fixture_store(tmp_path_factory.mktemp("report"))
    yield st
    st.close()


def test_report_sections_hold_the_hand_counted_numbers(store: DuckDBStore) -> None:
    r = build_report(store, "2026-05-01", "2026-07-01")
    assert r["range"] == {"start": "2026-05-01T00:00:00+00:00",
                          "end": "2026-07-01T00:00:00+00:00", "tz": "UTC"}
    assert r["empty"] is False
    s = r["summary"]
    assert (s["sessions"], s["users"], s["events"], s["errors"], s["llm_calls"]) == (4, 3, 13,
                                                                                     3, 3)
    assert (s["success_count"], s["failure_count"], s["success_rate"]) == (3, 1, 0.75)
    assert r["tokens"]["tokens_total"] == 176
    assert r["tokens"]["cost_usd"] == 0.01
    p = r["performance"]
    assert (p["duration_ms_p50"], p["duration_ms_p95"], p["duration_ms_p99"],
            p["duration_ms_max"]) == (300.0, 880.0, 976.0, 1000.0)
    assert [t["tool"] for t in r["tools"]] == ["bash", "read"]
    assert r["tools"][0]["failure_count"] == 1
    assert {a["agent"]: a["events"] for a in r["agents"]} == {"coder": 2, "sub": 1}
    assert r["errors"] == [{"error_type": "Timeout", "errors": 1, "sessions": 1},
                           {"error_type": "ValueError", "errors": 1, "sessions": 1},
                           {"error_type": "unknown", "errors": 1, "sessions": 1}]
    assert {m["model"]: m["tokens_total"] for m in r["by_model"]} == {"m-a": 121, "m-b": 55}
    ts = r["time_series"]
    assert ts["grain"] == "day"
    assert [(row["bucket"][:10], row["events"]) for row in ts["rows"]] == [
        ("2026-05-04", 7), ("2026-05-05", 2), ("2026-05-11", 3), ("2026-06-01", 1)]
    json.dumps(r, allow_nan=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders(store: DuckDBStore, fmt: str) -> None:
    r = build_report(store, "2026-05-01", "2026-07-01")
    text = render(r, fmt)
    assert "nan" not in text.lower().replace("nanos", "")
    if fmt == "json":
        assert json.loads(text) == r
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {"section": "summary", "row": "", "metric": "events", "value": "13"} in rows
        assert {"section": "tools", "row": "bash", "metric": "failure_count",
                "value": "1"} in rows
    elif fmt == "markdown":
        for title in ("## Summary", "## Tokens and cost", "## Performance", "## Tools",
                      "## Agents", "## Errors by type", "## Time series (per day)"):
            assert title in text
        assert "| bash | 4 | 2 | 2 | 1 | 0.6667 |" in text
    else:
        assert text.lstrip().lower().startswith("<!doctype html")
        assert "bash" in text and "Timeout" in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_store_and_empty_range_say_so(tmp_path: Path, store: DuckDBStore, fmt: str) -> None:
    with DuckDBStore(tmp_path / "empty.duckdb") as empty:
        r = build_report(empty)
    assert r["empty"] is True and r["range"]["start"] is None
    assert r["summary"]["sessions"] == 0 and r["performance"]["duration_ms_p95"] == 0.0
    text = render(r, fmt)
    json.dumps(r, allow_nan=False)
    if fmt == "markdown":
        assert "No data" in text and "the store holds no events" in text
    quiet = build_report(store, "2025-01-01", "2025-01-02")
    assert quiet["empty"] is True and quiet["tools"] == [] and quiet["time_series"]["rows"] == []
    assert "nan" not in render(quiet, fmt).lower().replace("nanos", "")


def test_report_csv_neutralises_formula_names() -> None:
    base = {"title": "t", "range": {"start": None, "end": None, "tz": "UTC"}, "empty": False,
            "summary": {}, "tokens": {}, "performance": {}, "by_model": [], "agents": [],
            "errors": [], "time_series": {"grain": "day", "rows": []},
            "tools": [{"tool": "=cmd()", "events": 1}]}
    assert "tools,'=cmd(),events,1" in render(base, "csv")


def test_bad_range_is_a_usage_error(store: DuckDBStore) -> None:
    with pytest.raises(UsageError, match="empty range"):
        build_report(store, "2026-05-02", "2026-05-01")
