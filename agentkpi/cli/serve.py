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
    import socket

    from agentkpi.errors import UsageError
    from agentkpi.web import serve

    if engine == "duckdb":  # a mistyped --store is said at once, not on every page
        from pathlib import Path

        from agentkpi.errors import StoreMissingError
        from agentkpi.store.duckdb import default_path

        path = store or default_path()
        if path != ":memory:" and not Path(path).exists():
            raise StoreMissingError(f"no store at {path}; run `agentkpi ingest` or "
                                    "`agentkpi rollup` first, or pass --store PATH")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:  # a busy port is a one-line usage error, not uvicorn's log and exit 3
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}; "
                             "pick another with --port") from None
    console.print(f"agentkpi dashboard on http://{host}:{port}/  (JSON: /api/overview)")
    serve(store=store, host=host, port=port, engine=engine, dsn=dsn, poll=poll)
