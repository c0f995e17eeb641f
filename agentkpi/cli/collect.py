"""``agentkpi collect``: an OTLP/HTTP endpoint for OpenTelemetry GenAI traces."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from agentkpi.cli import main
from agentkpi.cli._common import console, engine_options, handle_errors, store_option


@main.command("collect")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; anything beyond loopback needs --api-keys.")
@click.option("--port", type=click.IntRange(0, 65535), default=4318, show_default=True,
              help="Port (4318 is OTLP/HTTP's).")
@click.option("--log-dir", "log_dir", metavar="DIR", default="agentkpi-otlp",
              show_default=True,
              help="Event log every accepted request is appended to before the answer.")
@click.option("--api-keys", "api_keys", metavar="FILE",
              help="File of accepted API keys, one per line (clients send "
                   "'Authorization: Bearer KEY').")
@click.option("--max-body-mb", type=click.FloatRange(min=0.001), default=16.0,
              show_default=True, help="Largest request body (decompressed) in MiB.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between store writes.")
@click.option("--trace-window", type=click.FloatRange(min=1), default=300.0,
              show_default=True,
              help="Seconds an unfinished trace is kept in memory to merge later spans.")
@store_option
@engine_options
@handle_errors
def collect_cmd(host: str, port: int, log_dir: str, api_keys: str | None, max_body_mb: float,
                interval: float, trace_window: float, store: str | None, engine: str,
                dsn: str | None) -> None:
    """Receive OpenTelemetry traces over OTLP/HTTP and keep the store up to date.

    \b
    agentkpi collect                                   # http://127.0.0.1:4318/v1/traces
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318    # in the agent's shell
    agentkpi collect --host 0.0.0.0 --api-keys keys.txt

    JSON and protobuf, gzip or not. A request is answered 200 once it is on disk in
    DIR; its spans reach the store a second or so later, each model call counted
    once (docs/otel.md). Stop with Ctrl-C: what was accepted is ingested first.
    """
    from agentkpi.collector import Collector, load_api_keys
    from agentkpi.store import open_store

    keys = load_api_keys(api_keys) if api_keys else None

    def opener() -> Any:
        return open_store(engine, dsn, store)

    opener().close()  # fail now, with one line, if the store cannot be opened
    col = Collector(host=host, port=port, log_dir=log_dir, open_store=opener, engine=engine,
                    api_keys=keys, max_body=int(max_body_mb * 1024 * 1024),
                    interval=interval, window=trace_window)
    h, p = col.address
    console.print(f"agentkpi collect on http://{h}:{p}/v1/traces (log {log_dir}, "
                  f"{'API keys required' if keys else 'no API key'}); Ctrl-C stops",
                  markup=False)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=col.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        col.serve_forever()
    except KeyboardInterrupt:
        pass
    s, i = col.server, col.ingester.stats
    console.print(f"stopped: {s.accepted_requests} request(s), {s.accepted_spans} span(s) "
                  f"accepted, {s.rejected_spans} rejected; {i.events} event row(s) written, "
                  f"{i.spans_merged} nested model-call span(s) merged")
