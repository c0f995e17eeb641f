"""Seed 002/003 token counts reach the token KPIs, and agree with the seeds' own totals.

The seeds' numbers are re-derived here by an independent plain-Python reading of the
files, following the seeds' code: seed 001's aggregator adds every metric's
``token_count`` (``if metric.token_count: total_tokens += metric.token_count``; the
seed-003 writer puts ``token_count`` on ``session_end`` lines and ``**kwargs`` on
``session_start``; a ``token_usage`` line carries its own); seed 002's
``get_total_token_usage`` sums ``prompt_token_count``, ``completion_token_count`` and
``total_token_count`` per ``model_name`` (``"unknown"`` when absent).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from agentkpi.ingestion import ingest
from agentkpi.queries import query
from agentkpi.store import DuckDBStore

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CONSTRUCTED = SHARED / "data" / "constructed"
TOKENS = ["tokens_total", "tokens_prompt", "tokens_completion", "tokens_unsplit", "llm_calls"]


def seed001_total_tokens(path: Path) -> int:
    """Seed 001: the sum of every metric's truthy ``token_count``."""
    total = 0
    for line in path.read_text().splitlines():
        if line.strip():
            count = (json.loads(line).get("data") or {}).get("token_count")
            if count:
                total += int(count)
    return total


def seed002_token_usage(path: Path) -> dict[str, dict[str, int]]:
    """Seed 002's ``get_total_token_usage().by_model``: {model: {prompt, completion, total}}."""
    keys = {"prompt_token_count": "prompt", "completion_token_count": "completion",
            "total_token_count": "total"}
    by_model: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(keys.values(), 0))
    for line in path.read_text().splitlines():
        m = json.loads(line) if line.strip() else {}
        if m.get("metric") in keys:
            model = m.get("model_name") or "unknown"
            by_model[model][keys[m["metric"]]] += int(m["value"]) if m["value"] is not None else 0
    return dict(by_model)


def _kpis(store: Path, by: list[str] | None = None) -> list[dict]:
    return query(metrics=TOKENS, grain=None, by=by or [], start="2020-01-01", end="2030-01-01",
                 store=str(store)).to_pylist()


def _ingest(src: Path, store: Path, fmt: str) -> dict:
    with DuckDBStore(store) as st:
        return ingest(str(src), st, fmt=fmt, workers=1).quality.to_dict()


def _seed003_lines() -> list[dict]:
    def line(i: int, kind: str, ts: str, sid: str, data: dict) -> dict:
        return {"id": f"id{i}", "timestamp": ts, "type": kind, "session_id": sid,
                "user_id": "u", "data": data, "metadata": {}}

    return [
        line(0, "session_start", "2026-05-20T10:00:00+00:00", "a",
             {"project_path": "/p", "model": "claude-sonnet-4", "token_count": 1200}),
        line(1, "token_usage", "2026-05-20T10:01:00+00:00", "a",
             {"model": "claude-sonnet-4", "token_count": 5000}),
        line(2, "token_usage", "2026-05-20T10:02:00+00:00", "a",
             {"model": "claude-sonnet-4", "prompt_tokens": 700, "completion_tokens": 300,
              "token_count": 1000}),
        line(3, "token_usage", "2026-05-20T10:03:00+00:00", "a",
             {"model": "claude-sonnet-4", "prompt_tokens": 40, "completion_tokens": 2,
              "token_count": 50}),  # 8 tokens of the total are in neither part
        line(4, "tool_use", "2026-05-20T10:04:00+00:00", "a",
             {"tool_name": "Read", "success": True, "duration_ms": 5.0}),
        line(5, "session_end", "2026-05-20T10:30:00+00:00", "a",
             {"duration_seconds": 1800.0, "token_count": 48213}),
        line(6, "session_end", "2026-05-20T11:10:00+00:00", "b",
             {"duration_seconds": 10.0, "token_count": 0}),
    ]


