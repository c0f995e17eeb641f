"""The shared ``browser_page`` context manager fails a test on what it collects.

In a module of its own: test_web_browser.py keeps one Playwright running for its whole
module, and a second sync Playwright cannot start inside it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_web_browser import browser_page

pytestmark = [pytest.mark.browser]


def test_browser_page_fails_on_a_console_error_or_an_uncaught_exception(tmp_path: Path) -> None:
    """The shared context manager's own check: what it collects makes the test fail."""
    from agentkpi.store import DuckDBStore

    DuckDBStore(tmp_path / "empty.duckdb").close()
    for script, event, text in (("console.error('bad thing')", "console", "bad thing"),
                                ("setTimeout(() => { throw new Error('boom') }, 0)",
                                 "pageerror", "boom")):
        with pytest.raises(AssertionError, match=text):
            with browser_page(str(tmp_path / "empty.duckdb")) as (url, page):
                page.goto(url + "/")
                with page.expect_event(event):
                    page.evaluate(script)
