"""A self-contained HTML report: inline CSS and inline SVG charts, no script, no server.

:func:`render_html` takes a report dict and returns one HTML document that
opens from disk (or as an e-mail attachment) with nothing else: charts are
SVG drawn here in Python, tables are plain HTML.

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
from typing import Any

from agentkpi.kpis.display import format_value, label
from agentkpi.views import OVERVIEW_CHARTS

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

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;
background:#f9fafb;margin:0;padding:1rem 1.4rem;max-width:1400px}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
.meta{color:#6b7280;font-size:12px;margin-bottom:1rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:.6rem}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:.5rem .7rem}
.card .v{font-size:1.25rem;font-weight:600}.card .k{font-size:12px;color:#6b7280}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:.8rem;
margin-top:1rem}
.chart{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:.3rem}
svg{width:100%;height:auto;display:block}
svg text{font-family:system-ui,sans-serif}
table{border-collapse:collapse;background:#fff;font-variant-numeric:tabular-nums;
margin-bottom:.4rem}
th,td{border-bottom:1px solid #e5e7eb;padding:.25rem .6rem;text-align:right;white-space:nowrap}
th{background:#f3f4f6}th:first-child,td:first-child{text-align:left}
.note{color:#6b7280;font-size:12px}
"""


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


def _time(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v.replace(tzinfo=None)
    return datetime.fromisoformat(str(v).replace("Z", "+00:00")).replace(tzinfo=None)


def _label(t: datetime, span_s: float) -> str:
    if span_s <= 2 * 86400:
        return t.strftime("%H:%M")
    if span_s <= 14 * 86400:
        return t.strftime("%m-%d %Hh")
    if span_s <= 400 * 86400:
        return t.strftime("%m-%d")
    return t.strftime("%Y-%m")


def svg_line_chart(title: str, unit: str, x: Sequence[Any],
                   series: Sequence[tuple[str, Sequence[Any]]]) -> str:
    """An SVG line chart (title, unit, dated x axis, y ticks, legend) as a string."""
    w, h, ml, mr, mt, mb = 560, 240, 56, 14, 30, 46
    pw, ph = w - ml - mr, h - mt - mb
    xs = [_time(v) for v in x]
    vals = [float(v) for _, vs in series for v in vs
            if isinstance(v, (int, float)) and not math.isnan(v)]
    lo = min(0.0, min(vals)) if vals else 0.0
    hi = max(vals) if vals else 1.0
    ticks = nice_ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]
    x0 = xs[0] if xs else datetime(1970, 1, 1)
    span = (xs[-1] - x0).total_seconds() if len(xs) > 1 else 1.0

    def X(t: datetime) -> float:  # noqa: N802 - the chart's x axis
        return ml + (t - x0).total_seconds() / span * pw if span else ml

    def Y(v: float) -> float:  # noqa: N802 - the chart's y axis
        return mt + ph - (v - lo) / ((hi - lo) or 1) * ph

    e = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" role="img" '
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
    n = min(6, len(xs))
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
        parts.append(f'<text x="{lx + 14:.0f}" y="{h - 5}" font-size="11" '
                     f'fill="#374151">{e(name)}</text>')
        lx += 24 + len(name) * 6.2
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


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained HTML document for ``report`` (see the module docstring)."""
    e = html.escape
    title = str(report.get("title") or "agentkpi report")
    rows = _series_rows(report)
    kpis: Mapping[str, Any] = report.get("kpis") or {}
    charts = report.get("charts") or [
        {"title": t, "unit": u, "kpis": list(ks)} for t, u, ks in DEFAULT_CHARTS]

    def unit(k: str) -> str:
        meta = kpis.get(k)
        if isinstance(meta, Mapping):
            return str(meta.get("unit", ""))
        if k.endswith(("_rate", "_ratio")):
            return "ratio"
        return "USD" if k.startswith("cost") else ""

    rng_raw = report.get("range")
    rng = rng_raw if isinstance(rng_raw, Mapping) else {}
    ends = [report.get("from") or rng.get("start"), report.get("to") or rng.get("end")]
    span = " \u2192 ".join(str(v).replace("T", " ") for v in ends if v)
    tz = report.get("tz") or rng.get("tz") or "UTC"
    ts = report.get("time_series")
    grain = report.get("grain") or (ts.get("grain") if isinstance(ts, Mapping) else None)
    meta = [f"{span} {tz}" if span else "",
            f"grain: {grain}" if grain else "",
            "no data in this range" if report.get("empty") else "",
            f"{len(rows)} buckets" if rows else "",
            f"generated {report['generated_at']}" if report.get("generated_at") else ""]
    sep = " \u00b7 "
    out = ["<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{e(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{e(title)}</h1><div class=\"meta\">{e(sep.join(m for m in meta if m))}</div>"]
    sections = [("", report.get("totals") or {})] + [
        (name, report[name]) for name in CARD_SECTIONS if isinstance(report.get(name), Mapping)]
    for name, totals in sections:
        if not totals:
            continue
        if name:
            out.append(f"<h2>{e(name.capitalize())}</h2>")
        out.append('<div class="cards">')
        for k, v in totals.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                desc = kpis.get(k, {}).get("description", "") if isinstance(
                    kpis.get(k), Mapping) else ""
                out.append(f'<div class="card" title="{e(k)} \u2014 {e(desc)}"><div class="v">'
                           f'{e(fmt(v, unit(k)))}</div><div class="k">{e(label(k))}</div></div>')
        out.append("</div>")
    if rows:
        x = [r["bucket"] for r in rows]
        out.append('<div class="charts">')
        for ch in charts:
            present = [k for k in ch["kpis"] if any(k in r for r in rows)]
            if not present:
                continue
            svg = svg_line_chart(ch["title"], ch.get("unit", ""), x,
                                 [(k, [r.get(k) for r in rows]) for k in present])
            out.append(f'<div class="chart">{svg}</div>')
        out.append("</div>")
    for name, cols, trows, total in _tables(report):
        out.append(f"<h2>{e(name[:1].upper() + name[1:])}</h2><table><tr>")
        out.extend(f"<th>{e(c)}</th>" for c in cols)
        out.append("</tr>")
        for r in trows:
            out.append("<tr>" + "".join(f"<td>{e(fmt(r.get(c), unit(c)))}</td>" for c in cols)
                       + "</tr>")
        out.append("</table>")
        if total > len(trows):
            out.append(f'<p class="note">top {len(trows)} of {total}</p>')
    out.append('<p class="note">agentkpi \u2014 self-contained report; no scripts, no network.'
               "</p></body></html>\n")
    return "".join(out)
