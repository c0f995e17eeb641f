"""``agentkpi alerts``: check alert rules against the store."""

from __future__ import annotations

import json
import sys

import click

from agentkpi.cli import main
from agentkpi.cli._common import console, engine_options, handle_errors, out, store_option
from agentkpi.sinks.jsonl import finite


@main.group("alerts")
def alerts_group() -> None:
    """Alert rules on KPI rollups (TOML rules; see docs/alerts.md)."""


@alerts_group.command("check")
@click.option("--rules", "rules", metavar="FILE", envvar="AGENTKPI_ALERT_RULES",
              help="TOML rules file [env AGENTKPI_ALERT_RULES; default alerts.toml next to "
                   "the store].")
@click.option("--now", metavar="TIME", help="Evaluate as if it were TIME (UTC; YYYY-MM-DDTHH "
              "or ISO) [default: now]. Buckets ending after it are incomplete.")
@click.option("--dry-run", is_flag=True, help="Evaluate and print; send nothing, keep state.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--exit-code", is_flag=True, help="Exit 1 when any rule is firing.")
@store_option
@engine_options
@handle_errors
def check_cmd(rules: str | None, now: str | None, dry_run: bool, fmt: str, exit_code: bool,
              store: str | None, engine: str, dsn: str | None) -> None:
    """Evaluate every rule; notify rules that start firing or resolve (once each)."""
    from agentkpi.alerts import check, find_rules_file
    from agentkpi.errors import UsageError
    from agentkpi.times import parse_time
    from agentkpi.views import open_read_only

    at = parse_time(now, "UTC", "--now")
    path = rules or find_rules_file(store)
    if path is None:
        raise UsageError("no alert rules: pass --rules FILE, set AGENTKPI_ALERT_RULES or put "
                         "alerts.toml next to the store (see docs/alerts.md)")
    st = open_read_only(store, engine, dsn)
    try:
        res = check(path, st, at, dry_run=dry_run, echo=click.echo)
    finally:
        st.close()
    if fmt == "json":
        out.print_json(json.dumps(finite(res.to_dict()), default=str, allow_nan=False))
    else:
        firing = res.firing
        console.print(f"alerts: {len(res.findings)} rule/group(s) evaluated, {len(firing)} "
                      f"firing, {len(res.sent)} notification(s) "
                      + ("would be sent (dry run)" if dry_run else "sent"))
        for f in firing:
            by = f" [{f.rule.by}={f.group}]" if f.rule.by else ""
            console.print(f"  FIRING {f.rule.severity}: {f.rule.name}{by} {f.rule.metric}="
                          f"{f.value} {f.rule.op} {f.rule.threshold:g}", markup=False)
        for e in res.errors:
            console.print(f"[red]notification failed:[/] {e}")
    if res.errors:
        sys.exit(2)
    if exit_code and res.firing:
        sys.exit(1)
