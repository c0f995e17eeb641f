"""A self-contained HTML report: inline CSS and inline SVG charts, no script, no server.

:func:`render_html` takes a report dict and returns one HTML document that
opens from disk (or as an e-mail attachment) with nothing else: charts are
SVG drawn here in Python, tables are plain HTML. It is the dashboard's "print"
layout: the dashboard's own stylesheet (``agentkpi/web/static/style.css``,
inlined, with its ``@media print`` rules) over the dashboard's markup (header,
cards, chart boxes, tables), with KPI labels and units from
:mod:`agentkpi.kpis.display` (raw names on hover).

Accepted report shape (tolerant; every key optional except ``series`` for charts)::

    {"title": str, "from": iso, "to": iso, "grain": "hour"|"day"|...,
     "series": [{"bucket": iso, "<kpi>": number, ...}, ...]
        # or {"rows": [...]} / a list of KPI row dicts with "bucket"
     "charts": [{"title", "unit", "kpis": [...]}, ...]   # default: the dashboard's charts
     "totals": {"<kpi>": number}, "kpis": {"<kpi>": {"unit", "description"}},
     "tables": {"name": {"columns": [...], "rows": [{...}]}} or {"name": [{...}]}}

:func:`agentkpi.reports.build_report` builds such a dict from a store (its
sections are mapped on these keys); the views of :mod:`agentkpi.views`
(``overview``, ``breakdown``) have the same ``series``/``charts``/``kpis`` keys.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from agentkpi.kpis.display import DURATION_UNITS, format_value, label
from agentkpi.kpis.display import unit as kpi_unit
from agentkpi.views import OVERVIEW_CHARTS, buckets

COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")

DEFAULT_CHARTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    *OVERVIEW_CHARTS,
    # keys of agentkpi.reports.build_report's time_series
    ("Tokens", "tokens", ("tokens_total",)),
    ("Events, LLM calls and errors", "count", ("events", "llm_calls", "errors")),
)
#: Sections of a build_report dict shown as cards / tables.
CARD_SECTIONS = ("summary", "tokens", "performance")
TABLE_SECTIONS = ("by_model", "tools", "agents", "errors")

#: The dashboard's stylesheet: the report is laid out by the same rules (cards, charts,
#: tables, and its ``@media print`` layout), inlined so the file stands alone.
STYLESHEET = Path(__file__).resolve().parents[1] / "web" / "static" / "style.css"


def stylesheet() -> str:
    """The text of the one stylesheet the dashboard serves and every report inlines."""
    return STYLESHEET.read_text(encoding="utf-8")


def fmt(v: Any, unit: str = "") -> str:
    """Human-readable value by unit (one formatter: :func:`agentkpi.kpis.display.format_value`)."""
    return format_value(v, unit)


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    # Saturated sums (1.8e308) still get finite ticks: the axis tops out at 1e300.
    lo, hi = max(lo, -1e300), min(hi, 1e300)
    if not hi > lo:
        hi = lo + 1
    span = hi - lo
    step = 10.0 ** math.floor(math.log10(span / n))
    err = n * step / span
    step *= 10 if err <= 0.15 else 5 if err <= 0.35 else 2 if err <= 0.75 else 1
    t = math.floor(lo / step) * step
    out = [round(t, 12)]
    while out[-1] < hi - step * 1e-9:  # the last tick covers hi
        t += step
        out.append(round(t, 12))
    return out


def duration_ticks(lo: float, hi: float, unit: str) -> list[float]:
    """Ticks of a duration axis, round in the unit they are shown in (2 h, 4 h; not 13.9 h):
    the dashboard's ``durationTicks``."""
    f = DURATION_UNITS[unit]
    top = max(abs(lo), abs(hi)) * f
    scale = 3600 if top >= 7200 else 60 if top >= 120 else 1 if top >= 2 else 0.001
    return [v * scale / f for v in nice_ticks(lo * f / scale, hi * f / scale)]


