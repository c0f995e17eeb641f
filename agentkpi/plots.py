"""PNG plots of the main KPI series (matplotlib's object API: no display, no pyplot).

:func:`write_plots` draws one PNG per chart of the dashboard overview
(sessions and users, cost, tokens by kind, cache-hit ratio, tool success
rate, failure and regenerate rates, time to first action) plus
``overview.png`` with all of them on one page. Every plot has a title, the
unit on the y axis, UTC dates on the x axis and the range in the caption.

:func:`metric_figures` and :func:`metric_figure` draw the in-process metrics of
:class:`agentkpi.Monitor` (seed 002's charts). Figures are built with
matplotlib's object API (``Figure``), never pyplot, so no backend is switched
and no global figure state is kept.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agentkpi.errors import OutputError, UsageError, os_reason
from agentkpi.kpis.display import DURATION_UNITS, format_value, label
from agentkpi.kpis.stats import rolling_mean
from agentkpi.reports.html import DEFAULT_CHARTS, duration_ticks

UNIT_LABEL = {"ratio": "ratio (0\u20131)", "USD": "USD", "s": "seconds", "count": "count",
              "tokens": "tokens"}


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def _x(rows: list[Mapping[str, Any]]) -> list[datetime]:
    out = []
    for r in rows:
        b = r["bucket"]
        out.append(b.replace(tzinfo=None) if isinstance(b, datetime) else
                   datetime.fromisoformat(str(b).replace("Z", "+00:00")).replace(tzinfo=None))
    return out


def _draw(ax: Any, title: str, unit: str, x: list[datetime], rows: list[Mapping[str, Any]],
          kpis: list[str]) -> None:
    import matplotlib.dates as mdates
    from matplotlib.ticker import FuncFormatter

    for k in kpis:
        ys = [r.get(k) for r in rows]
        ys = [math.nan if v is None else float(v) for v in ys]
        # the legend speaks the catalogue label; the KPI name stays on the line (gid)
        ax.plot(x, ys, label=label(k), gid=k, linewidth=1.6,
                marker="o" if len(x) <= 3 else None)
    ax.set_title(title, fontsize=11, fontweight="bold", loc="left")
    ax.set_ylabel(UNIT_LABEL.get(unit, unit))
    # the one unit-aware formatter of cards, tables and the dashboard's charts
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
    ax.set_ylim(bottom=min(0, ax.get_ylim()[0]))
    if unit in DURATION_UNITS:  # round ticks in the unit shown (5 h, 10 h), as the dashboard
        from matplotlib.ticker import FixedLocator

        ticks = duration_ticks(0.0, ax.get_ylim()[1], unit)  # durations are not negative
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.set_ylim(ticks[0], ticks[-1])
    if len(x) > 1:
        ax.set_xlim(x[0], x[-1])  # no padding: a bucket in year 9999 has no room after it
    elif x:
        left = x[0] - timedelta(hours=1) if x[0].year > 1 else x[0]
        ax.set_xlim(left, left + timedelta(hours=1))
    loc = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.grid(True, alpha=0.3)
    if len(kpis) > 1:
        ax.legend(fontsize=8, loc="upper left", frameon=False)


def write_plots(report: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``<chart>.png`` for each chart of ``report`` and ``overview.png``; return paths.

    ``report`` is a dict like :func:`agentkpi.views.overview`'s (``series`` rows with a
    ``bucket``; optional ``charts``, ``from``, ``to``, ``grain``).

    All or nothing: every PNG is written as ``<name>.png.part`` and renamed once all
    are complete. A failed write (full disk, no permission) raises
    :class:`~agentkpi.errors.OutputError` and leaves no part file and none of the
    folders it created; the PNGs of an earlier run stay as they were.
    """
    from matplotlib.figure import Figure  # OO API: no pyplot state, no backend switch

    out = Path(out_dir)
    with all_or_nothing(out) as save:
        return _draw_all(report, out, Figure, save)


@contextmanager
def all_or_nothing(out: Path, hint: str = "choose another --out"
                   ) -> Iterator[Callable[[Any, Path], None]]:
    """Save figures into the folder ``out``, all or nothing (``agentkpi plot``, ``Monitor``).

    ``save(fig, path)`` writes ``path.part``; on success every part is renamed to its
    path, on failure the parts and the folders made for ``out`` are removed and an
    ``OSError`` becomes one :class:`~agentkpi.errors.OutputError` naming ``out`` (``hint``
    says what to change)."""
    made: list[Path] = []  # the folders this run creates, outermost first
    d = out.absolute()
    while not d.exists() and d != d.parent:
        made.insert(0, d)
        d = d.parent
    parts: list[tuple[Path, Path]] = []

    def save(fig: Any, path: Path) -> None:
        part = path.with_name(path.name + ".part")
        parts.append((part, path))
        fig.savefig(part, format="png")

    try:
        out.mkdir(parents=True, exist_ok=True)
        yield save
        for part, path in parts:
            os.replace(part, path)
    except BaseException as exc:
        for part, _ in parts:
            with contextlib.suppress(OSError):
                part.unlink()
        for folder in reversed(made):  # innermost first; only what is empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write the plots to {out}: {os_reason(exc)}; free "
                              f"some space or {hint}") from None
        raise


