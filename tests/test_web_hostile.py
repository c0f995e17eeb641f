"""The dashboard under hostile requests.

* DNS rebinding: a request whose ``Host`` is not an allowed name gets 400 (loopback
  names by default, more via ``AGENTKPI_ALLOWED_HOSTS``), before any data is read.
* Malformed parameters are the client's error: 400 with a JSON message, never 500.
* A range too long for the asked grain is drawn at a coarser grain and says so; the
  charts never go empty while the totals show data.
* Session ids with ``? # \\ % ../`` open their session page (real uvicorn + Chromium).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from agentkpi.ingestion import ingest
from agentkpi.store import DuckDBStore
from agentkpi.web import create_app
from tests.test_web_browser import _free_port, _loaded, browser, page  # noqa: F401

HOSTILE_IDS = ["a?b=1#frag", "back\\slash", "100%done", "../../etc/passwd", "x/../y",
               "sp ace+plus", "<b>bold</b>"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-web")
    day = root / "data" / "sessions" / "2026-05-20"
    day.mkdir(parents=True)
    for i, sid in enumerate(HOSTILE_IDS):
        events = [{"timestamp": f"2026-05-20T10:{i:02d}:00Z", "event_type": "tool_call",
                   "data": {"tool": "bash"}},
                  {"timestamp": f"2026-05-20T10:{i:02d}:30Z", "event_type": "tool_output",
                   "data": {"tool": "bash", "success": True}}]
        row = {"session_id": sid, "session_start_time": f"2026-05-20T10:{i:02d}:00Z",
               "user_id": "u1", "model_name": "m1", "events": json.dumps(events)}
        (day / f"s{i}.jsonl").write_text(json.dumps(row) + "\n")
    # one old session: the store spans 26 years (a long range)
    old = root / "data" / "sessions" / "2000-01-01"
    old.mkdir()
    (old / "old.jsonl").write_text(json.dumps({
        "session_id": "old", "session_start_time": "2000-01-01T00:00:00Z",
        "events": json.dumps([{"timestamp": "2000-01-01T00:10:00Z", "event_type": "llm_call",
                               "data": {"model": "m1", "prompt_tokens": 3}}])}) + "\n")
    path = root / "s.duckdb"
    with DuckDBStore(path) as st:
        ingest(str(root / "data"), st, workers=1)
    return path


def _client(store: Path, host: str = "localhost", **kw: Any) -> TestClient:
    return TestClient(create_app(str(store), background=False, **kw),
                      base_url=f"http://{host}")


@pytest.mark.parametrize("host,allowed", [
    ("localhost", True), ("localhost:8000", True), ("127.0.0.1:8000", True),
    ("[::1]:8000", True), ("evil.example", False), ("evil.example:8000", False),
    ("localhost.evil.example", False), ("127.0.0.1.nip.io", False), ("testserver", False),
])
def test_host_header_is_checked_against_dns_rebinding(store: Path, host: str, allowed: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTKPI_ALLOWED_HOSTS")  # the default: loopback names only
    c = _client(store)
    for url in ("/api/overview", "/api/meta", "/", "/api/session/old"):
        r = c.get(url, headers={"Host": host})
        if allowed:
            assert r.status_code == 200, (host, url, r.text[:200])
        else:
            assert r.status_code == 400, (host, url)
            assert "not allowed" in r.json()["error"] and "AGENTKPI_ALLOWED_HOSTS" in r.text
            assert "bash" not in r.text


def test_allowed_hosts_are_configurable(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTKPI_ALLOWED_HOSTS", "kpi.example.com,.corp.example")
    c = _client(store)
    assert c.get("/api/meta", headers={"Host": "kpi.example.com:8000"}).status_code == 200
    assert c.get("/api/meta", headers={"Host": "dash.corp.example"}).status_code == 200
    assert c.get("/api/meta", headers={"Host": "localhost"}).status_code == 400
    assert c.get("/api/meta", headers={"Host": "evil.example"}).status_code == 400


@pytest.mark.parametrize("url", [
    "/api/overview?grain=bogus", "/api/overview?tz=Bad/Zone", "/api/overview?from=2026-99-99",
    "/api/overview?from=2026-05-21&to=2026-05-20", "/api/overview?from=%FF",
    "/api/overview?from=0001-01-01T00:00:00%2B05:00",
    "/api/overview?to=9999-12-31T23:30:00-01:00", "/api/overview?from=1e400",
    "/api/breakdown/bogus", "/api/breakdown/tool?from=yesterday",
    "/api/sessions?from=2026-05-20T99", "/api/sessions?tz=%00",
])
def test_malformed_parameters_are_400_not_500(store: Path, url: str) -> None:
    r = _client(store).get(url)
    assert r.status_code == 400, (url, r.status_code, r.text[:300])
    assert r.json()["error"]


def test_long_range_is_drawn_at_a_coarser_grain_and_says_so(store: Path) -> None:
    c = _client(store)
    r = c.get("/api/overview?from=2000-01-01&to=2026-06-01&grain=hour").json()
    assert r["grain_asked"] == "hour" and r["grain"] == "day"
    assert "shown per day" in r["notice"]
    drawn = sum(row["sessions"] for row in r["series"])
    assert r["totals"]["sessions"] == 8 and drawn >= 8  # the charts hold the data
    # a range that fits keeps the asked grain, without notice
    r = c.get("/api/overview?from=2026-05-20&to=2026-05-21&grain=hour").json()
    assert r["grain"] == "hour" and r["notice"] is None and len(r["series"]) == 24


def test_hostile_session_ids_reach_their_json(store: Path) -> None:
    c = _client(store)
    for sid in HOSTILE_IDS:
        r = c.get(f"/api/session/{quote(sid, safe='')}")
        assert r.status_code == 200, (sid, r.text[:200])
        assert r.json()["session_id"] == sid and len(r.json()["events"]) == 2
        page_html = c.get(f"/session/{quote(sid, safe='')}").text
        assert f'data-api="/api/session/{quote(sid, safe="")}"' in page_html


@pytest.fixture(scope="module")
def server(store: Path) -> Iterator[str]:
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(str(store), poll=30), host="127.0.0.1",
                                        port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    while not srv.started and t.is_alive():  # a condition, not a clock
        time.sleep(0.02)
    assert srv.started
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(5)


@pytest.mark.browser
def test_session_pages_open_from_the_sessions_table(server: str, page: Any) -> None:  # noqa: F811
    page.goto(f"{server}/sessions?from=2026-05-20&to=2026-05-21")
    _loaded(page)
    links = page.eval_on_selector_all("#table a[href^='/session/']",
                                      "els => els.map(e => e.getAttribute('href'))")
    assert len(links) == len(HOSTILE_IDS)
    for href in links:
        page.goto(server + href)
        _loaded(page)
        assert page.get_attribute("#table", "data-rows") == "2", href
        title = page.text_content("#title")
        assert title in {f"Session {sid}" for sid in HOSTILE_IDS}, (href, title)


@pytest.mark.parametrize("query", ["from=0001-01-01&to=2026-06-01", "from=0001-01-01",
                                   "from=0001-01-01&to=0001-01-02&grain=hour",
                                   "from=0001-01-01T05:00&to=0001-01-01T15:00&grain=hour",
                                   "from=0001-01-01&to=9999-12-31&grain=month"])
def test_overview_from_year_1_answers_without_a_previous_period(store: Path, query: str
                                                                ) -> None:
    """The cards compare with the period just before; from year 1 there is none: the page
    answers with the range's numbers and no previous values (it was a 400)."""
    r = _client(store).get(f"/api/overview?{query}")
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["from"].startswith("0001-01-01")
    assert all(v is None for v in body["previous"].values())
    assert all(v is None for v in body["change_pct"].values())
    expected = 0 if "to=0001" in query else 8
    assert body["totals"]["sessions"] == expected
    assert sum(row["sessions"] for row in body["series"]) >= expected
    # where a previous period exists it is compared (0 sessions then)
    later = _client(store).get("/api/overview?from=2000-01-01&to=2000-01-02").json()
    assert later["previous"]["sessions"] == 0 and later["totals"]["sessions"] == 1


