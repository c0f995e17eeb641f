"""Static outputs: PNG plots (agentkpi plot) and the self-contained HTML report."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agentkpi import views
from agentkpi.cli import main
from agentkpi.kpis.display import label
from agentkpi.plots import UNIT_LABEL, write_plots
from agentkpi.reports.html import render_html, svg_line_chart
from agentkpi.store import DuckDBStore
from agentkpi.times import parse_time
from tests.test_web_api import dataset_dir, make_store

from .conftest import file_size_limit
from .reference_seed import hourly_row, read_rows


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("plots"))


def _plot(store: Path, out: Path, limit: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentkpi", "plot", "--out", str(out),
                           "--store", str(store), "--from", "2026-05-20", "--to",
                           "2026-05-21"], capture_output=True, text=True, timeout=300,
                          preexec_fn=file_size_limit(limit) if limit else None)


def test_a_failed_plot_leaves_no_folder_it_made_and_no_partial_png(store_path: Path,
                                                                   tmp_path: Path) -> None:
    r = _plot(store_path, tmp_path / "a" / "b" / "plots", limit=20_000)  # PNGs are larger
    assert r.returncode == 1 and r.stdout == ""
    assert list(tmp_path.rglob("*")) == []  # a/, a/b/, a/b/plots/ made by the run: gone
    assert r.stderr.startswith("error: cannot write the plots to ") and \
        r.stderr.count("\n") == 1 and "File too large" in r.stderr, r.stderr
    # into a folder holding an earlier run's PNGs: those stay whole, no part file is left
    kept = tmp_path / "kept"
    assert _plot(store_path, kept).returncode == 0
    before = {p.name: p.read_bytes() for p in kept.iterdir()}
    assert len(before) == 8
    r = _plot(store_path, kept, limit=20_000)
    assert r.returncode == 1, r.stderr
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == before
    # a path under a file fails before anything is made
    (tmp_path / "file").write_text("x")
    r = _plot(store_path, tmp_path / "file" / "plots")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "Not a directory" in r.stderr or "File exists" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "kept"]


def _png_size(p: Path) -> tuple[int, int]:
    head = p.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", p
    return struct.unpack(">II", head[16:24])


def test_plot_command_writes_one_readable_png_per_chart(store_path: Path, tmp_path: Path
                                                        ) -> None:
    out = tmp_path / "plots"
    r = CliRunner().invoke(main, ["plot", "--out", str(out), "--store", str(store_path),
                                  "--from", "2026-05-20", "--to", "2026-05-21"])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["sessions_and_users.png", "cost.png", "tokens_by_kind.png",
                            "cache_hit_ratio.png", "tool_success_rate.png",
                            "failure_and_regenerate_rates.png", "time_to_first_action.png",
                            "overview.png"])
    for p in out.iterdir():
        w, h = _png_size(p)
        assert w >= 900 and h >= 390, p


@pytest.fixture()
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every matplotlib Figure saved (a spy: the real savefig still writes the PNG)."""
    from matplotlib.figure import Figure

    figs: list[Any] = []
    real = Figure.savefig

    def spy(self: Any, *a: Any, **kw: Any) -> Any:
        figs.append(self)
        return real(self, *a, **kw)

    monkeypatch.setattr(Figure, "savefig", spy)
    return figs


def test_plot_lines_are_the_reference_kpis_of_each_hour(store_path: Path, tmp_path: Path,
                                                        drawn: list[Any]) -> None:
    """What is drawn (x, y, labels, units) equals the independent reference, hour by hour."""
    r = CliRunner().invoke(main, ["plot", "--out", str(tmp_path), "--store", str(store_path),
                                  "--from", "2026-05-20T06", "--to", "2026-05-20T18"])
    assert r.exit_code == 0, r.output
    rows = read_rows(dataset_dir())
    hours = [datetime(2026, 5, 20, h) for h in range(6, 18)]
    ref = [hourly_row(rows, h.replace(tzinfo=UTC), h.replace(tzinfo=UTC) + timedelta(hours=1))
           for h in hours]
    assert all(ref)
    *charts, overview = drawn
    assert len(charts) == 7 and len(overview.axes) == 8  # 7 charts + one hidden cell
    seen = set()
    for fig in charts:
        (ax,) = fig.axes
        title, unit = ax.get_title(loc="left").rsplit(" (", 1)
        assert ax.get_ylabel() == UNIT_LABEL.get(unit[:-1], unit[:-1]) and title
        assert "2026-05-20 06:00:00 \u2192 2026-05-20 18:00:00 UTC" in ax.get_xlabel()
        assert ax.lines
        for line in ax.lines:
            kpi = line.get_gid()
            assert line.get_label() == label(kpi)  # the legend speaks the catalogue label
            assert list(line.get_xdata()) == hours, kpi
            assert list(line.get_ydata()) == [float(w[kpi]) for w in ref], kpi  # type: ignore
            seen.add(kpi)
    assert {"sessions", "users", "cost_usd", "tokens_prompt", "tokens_completion",
            "cache_hit_ratio", "tool_success_rate", "failure_rate", "regenerate_rate",
            "time_to_first_action_s_p95"} <= seen
    on_page = {(ax.get_title(loc="left"), line.get_label()): list(line.get_ydata())
               for ax in overview.axes if ax.get_visible() for line in ax.lines}
    assert on_page == {(ax.get_title(loc="left"), line.get_label()): list(line.get_ydata())
                       for fig in charts for ax in fig.axes for line in ax.lines}


