"""Shared fixtures: session-dataset files on disk and stores in tmp dirs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
CONSTRUCTED = SHARED / "data" / "constructed"


def write_session(root: Path, session_id: str, start: str, events: list[dict[str, Any]] | Any,
                  *, user_id: str | None = "u1", model: str | None = "m1",
                  messages: list[dict[str, Any]] | Any = None, day: str | None = None,
                  as_strings: bool = True, **extra: Any) -> Path:
    """Write one session row as ``root/sessions/<day>/<id>.jsonl`` like the real uploader."""
    if messages is None:
        messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    row: dict[str, Any] = {"session_id": session_id, "session_start_time": start,
                           "model_name": model, **extra}
    if user_id is not None:
        row["user_id"] = user_id
    row["messages"] = json.dumps(messages) if as_strings and not isinstance(messages, str) \
        else messages
    row["events"] = json.dumps(events) if as_strings and not isinstance(events, str) else events
    path = root / "sessions" / (day or start[:10]) / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row) + "\n")
    return path


def ev(ts: str, event_type: str, **data: Any) -> dict[str, Any]:
    return {"timestamp": ts, "event_type": event_type, "data": data}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def constructed(tmp_path: Path) -> Path:
    """The two constructed real-format rows in a sessions/2026-05-20/ folder."""
    root = tmp_path / "constructed"
    day = root / "sessions" / "2026-05-20"
    day.mkdir(parents=True)
    for f in CONSTRUCTED.glob("CONSTRUCTED_session_row_*.jsonl"):
        shutil.copy(f, day / f.name)
    return root


@pytest.fixture
def hour_row(tmp_path: Path) -> Callable[..., dict[str, Any] | None]:
    """Roll one hour up from a dataset dir; returns the KPI row (None = empty hour)."""
    from agentkpi.pipeline import rollup

    def run(root: Path, hour: str) -> dict[str, Any] | None:
        r = rollup(str(tmp_path / "out"), source=str(root), store=str(tmp_path / "s.duckdb"),
                   at=hour, workers=1)
        return r.rows.get(hour)

    return run
