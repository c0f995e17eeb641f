"""Alert rules: evaluation on synthetic KPI series, de-duplication, resolution, delivery."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agentkpi import alerts
from agentkpi.alerts import Notify, Rule, evaluate_series, load_rules, process
from agentkpi.cli import main
from agentkpi.errors import UsageError
from agentkpi.store import DuckDBStore
from tests.conftest import ev, write_session
from tests.test_web_api import make_store

DOCS = Path(__file__).resolve().parents[1] / "docs" / "alerts.md"
H = [f"2026-05-20T{h:02d}:00:00" for h in range(6)]


def rows(metric: str, values: list[float | None], by: str | None = None,
         group: str = "g") -> list[dict[str, Any]]:
    return [{"bucket": b, metric: v, **({by: group} if by else {})}
            for b, v in zip(H, values, strict=False) if v is not None]


def test_rule_fires_only_after_for_consecutive_buckets() -> None:
    rule = Rule("cost", "cost_usd", ">", 5.0, for_=3)
    series = rows("cost_usd", [9, 9, 1, 9, 9, 9])
    assert not evaluate_series(rule, series, H[1:4])[0].firing  # 9, 1, 9
    f = evaluate_series(rule, series, H[3:6])[0]
    assert f.firing and f.values == [9, 9, 9] and f.group == ""


def test_every_operator() -> None:
    for op, yes, no in ((">", 2, 1), (">=", 1, 0), ("<", 0, 1), ("<=", 1, 2), ("==", 1, 2),
                        ("!=", 2, 1)):
        rule = Rule("r", "sessions", op, 1.0)
        assert evaluate_series(rule, rows("sessions", [yes]), H[:1])[0].firing, op
        assert not evaluate_series(rule, rows("sessions", [no]), H[:1])[0].firing, op


def test_empty_bucket_is_zero_for_counts_and_no_data_for_rates() -> None:
    silence = Rule("quiet", "sessions", "<", 1.0)
    assert evaluate_series(silence, [], H[:1])[0].firing
    rate = Rule("rate", "tool_success_rate", "<", 0.8)
    f = evaluate_series(rate, [], H[:1])[0]
    assert not f.firing and f.values == [None]


def test_by_rule_fires_per_group_and_previous_groups_are_evaluated() -> None:
    rule = Rule("tools", "tool_success_rate", "<", 0.8, by="tool")
    series = rows("tool_success_rate", [0.5], "tool", "bash") + rows(
        "tool_success_rate", [0.95], "tool", "edit")
    found = {f.group: f.firing for f in evaluate_series(rule, series, H[:1], ["gone"])}
    assert found == {"bash": True, "edit": False, "gone": False}


def test_fires_once_deduplicates_and_resolves_once(tmp_path: Path) -> None:
    notify = Notify(stdout=False, file=str(tmp_path / "n.jsonl"),
                    state=str(tmp_path / "state.json"))
    rule = Rule("cost", "cost_usd", ">", 5.0, for_=2, severity="critical")
    sent = []
    for values, window in (([1, 1], H[:2]), ([9, 9], H[:2]), ([9, 9, 9], H[1:3]),
                           ([9, 9, 9, 2], H[2:4]), ([9, 9, 9, 2, 1], H[3:5])):
        res = process(evaluate_series(rule, rows("cost_usd", values), window), notify)
        sent.append([m["status"] for m in res.sent])
    assert sent == [[], ["firing"], [], ["resolved"], []]
    lines = [json.loads(x) for x in (tmp_path / "n.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == ["firing", "resolved"]
    assert lines[0]["value"] == 9 and lines[0]["severity"] == "critical"
    assert "FIRING" in lines[0]["text"] and "cost_usd" in lines[0]["text"]
    assert json.loads((tmp_path / "state.json").read_text()) == {}


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Hook.fail_first > 0:
            _Hook.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def webhook() -> Iterator[str]:
    _Hook.received = []
    _Hook.fail_first = 0
    srv = HTTPServer(("127.0.0.1", 0), _Hook)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook"
    srv.shutdown()
    srv.server_close()


def test_webhook_is_received_after_retries(webhook: str, tmp_path: Path) -> None:
    _Hook.fail_first = 2
    notify = Notify(stdout=False, webhook=webhook, webhook_retries=3, backoff=0.01,
                    state=str(tmp_path / "s.json"))
    rule = Rule("fail", "failure_rate", ">", 0.1, by="model")
    res = process(evaluate_series(rule, rows("failure_rate", [0.5], "model", "m1"), H[:1]),
                  notify)
    assert res.errors == [] and len(_Hook.received) == 1
    got = _Hook.received[0]
    assert got["status"] == "firing" and got["group"] == {"model": "m1"}
    assert got["text"].startswith("[WARNING] fail [model=m1] FIRING")


def test_failed_delivery_is_not_recorded_and_retried_next_run(webhook: str,
                                                              tmp_path: Path) -> None:
    _Hook.fail_first = 10
    notify = Notify(stdout=False, webhook=webhook, webhook_retries=1, backoff=0.01,
                    state=str(tmp_path / "s.json"))
    rule = Rule("cost", "cost_usd", ">", 5.0)
    findings = evaluate_series(rule, rows("cost_usd", [9]), H[:1])
    res = process(findings, notify)
    assert res.sent == [] and "503" in res.errors[0]
    _Hook.fail_first = 0
    res = process(findings, notify)
    assert [m["status"] for m in res.sent] == ["firing"] and len(_Hook.received) == 1


def test_rules_file_errors_name_the_rule_and_the_fix(tmp_path: Path) -> None:
    p = tmp_path / "r.toml"
    for body, msg in (
        ('[[rule]]\nname="a"\nmetric="nope"\nop=">"\nthreshold=1', "agentkpi kpis"),
        ('[[rule]]\nname="a"\nmetric="sessions"\nop="=>"\nthreshold=1', "not one of"),
        ('[[rule]]\nname="a"\nmetric="sessions"\nop=">"', "missing threshold"),
        ('[[rule]]\nname="a"\nmetric="sessions"\nop=">"\nthreshold=1\nby="colour"', "by"),
        ('[[rule]]\nname="a"\nmetric="tool_calls_by_name_json"\nop=">"\nthreshold=1',
         "non-numeric"),
        ("[notify]\nwebhok='x'", "unknown [notify]"),
        ("[[rule]\n", "not valid TOML"),
    ):
        p.write_text(body)
        with pytest.raises(UsageError, match=re.escape(msg)):
            load_rules(p)
    with pytest.raises(UsageError, match="no alert rules file"):
        load_rules(tmp_path / "missing.toml")


def _docs_rules(tmp_path: Path) -> Path:
    block = re.search(r"```toml\n(.*?)```", DOCS.read_text(), re.S)
    assert block is not None
    p = tmp_path / "alerts.toml"
    p.write_text(block.group(1))
    return p


def test_documented_example_rules_load(tmp_path: Path) -> None:
    rules, notify = load_rules(_docs_rules(tmp_path))
    assert {r.name for r in rules} >= {"cost-per-hour", "tool-success-rate", "failure-rate",
                                       "slow-first-action"}
    assert notify.file == str(tmp_path / "alerts.jsonl")
    assert notify.state == str(tmp_path / "alerts.toml.state.json")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("alerts"))


def test_check_on_a_store_fires_then_stays_quiet(store_path: Path, tmp_path: Path) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text('[notify]\nstdout = false\nfile = "out.jsonl"\n'
                     '[[rule]]\nname="busy"\nmetric="sessions"\nop=">"\nthreshold=0\nfor=3\n'
                     '[[rule]]\nname="tools"\nmetric="tool_calls_total"\nop=">="\n'
                     'threshold=0\nby="tool"\ngrain="day"\n')
    with DuckDBStore(store_path, read_only=True) as st:
        first = alerts.check(rules, st, now=datetime(2026, 5, 20, 12))
        again = alerts.check(rules, st, now=datetime(2026, 5, 20, 12, 30))
        later = alerts.check(rules, st, now=datetime(2026, 6, 1))
    busy = [f for f in first.findings if f.rule.name == "busy"][0]
    assert busy.firing and busy.buckets == ["2026-05-20T09:00:00", "2026-05-20T10:00:00",
                                            "2026-05-20T11:00:00"]
    assert [m["rule"] for m in first.sent] == ["busy"]  # no completed day yet for "tools"
    assert again.sent == []
    assert [(m["rule"], m["status"]) for m in later.sent][0] == ("busy", "resolved")
    assert "(none)" not in {f.group for f in later.findings if f.rule.name == "tools"}


def test_rollup_runs_rules_and_never_fails_because_of_them(store_path: Path,
                                                           tmp_path: Path) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text('[notify]\nstdout = true\nfile = "out.jsonl"\n'
                     '[[rule]]\nname="quiet"\nmetric="sessions"\nop="<"\nthreshold=1\n')
    store = tmp_path / "copy.duckdb"
    store.write_bytes(store_path.read_bytes())
    cmd = [sys.executable, "-m", "agentkpi", "rollup", "--target", str(tmp_path / "out"),
           "--store", str(store), "--datetime", "2026-05-20T10", "-q"]
    env = {**os.environ, "AGENTKPI_ALERT_RULES": str(rules)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    # evaluated against the wall clock: the generated data is in the past, so it is quiet
    assert "quiet FIRING" in r.stdout
    assert json.loads((tmp_path / "out.jsonl").read_text())["rule"] == "quiet"
    rules.write_text("[[rule]\n")  # broken rules file
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "alert check after rollup failed" in r.stderr


def test_after_rollup_without_rules_does_nothing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTKPI_ALERT_RULES", raising=False)
    assert alerts.after_rollup(store=str(tmp_path / "s.duckdb")) is None


def test_the_library_never_prints_the_stdout_channel_is_the_callers(
        store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text('[notify]\nstdout = true\n'
                     '[[rule]]\nname="busy"\nmetric="sessions"\nop=">"\nthreshold=0\n')
    with DuckDBStore(store_path, read_only=True) as st:
        quiet = alerts.check(rules, st, now=datetime(2026, 5, 20, 12), dry_run=False)
        assert [m["rule"] for m in quiet.sent] == ["busy"]
        assert capsys.readouterr().out == ""            # sent, but nothing printed
        lines: list[str] = []
        later = alerts.check(rules, st, now=datetime(2026, 6, 1), echo=lines.append)
    assert [m["status"] for m in later.sent] == ["resolved"]
    assert lines == [later.sent[0]["text"]] and "busy RESOLVED" in lines[0]
    assert capsys.readouterr().out == ""


def test_a_rule_may_group_by_any_registry_dimension(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text('[[rule]]\nname="errs"\nmetric="events"\nop=">"\nthreshold=0\n'
                     'by="event_type"\nwhere={ machine = "laptop" }\n')
    (rule,), _ = load_rules(rules)
    assert rule.by == "event_type" and dict(rule.where) == {"machine": "laptop"}
    rules.write_text('[[rule]]\nname="x"\nmetric="events"\nop=">"\nthreshold=0\nby="colour"\n')
    with pytest.raises(UsageError, match="by 'colour' is not one of session, user, tool"):
        load_rules(rules)


def _spend(data: Path, sid: str, at: datetime) -> None:
    """A session with $50 of model calls at ``at``'s hour, first second (never in the future)."""
    hour = at.strftime("%Y-%m-%dT%H")
    write_session(data, sid, f"{hour}:00:00Z",
                  [ev(f"{hour}:00:00Z", "llm_call", model="m", cost_usd=50.0)])


