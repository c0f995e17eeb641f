"""The vectorised event decoder gives exactly the rows and issue counts of the Python loop."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pytest

from agentkpi import ingestion
from agentkpi.generate import generate_sessions
from agentkpi.quality import Quality
from agentkpi.sources import session_dataset, vectorised

from .conftest import write_session

FS = fsspec.filesystem("file")


def _both(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    paths = [(str(p), "fp") for p in sorted((root / "sessions").rglob("*.jsonl"))]
    fast = ingestion._parse_many(session_dataset, FS, paths)
    with monkeypatch.context() as m:
        m.delattr(session_dataset, "parse_many")
        slow = ingestion._parse_paths(session_dataset.NAME, FS, paths)
    return fast, slow


def _rows(table: Any) -> list[dict[str, Any]]:
    rows = table.sort_by([("file", "ascending"), ("seq", "ascending")]).to_pylist()
    for r in rows:  # the same JSON value; the two serialisers may spell it differently
        r["data"] = None if r["data"] is None else json.loads(r["data"])
    return rows


def _assert_same(fast: Any, slow: Any) -> None:
    (fs, fe, fl, fq), (ss, se, sl, sq) = fast, slow
    assert fs.equals(ss)
    assert _rows(fe) == _rows(se)
    assert fl == sl
    assert fq.counts == sq.counts and fq.skipped == sq.skipped


@pytest.mark.parametrize("dirty", [False, True], ids=["clean", "dirty"])
def test_generated_sessions_decode_identically(tmp_path: Path, dirty: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    generate_sessions(tmp_path, 400, datetime(2026, 5, 20, tzinfo=UTC), hours=6, seed=4,
                      dirty=dirty)
    fast, slow = _both(tmp_path, monkeypatch)
    _assert_same(fast, slow)
    assert fast[1].num_rows > 5000
    if dirty:
        assert sum(fast[3].counts.values()) > 10


def _ev(ts: Any, et: Any = "llm_call", **data: Any) -> dict[str, Any]:
    return {"timestamp": ts, "event_type": et, "data": data}


ODD_EVENTS: list[list[Any]] = [
    [_ev("2026-05-20T14:00:00Z", prompt_tokens="12"), _ev("2026-05-20T14:00:01Z")],
    [_ev("2026-05-20T14:00:00+02:00", tool=True), _ev("2026-05-20T14:00:00.5-05:00", tool="x")],
    [_ev("2026-05-20T24:00:00"), _ev("2026-02-30T10:00:00"), _ev("not-a-date")],
    [_ev(1779285600), _ev(1779285600.5)],
    [_ev(None), _ev(""), {"event_type": "llm_call"}],
    [None, 5, "x", _ev("2026-05-20T14:00:00")],
    [_ev("2026-05-20T14:00:00", "error", error="boom", error_type="", type="Timeout"),
     _ev("2026-05-20T14:00:00", "error", error={"x": 1}, message="m"),
     _ev("2026-05-20T14:00:00", "error", message=""), _ev("2026-05-20T14:00:00", "tool_call",
                                                           error_type="e", type="t")],
    [_ev("2026-05-20T14:00:00", agent_id="", agent=""), _ev("2026-05-20T14:00:00", agent_id="a"),
     _ev("2026-05-20T14:00:00", agent="b"), _ev("2026-05-20T14:00:00", agent_id=7)],
    [_ev("2026-05-20T14:00:00", cost_usd=1e308 * 10), _ev("2026-05-20T14:00:00", cost_usd=3)],
    [_ev("2026-05-20T14:00:00", prompt_tokens=2**63), _ev("2026-05-20T14:00:00", prompt_tokens=-5)],
    [_ev("2026-05-20T14:00:00", prompt_tokens=5, completion_tokens=-5, success="maybe")],
    [{"timestamp": "2026-05-20T14:00:00", "event_type": "x", "data": {}},
     {"timestamp": "2026-05-20T14:00:00", "event_type": "llm_call", "data": "text"}],
    [{"timestamp": "2026-05-20T14:00:00", "event_type": 5, "data": {"tool": "t"}}],
    [_ev("2026-05-20T14:00:00", "", tool="", model="m", success=False, latency_ms=12,
         duration_ms=0.25, flavor="a10g-small", final_status="completed", wall_time_s=60,
         rating="up", source="s", hardware="cpu-basic", unrelated={"deep": [1, 2.5, "é\u001f"]})],
    [_ev("2026-05-20T14:00:00.1234567")],
    [],
]


def test_odd_values_decode_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i, events in enumerate(ODD_EVENTS):
        text = json.dumps(events).replace("Infinity", "1e400")
        write_session(tmp_path, f"odd{i}", "2026-05-20T14:00:00+00:00", text)
    # and one clean session in the same chunk, which must stay on the fast path
    write_session(tmp_path, "plain", "2026-05-20T14:00:00+00:00",
                  [_ev("2026-05-20T14:05:00+00:00", model="m", prompt_tokens=3, cost_usd=0.5)])
    fast, slow = _both(tmp_path, monkeypatch)
    _assert_same(fast, slow)
    assert {"number_unparseable", "ts_unparseable", "ts_missing", "event_not_object",
            "bool_unparseable", "event_type_unknown"} <= set(fast[3].counts)
    # the clean session was decoded in SQL, the odd ones were left to Python
    texts = [json.dumps(e) for e in (*ODD_EVENTS[:2], [_ev("2026-05-20T14:05:00Z", model="m")])]
    _, dirty, counts = vectorised.decoder().decode(["a", "b", "c"], ["pa", "pb", "pc"], texts,
                                                   Quality())
    assert dirty == {0, 1} and counts == {2: 1}
