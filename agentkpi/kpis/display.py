"""How KPIs are shown to people: a human label per KPI and one unit-aware formatter.

The catalogue (:mod:`agentkpi.kpis.catalogue`) names every KPI for machines
(``time_to_first_action_s_p50``) and gives its unit; this module gives it a
label for people ("Time to first action, median") and formats its values by
unit: dollars, percentages, durations in ms/s/min/h, token counts with k/M.
Cards, tables and charts of the dashboard, the HTML report and the PNG plots
all format through :func:`format_value`, so a number reads the same
everywhere (the dashboard's JavaScript mirrors it in ``AKChart.fmt`` and a
test holds the two to the same outputs). The raw name stays visible on hover
and in every JSON twin.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from agentkpi.kpis.catalogue import BY_NAME

#: KPI name -> label. Every public KPI has one (a test checks it).
LABELS: dict[str, str] = {
    "sessions": "Sessions",
    "users": "Users",
    "turns": "User messages",
    "llm_calls": "Model calls",
    "tokens_prompt": "Input tokens (uncached)",
    "tokens_completion": "Output tokens",
    "tokens_cache_read": "Cache-read tokens",
    "tokens_cache_creation": "Cache-write tokens",
    "cost_usd": "Cost",
    "cost_per_session_mean": "Cost per session, mean",
    "cost_per_session_p50": "Cost per session, median",
    "cost_per_session_p95": "Cost per session, p95",
    "cache_hit_ratio": "Cache hit ratio",
    "tool_calls_total": "Tool runs",
    "tool_calls_succeeded": "Tool runs succeeded",
    "tool_calls_failed": "Tool runs failed",
    "errored_sessions": "Sessions with errors",
    "successful_sessions": "Sessions without errors",
    "regenerated_sessions": "Sessions with an undo",
    "tool_success_rate": "Tool success rate",
    "failure_rate": "Session failure rate",
    "regenerate_rate": "Undo rate",
    "time_to_first_action_s_p50": "Time to first action, median",
    "time_to_first_action_s_p95": "Time to first action, p95",
    "thumbs_up": "Thumbs up",
    "thumbs_down": "Thumbs down",
    "hf_jobs_submitted": "Jobs submitted",
    "hf_jobs_succeeded": "Jobs succeeded",
    "sandboxes_created": "Sandboxes created",
    "sandboxes_cpu": "CPU sandboxes",
    "sandboxes_gpu": "GPU sandboxes",
    "hf_jobs_blocked": "Jobs blocked (no access)",
    "pro_cta_clicks": "Upgrade clicks",
    "pro_conversions": "Upgrades",
    "credits_topped_up": "Credit top-ups",
    "gpu_hours_by_flavor_json": "GPU hours by flavor",
    "research_calls": "Research calls",
    "sessions_with_research": "Sessions using research",
    "research_calls_per_session_p50": "Research calls per session, median",
    "research_calls_per_session_p95": "Research calls per session, p95",
    "distinct_tools_per_session_p50": "Distinct tools per session, median",
    "distinct_tools_per_session_p95": "Distinct tools per session, p95",
    "tool_calls_per_session_p50": "Tool calls per session, median",
    "tool_calls_per_session_p95": "Tool calls per session, p95",
    "tool_calls_per_turn_p50": "Tool calls per message, median",
    "tool_calls_per_turn_p95": "Tool calls per message, p95",
    "tool_calls_by_name_json": "Tool calls by tool",
    "sessions_using_tool_json": "Sessions using each tool",
    "sessions_by_model_json": "Sessions by model",
    "pro_cta_by_source_json": "Upgrade clicks by placement",
    "events": "Events",
    "errors": "Errors",
    "errors_per_session": "Errors per session",
    "tokens_unsplit": "Tokens without input/output split",
    "tokens_total": "Tokens (input + output)",
    "tokens_per_session": "Tokens per session",
    "unpriced_tokens": "Unpriced tokens",
    "duration_count": "Timed operations",
    "duration_ms_total": "Operation time, total",
    "duration_ms_avg": "Operation time, mean",
    "duration_ms_min": "Operation time, shortest",
    "duration_ms_max": "Operation time, longest",
    "duration_ms_p50": "Operation time, median",
    "duration_ms_p95": "Operation time, p95",
    "duration_ms_p99": "Operation time, p99",
    "llm_latency_ms_p50": "Model latency, median",
    "llm_latency_ms_p95": "Model latency, p95",
    "session_duration_s_p50": "Session length, median",
    "session_duration_s_p95": "Session length, p95",
    "success_count": "Succeeded",
    "failure_count": "Failed",
    "outcome_count": "With an outcome",
    "success_rate": "Success rate",
    "first_event_at": "First event",
    "last_event_at": "Last event",
    "events_by_type_json": "Events by type",
    "errors_by_type_json": "Errors by type",
    "tool_outputs_by_name_json": "Tool runs by tool",
}

#: Units whose values are durations, and their size in seconds.
DURATION_UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0}
#: Units whose values are counts of tokens (shown with k/M).
TOKEN_UNITS = frozenset({"tokens"})

DASH = "\u2013"


def label(name: str) -> str:
    """The human label of a KPI (the name itself, tidied, for names not in the table)."""
    return LABELS.get(name) or name.replace("_", " ").strip().capitalize()


def unit(name: str) -> str:
    """The unit of a KPI from the catalogue ('' when unknown)."""
    kpi = BY_NAME.get(name)
    return kpi.unit if kpi is not None else ""


def _fixed(v: float, digits: int) -> str:
    """``v`` with ``digits`` decimals, ties away from zero on the exact binary value.

    This is JavaScript's ``Number.prototype.toFixed``, so the dashboard prints the
    same digits (``f"{4.25:.1f}"`` is '4.2', ``(4.25).toFixed(1)`` is '4.3').
    Like ``toFixed``, magnitudes from 1e21 up (saturated sums) are written with an
    exponent instead of failing.
    """
    if not abs(v) < 1e21:
        return repr(float(v))
    return str(Decimal(v).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def _count(v: float) -> str:
    a = abs(v)
    for div, suffix in ((1e9, "G"), (1e6, "M")):
        if a >= div:
            return f"{_fixed(v / div, 1)}{suffix}"
    if a >= 1e4:
        return f"{_fixed(v / 1e3, 0)}k"
    if a >= 1e3:
        return f"{_fixed(v / 1e3, 1)}k"
    if float(v).is_integer():
        return f"{int(v)}"
    return f"{_fixed(v, 3)}" if a < 1 else f"{_fixed(v, 1)}"


def _duration(seconds: float) -> str:
    a = abs(seconds)
    if a < 1:
        ms = seconds * 1000
        digits = 0 if abs(ms) >= 10 or float(ms).is_integer() else 1
        return f"{_fixed(ms, digits)} ms"
    if a < 60:
        return f"{_fixed(seconds, 1)} s"
    if a < 3600:
        return f"{_fixed(seconds / 60, 1)} min"
    return f"{_fixed(seconds / 3600, 1)} h"


def _usd(v: float) -> str:
    a = abs(v)
    if a == 0:
        return "$0"
    if a >= 1e6:
        return f"${_fixed(v / 1e6, 1)}M"
    if a >= 1e4:
        return f"${_fixed(v / 1e3, 1)}k"
    if a >= 100:  # half up, as the dashboard's Math.round
        return f"${math.floor(v + 0.5):,}"
    if a >= 0.01:
        return f"${_fixed(v, 2)}"
    return f"${_fixed(v, 4)}" if a >= 0.0001 else f"${_fixed(v, 6)}"


def format_value(v: Any, unit: str = "") -> str:
    """``v`` for people, by unit: '$1.23', '87.5%', '850 ms', '2.1 min', '12.3k'.

    Missing and non-finite values show as a dash; non-numbers as text.
    """
    if v is None or isinstance(v, bool):
        return DASH if v is None else str(v)
    if not isinstance(v, (int, float)):
        return str(v)
    if not math.isfinite(v):
        return DASH
    if unit == "ratio":
        a = abs(v)
        return f"{_fixed(v * 100, 1)}%" if 0 < a < 0.1 else f"{_fixed(v * 100, 0)}%"
    if unit == "USD":
        return _usd(float(v))
    if unit in DURATION_UNITS:
        return _duration(float(v) * DURATION_UNITS[unit])
    return _count(v)


def format_kpi(name: str, v: Any) -> str:
    """A KPI's value formatted by its catalogue unit."""
    return format_value(v, unit(name))
