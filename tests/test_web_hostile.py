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
