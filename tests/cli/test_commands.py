"""Every command is registered and answers ``--help``; a deleted command module turns this red."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from agentkpi.cli import main

# Written out here, not read from the CLI: removing a command (or its module) must fail a test.
COMMANDS = {"alerts", "collect", "config", "export", "generate", "ingest", "kpis", "plot",
            "query", "quickstart", "reprice", "report", "rollup", "serve", "status"}
SUBCOMMANDS = {"alerts": {"check"}}


def test_the_cli_has_exactly_the_documented_commands() -> None:
    assert set(main.commands) == COMMANDS
    for group, subs in SUBCOMMANDS.items():
        assert set(main.commands[group].commands) == subs  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", sorted([c] for c in COMMANDS)
                         + [[g, s] for g, subs in SUBCOMMANDS.items() for s in sorted(subs)],
                         ids=lambda p: " ".join(p))
def test_every_command_answers_help(path: list[str]) -> None:
    r = CliRunner().invoke(main, [*path, "--help"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Usage: ") and " ".join(path) in r.output.splitlines()[0]


def test_a_missing_command_module_is_an_import_error_not_a_smaller_cli() -> None:
    """Simulate a deleted module: the registry must raise, never register fewer commands."""
    code = ("import sys, importlib.abc\n"
            "class Gone(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name == 'agentkpi.cli.plot':\n"
            "            raise ModuleNotFoundError(\"No module named 'agentkpi.cli.plot'\","
            " name=name)\n"
            "sys.meta_path.insert(0, Gone())\n"
            "import agentkpi.cli\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "agentkpi.cli.plot" in r.stderr


def test_top_level_help_as_a_real_process_lists_every_command() -> None:
    r = subprocess.run([sys.executable, "-m", "agentkpi", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    listed = {line.split()[0] for line in r.stdout.split("Commands:", 1)[1].splitlines()
              if line.strip()}
    assert listed == COMMANDS


def test_kpis_json_lists_the_seed_hourly_columns_in_order_then_the_query_set() -> None:
    from tests.conftest import CONSTRUCTED

    r = CliRunner().invoke(main, ["kpis", "--format", "json"])
    assert r.exit_code == 0, r.output
    kpis = json.loads(r.output)
    hourly = [k["name"] for k in kpis if k["set"] == "hourly"]
    golden = (CONSTRUCTED / "CONSTRUCTED_hourly_2026-05-20_14.csv").read_text().split("\n")[0]
    # the seed's columns in its order (bucket first there), plus the original last column
    assert ["bucket", *hourly] == [*golden.split(","), "pro_cta_by_source_json"]
    assert all(k["description"] and k["unit"] for k in kpis)
    assert {k["set"] for k in kpis} == {"hourly", "query"} and len(kpis) > len(hourly)
    bad = CliRunner().invoke(main, ["kpis", "--format", "yaml"])
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1
