"""A compressed file and a plain file of the same name: never drop one that is not a twin.

The seed-003 writer rotates ``metrics_X.jsonl`` to ``metrics_X.jsonl.gz`` and, when it
rotates twice within a second, starts a new live ``metrics_X.jsonl`` with other lines.
Only a byte-identical twin (a crash between compressing and deleting) is left out;
a rotated file still replaces the rows its plain original produced.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from agentkpi.ingestion import ingest
from agentkpi.store import DuckDBStore


def _seed003_lines(session: str, n: int, minute: int = 0) -> bytes:
    return b"".join(json.dumps({
        "id": f"{session}-{i}", "timestamp": f"2026-05-20T10:{minute + i:02d}:00+00:00",
        "type": "tool_use", "session_id": session, "user_id": "u",
        "data": {"tool_name": "bash", "success": True, "duration_ms": 5.0},
        "metadata": {}}).encode() + b"\n" for i in range(n))


def _eventlog_lines(session: str, n: int, minute: int = 0) -> bytes:
    return b"".join(json.dumps({
        "id": f"{session}-{i}", "seq": i, "ts": f"2026-05-20T10:{minute + i:02d}:00Z",
        "session_id": session, "event_type": "tool_call",
        "data": {"tool": "bash"}}).encode() + b"\n" for i in range(n))


CASES = {
    "seed003": ("metrics/metrics_20260520_100000.jsonl", _seed003_lines),
    "eventlog": ("log/events-20260520T100000-77-0.jsonl", _eventlog_lines),
}


def _events(store: Path) -> int:
    with DuckDBStore(store, read_only=True) as st:
        return int(st.counts()["events"])


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_a_different_live_file_next_to_its_compressed_namesake_is_kept(tmp_path: Path,
                                                                        fmt: str) -> None:
    name, lines = CASES[fmt]
    plain = tmp_path / "src" / name
    plain.parent.mkdir(parents=True)
    plain.with_name(plain.name + ".gz").write_bytes(gzip.compress(lines("rotated", 4)))
    plain.write_bytes(lines("live", 3, minute=30))  # same name, other lines
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        r = ingest(str(tmp_path / "src"), st, fmt=fmt, workers=1)
    assert r.files_seen == 2 and r.events == 7
    assert _events(tmp_path / "s.duckdb") == 7


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_a_byte_identical_twin_counts_once_and_rotation_replaces(tmp_path: Path,
                                                                 fmt: str) -> None:
    name, lines = CASES[fmt]
    plain = tmp_path / "src" / name
    plain.parent.mkdir(parents=True)
    body = lines("s", 5)
    plain.write_bytes(body)
    store = tmp_path / "s.duckdb"
    with DuckDBStore(store) as st:
        ingest(str(tmp_path / "src"), st, fmt=fmt, workers=1)  # the live file first
    gz = plain.with_name(plain.name + ".gz")
    gz.write_bytes(gzip.compress(body))  # compressed, plain not yet deleted: a twin
    with DuckDBStore(store) as st:
        r = ingest(str(tmp_path / "src"), st, fmt=fmt, workers=1)
    assert r.files_seen == 1
    assert _events(store) == 5
    plain.unlink()  # rotation finished
    with DuckDBStore(store) as st:
        ingest(str(tmp_path / "src"), st, fmt=fmt, workers=1)
    assert _events(store) == 5