def _time(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v.replace(tzinfo=None)
    return datetime.fromisoformat(str(v).replace("Z", "+00:00")).replace(tzinfo=None)


def _label(t: datetime, span_s: float) -> str:
    """An x tick: the time of day within one day, with the date once the range spans days."""
    if span_s <= 86400:
        return t.strftime("%H:%M")
    if span_s <= 14 * 86400:
        return t.strftime("%b %d %H:%M")
    if span_s <= 400 * 86400:
        return t.strftime("%b %d")
    return t.strftime("%Y-%m")


def svg_line_chart(title: str, unit: str, x: Sequence[Any],
                   series: Sequence[tuple[str, Sequence[Any]]],
                   names: Mapping[str, str] | None = None) -> str:
    """An SVG line chart (title, unit, dated x axis, y ticks, legend) as a string.

    ``series`` are (key, values); the legend shows ``names[key]`` (a KPI's label),
    the path keeps the key in ``data-series``.
    """
    w, h, ml, mr, mt, mb = 560, 240, 56, 14, 30, 46
    pw, ph = w - ml - mr, h - mt - mb
    xs = [_time(v) for v in x]
    vals = [float(v) for _, vs in series for v in vs
            if isinstance(v, (int, float)) and not math.isnan(v)]
    lo = min(0.0, min(vals)) if vals else 0.0
    hi = max(vals) if vals else 1.0
    ticks = duration_ticks(lo, hi, unit) if unit in DURATION_UNITS else nice_ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]
    x0 = xs[0] if xs else datetime(1970, 1, 1)
    span = (xs[-1] - x0).total_seconds() if len(xs) > 1 else 1.0

    def X(t: datetime) -> float:  # noqa: N802 - the chart's x axis
        return ml + (t - x0).total_seconds() / span * pw if span else ml

    def Y(v: float) -> float:  # noqa: N802 - the chart's y axis
        return mt + ph - (v - lo) / ((hi - lo) or 1) * ph

    e = html.escape
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" '
             'role="img" '
             f'aria-label="{e(title)} ({e(unit)})">',
             f'<text x="{ml}" y="16" font-size="13" font-weight="600">{e(title)}</text>',
             f'<text x="{w - mr}" y="16" font-size="11" fill="#6b7280" '
             f'text-anchor="end">{e(unit)}</text>']
    for v in ticks:
        y = Y(v)
        parts.append(f'<line x1="{ml}" x2="{w - mr}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#e5e7eb"/>')
        parts.append(f'<text x="{ml - 6}" y="{y + 4:.1f}" font-size="11" fill="#6b7280" '
                     f'text-anchor="end">{e(fmt(v, unit))}</text>')
    parts.append(f'<line x1="{ml}" x2="{w - mr}" y1="{mt + ph}" y2="{mt + ph}" '
                 'stroke="#9ca3af"/>')
    n = min(5, len(xs))
    for i in range(n):
        idx = 0 if n == 1 else round(i * (len(xs) - 1) / (n - 1))
        tx = X(xs[idx])
        anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
        parts.append(f'<text x="{tx:.1f}" y="{mt + ph + 17}" font-size="11" fill="#6b7280" '
                     f'text-anchor="{anchor}">{e(_label(xs[idx], span))}</text>')
    lx = float(ml)
    for k, (name, vs) in enumerate(series):
        color = COLORS[k % len(COLORS)]
        d, pen = [], False
        for t, v in zip(xs, vs, strict=False):
            if not isinstance(v, (int, float)) or math.isnan(v):
                pen = False
                continue
            d.append(f"{'L' if pen else 'M'}{X(t):.1f},{Y(float(v)):.1f}")
            pen = True
        if len(xs) == 1 and d:
            d.append("h1")

        def ok(i: int, vs: Sequence[Any] = vs) -> bool:
            v = vs[i] if 0 <= i < len(vs) else None
            return isinstance(v, (int, float)) and not math.isnan(v)

        for j, t in enumerate(xs[: len(vs)]):  # a value between two gaps: a dot
            if len(xs) > 1 and ok(j) and not ok(j - 1) and not ok(j + 1):
                parts.append(f'<circle cx="{X(t):.1f}" cy="{Y(float(vs[j])):.1f}" r="2.2" '
                             f'fill="{color}"/>')
        parts.append(f'<path d="{"".join(d)}" fill="none" stroke="{color}" stroke-width="1.8" '
                     f'stroke-linejoin="round" data-series="{e(name)}"/>')
        parts.append(f'<rect x="{lx:.0f}" y="{h - 14}" width="10" height="10" fill="{color}"/>')
        shown = (names or {}).get(name, name)
        parts.append(f'<text x="{lx + 14:.0f}" y="{h - 5}" font-size="11" '
                     f'fill="#374151"><title>{e(name)}</title>{e(shown)}</text>')
        lx += 24 + len(shown) * 6.2
    parts.append("</svg>")
    return "".join(parts)