def _draw_all(report: Mapping[str, Any], out: Path, Figure: Any,  # noqa: N803 - the class
              save: Callable[[Any, Path], None]) -> list[Path]:
    rows = [r for r in report.get("series") or [] if r.get("bucket") is not None]
    charts = report.get("charts") or [{"title": t, "unit": u, "kpis": list(k)}
                                      for t, u, k in DEFAULT_CHARTS]
    charts = [c for c in charts if any(k in r for r in rows for k in c["kpis"])]
    x = _x(rows)
    span = " \u2192 ".join(str(report.get(k, "")).replace("T", " ") for k in ("from", "to"))
    caption = f"{span} UTC, per {report.get('grain', 'hour')}"
    paths = []
    for c in charts:
        fig = Figure(figsize=(9, 3.6), dpi=110, layout="constrained")
        ax = fig.subplots()
        _draw(ax, f"{c['title']} ({c['unit']})", c["unit"], x, rows, list(c["kpis"]))
        ax.set_xlabel(caption, fontsize=8, color="#555")
        p = out / f"{_slug(c['title'])}.png"
        save(fig, p)
        paths.append(p)
    if charts:
        n = len(charts)
        cols = 2
        nrows = (n + cols - 1) // cols
        fig = Figure(figsize=(15, 3.3 * nrows), dpi=100, layout="constrained")
        axes = fig.subplots(nrows, cols, squeeze=False)
        for ax, c in zip(axes.flat, charts, strict=False):
            _draw(ax, f"{c['title']} ({c['unit']})", c["unit"], x, rows, list(c["kpis"]))
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        fig.suptitle(f"{report.get('title', 'agentkpi')} \u2014 {caption}", fontsize=12)
        p = out / "overview.png"
        save(fig, p)
        paths.append(p)
    return paths


def plot_store(store: Any, out_dir: str | Path, start: datetime | None = None,
               end: datetime | None = None, grain: str = "hour", tz: str = "UTC"
               ) -> list[Path]:
    """Compute the overview series from ``store`` and write the PNGs (library entry point)."""
    from agentkpi.views import overview

    report = overview(store, start, end, grain=grain, tz=tz)
    if not report["totals"].get("sessions"):
        span = report.get("data_range") or {}
        held = (f"the store holds {span.get('first_event')} .. {span.get('last_event')}"
                if span.get("first_event") else "the store is empty")
        raise UsageError(f"nothing to plot: no events in [{report['from']}, {report['to']}) "
                         f"UTC; {held} - pick a range with --from/--to")
    report["title"] = "agentkpi"
    return write_plots(report, out_dir)


# ----------------------------------------------------------------------------- in-process metrics
Points = Sequence[tuple[datetime, float]]


def _figure(title: str, xlabel: str, ylabel: str | None, figsize: tuple[float, float]
            ) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return fig, ax


def _tx(points: Points) -> tuple[list[datetime], list[float]]:
    return [t for t, _ in points], [v for _, v in points]


def metric_figures(series: Mapping[str, Points], figsize: tuple[float, float] = (12, 6)
                   ) -> dict[str, Any]:
    """Seed 002's charts of in-process metrics (:class:`agentkpi.Monitor`) as Figures.

    ``series``: ``{metric: [(time, value), ...]}``. Up to seven figures, by name:
    ``success_error_rate`` (rolling means), ``generation_time`` and
    ``evaluation_time`` (histograms), ``total_token_count``, ``prompt_token_count``,
    ``completion_token_count`` (rolling means) and ``evaluation_scores`` (one line
    per ``evaluation_score_<name>``). A metric without points draws nothing.
    """
    figures: dict[str, Any] = {}
    if series.get("success_rate"):
        fig, ax = _figure("Success/Error Rate Over Time", "Time", "Rate", figsize)
        if series.get("error_rate"):
            t, v = _tx(series["error_rate"])
            ax.plot(t, rolling_mean(v, 10), color="red", label="Error Rate (rolling avg)")
        t, v = _tx(series["success_rate"])
        ax.plot(t, rolling_mean(v, 10), color="green", label="Success Rate (rolling avg)")
        ax.legend()
        ax.tick_params(axis="x", labelrotation=45)
        figures["success_error_rate"] = fig
    for name, title in (("generation_time", "Generation Time Distribution"),
                        ("evaluation_time", "Evaluation Time Distribution")):
        if series.get(name):
            fig, ax = _figure(title, "Time (seconds)", "Count", figsize)
            ax.hist(_tx(series[name])[1], bins="auto")
            figures[name] = fig
    for name, title in (("total_token_count", "Total Token Usage Over Time"),
                        ("prompt_token_count", "Prompt Token Usage Over Time"),
                        ("completion_token_count", "Completion Token Usage Over Time")):
        if series.get(name):
            fig, ax = _figure(title, "Time", "Tokens", figsize)
            t, v = _tx(series[name])
            ax.plot(t, rolling_mean(v, 10), color="blue")
            ax.tick_params(axis="x", labelrotation=45)
            figures[name] = fig
    evals = sorted(n for n in series if n.startswith("evaluation_score_") and series[n])
    if evals:
        fig, ax = _figure("Evaluation Scores Over Time", "Time", "Score", figsize)
        for n in evals:
            t, v = _tx(series[n])
            ax.plot(t, rolling_mean(v, 5),
                    label=f"{n.replace('evaluation_score_', '').title()} Score")
        ax.legend(bbox_to_anchor=(1.05, 1), loc="upper left")
        ax.tick_params(axis="x", labelrotation=45)
        figures["evaluation_scores"] = fig
    for fig in figures.values():
        fig.tight_layout()
    return figures


def metric_figure(name: str, points: Points, rolling_window: int = 10,
                  figsize: tuple[float, float] = (12, 8)) -> Any:
    """One in-process metric over time: rolling mean plus the raw points (a Figure)."""
    fig, ax = _figure(f"{name} Over Time", "Time", name, figsize)
    t, v = _tx(points)
    ax.plot(t, rolling_mean(v, rolling_window), label=f"{name} (rolling avg)")
    ax.scatter(t, v, alpha=0.2, label="Raw values")
    ax.legend()
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    return fig
