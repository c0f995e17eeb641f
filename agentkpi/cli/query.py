"""``agentkpi query``: ad-hoc KPI queries (a thin layer over :func:`agentkpi.query`)."""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime
from typing import Any

import click
import pyarrow as pa

from agentkpi.cli import main
from agentkpi.cli._common import (
    console,
    engine_options,
    handle_errors,
    out,
    print_table,
    store_option,
    write_out,
)
from agentkpi.errors import UsageError
from agentkpi.sinks.jsonl import finite
from agentkpi.store import open_store

QUERY_FORMATS = ("table", "csv", "json", "jsonl", "parquet", "xlsx")


def parse_where(items: tuple[str, ...]) -> dict[str, Any]:
    """``("tool=bash", "tool=read", "user=u1")`` -> ``{"tool": ["bash", "read"], "user": "u1"}``.

    ``KEY=`` (empty value) selects NULL.
    """
    where: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"bad --where {item!r}; use DIMENSION=VALUE, e.g. tool=bash")
        v: str | None = value if value != "" else None
        if key in where:
            prev = where[key]
            where[key] = [*(prev if isinstance(prev, list) else [prev]), v]
        else:
            where[key] = v
    return where


def _cell(value: Any, grain: str | None) -> Any:
    if isinstance(value, datetime):
        if grain == "hour":
            return value.replace(tzinfo=None).isoformat(timespec="hours")  # 0001, not 1
        if grain in ("day", "week", "month"):
            return value.date().isoformat()
        return value.isoformat()
    return value


def _rows(table: pa.Table, grain: str | None) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    return [{k: (_cell(v, grain) if k == "bucket" else
                 v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
            for r in rows]


def _labelled(table: pa.Table, grain: str | None) -> pa.Table:
    """``bucket`` as its label (``2026-05-20T14`` / ``2026-05-20``) for text formats."""
    if "bucket" not in table.column_names:
        return table
    labels = pa.array([_cell(v, grain) for v in table.column("bucket").to_pylist()],
                      pa.string())
    return table.set_column(table.column_names.index("bucket"), "bucket", labels)


def emit(table: pa.Table, fmt: str, out_path: str | None, grain: str | None,
         sheet: str = "query") -> None:
    """Write a result table in ``fmt`` to ``out_path`` or stdout (one place for all commands)."""
    from agentkpi.sinks import export as sinks

    if fmt in ("parquet", "xlsx") and not out_path:
        raise UsageError(f"--format {fmt} writes a file; add --out PATH")
    if fmt == "table":
        if out_path:
            raise UsageError("--format table prints to the terminal; use csv, json, parquet or "
                             "xlsx with --out")
        print_table(_rows(table, grain), list(table.column_names))
        return
    if fmt == "json":
        text = json.dumps(finite(_rows(table, grain)), indent=2, default=str, allow_nan=False)
        if out_path:
            write_out(out_path, text + "\n")
        else:
            sys.stdout.write(text + "\n")
        return
    if fmt in ("csv", "jsonl"):
        table = _labelled(table, grain)
    if out_path:
        opts = {"sheet": sheet} if fmt == "xlsx" else {}
        n = sinks.write(table, out_path, fmt, **opts)
        console.print(f"wrote {n} row(s) to {out_path}")
        return
    buf = io.BytesIO()
    sinks.write(table, buf, fmt)
    sys.stdout.write(buf.getvalue().decode("utf-8"))


@main.command("query")
@click.option("--metrics", "-m", default="events,sessions,users", show_default=True,
              metavar="A,B,...", help="KPI names (agentkpi query --list).")
@click.option("--grain", "-g", default="day", show_default=True,
              type=click.Choice(["hour", "day", "week", "month", "none"]),
              help="Time bucket; none = one row over the whole range.")
@click.option("--by", "-b", default="", metavar="DIM,...",
              help="Group by: session, user, tool, agent, model, project, machine, "
                   "mcp_server, event_type, error_type, data.KEY.")
@click.option("--where", "-w", multiple=True, metavar="DIM=VALUE",
              help="Filter (repeatable; the same DIM twice = either value; DIM= is NULL).")
@click.option("--from", "start", metavar="A", help="Range start (inclusive): YYYY-MM-DD[THH] "
              "in --tz [default: first event].")
@click.option("--to", "end", metavar="B", help="Range end (exclusive) [default: last event].")
@click.option("--tz", default="UTC", show_default=True, help="Time zone of --from/--to and "
              "of the buckets (IANA name).")
@click.option("--week-start", default="monday", show_default=True,
              type=click.Choice(["monday", "tuesday", "wednesday", "thursday", "friday",
                                 "saturday", "sunday"]))
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Keep the N largest values of each dimension, fold the rest into (other).")
@click.option("--compare", type=click.Choice(["previous"]), default=None,
              help="Add the previous period's value and the change per metric.")
@click.option("--format", "fmt", type=click.Choice(QUERY_FORMATS), default="table",
              show_default=True)
@click.option("--out", "out_path", metavar="PATH", help="Write to a file instead of stdout.")
@click.option("--list", "list_names", is_flag=True, help="List metrics and dimensions, then exit.")
@store_option
@engine_options
@handle_errors
def query_cmd(metrics: str, grain: str, by: str, where: tuple[str, ...], start: str | None,
              end: str | None, tz: str, week_start: str, top: int | None,
              compare: str | None, fmt: str, out_path: str | None, list_names: bool,
              store: str | None, engine: str, dsn: str | None) -> None:
    """Compute KPIs by time bucket and dimension (seed 001's aggregations and more).

    \b
    agentkpi query --metrics events,sessions,errors --grain day
    agentkpi query -m events,duration_ms_p95,success_rate --grain none --by tool
    agentkpi query -m sessions,users --grain week --tz Europe/Paris --compare previous
    agentkpi query -m tokens_total --grain none --by user --top 10 --format csv
    """
    from agentkpi.kpis.catalogue import BY_NAME
    from agentkpi.queries import describe_dimensions, metric_names, query

    if list_names:
        print_table([{"metric": n, "unit": BY_NAME[n].unit, "description":
                      BY_NAME[n].description} for n in metric_names()],
                    ["metric", "unit", "description"], title="metrics")
        print_table(describe_dimensions(), ["name", "level", "description"],
                    title="dimensions")
        return
    g = None if grain == "none" else grain
    st = open_store(engine, dsn, store, read_only=True)
    try:
        table = query(metrics=metrics, grain=g, by=by, where=parse_where(where), start=start,
                      end=end, tz=tz, week_start=week_start, top=top, compare=compare,
                      store=st)
    finally:
        st.close()
    if fmt == "table" and table.num_rows == 0:
        out.print("no events in the range; widen --from/--to or check --store")
        return
    emit(table, fmt, out_path, g)
