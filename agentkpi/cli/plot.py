"""``agentkpi plot``: PNGs of the main KPI series."""

from __future__ import annotations

import click

from agentkpi.cli import main
from agentkpi.cli._common import console, engine_options, handle_errors, store_option


@main.command("plot")
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Directory for the PNGs.")
@click.option("--from", "start", metavar="A", help="Range start (inclusive), YYYY-MM-DD[THH] "
              "[default: a span ending at the last event].")
@click.option("--to", "end", metavar="B", help="Range end (exclusive), YYYY-MM-DD[THH].")
@click.option("--grain", type=click.Choice(["hour", "day", "week", "month"]), default="hour",
              show_default=True)
@click.option("--tz", default="UTC", show_default=True, help="Time zone of --from/--to.")
@store_option
@engine_options
@handle_errors
def plot_cmd(out_dir: str, start: str | None, end: str | None, grain: str, tz: str,
             store: str | None, engine: str, dsn: str | None) -> None:
    """Write one PNG per KPI chart and overview.png into DIR.

    \b
    agentkpi plot --out plots/ --from 2026-05-20 --to 2026-05-22
    agentkpi plot --out plots/ --grain day
    """
    from agentkpi.plots import plot_store
    from agentkpi.store import open_store
    from agentkpi.times import parse_range

    lo, hi = parse_range(start, end, tz, ("--from", "--to"))
    st = open_store(engine, dsn, store, read_only=True)
    try:
        paths = plot_store(st, out_dir, lo, hi, grain=grain)
    finally:
        st.close()
    for p in paths:
        console.print(f"wrote {p}")
