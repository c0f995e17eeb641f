"""Reports: a summary of a time range as data (:func:`build_report`) and text (:func:`render`).

The report dict is the contract (JSON-safe: strings, numbers, lists, dicts, no
NaN); renderers only lay it out. Every number comes from :func:`agentkpi.query`,
so the report runs on every engine and agrees with ``agentkpi query``.

Sections: ``summary``, ``tokens`` (and cost, plus ``by_model``),
``performance`` (duration / latency / session-length percentiles),
``tools``, ``agents``, ``errors`` (by type) and ``time_series``. An empty store
or range gives a report with ``empty: true`` and zeros, which renders as
"no data" rather than failing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agentkpi.errors import UsageError
from agentkpi.queries import query
from agentkpi.sinks.jsonl import finite
from agentkpi.times import hour_end, local_iso, parse_time
from agentkpi.times import zone as time_zone

FORMATS = ("markdown", "html", "csv", "json")

SUMMARY = ("sessions", "users", "events", "turns", "llm_calls", "errors", "errored_sessions",
           "failure_rate", "tool_calls_total", "tool_success_rate", "success_count",
           "failure_count", "success_rate", "thumbs_up", "thumbs_down")
TOKENS = ("tokens_prompt", "tokens_completion", "tokens_cache_read", "tokens_cache_creation",
          "tokens_total", "tokens_per_session", "cache_hit_ratio", "cost_usd",
          "cost_per_session_mean", "cost_per_session_p50", "cost_per_session_p95")
PERFORMANCE = ("duration_count", "duration_ms_avg", "duration_ms_min", "duration_ms_p50",
               "duration_ms_p95", "duration_ms_p99", "duration_ms_max", "llm_latency_ms_p50",
               "llm_latency_ms_p95", "session_duration_s_p50", "session_duration_s_p95",
               "time_to_first_action_s_p50", "time_to_first_action_s_p95")
BY_MODEL = ("llm_calls", "tokens_total", "cost_usd")
TOOLS = ("events", "sessions", "success_count", "failure_count", "success_rate",
         "duration_ms_avg", "duration_ms_p50", "duration_ms_p95")
AGENTS = ("events", "sessions", "errors", "success_rate", "tokens_total", "cost_usd")
SERIES = ("sessions", "users", "events", "errors", "llm_calls", "tokens_total", "cost_usd")
TOP = 25
#: The queries a report runs (summary, by model, tools, agents, errors, time series).
QUERIES = 6


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # never NaN in a report
        return None
    return value


def _rows(table: Any, label: str | None = None) -> list[dict[str, Any]]:
    rows = [{k: _json_safe(v) for k, v in r.items()} for r in table.to_pylist()]
    if label is not None:
        rows = [r for r in rows if r.get(label) is not None]
    return rows


def _series_grain(start: datetime, end: datetime) -> str:
    span = end - start
    if span <= timedelta(days=3):
        return "hour"
    if span <= timedelta(days=120):
        return "day"
    return "week"


def build_report(store: Any, start: str | date | datetime | None = None,
                 end: str | date | datetime | None = None, tz: str = "UTC",
                 top: int = TOP, progress: Callable[[str, int, int], None] | None = None
                 ) -> dict[str, Any]:
    """Summarise ``[start, end)`` (default: everything in the store) into a JSON-safe dict.

    ``progress("report", queries done, QUERIES)`` is called after each of its queries.
    """
    zone = time_zone(tz)
    lo = parse_time(start, zone, "start")
    hi = parse_time(end, zone, "end")
    if lo is None or hi is None:
        first, last = store.time_range()
        if lo is None:
            lo = first.replace(minute=0, second=0, microsecond=0) if first else None
        if hi is None:
            hi = hour_end(last) if last else None
    if lo is not None and hi is not None and hi <= lo:
        raise UsageError(f"empty range: start {start} is not before end {end}; the range is "
                         "[start, end)")
    report: dict[str, Any] = {
        "title": "agentkpi report",
        "range": {"start": _local(lo, zone), "end": _local(hi, zone), "tz": tz},
        "empty": True,
    }
    scalars = (*SUMMARY, *TOKENS, *PERFORMANCE)
    zero = {m: (0.0 if m in _FLOATS else 0) for m in scalars}
    if lo is None or hi is None:
        report.update(summary={m: zero[m] for m in SUMMARY},
                      tokens={m: zero[m] for m in TOKENS},
                      performance={m: zero[m] for m in PERFORMANCE},
                      by_model=[], tools=[], agents=[], errors=[],
                      time_series={"grain": "hour", "rows": []})
        return report

    done = 0
    if progress:
        progress("report", 0, QUERIES)

    def q(metrics: tuple[str, ...], **kw: Any) -> Any:
        nonlocal done
        table = query(metrics=list(metrics), start=lo.replace(tzinfo=UTC),
                      end=hi.replace(tzinfo=UTC), tz=tz, store=store, **kw)
        done += 1
        if progress:
            progress("report", done, QUERIES)
        return table

    total = _rows(q(scalars, grain=None))
    row = total[0] if total else zero
    report["empty"] = not row.get("sessions")
    report["summary"] = {m: row.get(m, zero[m]) for m in SUMMARY}
    report["tokens"] = {m: row.get(m, zero[m]) for m in TOKENS}
    report["performance"] = {m: row.get(m, zero[m]) for m in PERFORMANCE}
    report["by_model"] = _rows(q(BY_MODEL, grain=None, by=["model"],
                                 where={"event_type": "llm_call"}, top=top), "model")
    report["tools"] = _rows(q(TOOLS, grain=None, by=["tool"], top=top), "tool")
    report["agents"] = _rows(q(AGENTS, grain=None, by=["agent"], top=top), "agent")
    errors = _rows(q(("events", "sessions"), grain=None, by=["error_type"],
                     where={"event_type": "error"}))
    report["errors"] = [{"error_type": r["error_type"] or "unknown", "errors": r["events"],
                         "sessions": r["sessions"]} for r in errors]
    grain = _series_grain(lo, hi)
    report["time_series"] = {"grain": grain, "rows": _rows(q(SERIES, grain=grain))}
    return report


_FLOATS = frozenset({"failure_rate", "tool_success_rate", "success_rate", "tokens_per_session",
                     "cache_hit_ratio", "cost_usd", "cost_per_session_mean",
                     "cost_per_session_p50", "cost_per_session_p95", *(
                         p for p in PERFORMANCE if p != "duration_count")})


def _local(dt: datetime | None, zone: ZoneInfo) -> str | None:
    return local_iso(dt, zone)


# ----------------------------------------------------------------------------- rendering

def render(report: dict[str, Any], fmt: str = "markdown") -> str:
    """Lay a report out as ``markdown``, ``html``, ``csv`` or ``json`` text."""
    if fmt == "json":
        return json.dumps(finite(report), indent=2, allow_nan=False) + "\n"
    if fmt == "markdown":
        return _markdown(report)
    if fmt == "csv":
        return _csv(report)
    if fmt == "html":
        from agentkpi.reports.html import render_html

        return render_html(report)
    raise UsageError(f"unknown report format {fmt!r}; choose from {', '.join(FORMATS)}")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if value else "0"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _sections(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, header, rows) of every table in the report, in reading order."""
    out = [("Summary", ["metric", "value"], [[k, v] for k, v in report["summary"].items()]),
           ("Tokens and cost", ["metric", "value"],
            [[k, v] for k, v in report["tokens"].items()]),
           ("Performance", ["metric", "value"],
            [[k, v] for k, v in report["performance"].items()])]
    for title, key in (("Tokens by model", "by_model"), ("Tools", "tools"),
                       ("Agents", "agents"), ("Errors by type", "errors")):
        rows = report.get(key) or []
        header = list(rows[0]) if rows else []
        out.append((title, header, [[r[h] for h in header] for r in rows]))
    ts = report.get("time_series") or {"grain": "hour", "rows": []}
    rows = ts["rows"]
    header = list(rows[0]) if rows else []
    out.append((f"Time series (per {ts['grain']})", header,
                [[r[h] for h in header] for r in rows]))
    return out


