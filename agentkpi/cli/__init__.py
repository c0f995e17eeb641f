"""The ``agentkpi`` command line: a thin layer over the library.

Each command module registers itself on :data:`main`; a command parses its
options, calls one library function and formats the result.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
from typing import Any

# No command uses BLAS; numpy, which pyarrow imports, would start an OpenBLAS thread per CPU
# whose start-up costs ~0.08 s of CPU in every command (a cron run's parse workers compete
# for it). Set before anything imports numpy; a value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click

from agentkpi import __version__


class _Group(click.Group):
    """Usage errors exit 1 with one line (Click's default is exit 2 and three lines)."""

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "agentkpi"
            click.echo(f"error: {exc.format_message()} (see '{where} --help')", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="agentkpi")
def main() -> None:
    """Turn LLM-agent telemetry into KPIs.

    \b
    Start here:   agentkpi quickstart
    Main job:     agentkpi rollup --source DIR --target OUT --from 2026-04-24T00 --to 2026-04-25T00
    KPI list:     agentkpi kpis
    """


def run() -> None:
    """The ``agentkpi`` program: :data:`main`, then a quick exit.

    Once a command is done, tearing the interpreter down (freeing every object and
    module of a run that read a store, one by one) is ~0.04 s of work for nothing in
    every cron run (BENCHMARKS §16); the exit handlers still run and the output is
    flushed first. Library callers and tests call :data:`main`, which returns normally.
    """
    try:
        main()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # a reader gone, or a stream closed
        code = code or 120  # what Python exits with when its final flush fails
    os._exit(code or 0)


COMMAND_MODULES = ("core", "query", "report", "export", "serve", "plot", "alerts", "collect")

for _name in COMMAND_MODULES:  # a missing command module is an error, never a smaller CLI
    importlib.import_module(f"agentkpi.cli.{_name}")