def test_seed003_token_counts_reach_tokens_total_as_seed001_counts_them(tmp_path: Path) -> None:
    src = tmp_path / "analytics" / "metrics"
    src.mkdir(parents=True)
    (src / "metrics_20260520_100000.jsonl").write_text(
        "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in _seed003_lines()))
    (src / "metrics_20250731_231502.jsonl").write_bytes(
        (CONSTRUCTED / "CONSTRUCTED_shannon_metrics_20250731_231502.jsonl").read_bytes())
    store = tmp_path / "s.duckdb"
    report = _ingest(tmp_path / "analytics", store, "seed003")
    assert "event_type_unknown" not in report["issues"]  # token_usage is a known type

    seed = sum(seed001_total_tokens(p) for p in src.iterdir())
    assert seed == 1200 + 5000 + 1000 + 50 + 48213 + 48213  # by hand: the two files
    (row,) = _kpis(store)
    assert row["tokens_total"] == seed
    # the split parts are prompt/completion, the rest unsplit; no model call was made
    assert (row["tokens_prompt"], row["tokens_completion"], row["llm_calls"]) == (740, 302, 0)
    assert row["tokens_unsplit"] == 1200 + 5000 + 8 + 48213 + 48213
    hours = {r["bucket"].strftime("%Y-%m-%dT%H"): r["tokens_total"] for r in query(
        metrics=["tokens_total"], grain="hour", start="2026-05-20T10", end="2026-05-20T12",
        store=str(store)).to_pylist()}
    assert hours == {"2026-05-20T10": seed - 48213, "2026-05-20T11": 0}


def test_seed003_constructed_file_session_tokens(tmp_path: Path) -> None:
    path = CONSTRUCTED / "CONSTRUCTED_shannon_metrics_20250731_231502.jsonl"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "metrics_20250731_231502.jsonl").write_bytes(path.read_bytes())
    store = tmp_path / "s.duckdb"
    _ingest(tmp_path / "m", store, "seed003")
    (row,) = _kpis(store)
    assert row["tokens_total"] == seed001_total_tokens(path) == 48213


def _seed002_lines() -> list[dict]:
    t1, t2, t3 = ("2026-03-02T10:14:07.512339", "2026-03-02T10:20:00.000001",
                  "2026-03-02T10:30:00.000002")
    return [
        {"metric": "model_usage:gemini-2.5-flash", "value": 1.0, "timestamp": t1},
        {"metric": "prompt_token_count", "value": 812, "model_name": "gemini-2.5-flash",
         "timestamp": t1},
        {"metric": "completion_token_count", "value": 356, "model_name": "gemini-2.5-flash",
         "timestamp": t1},
        {"metric": "total_token_count", "value": 1200, "model_name": "gemini-2.5-flash",
         "timestamp": t1},  # 32 thinking tokens beyond prompt + completion
        # a generation without a model name: the seed's "unknown", not gemini's
        {"metric": "prompt_token_count", "value": 100, "timestamp": t2},
        {"metric": "completion_token_count", "value": 20, "timestamp": t2},
        {"metric": "total_token_count", "value": 120, "timestamp": t2},
        # a total without its split
        {"metric": "total_token_count", "value": 999, "model_name": "gemini-2.5-pro",
         "timestamp": t3},
        {"metric": "generation_time", "value": 2.0, "timestamp": t3},
    ]


def test_seed002_tokens_reach_the_token_kpis_per_model_like_the_seed(tmp_path: Path) -> None:
    run = tmp_path / "monitoring" / "run1"
    run.mkdir(parents=True)
    path = run / "metrics.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in _seed002_lines()))
    store = tmp_path / "s.duckdb"
    _ingest(tmp_path / "monitoring", store, "seed002")

    seed = seed002_token_usage(path)
    assert seed == {"gemini-2.5-flash": {"prompt": 812, "completion": 356, "total": 1200},
                    "unknown": {"prompt": 100, "completion": 20, "total": 120},
                    "gemini-2.5-pro": {"prompt": 0, "completion": 0, "total": 999}}
    (row,) = _kpis(store)
    assert row["tokens_total"] == sum(m["total"] for m in seed.values()) == 2319
    assert row["tokens_prompt"] == sum(m["prompt"] for m in seed.values())
    assert row["tokens_completion"] == sum(m["completion"] for m in seed.values())
    by_model = {r["model"]: r["tokens_total"] for r in _kpis(store, by=["model"])
                if r["tokens_total"]}
    assert by_model == {"gemini-2.5-flash": 1200, None: 120, "gemini-2.5-pro": 999}


def test_seed002_constructed_file_tokens(tmp_path: Path) -> None:
    path = CONSTRUCTED / "CONSTRUCTED_afterimage_metrics.jsonl"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / path.name).write_bytes(path.read_bytes())
    store = tmp_path / "s.duckdb"
    _ingest(tmp_path / "m", store, "seed002")
    (row,) = _kpis(store)
    seed = seed002_token_usage(path)
    assert seed == {"gemini-2.5-flash": {"prompt": 812, "completion": 356, "total": 1168}}
    assert (row["tokens_prompt"], row["tokens_completion"], row["tokens_total"]) == \
        (812, 356, 1168)
