"""The dashboard pages in a real headless Chromium against a real uvicorn server.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install -y chromium``; ``.ci/run``
installs it and fails without it); Playwright drives it and never downloads a browser. A missing
browser fails these tests, it never skips them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_web_api import make_store

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.browser]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_app(store: str, poll: float = 1) -> Iterator[str]:
    """A real uvicorn server of the dashboard over ``store`` on a free loopback port."""
    import uvicorn

    from agentkpi.web import create_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(store, poll=poll), host="127.0.0.1",
                                        port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    while not srv.started and t.is_alive():  # wait on the server, not on a clock
        time.sleep(0.02)
    assert srv.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        t.join(5)


def collect_errors(pg: Any) -> list[str]:
    """The page's console errors and uncaught exceptions, gathered as they happen."""
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    return errors


@contextlib.contextmanager
def browser_page(store: str, poll: float = 1, **context: Any) -> Iterator[tuple[str, Any]]:
    """``(url, page)``: :func:`serve_app` over ``store`` and a page of a fresh headless
    Chromium (``context``: options of its browser context). On a clean exit, the page
    must have logged no console error and thrown no uncaught exception."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is absent: apt-get install -y chromium"
    with serve_app(store, poll) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context(**context).new_page()
            errors = collect_errors(page)
            yield url, page
        finally:
            browser.close()
    assert errors == [], errors


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = make_store(tmp_path_factory.mktemp("browser"))
    with serve_app(str(path)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is absent: apt-get install -y chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    pg = ctx.new_page()
    errors = collect_errors(pg)
    yield pg
    assert errors == [], errors
    ctx.close()


def _loaded(pg: Any, at_least: int = 1) -> None:
    pg.wait_for_function(f"Number(document.body.dataset.renders || 0) >= {at_least}",
                         timeout=10000)


def test_overview_renders_every_chart_with_data(server: str, page: Any) -> None:
    page.goto(server + "/")
    _loaded(page)
    boxes = page.locator(".chart-box svg.chart")
    assert boxes.count() == 7
    paths = page.eval_on_selector_all(
        "path.series", "ps => ps.map(p => [p.dataset.series, p.getAttribute('d').length])")
    names = {n for n, _ in paths}
    assert {"sessions", "users", "cost_usd", "tokens_prompt", "cache_hit_ratio",
            "tool_success_rate", "failure_rate", "regenerate_rate",
            "time_to_first_action_s_p95"} <= names
    assert all(length > 20 for _, length in paths)  # a real line, not an empty path
    sessions = page.locator(".card[data-kpi=sessions] .v").inner_text()
    assert sessions not in ("0", "\u2013")
    assert "updated" in page.locator("#status").inner_text()


def test_range_picker_changes_the_data_shown(server: str, page: Any) -> None:
    page.goto(server + "/")
    _loaded(page)
    before = page.get_attribute("path.series[data-series=sessions]", "data-points")
    cost_before = page.locator(".card[data-kpi=cost_usd] .v").inner_text()
    page.fill("#from", "2026-05-20T06:00")
    page.fill("#to", "2026-05-20T12:00")
    page.click("#apply")
    _loaded(page, 2)
    page.wait_for_function(
        "document.querySelector('path.series[data-series=sessions]').dataset.points === '6'")
    assert int(before or 0) >= 48
    assert "from=2026-05-20T06" in page.url and "to=2026-05-20T12" in page.url
    assert page.locator(".card[data-kpi=cost_usd] .v").inner_text() != cost_before
    page.select_option("#grain", "day")
    page.wait_for_function(
        "document.querySelector('path.series[data-series=sessions]').dataset.points === '1'")
    page.select_option("#preset", "all")
    page.wait_for_function(
        "Number(document.querySelector('path.series[data-series=sessions]')"
        ".dataset.points) >= 2")


def test_breakdown_link_filters_the_overview(server: str, page: Any) -> None:
    page.goto(server + "/breakdown/tool")
    _loaded(page)
    assert int(page.get_attribute("#table", "data-rows") or 0) >= 3
    first = page.locator("#table tbody tr").first
    tool = first.locator("a.drill").inner_text()
    sessions = first.locator("td").nth(2).inner_text()
    first.locator("a.drill").click()
    page.wait_for_url(f"**/?tool={tool}*")
    _loaded(page)
    assert page.locator(".filters [data-filter=tool]").inner_text().startswith(f"tool = {tool}")
    assert page.locator(".card[data-kpi=sessions] .v").inner_text() == sessions


def test_breakdown_table_sorts_by_a_clicked_header(server: str, page: Any) -> None:
    page.goto(server + "/breakdown/model")
    _loaded(page)
    page.click("th[data-col=model]")
    names = page.eval_on_selector_all("#table tbody a.drill", "as => as.map(a => a.textContent)")
    assert names == sorted(names) and len(names) >= 2
    page.click("th[data-col=model]")
    names2 = page.eval_on_selector_all("#table tbody a.drill", "as => as.map(a => a.textContent)")
    assert names2 == sorted(names, reverse=True)


def test_session_page_lists_events_in_order(server: str, page: Any) -> None:
    page.goto(server + "/sessions")
    _loaded(page)
    page.locator("#table tbody a.drill").first.click()
    page.wait_for_url("**/session/**")
    _loaded(page)
    ts = page.eval_on_selector_all("#table tbody tr td:nth-child(2)",
                                   "tds => tds.map(t => t.textContent).filter(Boolean)")
    assert len(ts) >= 3 and ts == sorted(ts)


def test_page_polls_its_json_twin(server: str, page: Any) -> None:
    hits: list[str] = []
    page.on("request", lambda r: hits.append(r.url) if "/api/overview" in r.url else None)
    page.goto(server + "/")
    _loaded(page)
    while len(hits) < 3:  # poll=1 s in this server: wait for two more polls, not for a clock
        with page.expect_request(lambda r: "/api/overview" in r.url, timeout=60_000):
            pass
    assert len(hits) >= 3


def test_cards_tables_and_axes_speak_labels_and_units(server: str, page: Any) -> None:
    """People read labels and units; the raw KPI name stays on hover; axes carry dates."""
    from agentkpi.kpis.display import format_kpi, label

    page.goto(server + "/?from=2026-05-20T00&to=2026-05-22T00&tz=America/New_York")
    _loaded(page)
    d = page.evaluate("fetch('/api/overview' + location.search).then(r => r.json())")
    card = page.locator(".card[data-kpi=time_to_first_action_s_p50]")
    assert card.locator(".k").inner_text() == label("time_to_first_action_s_p50")
    assert card.locator(".v").inner_text() == format_kpi(
        "time_to_first_action_s_p50", d["totals"]["time_to_first_action_s_p50"])
    assert card.get_attribute("title").startswith("time_to_first_action_s_p50 ")
    cost = page.locator(".card[data-kpi=cost_usd] .v").inner_text()
    assert cost == format_kpi("cost_usd", d["totals"]["cost_usd"]) and cost.startswith("$")
    # the change against the previous period, from the query layer's compare="previous"
    pct = d["change_pct"]["sessions"]
    delta = page.locator(".card[data-kpi=sessions] .delta").inner_text()
    if pct is None and not d["previous"]["sessions"]:
        assert delta == "no data in the previous period"
    elif pct is None:
        assert delta.startswith("previous period")
    else:
        assert delta.endswith(f"{abs(pct):.1f}% vs previous period")
    # a two-day range: time ticks carry the date, in the chosen zone: from=…T00 is local
    # midnight (04:00 UTC in May), drawn as such, not as 04:00
    ticks = page.eval_on_selector_all(".chart-box svg text.tick",
                                      "ts => ts.map(t => t.textContent)")
    times = [t for t in ticks if t.startswith("May ")]
    assert "May 20, 00:00" in times and "May 20, 04:00" not in times, ticks
    assert all(t.startswith(("May 20", "May 21")) for t in times), times
    legend = page.eval_on_selector_all(".chart-box svg text", "ts => ts.map(t => t.textContent)")
    assert "Sessions" in legend and "sessions" not in legend
    page.goto(server + "/breakdown/model")
    _loaded(page)
    th = page.locator("th[data-col=cost_usd]")
    assert th.inner_text().strip() == "Cost" and th.get_attribute("title").startswith("cost_usd")

