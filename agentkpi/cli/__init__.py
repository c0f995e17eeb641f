"""The ``agentkpi`` command line: a thin layer over the library.

Each command module registers itself on :data:`main`; a command parses its
options, calls one library function and formats the result.
"""

from __future__ import annotations

import importlib

import click

from agentkpi import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="agentkpi")
def main() -> None:
    """Turn LLM-agent telemetry into KPIs.

    \b
    Start here:   agentkpi quickstart
    Main job:     agentkpi rollup --source DIR --target OUT --from 2026-04-24T00 --to 2026-04-25T00
    KPI list:     agentkpi kpis
    """


COMMAND_MODULES = ("core", "query", "report", "export", "serve", "plot", "alerts")

for _name in COMMAND_MODULES:
    try:
        importlib.import_module(f"agentkpi.cli.{_name}")
    except ModuleNotFoundError as _exc:  # a command module not written yet
        if _exc.name != f"agentkpi.cli.{_name}":
            raise