def test_plots_of_an_empty_range_still_have_axes(store_path: Path, tmp_path: Path) -> None:
    with DuckDBStore(store_path, read_only=True) as st:
        rep = views.overview(st, parse_time("2030-01-01"), parse_time("2030-01-02"))
    paths = write_plots(rep, tmp_path)
    assert len(paths) == 8 and all(_png_size(p)[0] >= 900 for p in paths)


def test_html_report_is_self_contained_with_every_chart_and_table(store_path: Path,
                                                                  tmp_path: Path) -> None:
    from agentkpi.reports import build_report

    with DuckDBStore(store_path, read_only=True) as st:
        rep = build_report(st, "2026-05-20", "2026-05-21")
        over = views.overview(st, parse_time("2026-05-20"), parse_time("2026-05-21"))
    # the dashboard's overview (series + the seven charts) and the report's tables
    doc = render_html({**rep, "series": over["series"], "charts": over["charts"],
                       "kpis": over["kpis"]})
    (tmp_path / "report.html").write_text(doc)
    assert doc.startswith("<!doctype html>") and "</html>" in doc
    assert "<script" not in doc and not re.search(r"(src|href)=\"https?://", doc)
    assert doc.count("<svg") == 7
    paths = re.findall(r'<path d="([^"]*)"[^>]*data-series="([^"]+)"', doc)
    assert {"sessions", "cost_usd", "cache_hit_ratio", "time_to_first_action_s_p95"} <= {
        n for _, n in paths}
    assert all(d.count("L") >= 10 for d, n in paths if n in ("sessions", "cost_usd"))
    for title in ("By model", "Tools", "Agents", "Errors"):
        assert f"<h2>{title}</h2>" in doc
    assert "2026-05-20 00:00 \u2192 2026-05-21 00:00 UTC" in doc


def test_html_report_accepts_a_minimal_dict() -> None:
    doc = render_html({"series": [{"bucket": "2026-05-20T00:00:00", "sessions": 3, "cost_usd": 1.5},
                                  {"bucket": "2026-05-20T01:00:00", "sessions": 5,
                                   "cost_usd": 0.5}],
                       "tables": {"top users": [{"user": "u1", "sessions": 8}]}})
    assert doc.count("<svg") == 2 and "<h2>Top users</h2>" in doc
    assert '<td class="text">u1</td>' in doc


def test_svg_chart_has_gaps_for_missing_values() -> None:
    svg = svg_line_chart("t", "ratio", ["2026-05-20T00:00:00", "2026-05-20T01:00:00",
                                        "2026-05-20T02:00:00", "2026-05-20T03:00:00"],
                         [("r", [0.5, None, 0.25, 1.0])])
    d = re.search(r'<path d="([^"]*)"', svg)
    assert d is not None and d.group(1).count("M") == 2 and "100%" in svg


def test_html_report_renders_a_build_report_dict(store_path: Path) -> None:
    from agentkpi.reports import build_report

    with DuckDBStore(store_path, read_only=True) as st:
        rep = build_report(st, "2026-05-20", "2026-05-21")
    doc = render_html(rep)
    assert "<script" not in doc and doc.count("<svg") >= 3
    for section in ("Summary", "Tokens", "Performance", "Tools"):
        assert f"<h2>{section}</h2>" in doc
    assert "2026-05-20" in doc


def test_chart_scale_covers_the_largest_value() -> None:
    from agentkpi.reports.html import nice_ticks

    for hi in (0.53, 1.0, 12.3, 140.0, 99.99):
        ticks = nice_ticks(0.0, hi)
        assert ticks[0] == 0 and ticks[-1] >= hi and len(ticks) <= 8
