"""One time parser: every time, range and time zone of the CLI, the API and the library.

The library function, each CLI command with a time option (real processes) and each
API route (in-process ASGI over a real DuckDB file) fail the same way on the same
bad input: a one-line usage error (exit 1) or an HTTP 400 with a JSON error.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agentkpi import times
from agentkpi.errors import TimeInputError, UsageError
from agentkpi.web import create_app
from tests.test_web_api import make_store

# ----------------------------------------------------------------------------- the parser

@pytest.mark.parametrize(("value", "tz", "expected"), [
    ("2026-05-20", "UTC", datetime(2026, 5, 20)),
    ("2026-05-20T14", "UTC", datetime(2026, 5, 20, 14)),
    ("2026-05-20 14", "UTC", datetime(2026, 5, 20, 14)),
    ("2026-05-20T14:30:05Z", "UTC", datetime(2026, 5, 20, 14, 30, 5)),
    ("2026-05-20T14:30+02:00", "UTC", datetime(2026, 5, 20, 12, 30)),
    # '+' of a URL query that was not percent-encoded arrives as a space
    ("2026-05-20T14:30 02:00", "UTC", datetime(2026, 5, 20, 12, 30)),
    # naive values are read in tz: Paris is UTC+2 in May, Kolkata UTC+5:30 all year
    ("2026-05-20", "Europe/Paris", datetime(2026, 5, 19, 22)),
    ("2026-05-20T14", "Asia/Kolkata", datetime(2026, 5, 20, 8, 30)),
    # an explicit offset wins over tz
    ("2026-05-20T14:00+00:00", "Europe/Paris", datetime(2026, 5, 20, 14)),
    (date(2026, 1, 15), "Europe/Paris", datetime(2026, 1, 14, 23)),
    (datetime(2026, 5, 20, 3), "America/New_York", datetime(2026, 5, 20, 7)),
    (datetime(2026, 5, 20, 3, tzinfo=timezone(timedelta(hours=-4))), "Asia/Kolkata",
     datetime(2026, 5, 20, 7)),
])
def test_parse_time_reads_every_form_in_the_zone_to_naive_utc(value: object, tz: str,
                                                               expected: datetime) -> None:
    got = times.parse_time(value, tz)  # type: ignore[arg-type]
    assert got == expected and got.tzinfo is None


def test_empty_values_are_none_but_the_zone_is_still_checked() -> None:
    assert times.parse_time(None) is None and times.parse_time("  ", "Europe/Paris") is None
    with pytest.raises(TimeInputError, match="unknown time zone 'Bad/Zone'"):
        times.parse_time(None, "Bad/Zone")


@pytest.mark.parametrize("tz", ["Bad/Zone", "Mars/Olympus", "../etc/passwd", "UTC+2"])
def test_a_bad_zone_is_one_usage_error_type(tz: str) -> None:
    with pytest.raises(TimeInputError, match="unknown time zone") as exc:
        times.zone(tz)
    assert isinstance(exc.value, UsageError) and exc.value.exit_code == 1
    assert "Europe/Paris" in str(exc.value)  # says what to use instead


def test_bad_times_name_the_input_and_the_forms() -> None:
    with pytest.raises(TimeInputError, match=r"cannot read --from 'soon' as a time; use "
                                             r"YYYY-MM-DD, YYYY-MM-DDTHH"):
        times.parse_time("soon", "UTC", "--from")
    with pytest.raises(TimeInputError, match="must be a date, datetime or string, not int"):
        times.parse_time(20260520)  # type: ignore[arg-type]


def test_parse_hour_floors_and_parse_range_is_half_open() -> None:
    assert times.parse_hour("2026-05-20T14:59:59+01:00") == datetime(2026, 5, 20, 13)
    assert times.parse_range("2026-05-20", "2026-05-21", "Europe/Paris") == (
        datetime(2026, 5, 19, 22), datetime(2026, 5, 20, 22))
    assert times.parse_range(None, "2026-05-21") == (None, datetime(2026, 5, 21))
    with pytest.raises(TimeInputError, match=r"empty range: --from 2026-05-21 is not before "
                                             r"--to 2026-05-21; the range is \[--from, --to\)"):
        times.parse_range("2026-05-21", "2026-05-21", "UTC", ("--from", "--to"))
    assert times.local_iso(datetime(2026, 5, 20, 22), "Europe/Paris") == \
        "2026-05-21T00:00:00+02:00"
    assert times.local_iso(datetime(2026, 5, 20, 22), UTC) == "2026-05-20T22:00:00+00:00"


# ----------------------------------------------------------------------------- the CLI

def agentkpi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentkpi", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("times"), n=40, hours=6)


@pytest.mark.parametrize(("args", "message"), [
    (["plot", "--out", "{tmp}/p", "--from", "2026-05-20", "--to", "2026-05-21",
      "--tz", "Bad/Zone"], "unknown time zone 'Bad/Zone'"),
    (["plot", "--out", "{tmp}/p", "--tz", "Bad/Zone"], "unknown time zone 'Bad/Zone'"),
    (["query", "--tz", "Bad/Zone"], "unknown time zone 'Bad/Zone'"),
    (["export", "events", "--out", "{tmp}/e.csv", "--tz", "Bad/Zone"],
     "unknown time zone 'Bad/Zone'"),
    (["report", "--tz", "Bad/Zone"], "unknown time zone 'Bad/Zone'"),
    (["report", "--from", "2026-05-20", "--to", "2026-05-21", "--tz", "Bad/Zone"],
     "unknown time zone 'Bad/Zone'"),
    (["plot", "--out", "{tmp}/p", "--from", "later"], "cannot read --from 'later'"),
    (["export", "events", "--out", "{tmp}/e.csv", "--to", "later"], "cannot read --to 'later'"),
    (["alerts", "check", "--rules", "{tmp}/none.toml", "--now", "later"],
     "cannot read --now 'later'"),
    (["rollup", "--target", "{tmp}/o", "--from", "2026-05-20", "--to", "later"],
     "cannot read 'later' as a time"),
    (["generate", "--out", "{tmp}/g", "--start", "later"], "cannot read --start 'later'"),
])
def test_every_time_option_fails_as_one_line_exit_1(store_file: Path, tmp_path: Path,
                                                    args: list[str], message: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if argv[0] != "generate":
        argv += ["--store", str(store_file)]
    r = agentkpi(*argv)
    assert r.returncode == 1, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists() and not (tmp_path / "e.csv").exists()


# ----------------------------------------------------------------------------- the API

API_ROUTES = ["/api/overview", "/api/breakdown/tool", "/api/sessions", "/api/session/abc",
              "/api/meta"]


@pytest.mark.parametrize("route", API_ROUTES)
@pytest.mark.parametrize("query", ["tz=Bad/Zone", "from=2026-05-20&to=2026-05-21&tz=Bad/Zone"])
def test_every_api_route_answers_a_bad_zone_with_400_json(store_file: Path, route: str,
                                                          query: str) -> None:
    client = TestClient(create_app(str(store_file), background=False))
    r = client.get(f"{route}?{query}")
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert "unknown time zone 'Bad/Zone'" in r.json()["error"]


def test_api_reads_from_to_in_the_zone(store_file: Path) -> None:
    client = TestClient(create_app(str(store_file), background=False))
    d = client.get("/api/overview?from=2026-05-20T02&to=2026-05-20T04&tz=Europe/Paris").json()
    # 02:00 and 03:00 in Paris (UTC+2) are the UTC hours 00 and 01
    assert (d["from"], d["to"]) == ("2026-05-20T00:00:00", "2026-05-20T02:00:00")
    r = client.get("/api/sessions?to=later")
    assert r.status_code == 400 and "cannot read 'later' as a time" in r.json()["error"]
