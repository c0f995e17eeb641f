"""The KPI catalogue: every KPI defined once, declaratively.

A KPI is computed in two stages, both plain SQL aggregates so any engine runs
them (DuckDB by default, ClickHouse for scale; see :mod:`agentkpi.kpis.sql`):

1. **Session measures** (:data:`MEASURES`): one value per (bucket, session)
   from that session's events inside the window (e.g. ``llm_calls`` = count of
   ``llm_call`` events). Expressions and predicates use a portable SQL subset
   (comparisons, ``AND``/``OR``/``NOT``, ``IN``, ``lower``, ``coalesce``,
   ``LIKE``) over the canonical ``events`` columns.
2. **KPIs** (:data:`CATALOGUE`): one value per bucket aggregated over the
   session measures (sum, count, distinct count, percentile, JSON map), or
   arithmetic over other KPIs (ratios, differences) done after the query.

Session-level columns available in stage 2: every measure, ``turns``,
``user_key`` (user_id, falling back to the session id), ``model_key``
(session model or ``'unknown'``), ``ttfa_s`` (first in-window tool_call /
tool_output minus session start, seconds), ``calls_per_turn`` and
``session_duration_s`` (session end minus start from the sessions table; NULL
while the session runs).

The catalogue *is* the documentation: ``agentkpi kpis`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Seed 000's flavor -> GPU count table (gpu-hours = wall_time_s * gpus / 3600).
FLAVOR_GPU_COUNT: dict[str, int] = {
    "cpu-basic": 0, "cpu-upgrade": 0,
    "t4-small": 1, "t4-medium": 1,
    "l4x1": 1, "l4x4": 4,
    "l40sx1": 1, "l40sx4": 4, "l40sx8": 8,
    "a10g-small": 1, "a10g-large": 1, "a10g-largex2": 2, "a10g-largex4": 4,
    "a100-large": 1, "a100x2": 2, "a100x4": 4, "a100x8": 8,
    "h100": 1, "h100x8": 8,
}

JOB_SUCCESS_STATUSES = ("completed", "succeeded", "success")


def _gpu_count_sql() -> str:
    whens = " ".join(f"WHEN '{k}' THEN {v}" for k, v in FLAVOR_GPU_COUNT.items())
    return f"(CASE coalesce(flavor, 'unknown') {whens} ELSE 0 END)"


@dataclass(frozen=True)
class Measure:
    """A per-(bucket, session) value over the session's in-window events."""

    name: str
    agg: Literal["count", "sum", "min", "count_distinct"]
    where: str
    expr: str = ""
    #: For float sums: add up in this order (the seed's), so results are exact
    #: replicas rather than merely close; every engine then agrees bit for bit.
    order: str = ""


@dataclass(frozen=True)
class Kpi:
    """One KPI: name, meaning, unit and how it aggregates.

    ``agg``:
      * ``sum`` / ``count_if`` / ``count_distinct`` / ``percentile`` — SQL over
        session measures (``expr``, optional ``where``; ``p`` for percentile);
      * ``ratio`` — ``num / den`` of two other KPIs (0.0 when den is 0);
      * ``diff`` — ``num - den`` of two other KPIs;
      * ``map`` — JSON object ``{key: value}`` with sorted keys;
      * ``min`` / ``max`` — smallest / largest ``expr`` (``kind="time"`` for timestamps,
        returned as they are).

    ``level`` says what the aggregate runs over: ``session`` (the session
    measures, the default) or ``event`` (the in-window events themselves, for
    statistics such as tool-duration percentiles; ``expr``/``where`` then use
    ``events`` columns).
    """

    name: str
    description: str
    unit: str
    agg: Literal["sum", "count_if", "count_distinct", "percentile", "ratio", "diff", "map",
                 "min", "max"]
    expr: str = ""
    where: str = ""
    p: float = 0.0
    num: str = ""
    den: str = ""
    digits: int | None = None
    additive: bool = False
    level: Literal["event", "session"] = "session"
    map_value: Literal["sum", "count", "count_sessions"] = "count"
    kind: Literal["int", "float", "json", "time"] = "int"
    order: str = ""


TOOL_EVENT = "event_type IN ('tool_call', 'tool_output')"
NAMED_CALL = "event_type = 'tool_call' AND tool IS NOT NULL AND tool <> ''"

#: Durations of operations (tool runs, agent steps, timed metrics). Session lifecycle events
#: carry whole-session durations and are left out (see ``session_duration_s_*``).
DURATION_EVENT = ("duration_ms IS NOT NULL AND "
                  "event_type NOT IN ('session_start', 'session_end')")
