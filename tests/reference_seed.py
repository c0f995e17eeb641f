"""An independent, per-session pure-Python statement of the hourly row.

Written from DESIGN.md's KPI semantics (the newer seed-000 script), with no
code shared with the engine, so the SQL engine can be checked against it on
generated data. Dirty values are coerced the way agentkpi documents (numeric
strings parse, garbage is missing, the string "false" is not a success).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GPUS = {"cpu-basic": 0, "cpu-upgrade": 0, "t4-small": 1, "t4-medium": 1, "l4x1": 1, "l4x4": 4,
        "l40sx1": 1, "l40sx4": 4, "l40sx8": 8, "a10g-small": 1, "a10g-large": 1,
        "a10g-largex2": 2, "a10g-largex4": 4, "a100-large": 1, "a100x2": 2, "a100x4": 4,
        "a100x8": 8, "h100": 1, "h100x8": 8}


def ts(v: Any) -> datetime | None:
    if not isinstance(v, str) or not v:
        return None
    try:
        d = datetime.fromisoformat(v)
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def num(v: Any) -> float:
    if v is None or isinstance(v, bool):
        return float(v or 0)
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in {"true", "1", "yes", "y", "ok", "success", "succeeded"}
    return bool(v)


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    k = (len(v) - 1) * p
    f = int(k)
    c = min(f + 1, len(v) - 1)
    return float(v[f]) if f == c else float(v[f] + (v[c] - v[f]) * (k - f))


def decode(v: Any) -> list[Any]:
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return []
    return v if isinstance(v, list) else []


Keep = Callable[[dict[str, Any], dict[str, Any]], bool]


def read_rows(root: Path) -> list[dict[str, Any]]:
    """The session rows of a ``root/sessions/<day>/<id>.jsonl`` dataset, one per file.

    A session filed twice counts once: the last path (in sorted order) wins.
    """
    out: dict[Any, dict[str, Any]] = {}
    for p in sorted((root / "sessions").rglob("*.jsonl")):
        line = p.read_bytes().strip().split(b"\n")[0] if p.stat().st_size else b""
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            out[row.get("session_id") or str(p)] = row
    return list(out.values())


def session_stats(row: dict[str, Any], start: datetime, end: datetime,
                  keep: Keep | None = None) -> dict[str, Any] | None:
    evs = [e for e in decode(row.get("events")) if isinstance(e, dict)]
    win = [e for e in evs if (t := ts(e.get("timestamp"))) is not None and start <= t < end
           and (keep is None or keep(e, row))]
    if not win:
        return None
    msgs = decode(row.get("messages"))
    s: dict[str, Any] = defaultdict(float)
    s["turns"] = sum(1 for m in msgs if isinstance(m, dict) and m.get("role") == "user")
    s["user"] = row.get("user_id") or row.get("session_id")
    s["model"] = row.get("model_name") or "unknown"
    s["gpu"] = defaultdict(float)
    s["cta"] = defaultdict(int)
    s["tools"] = defaultdict(int)
    started = ts(row.get("session_start_time"))
    first = None
    for e in win:
        et = e.get("event_type")
        d = e.get("data") if isinstance(e.get("data"), dict) else {}
        t = ts(e.get("timestamp"))
        if et == "llm_call":
            s["llm_calls"] += 1
            for k, col in (("prompt_tokens", "tp"), ("completion_tokens", "tc"),
                           ("cache_read_tokens", "tr"), ("cache_creation_tokens", "tw")):
                s[col] += int(num(d.get(k)))
            s["cost"] += num(d.get("cost_usd"))
        elif et == "tool_output":
            s["to"] += 1
            s["ok"] += 1 if truthy(d.get("success")) else 0
        elif et == "tool_call" and d.get("tool"):
            s["tools"][str(d["tool"])] += 1
        if et in ("tool_call", "tool_output") and t is not None:
            first = t if first is None or t < first else first
        if et == "error":
            s["err"] = 1
        elif et == "undo_complete":
            s["undo"] = 1
        elif et == "feedback":
            s["up"] += d.get("rating") == "up"
            s["down"] += d.get("rating") == "down"
        elif et == "hf_job_submit":
            s["jsub"] += 1
        elif et == "hf_job_complete":
            fl = d.get("flavor") or "unknown"
            s["gpu"][fl] += num(d.get("wall_time_s")) * GPUS.get(fl, 0) / 3600.0
            s["jok"] += str(d.get("final_status") or "").lower() in ("completed", "succeeded",
                                                                      "success")
        elif et == "jobs_access_blocked":
            s["jblk"] += 1
        elif et == "pro_cta_click":
            s["cta"][str(d.get("source") or "unknown")] += 1
        elif et in ("pro_conversion", "credits_topped_up"):
            s[et] += 1
        elif et == "sandbox_create":
            s["sbx"] += 1
            s["sbx_cpu"] += str(d.get("hardware") or "").lower().startswith("cpu-")
    s["ttfa"] = (first - started).total_seconds() if first and started else None
    return s


def hourly_row(rows: list[dict[str, Any]], start: datetime, end: datetime,
               keep: Keep | None = None) -> dict[str, Any] | None:
    """The row over the events in ``[start, end)`` (any span: an hour, a day, a range).

    ``keep(event, row)`` keeps only some events (an event-level filter such as a tool);
    pass fewer ``rows`` for a session-level one (a user).
    """
    per = [x for r in rows if (x := session_stats(r, start, end, keep)) is not None]
    if not per:
        return None
    n = len(per)

    def tot(k: str) -> float:
        return sum(p[k] for p in per)

    def jmap(key: str) -> str:
        acc: dict[str, float] = defaultdict(float)
        for p in per:
            for k, v in p[key].items():
                acc[k] += v
        return json.dumps(dict(acc), sort_keys=True)

    tp, tr, to, ok = tot("tp"), tot("tr"), tot("to"), tot("ok")
    err, undo = tot("err"), tot("undo")
    named = [sum(p["tools"].values()) for p in per]
    research = [p["tools"].get("research", 0) for p in per]
    by_name: dict[str, int] = defaultdict(int)
    using: dict[str, int] = defaultdict(int)
    models: dict[str, int] = defaultdict(int)
    for p in per:
        for k, v in p["tools"].items():
            by_name[k] += v
            using[k] += 1
        models[p["model"]] += 1
    costs = [p["cost"] for p in per]
    ttfa = [p["ttfa"] for p in per if p["ttfa"] is not None and p["ttfa"] >= 0]
    cta = {k: int(v) for k, v in json.loads(jmap("cta")).items()}
    return {
        "sessions": n, "users": len({p["user"] for p in per}), "turns": int(tot("turns")),
        "llm_calls": int(tot("llm_calls")), "tokens_prompt": int(tp),
        "tokens_completion": int(tot("tc")), "tokens_cache_read": int(tr),
        "tokens_cache_creation": int(tot("tw")), "cost_usd": round(sum(costs), 4),
        "cost_per_session_mean": round(sum(costs) / n, 6),
        "cost_per_session_p50": round(pct(costs, 0.5), 6),
        "cost_per_session_p95": round(pct(costs, 0.95), 6),
        "cache_hit_ratio": round(tr / (tr + tp), 4) if tr + tp else 0.0,
        "tool_calls_total": int(to), "tool_calls_succeeded": int(ok),
        "tool_calls_failed": int(to - ok), "errored_sessions": int(err),
        "successful_sessions": int(n - err), "regenerated_sessions": int(undo),
        "tool_success_rate": round(ok / to, 4) if to else 0.0,
        "failure_rate": round(err / n, 4), "regenerate_rate": round(undo / n, 4),
        "time_to_first_action_s_p50": round(pct(ttfa, 0.5), 2),
        "time_to_first_action_s_p95": round(pct(ttfa, 0.95), 2),
        "thumbs_up": int(tot("up")), "thumbs_down": int(tot("down")),
        "hf_jobs_submitted": int(tot("jsub")), "hf_jobs_succeeded": int(tot("jok")),
        "sandboxes_created": int(tot("sbx")), "sandboxes_cpu": int(tot("sbx_cpu")),
        "sandboxes_gpu": int(tot("sbx") - tot("sbx_cpu")), "hf_jobs_blocked": int(tot("jblk")),
        "pro_cta_clicks": sum(cta.values()), "pro_conversions": int(tot("pro_conversion")),
        "credits_topped_up": int(tot("credits_topped_up")),
        "gpu_hours_by_flavor_json": jmap("gpu"),
        "research_calls": sum(research), "sessions_with_research": sum(1 for r in research if r),
        "research_calls_per_session_p50": round(pct([r for r in research if r], 0.5), 2),
        "research_calls_per_session_p95": round(pct([r for r in research if r], 0.95), 2),
        "distinct_tools_per_session_p50": round(
            pct([len(p["tools"]) for p in per if p["tools"]], 0.5), 2),
        "distinct_tools_per_session_p95": round(
            pct([len(p["tools"]) for p in per if p["tools"]], 0.95), 2),
        "tool_calls_per_session_p50": round(pct([c for c in named if c], 0.5), 2),
        "tool_calls_per_session_p95": round(pct([c for c in named if c], 0.95), 2),
        "tool_calls_per_turn_p50": round(pct(
            [c / p["turns"] for c, p in zip(named, per, strict=True) if p["turns"]], 0.5), 2),
        "tool_calls_per_turn_p95": round(pct(
            [c / p["turns"] for c, p in zip(named, per, strict=True) if p["turns"]], 0.95), 2),
        "tool_calls_by_name_json": json.dumps(dict(by_name), sort_keys=True),
        "sessions_using_tool_json": json.dumps(dict(using), sort_keys=True),
        "sessions_by_model_json": json.dumps(dict(models), sort_keys=True),
        "pro_cta_by_source_json": json.dumps(cta, sort_keys=True),
    }