def _series_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    s = report.get("series") or report.get("time_series") or []
    if isinstance(s, Mapping):
        s = s.get("rows") or next((v for v in s.values() if isinstance(v, list)), [])
    return [dict(r) for r in s if isinstance(r, Mapping) and r.get("bucket") is not None]


def _tables(report: Mapping[str, Any]) -> list[tuple[str, list[str], list[dict[str, Any]], int]]:
    out = []
    tables = dict(report.get("tables") or {})
    for name in TABLE_SECTIONS:  # build_report sections
        if isinstance(report.get(name), list):
            tables.setdefault(name.replace("_", " "), report[name])
    items = tables.items() if isinstance(tables, Mapping) else (
        (t.get("title") or t.get("name") or "table", t) for t in tables)
    for name, t in items:
        rows = t if isinstance(t, list) else t.get("rows", [])
        if not rows:
            continue
        cols = (t.get("columns") if isinstance(t, Mapping) else None) or list(rows[0])
        total = t.get("total_rows", len(rows)) if isinstance(t, Mapping) else len(rows)
        out.append((str(name), [str(c) for c in cols], rows, total))
    return out


def _filled(rows: list[dict[str, Any]], report: Mapping[str, Any], rng: Mapping[str, Any],
            grain: Any) -> list[dict[str, Any]]:
    """The series on every bucket of the range: a bucket without data is 0 for counts and
    sums (a line between two far-apart buckets would draw activity that never was), a gap
    for rates and percentiles."""
    lo, hi = report.get("from") or rng.get("start"), report.get("to") or rng.get("end")
    if not rows or not lo or not hi or grain not in ("hour", "day", "week", "month"):
        return rows
    try:
        start, end = _time(lo), _time(hi)
    except ValueError:
        return rows
    have = {_time(r["bucket"]): r for r in rows}
    grid = buckets(start, end, str(grain))
    if not set(have) <= set(grid):  # buckets not on this grid (another time zone): as given
        return rows
    keys = [k for r in rows for k in r if k != "bucket"]
    empty = {k: 0 for k in dict.fromkeys(keys)  # rates, times, per-x ratios stay gaps
             if kpi_unit(k) not in ("ratio", "ms", "s", "time") and "/" not in kpi_unit(k)}
    return [have.get(b) or {"bucket": b.isoformat(), **empty} for b in grid]


TEXT_TD = '<td class="text">'


