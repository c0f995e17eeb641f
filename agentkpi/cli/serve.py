"""``agentkpi serve``: the local dashboard."""

from __future__ import annotations

import click

from agentkpi.cli import main
from agentkpi.cli._common import console, engine_options, handle_errors, store_option


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind (the default serves this machine only).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--poll", type=click.FloatRange(min=1), default=10.0, show_default=True,
              help="Seconds between page refreshes of the data.")
@store_option
@engine_options
@handle_errors
def serve_cmd(host: str, port: int, poll: float, store: str | None, engine: str,
              dsn: str | None) -> None:
    """Serve the dashboard: overview, breakdowns, sessions; JSON under /api/.

    The store is opened read-only per request, so `agentkpi ingest` and
    `agentkpi rollup` keep writing while the dashboard runs.
    """
    from agentkpi.web import serve

    console.print(f"agentkpi dashboard on http://{host}:{port}/  (JSON: /api/overview)")
    serve(store=store, host=host, port=port, engine=engine, dsn=dsn, poll=poll)
