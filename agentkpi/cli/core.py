"""Core commands: rollup, ingest, kpis, quickstart, generate, status, config."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from agentkpi import config
from agentkpi.cli import main
from agentkpi.cli._common import (
    console,
    engine_options,
    handle_errors,
    out,
    print_table,
    progress_bar,
    store_option,
)
from agentkpi.ingestion import IngestResult, ingest
from agentkpi.kpis import CATALOGUE
from agentkpi.kpis.catalogue import QUERY_KPIS
from agentkpi.rollups import RollupResult, plan_buckets, rollup
from agentkpi.startup import keep_out
from agentkpi.store import open_store

SUMMARY_COLUMNS = ["bucket", "sessions", "users", "llm_calls", "cost_usd", "tool_success_rate",
                   "failure_rate", "time_to_first_action_s_p50"]


def _print_ingest(r: IngestResult) -> None:
    q = r.quality
    console.print(f"ingest  {r.format}: {r.files_read} file(s) read, {r.files_unchanged} "
                  f"unchanged, {r.sessions} session row(s), {r.events} event(s)")
    if q.audit:
        audit = ", ".join(f"{k}={n:,}" for k, n in sorted(q.audit.items()))
        console.print(f"audit: {audit}", markup=False)
    if q.counts:
        issues = ", ".join(f"{k}={n}" for k, n in sorted(q.counts.items()))
        console.print(f"data issues: {issues}")
    if r.still_skipped:
        console.print(f"[yellow]{len(r.still_skipped)} unchanged file(s) still skipped from "
                      "earlier runs, e.g.:[/]")
        s = r.still_skipped[0]
        console.print(f"  {s['path']}: {s['reason']}", markup=False)
    if q.skipped:
        console.print(f"[yellow]{len(q.skipped)} file(s) skipped:[/]")
        for s in q.skipped[:20]:
            console.print(f"  {s['path']}: {s['reason']}", markup=False)
        if len(q.skipped) > 20:
            console.print(f"  ... and {len(q.skipped) - 20} more (see the report)")


def _print_rollup(r: RollupResult) -> None:
    if r.ingest:
        _print_ingest(r.ingest)
    sessions = sum(int(row.get("sessions", 0)) for row in r.rows.values())
    console.print(
        f"rollup  {len(r.buckets)} bucket(s): {len(r.written)} file(s) written, "
        f"{len(r.unchanged)} unchanged, {r.empty} empty (no file); "
        f"{sessions} session-bucket(s)" + (f"; report {r.report_path}" if r.report_path else ""))


@main.command("rollup")
@click.option("--source", metavar="SRC", help="Raw data to ingest first: directory or fsspec URL "
              "(file://, memory://, hf://datasets/OWNER/NAME). Omit to use the store as is.")
@click.option("--target", metavar="DST", required=True,
              help="Where the CSVs go: directory or fsspec URL (hf:// = one commit per run).")
@click.option("--hours", type=click.IntRange(min=1), default=None,
              help="Trailing completed UTC hours to roll up [default: 1, the cron path].")
@click.option("--datetime", "at", metavar="YYYY-MM-DDTHH", help="One UTC hour.")
@click.option("--from", "start", metavar="A", help="Range start (inclusive), YYYY-MM-DD[THH].")
@click.option("--to", "end", metavar="B", help="Range end (exclusive), YYYY-MM-DD[THH].")
@click.option("--daily-backfill", "daily", metavar="YYYY-MM-DD",
              help="One whole UTC day into daily/YYYY-MM-DD.csv.")
@click.option("--format", "fmt", metavar="NAME", help="Source format (default: auto-detect).")
@click.option("--strict", is_flag=True, help="Exit 2 if the input had any data error.")
@click.option("--machine", metavar="NAME", help="Machine the data comes from, stored on its "
              "sessions (the `machine` dimension) [default: this host's name].")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel parser processes [default: CPUs].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.option("--rescan", is_flag=True, help="List every source file, not only the folders "
              "that changed (automatic once a day).")
@store_option
@engine_options
@handle_errors
def rollup_cmd(source: str | None, target: str, hours: int | None, at: str | None,
               start: str | None, end: str | None, daily: str | None, fmt: str | None,
               strict: bool, machine: str | None, workers: int | None, quiet: bool,
               rescan: bool,
               store: str | None, engine: str, dsn: str | None) -> None:
    """Roll KPIs up into DST/hourly/YYYY-MM-DD/HH.csv (seed-compatible).

    \b
    agentkpi rollup --source SRC --target DST                  # last completed hour
    agentkpi rollup --source SRC --target DST --hours 24       # trailing 24 hours
    agentkpi rollup --source SRC --target DST --datetime 2026-04-24T14
    agentkpi rollup --source SRC --target DST --from 2026-04-24T00 --to 2026-04-26T00
    agentkpi rollup --source SRC --target DST --daily-backfill 2026-04-24

    Ingest is incremental: unchanged files are not read again. An hour with
    no session writes no file; re-running writes byte-identical files.

    Alert rules, when configured (docs/alerts.md), are then checked as of the
    wall clock - the last completed hour(s) - whatever hours this run wrote:
    a backfill sends no alert for its hours. `agentkpi alerts check --now
    HOUR --dry-run` evaluates the hours before HOUR instead.
    """
    keep_out("pandas")  # the program did (agentkpi.startup); callers of main() in-process
    plan_buckets(hours=hours, at=at, start=start, end=end, daily=daily)  # usage errors first
    # No --source: the store is only read; a mistyped --store fails instead of
    # creating an empty store and "succeeding" with no CSVs.
    st = open_store(engine, dsn, store, read_only=source is None)
    try:
        with progress_bar(not quiet) as progress:
            r = rollup(target, source=source, store=st, hours=hours, at=at, start=start,
                       end=end, daily=daily, fmt=fmt, strict=strict, workers=workers,
                       progress=progress, machine=machine, rescan=rescan)
    finally:
        st.close()
    if not quiet:
        _print_rollup(r)
    _after_rollup_hook(r, store, engine, dsn)


def _after_rollup_hook(r: RollupResult, store: str | None, engine: str, dsn: str | None) -> None:
    """Evaluate alert rules after a rollup when a rules file is configured."""
    from agentkpi.alerts import after_rollup

    after_rollup(store=store, engine=engine, dsn=dsn, echo=click.echo)


@main.command("ingest")
@click.option("--source", metavar="SRC", help="Directory or fsspec URL [default with "
              "--format claude-code|codex|gemini-cli: that agent's own folders on this "
              "machine, e.g. ~/.claude].")
@click.option("--format", "fmt", metavar="NAME", help="Source format (default: auto-detect); "
              "e.g. claude-code, codex, gemini-cli, otel.")
@click.option("--machine", metavar="NAME", help="Machine the data comes from, stored on its "
              "sessions (the `machine` dimension) [default: this host's name].")
@click.option("--workers", type=click.IntRange(min=1), default=None)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary (errors still "
              "go to stderr).")
@click.option("--rescan", is_flag=True, help="List every source file, not only the folders "
              "that changed (automatic once a day).")
@store_option
@engine_options
@handle_errors
def ingest_cmd(source: str | None, fmt: str | None, machine: str | None,
               workers: int | None, quiet: bool, rescan: bool, store: str | None,
               engine: str, dsn: str | None) -> None:
    """Bring the store up to date with SRC (only new or changed files are read).

    \b
    agentkpi ingest --source DIR                   # format auto-detected
    agentkpi ingest --format claude-code           # ~/.claude, ~/.config/claude
    agentkpi ingest --format claude-code --machine laptop --source ~/sync/laptop/.claude
    """
    if source is None:
        roots = _default_roots(fmt)
    else:
        roots = [source]
    keep_out("pandas")  # the program did (agentkpi.startup); callers of main() in-process
    st = open_store(engine, dsn, store)
    try:
        for root in roots:
            if source is None and not quiet:
                console.print(f"reading {root}", markup=False)
            with progress_bar(not quiet) as progress:
                r = ingest(root, st, fmt=fmt, workers=workers, progress=progress,
                           machine=machine, rescan=rescan)
            if not quiet:
                _print_ingest(r)
    finally:
        st.close()


def _default_roots(fmt: str | None) -> list[str]:
    from agentkpi import sources
    from agentkpi.errors import UsageError

    if fmt is None:
        raise UsageError("give --source DIR, or --format NAME to read that agent's default "
                         "folders (claude-code, codex, gemini-cli)")
    src = sources.by_name(fmt)
    finder = getattr(src, "default_roots", None)
    if finder is None:
        raise UsageError(f"format {src.NAME} has no default folder; give --source DIR")
    candidates = finder()
    roots = [r for r in candidates if Path(r).is_dir()]
    if not roots:
        raise UsageError(f"no {src.NAME} data found in {', '.join(candidates)}; give "
                         "--source DIR")
    return roots


@main.command("reprice")
@click.option("--from", "start", metavar="A", help="First UTC hour or day to reprice "
              "(inclusive), YYYY-MM-DD[THH] [default: the earliest event].")
@click.option("--to", "end", metavar="B", help="End (exclusive), YYYY-MM-DD[THH] "
              "[default: after the latest event].")
@store_option
@engine_options
@handle_errors
def reprice_cmd(start: str | None, end: str | None, store: str | None, engine: str,
                dsn: str | None) -> None:
    """Recompute stored llm_call costs with the installed price table.

    Costs computed from the table ('priced') are computed again, calls of models the
    table did not know get another chance; costs the source carried are kept.
    """
    from agentkpi.pricing import reprice
    from agentkpi.times import parse_hour

    first = parse_hour(start, what="--from") if start else None
    last = parse_hour(end, what="--to") if end else None
    st = open_store(engine, dsn, store)
    try:
        lo, hi = st.time_range()
        a = first or lo
        b = last or (hi + timedelta(hours=1) if hi else None)
        if a is None or b is None:
            console.print("reprice: the store has no timed events; nothing to do")
            return
        r = reprice(st, a, b)
    finally:
        st.close()
    console.print(f"reprice [{a:%Y-%m-%dT%H}, {b:%Y-%m-%dT%H}) with {r['price_version']}: "
                  f"{r['calls']:,} call(s) without a source cost, {r['changed']:,} cost(s) "
                  f"changed, {r['unpriced_tokens']:,} token(s) still unpriced")


@main.command("kpis")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
              default="table", show_default=True)
def kpis_cmd(fmt: str) -> None:
    """Print the KPI catalogue: name, unit, aggregation and meaning.

    The hourly set is the rollup CSV's columns, in order; the query set adds the
    statistics `agentkpi query` can also compute (seed 001's aggregations).
    """
    rows = [{"name": k.name, "set": kpi_set, "unit": k.unit, "aggregation": k.agg,
             "additive": k.additive, "description": k.description}
            for kpi_set, kpis in (("hourly", CATALOGUE), ("query", QUERY_KPIS)) for k in kpis]
    if fmt == "json":
        out.print_json(json.dumps(rows))
    elif fmt == "markdown":
        out.print("| KPI | set | unit | aggregation | description |\n|---|---|---|---|---|",
                  markup=False)
        for r in rows:
            out.print(f"| `{r['name']}` | {r['set']} | {r['unit']} | {r['aggregation']} | "
                      f"{r['description']} |", markup=False)
    else:
        print_table(rows, ["name", "set", "unit", "aggregation", "description"],
                    title=f"{len(rows)} KPIs")


@main.command("generate")
@click.option("--out", "out_dir", required=True, metavar="DIR",
              help="Dataset root (sessions/YYYY-MM-DD/<id>.jsonl goes under it).")
@click.option("--sessions", "n", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--start", metavar="YYYY-MM-DDTHH", help="First hour [default: 48 h before now].")
@click.option("--hours", type=click.IntRange(min=1), default=48, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dirty", is_flag=True, help="Inject realistic bad input (for testing).")
@handle_errors
def generate_cmd(out_dir: str, n: int, start: str | None, hours: int, seed: int,
                 dirty: bool) -> None:
    """Write a deterministic, realistic demo session dataset."""
    from agentkpi.generate import generate_sessions
    from agentkpi.times import parse_hour

    now = _hour_now()
    # Default: sessions start in the `hours` before the last DEMO_MARGIN and end by now.
    begin = (parse_hour(start, what="--start") if start
             else now - timedelta(hours=hours) - DEMO_MARGIN)
    res = generate_sessions(out_dir, n, begin.replace(tzinfo=UTC), hours=hours,
                            seed=seed, dirty=dirty, workers=2,
                            not_after=None if start else now.replace(tzinfo=UTC))
    console.print(f"generated {res.n_sessions} sessions, {res.n_events} events in "
                  f"{res.n_files} files under {out_dir}")


#: Demo sessions stop starting this long before now: an ordinary session lasts well under
#: it, so no demo event lies in the future (the few multi-day ones are cut to fit).
DEMO_MARGIN = timedelta(hours=3)


def _hour_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)


@main.command("quickstart")
@click.option("--dir", "workdir", default="agentkpi-demo", show_default=True, metavar="DIR",
              help="Where the demo data, store and CSVs go.")
@click.option("--sessions", "n", type=click.IntRange(min=1), default=3000, show_default=True)
@handle_errors
def quickstart_cmd(workdir: str, n: int) -> None:
    """Generate a demo dataset, ingest it, roll up every hour, show the last 24 h.

    Everything lands under DIR: data/ (raw sessions), agentkpi.duckdb (the
    store) and kpis/ (hourly CSVs).
    """
    from agentkpi.generate import generate_sessions

    root = Path(workdir)
    data, target, store_path = root / "data", root / "kpis", root / "agentkpi.duckdb"
    end = _hour_now()
    begin = end - timedelta(hours=48)
    if not (data / "sessions").exists():
        console.print(f"generating {n} demo sessions over 48 hours into {data} ...")
        generate_sessions(str(data), n, (begin - DEMO_MARGIN).replace(tzinfo=UTC), hours=48,
                          seed=0, workers=2, not_after=end.replace(tzinfo=UTC))
    with open_store("duckdb", path=store_path) as st, progress_bar() as progress:
        r = rollup(str(target), source=str(data), store=st, progress=progress,
                   start=begin.strftime("%Y-%m-%dT%H"), end=end.strftime("%Y-%m-%dT%H"))
    _print_rollup(r)
    last = [dict(bucket=k, **v) for k, v in sorted(r.rows.items())][-24:]
    print_table([{c: row.get(c) for c in SUMMARY_COLUMNS} for row in last], SUMMARY_COLUMNS,
                title="Last 24 hours")
    # Every suggested command names the demo store (it is not the default store), quoted
    # for the shell, so each runs exactly as printed.
    at = shlex.quote(str(store_path))
    console.print(f"CSVs in {target}/hourly/, store {store_path}.\n"
                  f"Next: agentkpi kpis | agentkpi query --store {at} | "
                  f"agentkpi report --store {at} | agentkpi serve --store {at}",
                  markup=False)


@main.command("status")
@store_option
@engine_options
@handle_errors
def status_cmd(store: str | None, engine: str, dsn: str | None) -> None:
    """Show what the store holds: rows, time range, schema version."""
    st = open_store(engine, dsn, store, read_only=True)
    try:
        counts = st.counts()
        lo, hi = st.time_range()
        info: dict[str, Any] = {"store": st.path, **counts,
                                "first_event": lo, "last_event": hi,
                                "schema_version": st.schema_version()}
    finally:
        st.close()
    print_table([{"key": k, "value": v} for k, v in info.items()], ["key", "value"])


@main.command("config")
def config_cmd() -> None:
    """Show every setting, its env var, current value and meaning."""
    print_table(config.resolved(), ["name", "env", "value", "origin", "doc"])
