"""Every importer records what it read in the import audit: ``files`` and ``lines_read``
(``import_audit`` table, ``IngestResult.audit_rows``, the command's ``audit:`` line).

Real files on disk, a real DuckDB store; the expected numbers are counted by hand from
the files written here and the constructed/real samples in ../shared/data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from agentkpi.ingestion import ingest
from agentkpi.store import DuckDBStore
from tests.conftest import CONSTRUCTED, SHARED
from tests.otlp_build import chat, request, trace_id, usage


def _audit(store: Path, fmt: str) -> dict[str, int]:
    with DuckDBStore(store, read_only=True) as st:
        rows = st.sql("SELECT kind, sum(n) AS n FROM import_audit WHERE format = "
                      f"'{fmt}' AND kind IN ('files', 'lines_read') GROUP BY kind").to_pylist()
    return {r["kind"]: int(r["n"]) for r in rows}


def test_session_dataset_records_files_and_lines(constructed: Path, tmp_path: Path) -> None:
    day = constructed / "sessions" / "2026-05-20"
    (day / "empty.jsonl").write_bytes(b"")  # read, skipped: a file, no line
    row = (day / "CONSTRUCTED_session_row_3f6c2a9e.jsonl").read_bytes()
    (day / "blank-first.jsonl").write_bytes(b"\n  \n" + row.replace(b"3f6c2a9e", b"3f6c2a9f"))
    store = tmp_path / "s.duckdb"
    r = subprocess.run([sys.executable, "-m", "agentkpi", "ingest", "--source",
                        str(constructed), "--store", str(store), "--workers", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "audit: files=4, lines_read=3," in r.stderr  # 4 files; the empty one has no line
    assert _audit(store, "session_dataset") == {"files": 4, "lines_read": 3}
    again = subprocess.run([sys.executable, "-m", "agentkpi", "ingest", "--source",
                            str(constructed), "--store", str(store), "--workers", "1"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "files=" not in again.stderr  # nothing read again
    assert _audit(store, "session_dataset") == {"files": 4, "lines_read": 3}


def _eventlog(root: Path) -> None:
    log = root / "log"
    log.mkdir()
    lines = [json.dumps({"seq": i, "ts": f"2026-05-20T10:0{i}:00Z", "session_id": "s",
                         "event_type": "tool_call", "data": {"tool": "bash"}})
             for i in range(3)]
    (log / "events-20260520T100000-77-0.jsonl").write_text(
        lines[0] + "\n\n{torn\n" + "\n".join(lines[1:]) + "\n")  # 4 non-blank lines


def _seed003(root: Path) -> None:
    (root / "metrics").mkdir()
    shutil.copy(CONSTRUCTED / "CONSTRUCTED_shannon_metrics_20250731_231502.jsonl",
                root / "metrics" / "metrics_20250731_231502.jsonl")  # 6 lines


def _seed002(root: Path) -> None:
    run = root / "monitoring" / "2026-03-02-10-14-00"
    run.mkdir(parents=True)
    shutil.copy(CONSTRUCTED / "CONSTRUCTED_afterimage_metrics.jsonl",
                run / "metrics.jsonl")  # 16 lines


def _otel(root: Path) -> None:
    root.joinpath("traces").mkdir()
    shutil.copy(SHARED / "data" / "realworld" / "otlp-json" / "trace.json",
                root / "traces" / "trace.json")  # one document: one record
    (root / "traces" / "export.jsonl").write_bytes(b"".join(  # collector JSONL: 2 lines
        orjson.dumps(request([chat(trace_id(40 + i), None, **usage(i + 1, 1))])) + b"\n"
        for i in range(2)))


CASES: dict[str, tuple[Callable[[Path], None], int, int]] = {
    "eventlog": (_eventlog, 1, 4),
    "seed003": (_seed003, 1, 6),
    "seed002": (_seed002, 1, 16),
    "otel": (_otel, 2, 3),
}


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_every_line_importer_records_files_and_lines(tmp_path: Path, fmt: str) -> None:
    make, files, lines = CASES[fmt]
    src = tmp_path / "src"
    src.mkdir()
    make(src)
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        r = ingest(str(src), st, fmt=fmt, workers=1)
    assert r.files_read == files
    assert {k: n for k, n in r.quality.audit.items() if k in ("files", "lines_read")} == {
        "files": files, "lines_read": lines}
    assert _audit(tmp_path / "s.duckdb", fmt) == {"files": files, "lines_read": lines}
