"""``agentkpi report``: a summary of a time range as markdown, HTML, CSV or JSON."""

from __future__ import annotations

import sys

import click

from agentkpi.cli import main
from agentkpi.cli._common import (
    console,
    engine_options,
    handle_errors,
    progress_bar,
    store_option,
    write_out,
)
from agentkpi.store import open_store


@main.command("report")
@click.option("--from", "start", metavar="A", help="Range start (inclusive), YYYY-MM-DD[THH] "
              "[default: first event].")
@click.option("--to", "end", metavar="B", help="Range end (exclusive) [default: last event].")
@click.option("--tz", default="UTC", show_default=True, help="Time zone of the range and "
              "of the time series.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "html", "csv", "json"]),
              default="markdown", show_default=True)
@click.option("--out", "out_path", metavar="PATH", help="Write to a file instead of stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@store_option
@engine_options
@handle_errors
def report_cmd(start: str | None, end: str | None, tz: str, fmt: str, out_path: str | None,
               quiet: bool, store: str | None, engine: str, dsn: str | None) -> None:
    """Summarise [--from, --to): sessions, tokens and cost, performance percentiles,
    tools, agents, errors by type and a time series.

    \b
    agentkpi report --from 2026-05-01 --to 2026-06-01
    agentkpi report --format html --out report.html
    """
    from agentkpi.reports import build_report, render

    st = open_store(engine, dsn, store, read_only=True)
    try:
        with progress_bar(not quiet) as progress:  # on stderr, only on a terminal
            report = build_report(st, start, end, tz=tz, progress=progress)
    finally:
        st.close()
    text = render(report, fmt)
    if out_path:
        write_out(out_path, text)
        if not quiet:
            console.print(f"report -> {out_path}")
    else:
        sys.stdout.write(text)
