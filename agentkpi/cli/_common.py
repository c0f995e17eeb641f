"""Shared CLI plumbing: options used by many commands, output, progress, errors."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentkpi.errors import AgentKpiError

F = TypeVar("F", bound=Callable[..., Any])

def _width() -> int | None:
    # Pipes and CI logs get a wide table instead of Rich's 80-column default.
    return None if sys.stdout.isatty() else 160


console = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True, width=_width())


def store_option(f: F) -> F:
    return click.option(
        "--store", "store", metavar="PATH", envvar="AGENTKPI_STORE", default=None,
        help="Canonical DuckDB store [env AGENTKPI_STORE; default "
             "~/.local/share/agentkpi/agentkpi.duckdb].")(f)


def engine_options(f: F) -> F:
    f = click.option("--dsn", metavar="DSN", envvar="AGENTKPI_DSN", default=None,
                     help="ClickHouse DSN (clickhouse://user@host:8123/db or chdb:///path) "
                          "[env AGENTKPI_DSN].")(f)
    f = click.option("--engine", type=click.Choice(["duckdb", "clickhouse"]),
                     envvar="AGENTKPI_ENGINE", default="duckdb", show_default=True,
                     help="Store engine [env AGENTKPI_ENGINE].")(f)
    return f


def handle_errors(f: F) -> F:
    """Print AgentKpiError as one line (no traceback) and exit with its code."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except AgentKpiError as exc:
            console.print(f"[bold red]error:[/] {exc}", markup=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            console.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(stage, done, total)`` callback drawing a Rich bar on stderr."""
    if not enabled or not console.is_terminal:
        yield lambda stage, done, total: None
        return
    bar = Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, transient=True)
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    with bar:
        yield update


def print_table(rows: list[dict[str, Any]], columns: list[str] | None = None,
                title: str | None = None) -> None:
    if not rows:
        out.print("(no rows)")
        return
    columns = columns or list(rows[0])
    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    out.print(t)