def _range_text(report: dict[str, Any]) -> str:
    r = report["range"]
    if r["start"] is None:
        return "the store holds no events"
    return f"{r['start']} to {r['end']} ({r['tz']}), end excluded"


def _md_cell(value: Any) -> str:
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def _markdown(report: dict[str, Any]) -> str:
    lines = [f"# {report['title']}", "", f"Range: {_range_text(report)}.", ""]
    if report["empty"]:
        lines += ["**No data:** no session has an event in this range.", ""]
    for title, header, rows in _sections(report):
        lines += [f"## {title}", ""]
        if not rows:
            lines += ["_none_", ""]
            continue
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header)))
                     + "|")
        lines += ["| " + " | ".join(_md_cell(v) for v in r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def _csv(report: dict[str, Any]) -> str:
    """Tidy CSV: section, row, metric, value (formula-like cells neutralised)."""
    from agentkpi.sinks._batches import neutralise_value

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "row", "metric", "value"])
    r = report["range"]
    w.writerow(["range", "", "start", r["start"] or ""])
    w.writerow(["range", "", "end", r["end"] or ""])
    w.writerow(["range", "", "tz", r["tz"]])
    w.writerow(["range", "", "empty", str(report["empty"]).lower()])
    for section in ("summary", "tokens", "performance"):
        for k, v in report[section].items():
            w.writerow([section, "", k, v])
    keys = {"by_model": "model", "tools": "tool", "agents": "agent", "errors": "error_type"}
    for section, key in keys.items():
        for row in report.get(section) or []:
            for k, v in row.items():
                if k != key:
                    w.writerow([section, neutralise_value(str(row[key])), k, v])
    for row in report["time_series"]["rows"]:
        for k, v in row.items():
            if k != "bucket":
                w.writerow(["time_series", row["bucket"], k, v])
    return buf.getvalue()