def test_a_backfill_does_not_alert_for_its_old_hour_the_last_completed_hour_does(
        tmp_path: Path) -> None:
    """Intended (docs/alerts.md, `rollup --help`): the check after a rollup is as of the
    wall clock, whatever hours the run wrote. A backfill of an old hour that breaks the
    rule sends nothing (its CSV shows the breach; `alerts check --now` shows the rule would
    have fired then); the cron run after spend in the last completed hour alerts, once."""
    data, store, sent = tmp_path / "data", tmp_path / "agentkpi.duckdb", tmp_path / "sent.jsonl"
    _spend(data, "old", datetime(2026, 5, 20, 10))
    (tmp_path / "alerts.toml").write_text(  # next to the store
        '[notify]\nstdout = true\nfile = "sent.jsonl"\n\n[[rule]]\nname = "spend"\n'
        'metric = "cost_usd"\nop = ">"\nthreshold = 1.0\ngrain = "hour"\n')
    runner, env = CliRunner(), {"AGENTKPI_ALERT_RULES": ""}
    rollup = ["rollup", "-q", "--workers", "1", "--source", str(data), "--target",
              str(tmp_path / "out"), "--store", str(store)]
    r = runner.invoke(main, [*rollup, "--datetime", "2026-05-20T10"], env=env)
    assert r.exit_code == 0, r.output
    head, row = (tmp_path / "out" / "hourly" / "2026-05-20" / "10.csv").read_text().splitlines()
    assert float(dict(zip(head.split(","), row.split(","), strict=True))["cost_usd"]) == 50.0
    assert "FIRING" not in r.output and not sent.exists()
    state = json.loads((tmp_path / "alerts.toml.state.json").read_text())
    assert state == {}  # evaluated (now: quiet), nothing recorded as firing
    r = runner.invoke(main, ["alerts", "check", "--dry-run", "--format", "json", "--store",
                             str(store), "--now", "2026-05-20T11"], env=env)
    assert r.exit_code == 0, r.output
    assert [(f["rule"], f["buckets"]) for f in json.loads(r.output)["firing"]] == [
        ("spend", ["2026-05-20T10:00:00"])]
    # Spend in the last completed hour, and in the current one in case the hour turns
    # before the check runs: the cron path (no --datetime) alerts for it.
    now = datetime.now(UTC)
    _spend(data, "prev", now - timedelta(hours=1))
    _spend(data, "this", now)
    r = runner.invoke(main, rollup, env=env)
    assert r.exit_code == 0, r.output
    assert r.stdout.count("spend FIRING") == 1, r.output
    (msg,) = [json.loads(line) for line in sent.read_text().splitlines()]
    hours = {(at - timedelta(hours=1)).strftime("%Y-%m-%dT%H:00:00") for at in (now, now +
             timedelta(hours=1))}  # the last completed hour then, or an hour later
    assert msg["status"] == "firing" and msg["buckets"][0] in hours, msg


def test_the_rollup_help_says_a_backfill_does_not_alert() -> None:
    out = " ".join(CliRunner().invoke(main, ["rollup", "--help"]).output.split())
    assert "a backfill sends no alert for its hours" in out, out
