"""Shared CLI plumbing: options used by many commands, output, progress, errors."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from agentkpi import config
from agentkpi.errors import AgentKpiError, OutputError, UsageError, os_reason

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

def _width() -> int | None:
    # Pipes and CI logs get a wide table instead of Rich's 80-column default.
    return None if sys.stdout.isatty() else 160


class _Deferred:
    """A Rich ``Console`` made (and Rich imported, ~25 ms) on first use: a quiet cron
    ``rollup`` prints nothing and never loads Rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def made(self) -> Console:
        """The console itself (what Rich objects such as ``Progress`` are given)."""
        if self._console is None:
            from rich.console import Console

            options = {k: v() if callable(v) else v for k, v in self._options.items()}
            self._console = Console(**options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)


def _made(console: Any) -> Console:
    return console.made() if isinstance(console, _Deferred) else console


console = cast("Console", _Deferred(stderr=True, highlight=False, soft_wrap=True))
out = cast("Console", _Deferred(highlight=False, soft_wrap=True, width=_width))


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


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` as ONE line on stderr and exit with ``code``."""
    from rich.markup import escape

    one_line = " ".join(str(message).split())
    console.print("[bold red]error:[/] " + escape(one_line), markup=True)
    sys.exit(code)


def handle_errors(f: F) -> F:
    """Every failure of a command is one line on stderr (no traceback) and a non-zero exit.

    AgentKpiError carries its own message and exit code. An OSError that no layer
    translated (disk full, permission, a path that is a directory) prints the OS's
    words and the path; anything else is a bug, reported in one line too
    (``AGENTKPI_DEBUG=1`` shows the traceback).
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except AgentKpiError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            console.print("interrupted")
            sys.exit(130)
        except (SystemExit, click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except OSError as exc:
            if config.get("debug"):
                raise
            fail(f"{os_reason(exc)}; check the path, its permissions and the free space")
        except Exception as exc:
            if config.get("debug"):
                raise
            text = str(exc).strip()
            fail(f"unexpected {type(exc).__name__}: {text.splitlines()[0] if text else ''} "
                 "- this is a bug, please report it (AGENTKPI_DEBUG=1 shows the traceback)")

    return wrapper  # type: ignore[return-value]


def write_out(path: str, text: str) -> None:
    """Write a command's ``--out`` text file (a directory there is a usage error)."""
    if os.path.isdir(path):
        raise UsageError(f"--out {path} is a directory; give a file name, e.g. "
                         f"{os.path.join(path, 'report.txt')}")
    part = path + ".part"  # atomic, as exports: a failed write leaves no truncated file
    try:
        with open(part, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(part, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.remove(part)
        raise OutputError(f"cannot write --out {path}: {os_reason(exc)}; free some space or "
                          "choose another --out") from None


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, int, int], None] | None]:
    """A ``progress(stage, done, total)`` callback drawing a Rich bar on stderr; None (no
    progress work at all) when not ``enabled`` or stderr is not a terminal."""
    if not enabled or not console.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=_made(console), transient=True)
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
    from rich.table import Table

    columns = columns or list(rows[0])
    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    out.print(t)