def _when(v: Any) -> str:
    try:
        return _time(v).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(v)


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained HTML document for ``report`` (see the module docstring)."""
    e = html.escape
    title = str(report.get("title") or "agentkpi report")
    kpis: Mapping[str, Any] = report.get("kpis") or {}
    charts = report.get("charts") or [
        {"title": t, "unit": u, "kpis": list(ks)} for t, u, ks in DEFAULT_CHARTS]

    def unit(k: str) -> str:
        if kpi_unit(k):
            return kpi_unit(k)
        meta = kpis.get(k)
        if isinstance(meta, Mapping):
            return str(meta.get("unit", ""))
        if k.endswith(("_rate", "_ratio")):
            return "ratio"
        return "USD" if k.startswith("cost") else ""

    def name(k: str) -> str:
        meta = kpis.get(k)
        return str(meta["label"]) if isinstance(meta, Mapping) and meta.get("label") else label(k)

    def hover(k: str) -> str:
        meta = kpis.get(k)
        desc = meta.get("description", "") if isinstance(meta, Mapping) else ""
        return f"{k} \u2014 {desc}" if desc else k

    rng_raw = report.get("range")
    rng = rng_raw if isinstance(rng_raw, Mapping) else {}
    ends = [report.get("from") or rng.get("start"), report.get("to") or rng.get("end")]
    span = " \u2192 ".join(_when(v) for v in ends if v)
    tz = report.get("tz") or rng.get("tz") or "UTC"
    ts = report.get("time_series")
    grain = report.get("grain") or (ts.get("grain") if isinstance(ts, Mapping) else None)
    rows = _filled(_series_rows(report), report, rng, grain)
    meta = [f"{span} {tz}" if span else "",
            f"per {grain}" if grain else "",
            "no data in this range" if report.get("empty") else "",
            f"generated {report['generated_at']}" if report.get("generated_at") else ""]
    sep = " \u00b7 "
    out = ["<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{e(title)}</title><style>{stylesheet()}</style></head>",
           '<body data-page="report"><header><span class="brand">agentkpi</span>'
           f'<span class="status">{e(sep.join(m for m in meta if m))}</span></header><main>',
           f'<h1 id="title">{e(title)}</h1>']
    sections = [("", report.get("totals") or {})] + [
        (sec, report[sec]) for sec in CARD_SECTIONS if isinstance(report.get(sec), Mapping)]
    for sec, totals in sections:
        if not totals:
            continue
        if sec:
            out.append(f"<h2>{e(sec.capitalize())}</h2>")
        out.append('<div class="cards">')
        for k, v in totals.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(f'<div class="card" data-kpi="{e(k)}" title="{e(hover(k))}">'
                           f'<div class="v">{e(fmt(v, unit(k)))}</div>'
                           f'<div class="k">{e(name(k))}</div></div>')
        out.append("</div>")
    if rows:
        x = [r["bucket"] for r in rows]
        out.append('<div class="charts">')
        for ch in charts:
            present = [k for k in ch["kpis"] if any(k in r for r in rows)]
            if not present:
                continue
            svg = svg_line_chart(ch["title"], ch.get("unit", ""), x,
                                 [(k, [r.get(k) for r in rows]) for k in present],
                                 {k: name(k) for k in present})
            out.append(f'<div class="chart-box">{svg}</div>')
        out.append("</div>")
    for tname, cols, trows, total in _tables(report):
        out.append(f"<h2>{e(tname[:1].upper() + tname[1:])}</h2>"
                   '<div class="table-box"><table><thead><tr>')
        out.extend(f'<th data-col="{e(c)}" title="{e(hover(c))}">{e(name(c))}</th>'
                   for c in cols)
        out.append("</tr></thead><tbody>")
        for r in trows:
            out.append("<tr>" + "".join(
                (TEXT_TD if isinstance(r.get(c), str) else "<td>")
                + f"{e(fmt(r.get(c), unit(c)))}</td>" for c in cols) + "</tr>")
        out.append("</tbody></table></div>")
        if total > len(trows):
            out.append(f'<p class="note">top {len(trows)} of {total}</p>')
    out.append('<p class="note">agentkpi \u2014 self-contained report; no scripts, no network.'
               "</p></main></body></html>\n")
    return "".join(out)
