"""The dashboard's JSON API (the contract every page renders), in-process."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agentkpi.generate import generate_sessions
from agentkpi.ingestion import ingest
from agentkpi.store import DuckDBStore
from agentkpi.web import create_app

from .reference_seed import hourly_row, read_rows

N_SESSIONS = 300
START = datetime(2026, 5, 20, tzinfo=UTC)


_BUILT: dict[tuple[int, int, int], Path] = {}


def dataset_dir(n: int = N_SESSIONS, hours: int = 48, seed: int = 0) -> Path:
    """The generated dataset behind :func:`make_store` (built by it)."""
    return _BUILT[(n, hours, seed)].parent / "data"


def _utc(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC)


def make_store(root: Path, n: int = N_SESSIONS, hours: int = 48, seed: int = 0) -> Path:
    """root/store.duckdb holding a generated dataset of ``n`` sessions over ``hours``.

    Each (n, hours, seed) is generated and ingested once per test run; callers get
    their own copy of the file, so they may write to it.
    """
    key = (n, hours, seed)
    if key not in _BUILT or not _BUILT[key].exists():
        built = Path(tempfile.mkdtemp(prefix="agentkpi-web-"))
        generate_sessions(str(built / "data"), n, START, hours=hours, seed=seed, workers=1)
        with DuckDBStore(built / "store.duckdb") as st:
            ingest(str(built / "data"), st, workers=1)
        _BUILT[key] = built / "store.duckdb"
    path = root / "store.duckdb"
    shutil.copyfile(_BUILT[key], path)
    return path


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("web"))


@pytest.fixture()
def client(store_path: Path) -> TestClient:
    return TestClient(create_app(str(store_path), poll=10))


def test_overview_default_range_covers_the_data_with_hourly_series(client: TestClient) -> None:
    d = client.get("/api/overview").json()
    assert d["page"] == "overview" and d["grain"] == "hour" and d["stale"] is False
    assert d["from"] <= d["data_range"]["first_event"] and d["to"] > d["data_range"]["last_event"]
    assert len(d["series"]) >= 48
    buckets = [r["bucket"] for r in d["series"]]
    assert buckets == sorted(buckets) and len(set(buckets)) == len(buckets)
    assert d["totals"]["sessions"] == N_SESSIONS
    # every chart's KPIs are in each series row and described
    for chart in d["charts"]:
        for k in chart["kpis"]:
            assert k in d["series"][0] and d["kpis"][k]["unit"]
    assert sum(r["sessions"] for r in d["series"]) >= N_SESSIONS
    # the numbers themselves: the independent reference over the same range
    want = hourly_row(read_rows(dataset_dir()), _utc(d["from"]), _utc(d["to"]))
    assert want is not None and d["totals"] == {k: want[k] for k in d["kpis"]}


def test_overview_range_and_grain_change_the_series(client: TestClient) -> None:
    d = client.get("/api/overview?from=2026-05-20T06&to=2026-05-20T12").json()
    assert [r["bucket"][11:13] for r in d["series"]] == ["06", "07", "08", "09", "10", "11"]
    day = client.get("/api/overview?from=2026-05-20&to=2026-05-22&grain=day").json()
    assert [r["bucket"] for r in day["series"]] == ["2026-05-20T00:00:00", "2026-05-21T00:00:00"]
    rows = read_rows(dataset_dir())
    for point in day["series"]:  # each day's bucket is that day's reference row
        lo = _utc(point["bucket"])
        want = hourly_row(rows, lo, lo + timedelta(days=1))
        assert want is not None and {k: point[k] for k in day["kpis"]} == {
            k: want[k] for k in day["kpis"]}


def test_breakdown_rows_match_the_filtered_overview(client: TestClient) -> None:
    for dim in ("tool", "model", "user", "agent", "project"):
        b = client.get(f"/api/breakdown/{dim}").json()
        assert b["dim"] == dim and b["columns"][0] == dim and b["rows"], dim
        top = b["rows"][0]
        sort = b["sort"]
        assert [r[sort] for r in b["rows"]] == sorted((r[sort] for r in b["rows"]), reverse=True)
        o = client.get("/api/overview", params={dim: top[dim]}).json()
        assert o["filters"] == {dim: top[dim]}
        assert o["totals"]["sessions"] == top["sessions"], dim
    tools = client.get("/api/breakdown/tool?sort=tool&desc=0").json()
    names = [r["tool"] for r in tools["rows"]]
    assert names == sorted(names) and "" not in names


def test_sessions_list_and_one_session_in_order(client: TestClient) -> None:
    user = client.get("/api/breakdown/user").json()["rows"][0]["user"]
    s = client.get("/api/sessions", params={"user": user}).json()
    assert s["rows"] and all(r["user"] == user for r in s["rows"])
    sid = s["rows"][0]["session_id"]
    one = client.get(f"/api/session/{sid}").json()
    assert one["session"]["session_id"] == sid and one["events"]
    ts = [e["ts"] for e in one["events"] if e["ts"]]
    assert ts == sorted(ts)
    assert client.get("/api/session/no-such-session").status_code == 404


def test_bad_requests_say_what_is_wrong(client: TestClient) -> None:
    r = client.get("/api/overview?grain=fortnight")
    assert r.status_code == 400 and "grain" in r.json()["error"]
    r = client.get("/api/overview?from=yesterday")
    assert r.status_code == 400 and "YYYY-MM-DD" in r.json()["error"]
    r = client.get("/api/breakdown/colour")
    assert r.status_code == 400 and "tool" in r.json()["error"]
    r = client.get("/api/overview?from=2026-05-21&to=2026-05-20")
    assert r.status_code == 400
    assert client.get("/breakdown/colour").status_code == 404


def test_pages_are_shells_naming_their_json_twin(client: TestClient) -> None:
    for url, api in (("/", "/api/overview"), ("/breakdown/tool", "/api/breakdown/tool"),
                     ("/sessions", "/api/sessions"), ("/session/abc", "/api/session/abc")):
        r = client.get(url)
        assert r.status_code == 200 and f'data-api="{api}"' in r.text
        assert "http://" not in r.text and "https://" not in r.text  # offline: no CDN
    for asset in ("app.js", "chart.js", "style.css"):
        r = client.get(f"/static/{asset}")
        assert r.status_code == 200 and len(r.text) > 500
    assert client.get("/api/meta").json()["counts"]["sessions"] == N_SESSIONS


def test_missing_store_is_reported_clearly(tmp_path: Path) -> None:
    c = TestClient(create_app(str(tmp_path / "none.duckdb")))
    r = c.get("/api/overview")
    assert r.status_code == 404 and "agentkpi ingest" in r.json()["error"]


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a condition, not a clock: poll until it holds (pytest-timeout is the guard)."""
    while not condition():
        time.sleep(0.02)


