"""``agentkpi alerts check`` through the command: output, state, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentkpi.cli import main
from tests.reference_seed import hourly_row, read_rows
from tests.test_web_api import dataset_dir, make_store

NOW = "2026-05-20T12"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_store(tmp_path_factory.mktemp("alerts-cli")))


def _rules(tmp_path: Path, threshold: float, notify: str = 'file = "sent.jsonl"') -> Path:
    p = tmp_path / "alerts.toml"
    p.write_text(f"[notify]\nstdout = false\n{notify}\n"
                 f'[[rule]]\nname = "busy"\nmetric = "sessions"\nop = ">"\n'
                 f"threshold = {threshold}\nfor = 2\nseverity = \"warning\"\n")
    return p


def check(store: str, rules: Path, *extra: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["alerts", "check", "--rules", str(rules), "--store", store,
                                  "--now", NOW, *extra])
    return r.exit_code, r.output


def _sessions(hour: int) -> int:
    lo = datetime(2026, 5, 20, hour, tzinfo=UTC)
    row = hourly_row(read_rows(dataset_dir()), lo, lo + timedelta(hours=1))
    assert row is not None
    return int(row["sessions"])


def test_dry_run_json_reports_the_firing_value_and_sends_nothing(store: str,
                                                                  tmp_path: Path) -> None:
    rules = _rules(tmp_path, 0)
    code, out = check(store, rules, "--dry-run", "--format", "json")
    assert code == 0, out
    d = json.loads(out)
    assert d["evaluated"] == 1 and d["errors"] == []
    (firing,) = d["firing"]
    # the last two completed hours before 12:00; the value is the last one's sessions
    assert firing["buckets"] == ["2026-05-20T10:00:00", "2026-05-20T11:00:00"]
    assert firing["value"] == _sessions(11) and firing["rule"] == "busy"
    assert [m["status"] for m in d["sent"]] == ["firing"]  # what would be sent
    assert not (tmp_path / "sent.jsonl").exists()  # ... but nothing was
    assert not list(tmp_path.glob("*.state.json"))  # and no state kept


def test_notifies_once_then_stays_quiet_and_exit_code_tells_firing(store: str,
                                                                    tmp_path: Path) -> None:
    rules = _rules(tmp_path, 0)
    code, out = check(store, rules)
    assert code == 0 and "1 firing, 1 notification(s) sent" in out
    assert f"FIRING warning: busy sessions={_sessions(11)} > 0" in out
    (line,) = (tmp_path / "sent.jsonl").read_text().splitlines()
    assert json.loads(line)["status"] == "firing" and json.loads(line)["value"] == _sessions(11)
    code, out = check(store, rules, "--exit-code")
    assert code == 1 and "1 firing, 0 notification(s) sent" in out
    assert len((tmp_path / "sent.jsonl").read_text().splitlines()) == 1  # not sent again


def test_exit_code_is_0_when_nothing_fires(store: str, tmp_path: Path) -> None:
    rules = _rules(tmp_path, _sessions(10) if _sessions(10) > _sessions(11) else _sessions(11))
    code, out = check(store, rules, "--exit-code")
    assert code == 0 and "0 firing" in out, out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failed_notifier_exits_2_as_a_real_process(store: str, tmp_path: Path) -> None:
    rules = _rules(tmp_path, 0, f'webhook = "http://127.0.0.1:{_closed_port()}/hook"\n'
                                "webhook_retries = 0")
    cmd = [sys.executable, "-m", "agentkpi", "alerts", "check", "--rules", str(rules),
           "--store", store, "--now", NOW, "--exit-code"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)  # a delivery failure wins over firing (1)
    assert "notification failed" in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.glob("*.state.json")) or "busy" not in (
        next(tmp_path.glob("*.state.json")).read_text())  # not recorded: retried next run
    r = subprocess.run(cmd[:-1] + ["--format", "json"], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 2 and json.loads(r.stdout)["errors"]


def test_no_rules_file_is_a_one_line_usage_error(store: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTKPI_ALERT_RULES", raising=False)
    r = CliRunner().invoke(main, ["alerts", "check", "--store", store])
    assert r.exit_code == 1 and "no alert rules" in r.output
    assert len(r.output.strip().splitlines()) == 1
