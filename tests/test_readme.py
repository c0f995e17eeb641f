"""README's two Quickstart commands stay true, and CI runs exactly the test one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick)


def test_readme_opens_with_install_and_run_then_install_and_test() -> None:
    first, second = _commands()[:2]
    assert first == "pip install -e . && agentkpi quickstart"
    assert second.startswith("pip install -e '.[dev]' && ")
    # lint and type check run before the tests
    assert second.index("ruff check agentkpi") < second.index("mypy") < second.index("pytest")
    assert second.endswith("python -m pytest -q")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci


def test_console_script_points_at_the_cli() -> None:
    # startup.main(): the cron commands' lean start-up (tests/test_startup.py), then the
    # CLI's run(): its main, then a quick exit (tests/cli/test_exit.py)
    assert 'agentkpi = "agentkpi.startup:main"' in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "agentkpi" / "__main__.py").read_text().splitlines()[-1] == "main()"
