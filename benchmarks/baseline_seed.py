"""Baseline: the seed's per-session, pure-Python hourly rollup (for benchmarks and as an oracle).

This reimplements the *approach* of ``seeds/000_build_kpis.txt`` in plain
Python with the standard ``json`` module: for every hour, list and parse every
file in that hour's date folder and the previous date's folder, decode the row
and its ``events`` string, keep the events whose timestamp falls in
``[hour, hour+1h)``, reduce each session to its metrics and aggregate.

It computes the seed's columns plus the newer script's columns (those of
``data/constructed/CONSTRUCTED_hourly_2026-05-20_14.csv``), with the data
rules of DESIGN.md where the seed would crash (``"abc"`` in a token field is
treated as 0, ``events`` that is not a list is treated as empty, the string
``"false"`` is not a success). Two seed shortcuts are kept on purpose because
they are what the benchmark measures: only the hour's date folder and
``lookback_days`` previous ones are scanned (sessions that started earlier are
missed), and each hour re-reads and re-parses every file.

    baseline_rollup(root, hours) -> {hour: row}   # hours with no session are absent
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = ["FLAVOR_GPU_COUNT", "baseline_hour", "baseline_rollup", "percentile"]

FLAVOR_GPU_COUNT: dict[str, int] = {
    "cpu-basic": 0, "cpu-upgrade": 0,
    "t4-small": 1, "t4-medium": 1,
    "l4x1": 1, "l4x4": 4,
    "l40sx1": 1, "l40sx4": 4, "l40sx8": 8,
    "a10g-small": 1, "a10g-large": 1, "a10g-largex2": 2, "a10g-largex4": 4,
    "a100-large": 1, "a100x2": 2, "a100x4": 4, "a100x8": 8,
    "h100": 1, "h100x8": 8,
}
_JOB_OK = ("completed", "succeeded", "success")
_TRUE = {"true", "1", "yes", "y", "ok", "success", "succeeded"}


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0.0 when empty."""
    if not values:
        return 0.0
    v = sorted(values)
    k = (len(v) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    if lo == hi:
        return float(v[lo])
    return float(v[lo] + (v[hi] - v[lo]) * (k - lo))


def _ts(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def _num(value: Any) -> float:
    """Number-ish -> float; None, garbage and non-finite -> 0.0."""
    if value is None or isinstance(value, (dict, list)):
        return 0.0
    if isinstance(value, bool):
        return float(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        return 0.0
    return f if f == f and f not in (float("inf"), float("-inf")) else 0.0


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    return int(_num(value))


def _ok(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


def _load(path: str) -> dict | None:
    """One session file -> row with decoded messages/events/tools, or None if unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            line = fh.readline().strip()
        if not line:
            return None
        row = json.loads(line)
    except (OSError, ValueError):
        return None
    if not isinstance(row, dict):
        return None
    for key in ("messages", "events", "tools"):
        v = row.get(key)
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                v = []
        row[key] = v if isinstance(v, list) else []
    return row


def _session_metrics(row: dict, events: list[dict]) -> dict:
    """One session's contribution, from its in-window ``events`` (already filtered)."""
    m: dict[str, Any] = defaultdict(int)
    m["turns"] = sum(1 for msg in row["messages"]
                     if isinstance(msg, dict) and msg.get("role") == "user")
    m["cost"] = 0.0
    start = _ts(row.get("session_start_time"))
    first_action: float | None = None
    gpu: dict[str, float] = defaultdict(float)
    cta: dict[str, int] = defaultdict(int)
    named: dict[str, int] = defaultdict(int)
    errored = undo = False
    for ev, ts in events:
        et = ev.get("event_type")
        data = ev.get("data")
        if not isinstance(data, dict):
            data = {}
        if et == "llm_call":
            m["llm_calls"] += 1
            m["tokens_prompt"] += _int(data.get("prompt_tokens"))
            m["tokens_completion"] += _int(data.get("completion_tokens"))
            m["tokens_cache_read"] += _int(data.get("cache_read_tokens"))
            m["tokens_cache_creation"] += _int(data.get("cache_creation_tokens"))
            m["cost"] += _num(data.get("cost_usd"))
        elif et == "tool_output":
            m["tool_total"] += 1
            if _ok(data.get("success")):
                m["tool_ok"] += 1
            if first_action is None and start is not None:
                first_action = (ts - start).total_seconds()
        elif et == "tool_call":
            if first_action is None and start is not None:
                first_action = (ts - start).total_seconds()
            tool = data.get("tool")
            if isinstance(tool, str) and tool:
                named[tool] += 1
        elif et == "error":
            errored = True
        elif et == "undo_complete":
            undo = True
        elif et == "feedback":
            rating = data.get("rating")
            if rating == "up":
                m["thumbs_up"] += 1
            elif rating == "down":
                m["thumbs_down"] += 1
        elif et == "hf_job_submit":
            m["jobs_submitted"] += 1
        elif et == "hf_job_complete":
            flavor = data.get("flavor") or "unknown"
            flavor = flavor if isinstance(flavor, str) else str(flavor)
            gpu[flavor] += _num(data.get("wall_time_s")) * FLAVOR_GPU_COUNT.get(flavor, 0) / 3600.0
            status = data.get("final_status")
            if isinstance(status, str) and status.lower() in _JOB_OK:
                m["jobs_succeeded"] += 1
        elif et == "jobs_access_blocked":
            m["jobs_blocked"] += 1
        elif et == "pro_cta_click":
            m["cta"] += 1
            cta[str(data.get("source") or "unknown")] += 1
        elif et == "pro_conversion":
            m["pro_conversions"] += 1
        elif et == "credits_topped_up":
            m["credits"] += 1
        elif et == "sandbox_create":
            m["sandboxes"] += 1
            hw = data.get("hardware")
            if isinstance(hw, str) and hw.lower().startswith("cpu-"):
                m["sandboxes_cpu"] += 1
            else:
                m["sandboxes_gpu"] += 1
    m["errored"] = int(errored)
    m["undo"] = int(undo)
    m["first_action"] = first_action
    m["gpu"] = gpu
    m["cta_by_source"] = cta
    m["named"] = named
    m["user"] = row.get("user_id") or row.get("session_id")
    model = row.get("model_name")
    m["model"] = model if isinstance(model, str) and model else "unknown"
    return m


def _aggregate(per: list[dict]) -> dict[str, Any]:
    def tot(key: str) -> int:
        return int(sum(s[key] for s in per))

    n = len(per)
    prompt, cache_read = tot("tokens_prompt"), tot("tokens_cache_read")
    tool_total, tool_ok = tot("tool_total"), tot("tool_ok")
    errored, undo = tot("errored"), tot("undo")
    costs = [round(s["cost"], 6) for s in per]
    ttfa = [s["first_action"] for s in per
            if s["first_action"] is not None and s["first_action"] >= 0]
    gpu: dict[str, float] = defaultdict(float)
    cta: dict[str, int] = defaultdict(int)
    by_name: dict[str, int] = defaultdict(int)
    using: dict[str, int] = defaultdict(int)
    by_model: dict[str, int] = defaultdict(int)
    research, calls_per, distinct_per, per_turn = [], [], [], []
    for s in per:
        for k, v in s["gpu"].items():
            gpu[k] += v
        for k, v in s["cta_by_source"].items():
            cta[k] += v
        named = s["named"]
        for k, v in named.items():
            by_name[k] += v
            using[k] += 1
        by_model[s["model"]] += 1
        n_named = sum(named.values())
        if named.get("research"):
            research.append(named["research"])
        if n_named:
            calls_per.append(n_named)
            distinct_per.append(len(named))
        if s["turns"] > 0:
            per_turn.append(n_named / s["turns"])

    def pct(values: list[float], p: float, nd: int = 2) -> float:
        return round(percentile(values, p), nd)

    def dumps(d: dict) -> str:
        return json.dumps(dict(d), sort_keys=True)

    return {
        "sessions": n,
        "users": len({s["user"] for s in per if s["user"]}),
        "turns": tot("turns"),
        "llm_calls": tot("llm_calls"),
        "tokens_prompt": prompt,
        "tokens_completion": tot("tokens_completion"),
        "tokens_cache_read": cache_read,
        "tokens_cache_creation": tot("tokens_cache_creation"),
        "cost_usd": round(sum(s["cost"] for s in per), 4),
        "cost_per_session_mean": round(sum(costs) / n, 6) if n else 0.0,
        "cost_per_session_p50": pct(costs, 0.5, 6),
        "cost_per_session_p95": pct(costs, 0.95, 6),
        "cache_hit_ratio": round(cache_read / (cache_read + prompt), 4)
        if cache_read + prompt > 0 else 0.0,
        "tool_calls_total": tool_total,
        "tool_calls_succeeded": tool_ok,
        "tool_calls_failed": tool_total - tool_ok,
        "errored_sessions": errored,
        "successful_sessions": n - errored,
        "regenerated_sessions": undo,
        "tool_success_rate": round(tool_ok / tool_total, 4) if tool_total else 0.0,
        "failure_rate": round(errored / n, 4) if n else 0.0,
        "regenerate_rate": round(undo / n, 4) if n else 0.0,
        "time_to_first_action_s_p50": pct(ttfa, 0.5),
        "time_to_first_action_s_p95": pct(ttfa, 0.95),
        "thumbs_up": tot("thumbs_up"),
        "thumbs_down": tot("thumbs_down"),
        "hf_jobs_submitted": tot("jobs_submitted"),
        "hf_jobs_succeeded": tot("jobs_succeeded"),
        "sandboxes_created": tot("sandboxes"),
        "sandboxes_cpu": tot("sandboxes_cpu"),
        "sandboxes_gpu": tot("sandboxes_gpu"),
        "hf_jobs_blocked": tot("jobs_blocked"),
        "pro_cta_clicks": tot("cta"),
        "pro_conversions": tot("pro_conversions"),
        "credits_topped_up": tot("credits"),
        "gpu_hours_by_flavor_json": dumps(gpu),
        "research_calls": int(sum(research)),
        "sessions_with_research": len(research),
        "research_calls_per_session_p50": pct(research, 0.5),
        "research_calls_per_session_p95": pct(research, 0.95),
        "distinct_tools_per_session_p50": pct(distinct_per, 0.5),
        "distinct_tools_per_session_p95": pct(distinct_per, 0.95),
        "tool_calls_per_session_p50": pct(calls_per, 0.5),
        "tool_calls_per_session_p95": pct(calls_per, 0.95),
        "tool_calls_per_turn_p50": pct(per_turn, 0.5),
        "tool_calls_per_turn_p95": pct(per_turn, 0.95),
        "tool_calls_by_name_json": dumps(by_name),
        "sessions_using_tool_json": dumps(using),
        "sessions_by_model_json": dumps(by_model),
        "pro_cta_by_source_json": dumps(cta),
    }


def _day_files(root: str, day: date) -> list[str]:
    folder = os.path.join(root, "sessions", day.isoformat())
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    return [os.path.join(folder, n) for n in names if n.endswith(".jsonl")]


def baseline_hour(root: str | os.PathLike[str], hour: datetime,
                  lookback_days: int = 1) -> dict[str, Any]:
    """The seed's hourly row for ``[hour, hour+1h)``; ``{}`` when no session is active."""
    if hour.tzinfo is None:
        hour = hour.replace(tzinfo=UTC)
    start = hour.replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=1)
    root_s = os.fspath(root)
    per: list[dict] = []
    for back in range(lookback_days, -1, -1):
        for path in _day_files(root_s, (start - timedelta(days=back)).date()):
            row = _load(path)
            if row is None:
                continue
            window = []
            for ev in row["events"]:
                if not isinstance(ev, dict):
                    continue
                ts = _ts(ev.get("timestamp"))
                if ts is not None and start <= ts < end:
                    window.append((ev, ts))
            if window:
                per.append(_session_metrics(row, window))
    return _aggregate(per) if per else {}


def baseline_rollup(root: str | os.PathLike[str], hours: list[datetime],
                    lookback_days: int = 1) -> dict[datetime, dict[str, Any]]:
    """Rows for each hour in ``hours`` that has at least one active session."""
    out: dict[datetime, dict[str, Any]] = {}
    for h in hours:
        row = baseline_hour(root, h, lookback_days)
        if row:
            out[h] = row
    return out
