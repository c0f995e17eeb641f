"""Stored extremes never crash a read, and every JSON output is strict JSON.

A real store holds the largest values the canonical model accepts: an event in
the last hour of year 9999, two token counts of 2**63 - 1 in one hour (their sum
does not fit a BIGINT), two costs of 1e308 (their sum is infinite as a double).
Every reading entry point - CLI query/report/plot/export and every dashboard
API - must answer, and whatever JSON it writes must parse with a strict reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from agentkpi.cli import main
from agentkpi.ingestion import ingest
from agentkpi.store import DuckDBStore
from tests.conftest import ev, write_session

BIG = 2**63 - 1


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-strict JSON literal {name} in output")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def extreme_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("extremes")
    data = root / "data"
    write_session(data, "big", "2026-05-20T10:00:00Z", [
        ev("2026-05-20T10:01:00Z", "llm_call", model="m", prompt_tokens=BIG, cost_usd=1e308),
        ev("2026-05-20T10:02:00Z", "llm_call", model="m", prompt_tokens=BIG, cost_usd=1e308),
        # one unpriced call whose own counts sum past a BIGINT
        ev("2026-05-20T10:03:00Z", "llm_call", model="no-such-model", prompt_tokens=BIG,
           completion_tokens=BIG),
        ev("9999-12-31T23:30:00Z", "tool_call", tool="bash"),
        ev("9999-12-31T23:30:00-01:00", "tool_call", tool="bash"),  # past 9999: not a time
    ])
    write_session(data, "old", "0001-01-01T00:00:00+05:00", [
        ev("0001-01-01T00:30:00Z", "llm_call", model="m", prompt_tokens=1)])
    store = root / "s.duckdb"
    with DuckDBStore(store) as st:
        r = ingest(str(data), st, workers=1)
    assert r.quality.skipped == []
    assert r.events == 6 and r.quality.counts["ts_unparseable"] == 2  # event + session start
    return store


@pytest.mark.parametrize("args", [
    ["query"], ["query", "--format", "json"], ["query", "--grain", "hour", "--format", "json",
                                               "-m", "cost_usd,tokens_total,tokens_prompt"],
    ["query", "--grain", "none", "--format", "json", "-m", "cost_usd,tokens_total"],
    ["report", "--format", "json"], ["report", "--format", "markdown"],
    ["report", "--format", "html", "--out", "{tmp}/r.html"],
    ["plot", "--out", "{tmp}/plots"],
    ["export", "kpis", "--out", "{tmp}/k.csv"], ["export", "events", "--out", "{tmp}/e.jsonl",
                                                "--format", "jsonl"],
    ["status"],
])
def test_every_read_command_survives_stored_extremes(extreme_store: Path, tmp_path: Path,
                                                     args: list[str]) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args] + ["--store", str(extreme_store)]
    r = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    if "json" in args and "--out" not in args:
        rows = _strict(r.stdout)
        if args[0] == "query" and "tokens_total" in args[-1]:
            assert max(r["tokens_total"] for r in rows) == BIG  # saturated, not wrapped
            assert max(r["cost_usd"] for r in rows) == 1.7976931348623157e308  # not Infinity


def test_every_dashboard_api_survives_stored_extremes(extreme_store: Path) -> None:
    from agentkpi.web.app import create_app

    app = create_app(store=str(extreme_store))
    with TestClient(app, base_url="http://localhost") as client:
        for url in ["/api/overview", "/api/overview?grain=day", "/api/overview?grain=month",
                    "/api/overview?from=2026-05-20&to=2026-05-21", "/api/meta",
                    "/api/breakdown/model", "/api/breakdown/tool", "/api/sessions",
                    "/api/session/big", "/", "/sessions", "/breakdown/model"]:
            r = client.get(url)
            assert r.status_code == 200, (url, r.text[:300])
            if url.startswith("/api/"):
                _strict(r.text)
