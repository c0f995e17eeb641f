"""``agentkpi export``: stream events, sessions or hourly KPI rows to a file."""

from __future__ import annotations

import click

from agentkpi.cli import main
from agentkpi.cli._common import (
    console,
    engine_options,
    handle_errors,
    progress_bar,
    store_option,
)
from agentkpi.store import open_store


@main.command("export")
@click.argument("what", type=click.Choice(["events", "sessions", "kpis"]))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet", "xlsx"]),
              default=None, help="Output format [default: from the --out suffix].")
@click.option("--out", "out_path", required=True, metavar="PATH", help="File to write.")
@click.option("--from", "start", metavar="A", help="Range start (inclusive), YYYY-MM-DD[THH].")
@click.option("--to", "end", metavar="B", help="Range end (exclusive), YYYY-MM-DD[THH].")
@click.option("--tz", default="UTC", show_default=True, help="Time zone of --from/--to.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@store_option
@engine_options
@handle_errors
def export_cmd(what: str, fmt: str | None, out_path: str, start: str | None, end: str | None,
               tz: str, quiet: bool, store: str | None, engine: str, dsn: str | None) -> None:
    """Export WHAT (events | sessions | kpis) of [--from, --to) to --out.

    \b
    agentkpi export events --format parquet --out events.parquet
    agentkpi export sessions --out sessions.csv --from 2026-05-01 --to 2026-06-01
    agentkpi export kpis --format xlsx --out kpis.xlsx

    Rows stream from the store, so memory stays flat. Spreadsheet formats (csv,
    xlsx) neutralise cells that would run as formulas. Schemas: docs/exports.md.
    """
    from agentkpi.sinks.export import export
    from agentkpi.times import parse_range

    lo, hi = parse_range(start, end, tz, ("--from", "--to"))
    st = open_store(engine, dsn, store, read_only=True)
    try:
        with progress_bar(not quiet) as progress:  # on stderr, only on a terminal
            r = export(st, what, out_path, fmt, lo, hi, progress=progress)
    finally:
        st.close()
    if not quiet:
        console.print(f"export  {r.rows} {what} row(s) -> {r.path} ({r.format}, "
                      f"{r.bytes / 1e6:.1f} MB)")