#: An event that reported an outcome; a missing ``success`` is neither success nor failure.
OUTCOME_EVENT = "success IS NOT NULL"

#: Events whose token buckets count: model calls, and tokens reported apart from a call
#: (``token_usage``: seed-003 token_usage lines, seed-002 token metrics). Seed 000's rows
#: carry no token_usage events, so its hourly row is unchanged.
TOKEN_EVENT = "event_type IN ('llm_call', 'token_usage')"

MEASURES: tuple[Measure, ...] = (
    Measure("llm_calls", "count", "event_type = 'llm_call'"),
    Measure("tokens_prompt", "sum", TOKEN_EVENT, "prompt_tokens"),
    Measure("tokens_completion", "sum", TOKEN_EVENT, "completion_tokens"),
    Measure("tokens_cache_read", "sum", TOKEN_EVENT, "cache_read_tokens"),
    Measure("tokens_cache_creation", "sum", TOKEN_EVENT, "cache_creation_tokens"),
    # Totals without a split, on any event (a seed-003 session_end's token_count).
    Measure("tokens_unsplit", "sum", "unsplit_tokens IS NOT NULL", "unsplit_tokens"),
    Measure("cost_usd", "sum", "event_type = 'llm_call'", "cost_usd", order="seq"),
    # The counts are added as DOUBLE: four valid 64-bit counts of one event may not
    # fit a BIGINT together, and that must not fail the write of the aggregate tables.
    Measure("unpriced_tokens", "sum", f"cost_usd IS NULL AND ({TOKEN_EVENT} OR "
            "unsplit_tokens IS NOT NULL)",
            "CAST(coalesce(prompt_tokens, 0) AS DOUBLE) + "
            "CAST(coalesce(completion_tokens, 0) AS DOUBLE) + "
            "CAST(coalesce(cache_read_tokens, 0) AS DOUBLE) + "
            "CAST(coalesce(cache_creation_tokens, 0) AS DOUBLE) + "
            "CAST(coalesce(unsplit_tokens, 0) AS DOUBLE)"),
    Measure("tool_outputs", "count", "event_type = 'tool_output'"),
    Measure("tool_outputs_ok", "count", "event_type = 'tool_output' AND success"),
    Measure("errors", "count", "event_type = 'error'"),
    Measure("undos", "count", "event_type = 'undo_complete'"),
    Measure("first_action_ts", "min", TOOL_EVENT, "ts"),
    Measure("thumbs_up", "count", "event_type = 'feedback' AND rating = 'up'"),
    Measure("thumbs_down", "count", "event_type = 'feedback' AND rating = 'down'"),
    Measure("hf_jobs_submitted", "count", "event_type = 'hf_job_submit'"),
    Measure("hf_jobs_succeeded", "count", "event_type = 'hf_job_complete' AND "
            f"lower(coalesce(status, '')) IN {JOB_SUCCESS_STATUSES!r}"),
    Measure("hf_jobs_blocked", "count", "event_type = 'jobs_access_blocked'"),
    Measure("pro_cta_clicks", "count", "event_type = 'pro_cta_click'"),
    Measure("pro_conversions", "count", "event_type = 'pro_conversion'"),
    Measure("credits_topped_up", "count", "event_type = 'credits_topped_up'"),
    Measure("sandboxes_created", "count", "event_type = 'sandbox_create'"),
    Measure("sandboxes_cpu", "count",
            "event_type = 'sandbox_create' AND lower(coalesce(hardware, '')) LIKE 'cpu-%'"),
    Measure("research_calls", "count", "event_type = 'tool_call' AND tool = 'research'"),
    Measure("named_tool_calls", "count", NAMED_CALL),
    Measure("distinct_tools", "count_distinct", NAMED_CALL, "tool"),
    # Query-layer measures (QUERY_KPIS); computed only when a requested KPI reads them.
    Measure("events", "count", ""),
    Measure("outcomes_ok", "count", "success"),
    Measure("outcomes_failed", "count", "NOT success"),
    Measure("outcomes", "count", OUTCOME_EVENT),
    Measure("durations", "count", DURATION_EVENT),
    Measure("duration_ms_sum", "sum", DURATION_EVENT, "duration_ms", order="seq"),
)


def _k(name: str, description: str, unit: str, agg: str, **kw: object) -> Kpi:
    return Kpi(name, description, unit, agg, **kw)  # type: ignore[arg-type]


