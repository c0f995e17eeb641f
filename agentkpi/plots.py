"""PNG plots of the main KPI series (matplotlib, Agg backend: no display needed).

:func:`write_plots` draws one PNG per chart of the dashboard overview
(sessions and users, cost, tokens by kind, cache-hit ratio, tool success
rate, failure and regenerate rates, time to first action) plus
``overview.png`` with all of them on one page. Every plot has a title, the
unit on the y axis, UTC dates on the x axis and the range in the caption.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from agentkpi.reports.html import DEFAULT_CHARTS

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
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    for k in kpis:
        ys = [r.get(k) for r in rows]
        ys = [math.nan if v is None else float(v) for v in ys]
        ax.plot(x, ys, label=k, linewidth=1.6, marker="o" if len(x) <= 3 else None)
    ax.set_title(title, fontsize=11, fontweight="bold", loc="left")
    ax.set_ylabel(UNIT_LABEL.get(unit, unit))
    if unit == "ratio":
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    elif unit == "USD":
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:,.2f}"))
    else:
        ax.yaxis.set_major_formatter(FuncFormatter(
            lambda v, _: f"{v / 1e6:.1f}M" if abs(v) >= 1e6 else
            f"{v / 1e3:.0f}k" if abs(v) >= 1e4 else f"{v:,.0f}" if v == int(v) else f"{v:.1f}"))
    ax.set_ylim(bottom=min(0, ax.get_ylim()[0]))
    loc = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.grid(True, alpha=0.3)
    if len(kpis) > 1:
        ax.legend(fontsize=8, loc="upper left", frameon=False)


def write_plots(report: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``<chart>.png`` for each chart of ``report`` and ``overview.png``; return paths.

    ``report`` is the dict of :func:`agentkpi.web.data.report` (``series`` rows with a
    ``bucket``; optional ``charts``, ``from``, ``to``, ``grain``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for r in report.get("series") or [] if r.get("bucket") is not None]
    charts = report.get("charts") or [{"title": t, "unit": u, "kpis": list(k)}
                                      for t, u, k in DEFAULT_CHARTS]
    charts = [c for c in charts if any(k in r for r in rows for k in c["kpis"])]
    x = _x(rows)
    span = " \u2192 ".join(str(report.get(k, "")).replace("T", " ") for k in ("from", "to"))
    caption = f"{span} UTC, per {report.get('grain', 'hour')}"
    paths = []
    for c in charts:
        fig, ax = plt.subplots(figsize=(9, 3.6), dpi=110, layout="constrained")
        _draw(ax, f"{c['title']} ({c['unit']})", c["unit"], x, rows, list(c["kpis"]))
        ax.set_xlabel(caption, fontsize=8, color="#555")
        p = out / f"{_slug(c['title'])}.png"
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    if charts:
        n = len(charts)
        cols = 2
        nrows = (n + cols - 1) // cols
        fig, axes = plt.subplots(nrows, cols, figsize=(15, 3.3 * nrows), dpi=100,
                                 layout="constrained", squeeze=False)
        for ax, c in zip(axes.flat, charts, strict=False):
            _draw(ax, f"{c['title']} ({c['unit']})", c["unit"], x, rows, list(c["kpis"]))
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        fig.suptitle(f"{report.get('title', 'agentkpi')} \u2014 {caption}", fontsize=12)
        p = out / "overview.png"
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    return paths


def plot_store(store: Any, out_dir: str | Path, start: datetime | None = None,
               end: datetime | None = None, grain: str = "hour", tz: str = "UTC"
               ) -> list[Path]:
    """Compute the overview series from ``store`` and write the PNGs (library entry point)."""
    from agentkpi.web import data

    report = data.overview(store, start, end, grain=grain, tz=tz)
    report["title"] = "agentkpi"
    return write_plots(report, out_dir)
