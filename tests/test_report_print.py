"""The HTML report is the dashboard's print layout: one stylesheet, the same markup, labels
and units, on the real Claude Code samples (``../shared/data/realworld/claude-code``).

Hand-checked from the files: the range 2026-02-10 .. 2026-02-13 holds 2 sessions (tool_heavy,
the subagent file's session) with 7 model calls, 4 of claude-opus-4-6 (0.0884775 + 0.015009 +
0.094197 + 0.028962 = $0.2266455, see tests/test_cost_by_tool.py) and 3 of claude-sonnet-4-5.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agentkpi.reports import build_report
from agentkpi.reports.html import STYLESHEET, render_html
from agentkpi.store import DuckDBStore
from agentkpi.web import create_app

from .conftest import SHARED, cli_ingest

CLAUDE = SHARED / "data" / "realworld" / "claude-code"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report-print") / "store.duckdb"
    cli_ingest(CLAUDE, "--format", "claude-code", "--store", str(path))
    return path


@pytest.fixture(scope="module")
def report_file(store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report-html") / "report.html"
    subprocess.run([sys.executable, "-m", "agentkpi", "report", "--format", "html", "--out",
                    str(out), "--store", str(store_path), "--from", "2026-02-10",
                    "--to", "2026-02-13"], check=True, capture_output=True, text=True)
    return out


def test_the_report_inlines_the_stylesheet_the_dashboard_serves(store_path: Path,
                                                                report_file: Path) -> None:
    served = TestClient(create_app(str(store_path), poll=10, background=False)).get(
        "/static/style.css")
    assert served.status_code == 200 and "@media print" in served.text
    doc = report_file.read_text()
    (css,) = re.findall(r"<style>(.*?)</style>", doc, re.S)
    assert css == served.text == STYLESHEET.read_text()
    assert "<script" not in doc and not re.search(r"(src|href)=\"https?://", doc)
    # the dashboard's markup, so the same rules lay it out
    for cls in ('class="cards"', 'class="card"', 'class="charts"', 'class="chart-box"',
                'class="table-box"', '<header><span class="brand">agentkpi</span>'):
        assert cls in doc


def test_the_report_shows_labels_units_and_dated_axes(report_file: Path) -> None:
    doc = report_file.read_text()
    card = re.search(r'<div class="card" data-kpi="cost_usd" title="([^"]*)">'
                     r'<div class="v">([^<]*)</div><div class="k">([^<]*)</div>', doc)
    assert card is not None
    assert card.group(1).startswith("cost_usd")  # the raw name on hover
    assert card.group(2) == "$0.31" and card.group(3) == "Cost"
    tfa = re.search(r'data-kpi="time_to_first_action_s_p50"[^>]*><div class="v">([^<]*)</div>'
                    r'<div class="k">([^<]*)</div>', doc)
    assert tfa is not None and tfa.group(1).endswith(" s")
    assert tfa.group(2) == "Time to first action, median"
    # table headers are labels with the name on hover; durations carry their unit
    assert re.search(r'<th data-col="llm_calls" title="llm_calls[^"]*">Model calls</th>', doc)
    assert '<th data-col="model" title="model">Model</th>' in doc
    assert re.search(r"<td>\d+(\.\d)? (ms|s)</td>", doc)
    assert "claude-opus-4-6</td><td>4</td>" in doc
    # legends show labels, paths keep the KPI name; the 3-day axis carries dates
    assert re.search(r'data-series="cost_usd"', doc) and "<title>cost_usd</title>Cost<" in doc
    ticks = re.findall(r'text-anchor="(?:start|middle|end)">([A-Z][a-z]{2} \d\d \d\d:\d\d)<', doc)
    assert ticks and ticks[0] == "Feb 10 00:00"
    # every hour of the range is on the chart (72 buckets), empty hours at 0
    cost = re.search(r'<path d="([^"]*)"[^>]*data-series="cost_usd"', doc)
    assert cost is not None and cost.group(1).count("L") == 71


def test_an_overview_dict_keeps_its_kpi_labels(store_path: Path) -> None:
    with DuckDBStore(str(store_path), read_only=True) as st:
        rep = build_report(st, "2026-02-10", "2026-02-13")
    doc = render_html({**rep, "kpis": {"cost_usd": {"label": "Spend", "unit": "USD",
                                                    "description": "d"}}})
    assert '<div class="k">Spend</div>' in doc and 'title="cost_usd \u2014 d"' in doc


@pytest.mark.browser
def test_report_and_dashboard_print_alike_in_chromium(store_path: Path,
                                                     report_file: Path) -> None:
    from tests.test_web_browser import browser_page

    props = ("background-color", "border-top-color", "border-radius", "padding-left",
             "font-size", "font-family")
    script = """([sel, props]) => { const s = getComputedStyle(document.querySelector(sel));
                 return props.map(p => s.getPropertyValue(p)); }"""
    with browser_page(str(store_path)) as (url, page):
        page.emulate_media(media="print")
        page.goto(url + "/costs?from=2026-02-10&to=2026-02-13")
        page.wait_for_selector("#by-model")
        assert not page.locator("header nav").is_visible()  # the print layout
        assert not page.locator(".downloads").first.is_visible()
        dash = {sel: page.evaluate(script, [sel, props])
                for sel in (".card", ".card .v", "th", "h2", "body")}
        page.goto(report_file.as_uri())
        rep = {sel: page.evaluate(script, [sel, props])
               for sel in (".card", ".card .v", "th", "h2", "body")}
        assert rep == dash
        assert page.locator(".card").count() > 20
        assert page.locator("svg.chart").count() == 4