def _sum(name: str, description: str, unit: str, expr: str | None = None,
         kind: str = "int", digits: int | None = None, additive: bool = True) -> Kpi:
    # Float sums run over sessions in the seed's order (source file, then id).
    order = "src_order, session_id" if kind == "float" else ""
    return _k(name, description, unit, "sum", expr=expr or name, additive=additive, kind=kind,
              digits=digits, order=order)


def _pct(name: str, description: str, unit: str, expr: str, p: float, where: str = "",
         digits: int = 2) -> Kpi:
    return _k(name, description, unit, "percentile", expr=expr, p=p, where=where,
              digits=digits, kind="float")


def _ratio(name: str, description: str, num: str, den: str, digits: int = 4,
           unit: str = "ratio") -> Kpi:
    """``num / den``; ``unit`` is what the quotient measures ('ratio' for a share)."""
    return _k(name, description, unit, "ratio", num=num, den=den, digits=digits,
              kind="float")


CATALOGUE: tuple[Kpi, ...] = (
    _k("sessions", "Distinct sessions with at least one event in the bucket (whatever day "
       "they started).", "sessions", "count_if", expr="1", additive=False),
    _k("users", "Distinct users among those sessions; a session without user_id counts as "
       "its own user.", "users", "count_distinct", expr="user_key"),
    _sum("turns", "User messages of the active sessions (all of each session's messages, "
         "not windowed, so not additive across buckets).", "messages", additive=False),
    _sum("llm_calls", "llm_call events.", "calls"),
    _sum("tokens_prompt", "Prompt tokens of llm_call and token_usage events.", "tokens"),
    _sum("tokens_completion", "Completion tokens of llm_call and token_usage events.",
         "tokens"),
    _sum("tokens_cache_read", "Prompt tokens read from cache.", "tokens"),
    _sum("tokens_cache_creation", "Prompt tokens written to cache.", "tokens"),
    _sum("cost_usd", "Sum of llm_call cost_usd.", "USD", kind="float", digits=4),
    _ratio("cost_per_session_mean", "cost_usd / sessions (unrounded cost).",
           "_cost_usd_raw", "sessions", digits=6, unit="USD"),
    _pct("cost_per_session_p50", "Median per-session cost, all sessions (zeros included).",
         "USD", "cost_usd", 0.5, digits=6),
    _pct("cost_per_session_p95", "95th percentile per-session cost, all sessions.",
         "USD", "cost_usd", 0.95, digits=6),
    _ratio("cache_hit_ratio", "tokens_cache_read / (tokens_cache_read + tokens_prompt).",
           "tokens_cache_read", "_prompt_plus_cache"),
    _sum("tool_calls_total", "tool_output events (every tool run that reported back).",
         "calls", expr="tool_outputs"),
    _sum("tool_calls_succeeded", "tool_output events with success = true.", "calls",
         expr="tool_outputs_ok"),
    _k("tool_calls_failed", "tool_calls_total - tool_calls_succeeded (a missing success "
       "counts as failed, as in the seed).", "calls", "diff", num="tool_calls_total",
       den="tool_calls_succeeded", additive=True),
    _k("errored_sessions", "Sessions with at least one error event in the bucket.",
       "sessions", "count_if", where="errors > 0"),
    _k("successful_sessions", "sessions - errored_sessions.", "sessions", "diff",
       num="sessions", den="errored_sessions"),
    _k("regenerated_sessions", "Sessions with at least one undo_complete event.",
       "sessions", "count_if", where="undos > 0"),
    _ratio("tool_success_rate", "tool_calls_succeeded / tool_calls_total.",
           "tool_calls_succeeded", "tool_calls_total"),
    _ratio("failure_rate", "errored_sessions / sessions.", "errored_sessions", "sessions"),
    _ratio("regenerate_rate", "regenerated_sessions / sessions.", "regenerated_sessions",
           "sessions"),
    _pct("time_to_first_action_s_p50", "Median seconds from session start to its first "
         "in-window tool_call/tool_output (negative and missing left out).", "s", "ttfa_s",
         0.5, where="ttfa_s >= 0"),
    _pct("time_to_first_action_s_p95", "95th percentile of time to first action.", "s",
         "ttfa_s", 0.95, where="ttfa_s >= 0"),
    _sum("thumbs_up", "feedback events rated up.", "events"),
    _sum("thumbs_down", "feedback events rated down.", "events"),
    _sum("hf_jobs_submitted", "hf_job_submit events.", "jobs"),
    _sum("hf_jobs_succeeded", "hf_job_complete events with final_status completed / "
         "succeeded / success (any case).", "jobs"),
    _sum("sandboxes_created", "sandbox_create events.", "sandboxes"),
    _sum("sandboxes_cpu", "sandbox_create events on hardware 'cpu-*' (any case).",
         "sandboxes"),
    _k("sandboxes_gpu", "sandbox_create events on any other hardware, missing included.",
       "sandboxes", "diff", num="sandboxes_created", den="sandboxes_cpu", additive=True),
    _sum("hf_jobs_blocked", "jobs_access_blocked events.", "events"),
    _sum("pro_cta_clicks", "pro_cta_click events.", "events"),
    _sum("pro_conversions", "pro_conversion events.", "events"),
    _sum("credits_topped_up", "credits_topped_up events.", "events"),
    _k("gpu_hours_by_flavor_json", "JSON {flavor: gpu-hours} of hf_job_complete events: "
       "wall_time_s x GPUs of the flavor / 3600 (unknown flavor: 0 GPUs, key kept).",
       "gpu-hours", "map", level="event", expr="coalesce(flavor, 'unknown')",
       where="event_type = 'hf_job_complete'", map_value="sum",
       num=f"coalesce(wall_time_s, 0.0) * {_gpu_count_sql()} / 3600.0", kind="json"),
    _sum("research_calls", "tool_call events of the 'research' tool.", "calls"),
    _k("sessions_with_research", "Sessions that called research at least once.",
       "sessions", "count_if", where="research_calls > 0"),
    _pct("research_calls_per_session_p50", "Median research calls among sessions that "
         "did any.", "calls", "research_calls", 0.5, where="research_calls > 0"),
    _pct("research_calls_per_session_p95", "95th percentile of research calls among "
         "sessions that did any.", "calls", "research_calls", 0.95,
         where="research_calls > 0"),
    _pct("distinct_tools_per_session_p50", "Median distinct named tools among sessions "
         "with at least one named tool_call.", "tools", "distinct_tools", 0.5,
         where="distinct_tools > 0"),
    _pct("distinct_tools_per_session_p95", "95th percentile of distinct named tools per "
         "session.", "tools", "distinct_tools", 0.95, where="distinct_tools > 0"),
    _pct("tool_calls_per_session_p50", "Median named tool_calls among sessions with at "
         "least one.", "calls", "named_tool_calls", 0.5, where="named_tool_calls > 0"),
    _pct("tool_calls_per_session_p95", "95th percentile of named tool_calls per session.",
         "calls", "named_tool_calls", 0.95, where="named_tool_calls > 0"),
    _pct("tool_calls_per_turn_p50", "Median named tool_calls / turns among sessions with "
         "turns > 0 (zeros kept).", "calls/turn", "calls_per_turn", 0.5,
         where="turns > 0"),
    _pct("tool_calls_per_turn_p95", "95th percentile of named tool_calls / turns.",
         "calls/turn", "calls_per_turn", 0.95, where="turns > 0"),
    _k("tool_calls_by_name_json", "JSON {tool: named tool_call events}.", "calls", "map",
       level="event", expr="tool", where=NAMED_CALL, map_value="count", kind="json"),
    _k("sessions_using_tool_json", "JSON {tool: sessions with a tool_call of it}.",
       "sessions", "map", level="event", expr="tool", where=NAMED_CALL,
       map_value="count_sessions", kind="json"),
    _k("sessions_by_model_json", "JSON {session model_name or 'unknown': sessions}.",
       "sessions", "map", level="session", expr="model_key", map_value="count", kind="json"),
    _k("pro_cta_by_source_json", "JSON {CTA source or 'unknown': pro_cta_click events}.",
       "events", "map", level="event", expr="coalesce(source, 'unknown')",
       where="event_type = 'pro_cta_click'", map_value="count", kind="json"),
)