def test_query_compare_from_year_1_has_no_previous_period(store: Path) -> None:
    from agentkpi.queries import query

    t = query(metrics=["sessions"], grain=None, start="0001-01-01", end="2026-06-01",
              compare="previous", store=str(store)).to_pylist()
    assert t == [{"sessions": 8, "sessions_previous": None, "sessions_change": None,
                  "sessions_change_pct": None}]


def test_year_1_data_reads_back_with_four_digit_years(tmp_path: Path) -> None:
    """strftime's %Y writes year 1 as "1": every printed time and SQL literal is ISO."""
    import subprocess
    import sys

    day = tmp_path / "data" / "sessions" / "0001-01-01"
    day.mkdir(parents=True)
    (day / "s.jsonl").write_text(json.dumps({
        "session_id": "first", "session_start_time": "0001-01-01T05:00:00Z",
        "events": json.dumps([{"timestamp": "0001-01-01T05:10:00Z", "event_type": "llm_call",
                               "data": {"model": "m1", "prompt_tokens": 3}}])}) + "\n")
    path = tmp_path / "s.duckdb"
    with DuckDBStore(path) as st:
        ingest(str(tmp_path / "data"), st, workers=1)
    body = _client(path).get("/api/overview?from=0001-01-01&to=0001-01-02&grain=hour").json()
    assert body["data_range"]["first_event"] == "0001-01-01T05:10:00"
    assert [r["bucket"] for r in body["series"] if r["sessions"]] == ["0001-01-01T05:00:00"]
    assert body["previous"]["sessions"] is None  # there is no period before year 1
    r = subprocess.run([sys.executable, "-m", "agentkpi", "query", "--store", str(path),
                        "--metrics", "sessions,tokens_total", "--grain", "hour",
                        "--from", "0001-01-01", "--to", "0001-01-02", "--format", "csv"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1:] == ['"0001-01-01T05",1,3']
