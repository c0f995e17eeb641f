"""What a new user sees: fixes found by walking through the dashboard as one, in Chromium.

A store with the quickstart's demo data and the real Claude Code samples
(``../shared/data/realworld/claude-code``). Hand-checked from tool_heavy.jsonl (session
d6e0bada…): 4 model calls costing $0.2266455 (tests/test_cost_by_tool.py), 6 tool runs, none
failed: Bash twice, Glob, Read, WebFetch, WebSearch once; the session runs 1 min 55 s
(22:57:51.6 .. 22:59:46.9), project /home/marco/projects/spotter.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentkpi import views
from agentkpi.generate import generate_sessions
from agentkpi.store import DuckDBStore

from .conftest import SHARED

CLAUDE = SHARED / "data" / "realworld" / "claude-code"
HEAVY = "d6e0bada-1959-4eec-a9d2-0bfade768d8f"
START = datetime(2026, 5, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("walkthrough")
    generate_sessions(root / "demo", 300, START, hours=24, seed=3)
    path = root / "store.duckdb"
    for src, fmt in ((root / "demo", "session-dataset"), (CLAUDE, "claude-code")):
        subprocess.run([sys.executable, "-m", "agentkpi", "ingest", "--source", str(src),
                        "--format", fmt, "--store", str(path), "-q"],
                       check=True, capture_output=True, text=True)
    return path


def test_the_demo_data_links_calls_to_tools(store_path: Path) -> None:
    """The quickstart's data says which call asked for each tool, so its cost page shows
    cost by tool; the parts sum to the total cost."""
    with DuckDBStore(str(store_path), read_only=True) as st:
        start, end = datetime(2026, 5, 20), datetime(2026, 5, 23)
        rows = views.cost_by_requested_tool(st, start, end)
        (total,), = st.fetch("SELECT sum(cost_usd) FROM events WHERE event_type = 'llm_call' "
                             "AND ts >= '2026-05-20' AND ts < '2026-05-23'")[1]
    tools = {r["tool"] for r in rows}
    assert {"bash", "read", "web_search"} <= tools and views.NOT_LINKED not in tools
    assert sum(r["cost_usd"] or 0.0 for r in rows) == pytest.approx(total, rel=1e-9)


@pytest.fixture(scope="module")
def page_at(store_path: Path) -> Iterator[object]:
    from tests.test_web_browser import browser_page

    with browser_page(str(store_path), poll=30,
                      viewport={"width": 1300, "height": 900}) as (url, page):
        def goto(path: str, ready: str) -> object:
            page.goto(url + path)
            page.wait_for_selector(ready)
            return page

        yield goto


@pytest.mark.browser
def test_the_session_page_says_what_the_session_cost_and_did(page_at: object) -> None:
    page = page_at(f"/session/{HEAVY}", "#session-cards")  # type: ignore[operator]
    cards = {c.get_attribute("data-key"): (c.locator(".v").inner_text(),
                                           c.locator(".k").inner_text())
             for c in page.locator("#session-cards .card").all()}
    assert cards["cost_usd"] == ("$0.23", "Cost")
    assert cards["llm_calls"] == ("4", "Model calls")
    assert cards["tool_calls_total"] == ("6", "Tool runs")
    assert cards["tool_calls_failed"] == ("0", "Tool runs failed")
    assert cards["duration"] == ("1.9 min", "Duration")
    assert cards["model"] == ("claude-opus-4-6", "Main model")
    assert cards["project"] == ("/home/marco/projects/spotter", "Project")
    assert "user_id" not in {k for _, k in cards.values()}  # labels, not column names
    rows = [r.locator("td").all_inner_texts()
            for r in page.locator("#session-tools tbody tr").all()]
    assert rows[0][:3] == ["Bash", "2", "0"] and len(rows) == 5
    assert {r[0] for r in rows} == {"Bash", "Glob", "Read", "WebFetch", "WebSearch"}


@pytest.mark.browser
def test_the_sessions_list_starts_with_the_most_expensive(page_at: object) -> None:
    page = page_at("/sessions?from=2026-05-20&to=2026-05-22", "#table tbody tr")  # type: ignore[operator]
    th = page.locator("#table th[data-col=cost_usd]")
    assert "sorted" in (th.get_attribute("class") or "")
    d = page.evaluate("fetch('/api/sessions' + location.search).then(r => r.json())")
    most = max(d["rows"], key=lambda r: r["cost_usd"] or 0)
    first = page.locator("#table tbody tr").first.locator("td").first.inner_text()
    assert first == most["session_id"]
    assert "text" in (page.locator("#table th[data-col=user]").get_attribute("class") or "")


@pytest.mark.browser
def test_legends_stay_inside_their_charts(page_at: object) -> None:
    for path in ("/?from=2026-05-20&to=2026-05-22", "/costs?from=2026-05-20&to=2026-05-22"):
        page = page_at(path, "svg.chart text.legend")  # type: ignore[operator]
        right = page.eval_on_selector_all(
            "svg.chart", "svgs => svgs.map(s => Math.max(...Array.from("
            "s.querySelectorAll('text.legend')).map(t => t.getBBox().x + t.getBBox().width)))")
        assert right and max(right) <= 560  # the charts' viewBox width
    names = page.locator("svg.chart text.legend").all_inner_texts()
    assert len(names) == 5  # every model of the demo data, none cut off


@pytest.mark.browser
def test_costs_page_shows_cost_by_tool_and_dashes_for_missing_values(page_at: object) -> None:
    page = page_at("/costs?from=2026-05-20&to=2026-05-22", "#by-requested-tool")  # type: ignore[operator]
    tools = page.locator("#by-requested-tool tbody tr td:first-child").all_inner_texts()
    assert "bash" in tools and not any(t.startswith("(not linked") for t in tools)
    cells = page.locator("#by-model tbody td").all_inner_texts()
    assert "" not in cells  # a missing value is a dash, never a blank


def test_duration_axes_have_round_ticks_in_their_display_unit() -> None:
    from agentkpi.reports.html import duration_ticks, fmt

    ticks = duration_ticks(0.0, 50_000.0, "s")  # 13.9 h: ticks of 5 h, not of 50,000 s
    assert [fmt(t, "s") for t in ticks] == ["0 ms", "5.0 h", "10.0 h", "15.0 h"]
    assert [fmt(t, "ms") for t in duration_ticks(0.0, 1_500_000.0, "ms")] == [
        "0 ms", "5.0 min", "10.0 min", "15.0 min", "20.0 min", "25.0 min"]  # 25 min in ms


@pytest.mark.browser
def test_the_dashboard_draws_the_same_round_duration_ticks(page_at: object) -> None:
    from agentkpi.reports.html import duration_ticks, fmt

    page = page_at("/?from=2026-05-20&to=2026-05-22", ".chart-box svg")  # type: ignore[operator]
    d = page.evaluate("fetch('/api/overview' + location.search).then(r => r.json())")
    vals = [v for r in d["series"] for k in ("time_to_first_action_s_p50",
                                             "time_to_first_action_s_p95")
            if (v := r[k]) is not None]
    ticks = page.eval_on_selector_all(
        ".chart-box[data-chart='Time to first action'] text.tick",
        "ts => ts.filter(t => t.getAttribute('text-anchor') === 'end' && "
        "t.getAttribute('x') === '50').map(t => t.textContent)")
    assert ticks == [fmt(t, "s") for t in duration_ticks(0.0, max(vals), "s")]


def test_png_plots_tick_durations_roundly_too() -> None:
    from matplotlib.figure import Figure

    from agentkpi.kpis.display import format_value
    from agentkpi.plots import _draw

    ax = Figure().add_subplot()
    x = [datetime(2026, 5, 20, h) for h in range(3)]
    _draw(ax, "Time to first action (s)", "s", x,
          [{"p95": v} for v in (600.0, 50_000.0, 1_200.0)], ["p95"])
    assert [format_value(t, "s") for t in ax.get_yticks()] == [
        "0 ms", "5.0 h", "10.0 h", "15.0 h"]
