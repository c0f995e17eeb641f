"""KPI labels and the one unit-aware formatter (Python, and its JavaScript mirror in Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentkpi.kpis.catalogue import CATALOGUE, QUERY_KPIS
from agentkpi.kpis.display import LABELS, format_kpi, format_value, label

CASES: list[tuple[object, str, str]] = [
    (None, "USD", "\u2013"),
    (float("nan"), "ratio", "\u2013"),
    (float("inf"), "USD", "\u2013"),
    (0, "USD", "$0"),
    (0.000012, "USD", "$0.000012"),
    (0.0042, "USD", "$0.0042"),
    (1.234, "USD", "$1.23"),
    (123.4, "USD", "$123"),
    (1234.5, "USD", "$1,235"),
    (12345.0, "USD", "$12.3k"),
    (2_500_000.0, "USD", "$2.5M"),
    (0.875, "ratio", "88%"),
    (0.0425, "ratio", "4.3%"),  # 4.25 exactly: ties away from zero, as JS toFixed
    (0.0, "ratio", "0%"),
    (850.0, "ms", "850 ms"),
    (2.5, "ms", "2.5 ms"),
    (1500.0, "ms", "1.5 s"),
    (122.5, "s", "2.0 min"),
    (0.25, "s", "250 ms"),
    (45.25, "s", "45.3 s"),
    (7200.0, "s", "2.0 h"),
    (950, "tokens", "950"),
    (12_345, "tokens", "12k"),
    (1_234, "tokens", "1.2k"),
    (4_560_000, "tokens", "4.6M"),
    (3, "sessions", "3"),
    (0.5, "calls", "0.500"),
    ("gpt-4o", "", "gpt-4o"),
]


@pytest.mark.parametrize(("value", "unit", "expected"), CASES)
def test_format_value_by_unit(value: object, unit: str, expected: str) -> None:
    assert format_value(value, unit) == expected


def test_every_kpi_has_a_human_label() -> None:
    names = {k.name for k in (*CATALOGUE, *QUERY_KPIS)}
    assert names - set(LABELS) == set()
    assert set(LABELS) - names == set(), "labels for KPIs that no longer exist"
    assert label("time_to_first_action_s_p50") == "Time to first action, median"


def test_kpis_format_by_their_catalogue_unit() -> None:
    assert format_kpi("time_to_first_action_s_p50", 122.5) == "2.0 min"
    assert format_kpi("cost_usd", 3.14159) == "$3.14"
    assert format_kpi("cost_per_session_mean", 0.25) == "$0.25"  # a USD quotient, not a share
    assert format_kpi("tool_success_rate", 0.9) == "90%"
    assert format_kpi("duration_ms_avg", 2400.0) == "2.4 s"
    assert format_kpi("tokens_per_session", 15_000.0) == "15k"


@pytest.mark.browser
def test_javascript_formatter_matches_python() -> None:
    """The dashboard's AKChart.fmt gives the same text as format_value, in real Chromium."""
    from playwright.sync_api import sync_playwright

    from tests.test_web_browser import ARGS, CHROMIUM

    js = (Path(__file__).resolve().parents[1] / "agentkpi" / "web" / "static" /
          "chart.js").read_text()
    cases = [(None if isinstance(v, float) and v != v else v, u) for v, u, _ in CASES
             if not (isinstance(v, float) and v in (float("inf"),))]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.set_content("<html><body></body></html>")
            page.add_script_tag(content=js)
            got = page.evaluate("cases => cases.map(c => AKChart.fmt(c[0], c[1]))",
                                [list(c) for c in cases])
        finally:
            browser.close()
    assert got == [format_value(v, u) for v, u in cases]