HOLD_LOCK = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("CREATE TABLE IF NOT EXISTS _touch (x INT)")
    con.execute("INSERT INTO _touch VALUES (1)")
    print("locked", flush=True)
    sys.stdin.readline()
""")


def test_writer_lock_serves_last_good_response_as_stale_then_recovers(tmp_path: Path) -> None:
    path = make_store(tmp_path, n=40, hours=4)
    c = TestClient(create_app(str(path), background=False))
    first = c.get("/api/overview").json()
    assert first["stale"] is False and first["cached"] is False
    assert c.get("/api/overview").json()["cached"] is True  # unchanged store: not reopened
    writer = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
        busy = c.get("/api/overview").json()
        assert busy["stale"] is True and "lock" in busy["error"].lower()
        assert busy["series"] == first["series"]
        never = c.get("/api/breakdown/tool")  # no earlier answer to fall back on
        assert never.status_code == 503 and "busy" in never.json()["error"]
    finally:
        assert writer.stdin is not None
        writer.stdin.write("\n")
        writer.stdin.flush()
        writer.wait(10)
    again = c.get("/api/overview").json()
    assert again["stale"] is False and again["cached"] is False


def test_ingest_while_serving_shows_new_data(tmp_path: Path) -> None:
    path = make_store(tmp_path, n=40, hours=4)
    c = TestClient(create_app(str(path), background=False))
    before = c.get("/api/overview?from=2026-05-20&to=2026-05-21").json()["totals"]["sessions"]
    more = tmp_path / "more"
    generate_sessions(str(more), 30, START, hours=4, seed=7, workers=1)
    r = subprocess.run([sys.executable, "-m", "agentkpi", "ingest", "--source", str(more),
                        "--store", str(path), "-q", "--workers", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    after = c.get("/api/overview?from=2026-05-20&to=2026-05-21").json()
    assert after["cached"] is False and after["totals"]["sessions"] > before


def test_changed_store_answers_at_once_then_refreshes_in_background(tmp_path: Path) -> None:
    path = make_store(tmp_path, n=40, hours=4)
    app = create_app(str(path))
    with TestClient(app) as c:  # lifespan: warms the default overview and breakdowns
        until(lambda: not app.state.dashboard._pending, "the warm-up finishes")
        r = c.get("/api/overview").json()
        assert r["cached"] is True and r["stale"] is False  # computed by the warm-up
        more = tmp_path / "more"
        generate_sessions(str(more), 30, START, hours=4, seed=7, workers=1)
        w = subprocess.run([sys.executable, "-m", "agentkpi", "ingest", "--source", str(more),
                            "--store", str(path), "-q", "--workers", "1"],
                           capture_output=True, text=True, timeout=120)
        assert w.returncode == 0, w.stderr
        stale = c.get("/api/overview").json()
        assert stale["stale"] is True and stale["refreshing"] is True
        assert stale["totals"] == r["totals"]
        until(lambda: not c.get("/api/overview").json()["stale"], "the refresh lands")
        fresh = c.get("/api/overview").json()
        assert fresh["stale"] is False
        assert fresh["totals"]["sessions"] > r["totals"]["sessions"]
