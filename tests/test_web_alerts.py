"""The alerts page: rules evaluated now, recorded state, last notifications."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agentkpi import views
from agentkpi.store import DuckDBStore
from agentkpi.web import create_app
from tests.conftest import cli_ingest
from tests.test_web_api import make_store

RULES = """
[notify]
stdout = false
file = "alerts.jsonl"

[[rule]]
name = "silence"
metric = "sessions"
op = "<"
threshold = 1
grain = "hour"

[[rule]]
name = "busy"
metric = "sessions"
op = ">"
threshold = 0
grain = "hour"
severity = "info"
"""


@pytest.fixture()
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = make_store(tmp_path)
    (tmp_path / "alerts.toml").write_text(RULES)
    notes = [{"at": "2026-05-20T10:00:00Z", "status": "firing", "rule": "silence",
              "severity": "warning", "value": 0, "text": "first"},
             {"at": "2026-05-20T11:00:00Z", "status": "resolved", "rule": "silence",
              "severity": "warning", "value": 3, "text": "second"}]
    (tmp_path / "alerts.jsonl").write_text("".join(json.dumps(n) + "\n" for n in notes)
                                           + "not json\n")
    monkeypatch.delenv("AGENTKPI_ALERT_RULES", raising=False)
    return path


def test_rules_are_evaluated_at_a_given_time(store_path: Path) -> None:
    with DuckDBStore(store_path, read_only=True) as st:
        inside = views.alert_states(st, store_path.parent / "alerts.toml",
                                    now=datetime(2026, 5, 20, 12, 30))
        after = views.alert_states(st, store_path.parent / "alerts.toml",
                                   now=datetime(2030, 1, 1))
    state = {(r["rule"], r["state"]) for r in inside["rules"]}
    assert state == {("silence", "ok"), ("busy", "firing")}
    assert {r["rule"]: r["last_bucket"] for r in inside["rules"]} == {
        "silence": "2026-05-20T11:00:00", "busy": "2026-05-20T11:00:00"}
    assert {(r["rule"], r["state"]) for r in after["rules"]} == {("silence", "firing"),
                                                                 ("busy", "ok")}
    # newest first, the unreadable line left out
    assert [n["text"] for n in inside["notifications"]] == ["second", "first"]


def test_alerts_api_and_page(store_path: Path) -> None:
    client = TestClient(create_app(str(store_path), poll=10, background=False))
    d = client.get("/api/alerts").json()
    assert d["rules_file"].endswith("alerts.toml") and len(d["rules"]) == 2
    assert d["firing"] == 1  # now: the store's data is years old, so "silence" fires
    assert client.get("/alerts").status_code == 200


def test_no_rules_file_says_how_to_add_one(tmp_path: Path) -> None:
    with DuckDBStore(make_store(tmp_path), read_only=True) as st:
        d = views.alert_states(st, None)
    assert d["rules"] == [] and "alerts.toml" in d["note"]


@pytest.mark.browser
def test_alerts_page_in_chromium(store_path: Path) -> None:
    from tests.test_web_browser import browser_page

    with browser_page(str(store_path)) as (url, page):
        page.goto(url + "/alerts")
        page.wait_for_selector("#alert-rules")
        assert page.locator("#alert-rules tr.firing").count() == 1
        assert page.locator("#alert-rules tr[data-state=firing] td").first.inner_text() == (
            "silence")
        assert page.locator("#notifications tbody tr").count() == 2


@pytest.mark.browser
def test_alert_rules_show_labels_and_units(tmp_path: Path) -> None:
    """Rules are evaluated now, so this store holds the last day's demo data."""
    from datetime import timedelta

    from agentkpi.generate import generate_sessions
    from agentkpi.kpis.display import format_value
    from tests.test_web_browser import browser_page

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    generate_sessions(tmp_path / "demo", 150, now - timedelta(hours=40), hours=36, seed=4,
                      not_after=now)
    store = tmp_path / "store.duckdb"
    cli_ingest(tmp_path / "demo", "--store", str(store))
    (tmp_path / "alerts.toml").write_text(
        '[notify]\nstdout = false\n\n[[rule]]\nname = "tools"\nmetric = "tool_success_rate"\n'
        'op = "<"\nthreshold = 0.99\nby = "tool"\ngrain = "day"\nseverity = "critical"\n')
    def bash_rule() -> dict:
        d = page.evaluate("fetch('/api/alerts').then(r => r.json())")
        return next(r for r in d["rules"] if r["group"] == "bash")

    with browser_page(str(store)) as (url, page):
        page.goto(url + "/alerts")
        for _ in range(2):  # the page and the API each evaluate the rules at their own now:
            before = bash_rule()  # the day the page shows is the one evaluated before and
            page.reload()         # after it, unless a UTC midnight fell between: then again
            page.wait_for_selector("#alert-rules tbody tr")
            row = page.locator("#alert-rules tbody tr", has_text="bash").first.locator("td")
            cells = row.all_inner_texts()
            bash = bash_rule()
            if before["last_bucket"] == bash["last_bucket"]:
                break
        assert cells[3] == "Tool success rate"  # the label; the name on hover
        assert row.nth(3).get_attribute("title") == "tool_success_rate"
        assert cells[4] == "< 99% for 1 day"
        assert cells[5] == format_value(bash["value"], "ratio")  # e.g. 80%
        assert "T" not in cells[7]  # 2026-05-20 00:00, not ISO
