"""Webhooks are bounded, failures are reported, secrets are not printed.

Real local HTTP servers on 127.0.0.1: one accepts connections and never answers,
one trickles its answer one byte at a time forever, one answers 500. No timing is
asserted: a webhook call that is not bounded never returns and the test times out.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentkpi.alerts import post_webhook
from agentkpi.cli import main
from tests.conftest import ev, write_session

SECRET = "T000/B000/s3cr3t-path"


def _serve(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def loop() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conns.append(conn)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield f"http://hook:pa55word@127.0.0.1:{srv.getsockname()[1]}/services/{SECRET}"
    stop.set()
    t.join()
    srv.close()
    for c in conns:
        c.close()


def _silent(conn: socket.socket) -> None:
    conn.recv(65536)  # read the request, never answer


def _trickle(conn: socket.socket) -> None:
    conn.recv(65536)
    try:
        for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100000:
            conn.send(bytes([b]))
            time.sleep(0.05)
    except OSError:
        return  # the client hung up: what a bounded client does


def _error(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n"
                 b"Connection: close\r\n\r\noops")
    conn.close()


@pytest.fixture
def silent() -> Iterator[str]:
    yield from _serve(_silent)


@pytest.fixture
def trickle() -> Iterator[str]:
    yield from _serve(_trickle)


@pytest.fixture
def failing() -> Iterator[str]:
    yield from _serve(_error)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("server", ["silent", "trickle", "failing"])
def test_webhook_call_is_bounded_and_names_no_secret(server: str,
                                                     request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(server)
    with pytest.raises(OSError) as err:
        post_webhook(url, {"text": "hi"}, retries=2, timeout=1.0, backoff=0.1, deadline=4.0)
    text = str(err.value)
    assert SECRET not in text and "pa55word" not in text
    assert "http://hook:***@127.0.0.1:" in text
    if server == "failing":
        assert "HTTP 500" in text and "after 3 attempt(s)" in text
    else:
        assert "no complete answer within" in text


def _alerting_store(tmp_path: Path, url: str, now: datetime | None = None) -> Path:
    """Spend in the last completed hour (what the alert check after a rollup looks at).

    The check reads the wall clock when it runs, which may be an hour later than this
    set-up if the test crosses an hour boundary: so the current hour has spend too (at its
    first second, never in the future), and whichever of the two hours is the last
    completed one when the check runs, the rule fires (within the tests' timeouts).
    """
    data = tmp_path / "data"
    now = now or datetime.now(UTC)
    for i, at in enumerate((now - timedelta(hours=1), now)):
        hour = at.strftime("%Y-%m-%dT%H")
        write_session(data, f"s{i}", f"{hour}:00:00Z", [
            ev(f"{hour}:00:00Z", "llm_call", model="m", cost_usd=50.0)])
    (tmp_path / "alerts.toml").write_text(
        f'[notify]\nstdout = false\nwebhook = "{url}"\nwebhook_timeout = 1.0\n'
        'webhook_deadline = 3.0\n\n[[rule]]\nname = "spend"\nmetric = "cost_usd"\n'
        'op = ">"\nthreshold = 1.0\ngrain = "hour"\n')
    return data


@pytest.mark.parametrize("later", [timedelta(0), timedelta(milliseconds=100),
                                   timedelta(minutes=30), timedelta(hours=1)])
def test_the_alerting_data_fires_whichever_hour_the_check_runs_in(tmp_path: Path,
                                                                  later: timedelta) -> None:
    """The set-up above at 10:59:59.9; the check at any time up to an hour later (the test
    crossed an hour boundary): the spend rule fires (it did not once the hour turned)."""
    setup = datetime(2026, 5, 20, 10, 59, 59, 900000, tzinfo=UTC)
    data = _alerting_store(tmp_path, "http://127.0.0.1:9/unused", now=setup)
    store = tmp_path / "agentkpi.duckdb"
    runner = CliRunner()
    r = runner.invoke(main, ["ingest", "-q", "--source", str(data), "--store", str(store)])
    assert r.exit_code == 0, r.output
    at = setup + later
    r = runner.invoke(main, ["alerts", "check", "--dry-run", "--format", "json", "--store",
                             str(store), "--now", at.isoformat()],
                      env={"AGENTKPI_ALERT_RULES": ""})
    assert r.exit_code == 0, r.output
    (firing,) = json.loads(r.output)["firing"]
    last = (at - timedelta(hours=1)).strftime("%Y-%m-%dT%H:00:00")
    assert (firing["rule"], firing["buckets"], firing["value"]) == ("spend", [last], 50.0)


@pytest.mark.timeout(180)
def test_rollup_reports_a_failed_webhook_without_its_secret(tmp_path: Path,
                                                             silent: str) -> None:
    data = _alerting_store(tmp_path, silent)
    store = tmp_path / "agentkpi.duckdb"  # alerts.toml sits next to the store
    args = ["rollup", "--quiet", "--source", str(data), "--target", str(tmp_path / "out"),
            "--store", str(store)]
    r = CliRunner().invoke(main, args, env={"AGENTKPI_ALERT_RULES": ""})
    assert r.exit_code == 0, r.output  # a failed notification never fails the rollup
    assert "alert notification failed" in r.stderr
    assert "no complete answer within" in r.stderr
    assert SECRET not in r.output and "pa55word" not in r.output
    state = tmp_path / "alerts.toml.state.json"
    assert not state.exists() or "spend" not in state.read_text()  # retried next run


def _closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(180)
def test_each_notification_and_failure_is_printed_once(tmp_path: Path) -> None:
    """Real processes: the firing line once (the stdout channel), the failed webhook once
    (stderr) - the library's log record of either is not printed a second time."""
    url = f"http://127.0.0.1:{_closed_port()}/services/{SECRET}"
    data = _alerting_store(tmp_path, url)
    rules = tmp_path / "alerts.toml"
    rules.write_text(rules.read_text().replace("stdout = false", "stdout = true")
                     .replace("webhook_timeout", "webhook_retries = 0\nwebhook_timeout"))
    store = str(tmp_path / "agentkpi.duckdb")
    env = {**os.environ, "AGENTKPI_ALERT_RULES": ""}
    agentkpi = [sys.executable, "-m", "agentkpi"]
    r = subprocess.run([*agentkpi, "rollup", "--quiet", "--source", str(data), "--target",
                        str(tmp_path / "out"), "--store", store],
                       capture_output=True, text=True, env=env, timeout=150)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("spend FIRING") == 1 and "FIRING" not in r.stderr, r.stderr
    assert r.stderr.count("alert notification failed") == 1, r.stderr
    assert r.stderr.count("Connection refused") == 1, r.stderr
    assert SECRET not in r.stdout + r.stderr
    r = subprocess.run([*agentkpi, "alerts", "check", "--store", store],
                       capture_output=True, text=True, env=env, timeout=150)
    assert r.returncode == 2, r.stderr  # the notification failed again
    assert (r.stdout + r.stderr).count("spend FIRING") == 1, (r.stdout, r.stderr)
    assert r.stderr.count("Connection refused") == 1, r.stderr