#: Helper values computed in SQL for ratios but not emitted as columns.
HIDDEN: tuple[Kpi, ...] = (
    _sum("_cost_usd_raw", "", "USD", expr="cost_usd", kind="float"),
    _sum("_prompt_plus_cache", "", "tokens", expr="tokens_prompt + tokens_cache_read"),
)

def _ev(name: str, description: str, unit: str, agg: str, **kw: object) -> Kpi:
    return _k(name, description, unit, agg, level="event", **kw)


#: KPIs for ad-hoc queries (``agentkpi query``, reports): seed 001's statistics. Not in the
#: hourly CSV. Event-level ones aggregate the in-window events themselves.
QUERY_KPIS: tuple[Kpi, ...] = (
    _sum("events", "Events in the bucket (every type; seed 001's metric count).", "events"),
    _sum("errors", "error events.", "events"),
    _ratio("errors_per_session", "errors / sessions.", "errors", "sessions",
           unit="errors/session"),
    _sum("tokens_unsplit", "Tokens reported only as a total, without the prompt/completion "
         "split (seed-003 token_count; the part of a reported total beyond its split).",
         "tokens"),
    _sum("tokens_total", "Prompt + completion tokens of llm_call and token_usage events, plus "
         "tokens_unsplit (cache tokens are reported separately).", "tokens",
         expr="tokens_prompt + tokens_completion + tokens_unsplit"),
    _ratio("tokens_per_session", "tokens_total / sessions.", "tokens_total", "sessions",
           digits=2, unit="tokens"),
    _sum("unpriced_tokens", "Tokens (all four buckets and unsplit ones) of llm_calls and "
         "token reports without a cost: the source carried none and the price table does not "
         "know the model (token reports are never priced). Never priced at $0; see "
         "`agentkpi reprice`.", "tokens"),
    _sum("duration_count", "Events with a duration (operations; session lifecycle events "
         "left out).", "events", expr="durations"),
    _sum("duration_ms_total", "Sum of operation durations.", "ms", expr="duration_ms_sum",
         kind="float", digits=3),
    _ratio("duration_ms_avg", "duration_ms_total / duration_count.", "duration_ms_total",
           "duration_count", digits=3, unit="ms"),
    _ev("duration_ms_min", "Shortest operation duration (0.0 when none).", "ms", "min",
        expr="duration_ms", where=DURATION_EVENT, kind="float", digits=3),
    _ev("duration_ms_max", "Longest operation duration (0.0 when none).", "ms", "max",
        expr="duration_ms", where=DURATION_EVENT, kind="float", digits=3),
    _ev("duration_ms_p50", "Median operation duration, linear interpolation.", "ms",
        "percentile", expr="duration_ms", p=0.5, where=DURATION_EVENT, kind="float",
        digits=2),
    _ev("duration_ms_p95", "95th percentile operation duration, linear interpolation.",
        "ms", "percentile", expr="duration_ms", p=0.95, where=DURATION_EVENT, kind="float",
        digits=2),
    _ev("duration_ms_p99", "99th percentile operation duration, linear interpolation.",
        "ms", "percentile", expr="duration_ms", p=0.99, where=DURATION_EVENT, kind="float",
        digits=2),
    _ev("llm_latency_ms_p50", "Median llm_call latency.", "ms", "percentile",
        expr="latency_ms", p=0.5, where="event_type = 'llm_call' AND latency_ms IS NOT NULL",
        kind="float", digits=2),
    _ev("llm_latency_ms_p95", "95th percentile llm_call latency.", "ms", "percentile",
        expr="latency_ms", p=0.95,
        where="event_type = 'llm_call' AND latency_ms IS NOT NULL", kind="float", digits=2),
    _pct("session_duration_s_p50", "Median session duration (sessions table end - start; "
         "running sessions left out).", "s", "session_duration_s", 0.5,
         where="session_duration_s >= 0"),
    _pct("session_duration_s_p95", "95th percentile session duration.", "s",
         "session_duration_s", 0.95, where="session_duration_s >= 0"),
    _sum("success_count", "Events reporting success = true (any type).", "events",
         expr="outcomes_ok"),
    _sum("failure_count", "Events reporting success = false; a missing success is not a "
         "failure.", "events", expr="outcomes_failed"),
    _sum("outcome_count", "Events reporting a success value (success_count + "
         "failure_count).", "events", expr="outcomes"),
    _ratio("success_rate", "success_count / outcome_count (0.0 when none).",
           "success_count", "outcome_count"),
    _ev("first_event_at", "Earliest event time in the bucket (UTC).", "time", "min",
        expr="ts", kind="time"),
    _ev("last_event_at", "Latest event time in the bucket (UTC).", "time", "max",
        expr="ts", kind="time"),
    _ev("events_by_type_json", "JSON {event_type: events}.", "events", "map",
        expr="coalesce(event_type, 'unknown')", map_value="count", kind="json"),
    _ev("errors_by_type_json", "JSON {error_type or 'unknown': error events}.", "events",
        "map", expr="coalesce(error_type, 'unknown')", where="event_type = 'error'",
        map_value="count", kind="json"),
    _ev("tool_outputs_by_name_json", "JSON {tool: tool_output events}.", "events", "map",
        expr="coalesce(tool, 'unknown')", where="event_type = 'tool_output'",
        map_value="count", kind="json"),
)

BY_NAME: dict[str, Kpi] = {k.name: k for k in (*CATALOGUE, *HIDDEN, *QUERY_KPIS)}
HOURLY_COLUMNS: tuple[str, ...] = tuple(k.name for k in CATALOGUE)
