"""The costs and sources pages (JSON twins, downloads, Chromium) on real Codex rollouts.

tests/data/realworld/codex holds two real rollouts (provenance in its README): 7 model
calls of gpt-5.3-codex, priced from the price table; 5 re-emitted counters and 2
``info: null`` counters that are not calls; 4 tool calls on the MCP server
``cloud-associates``.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from starlette.testclient import TestClient

from agentkpi import pricing
from agentkpi.sinks import xlsx
from agentkpi.web import create_app

CODEX = Path(__file__).parent / "data" / "realworld" / "codex"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("costs") / "store.duckdb"
    subprocess.run([sys.executable, "-m", "agentkpi", "ingest", "--source", str(CODEX),
                    "--format", "codex", "--store", str(path), "--machine", "laptop", "-q"],
                   check=True, capture_output=True, text=True)
    return path


@pytest.fixture(scope="module")
def client(store_path: Path) -> TestClient:
    return TestClient(create_app(str(store_path), poll=10, background=False))


def _by_hand(store_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(store_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_costs_page_totals_equal_the_events_summed_by_hand(client: TestClient,
                                                           store_path: Path) -> None:
    d = client.get("/api/costs?from=2026-02-20&to=2026-02-27").json()
    hand = _by_hand(store_path, "SELECT model, sum(cost_usd), count(*), sum(cache_read_tokens) "
                                "FROM events WHERE event_type = 'llm_call' GROUP BY model")
    assert [(r["model"], r["llm_calls"]) for r in d["by_model"]] == [(m, n) for m, _, n, _ in hand]
    (model, cost, _, cache_read), = hand
    assert model == "gpt-5.3-codex" and cost > 0
    assert d["by_model"][0]["cost_usd"] == round(cost, 4)  # the catalogue's 4 digits
    days = d["by_model_series"]
    assert sum(sum(r[m] for m in d["models"]) for r in days) == pytest.approx(
        cost, abs=0.00005 * len(days))  # the stacked series add up to the total
    saved = (pricing.cost(model, prompt=cache_read, completion=0)
             - pricing.cost(model, prompt=0, completion=0, cache_read=cache_read))
    assert saved > 0 and d["cache_savings_usd"] == pytest.approx(saved)
    assert d["unpriced"] == []
    assert d["price_versions"] == [{"cost_source": "priced",
                                    "price_version": pricing.PRICE_VERSION, "calls": 7}]
    mcp = {r["mcp_server"]: r["tool_calls_total"] for r in d["by_mcp_server"]}
    hand_mcp = dict(_by_hand(store_path, "SELECT mcp_server, count(*) FROM events WHERE "
                                         "event_type = 'tool_output' AND mcp_server IS NOT NULL "
                                         "GROUP BY 1"))
    assert mcp == hand_mcp and "cloud-associates" in mcp


def test_sources_page_shows_the_import_audit(client: TestClient) -> None:
    d = client.get("/api/sources").json()
    (a,) = d["audit"]
    assert (a["format"], a["machine"]) == ("codex", "laptop")
    c = a["counters"]
    assert (c["files"], c["counters_ignored"], c["counters_without_usage"],
            c["priced_calls"]) == (2, 5, 2, 7)
    assert d["machines"] == [{"machine": "laptop", "sessions": 2}]
    assert [(f["source"], f["status"], f["files"]) for f in d["files"]] == [("codex", "ok", 2)]


def test_every_table_downloads_as_csv_and_xlsx(client: TestClient, tmp_path: Path) -> None:
    d = client.get("/api/costs?from=2026-02-20&to=2026-02-27").json()
    r = client.get("/api/costs?from=2026-02-20&to=2026-02-27&download=csv&table=by_model")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "agentkpi-costs-by_model.csv" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:3] == ["model", "cost_usd", "llm_calls"]
    assert rows[1][:3] == ["gpt-5.3-codex", str(d["by_model"][0]["cost_usd"]), "7"]
    assert len(rows) == 1 + len(d["by_model"])
    r = client.get("/api/sources?download=xlsx&table=audit")
    assert r.status_code == 200
    (tmp_path / "audit.xlsx").write_bytes(r.content)
    sheets = xlsx.read(tmp_path / "audit.xlsx")
    (rows,) = sheets.values()
    assert rows[0][:3] == ("source", "format", "machine") and "counters.files" in rows[0]
    r = client.get("/api/sources?download=xlsx&table=nope")
    assert r.status_code == 400 and "files" in r.json()["error"]
    assert client.get("/api/sources?download=pdf&table=audit").status_code == 400


@pytest.mark.browser
def test_costs_and_sources_pages_render_in_chromium(store_path: Path) -> None:
    from tests.test_web_browser import browser_page

    with browser_page(str(store_path), accept_downloads=True) as (url, page):
        page.goto(url + "/costs?from=2026-02-20&to=2026-02-27")
        page.wait_for_selector("#by-model")
        assert page.locator("#by-model th[data-col=cost_usd]").inner_text() == "Cost"
        assert page.locator("#by-model tbody td").first.inner_text() == "gpt-5.3-codex"
        assert page.locator("path.series[data-series='gpt-5.3-codex']").count() == 1
        assert page.locator(".card[data-kpi=cost_usd] .v").inner_text().startswith("$")
        with page.expect_download() as dl:
            page.click(".downloads[data-table=by_model] a[data-format=csv]")
        assert dl.value.suggested_filename == "agentkpi-costs-by_model.csv"
        header = next(csv.reader(io.StringIO(Path(dl.value.path()).read_text())))
        assert header[:2] == ["model", "cost_usd"]
        page.goto(url + "/sources")
        page.wait_for_selector("#audit")
        assert page.locator("#audit tbody tr").count() == 1
        assert page.locator("#audit th[data-col=counters_ignored]").inner_text() == (
            "Counters ignored")
