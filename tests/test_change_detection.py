"""Finding changed session files without listing history: day-folder fingerprints, live
sessions re-checked, a full listing on --rescan or once a day."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from agentkpi.ingestion import RESCAN_HOURS, ingest
from agentkpi.rollups import rollup
from agentkpi.store import DuckDBStore as Store

from .conftest import ev, write_session


def _age(path: Path, seconds: float = 3600) -> None:
    """Make a folder (or file) look untouched for ``seconds`` (as in a real history)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def _history(root: Path) -> list[Path]:
    """Three day folders; the last session (day 3) is recent, the others are old."""
    paths = []
    for day in (18, 19, 20):
        for i in range(4):
            ts = f"2026-05-{day}T{10 + i:02d}:00:00+00:00"
            paths.append(write_session(root, f"d{day}s{i}", ts, [
                ev(ts, "llm_call", prompt_tokens=10, cost_usd=0.25),
                ev(ts.replace(":00:00", ":20:00"), "tool_call", tool="bash")]))
    for p in paths:
        _age(p)
    for d in (root / "sessions").iterdir():
        _age(d)
    return paths


def _grow(path: Path, ts: str, keep_folder_time: bool = False) -> None:
    """Append an event to a session file in place (the folder's entries do not change)."""
    folder = path.parent.stat()
    row = json.loads(path.read_text())
    events = json.loads(row["events"])
    events.append(ev(ts, "llm_call", prompt_tokens=5, cost_usd=1.0))
    row["events"] = json.dumps(events)
    path.write_text(json.dumps(row) + "\n")
    if keep_folder_time:
        os.utime(path.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns))


def test_only_changed_folders_and_live_sessions_are_listed(dataset: Path, tmp_path: Path
                                                           ) -> None:
    paths = _history(dataset)
    with Store(tmp_path / "s.duckdb") as st:
        first = ingest(str(dataset), st, workers=1)
        assert (first.files_seen, first.files_read) == (12, 12)
        _, folders = st.scan_state(str(dataset))
        assert len(folders) == 3  # all settled, all recorded
        # nothing changed: only the live files (sessions of the last hours) are checked
        second = ingest(str(dataset), st, workers=1)
        assert second.files_read == 0 and 0 < second.files_seen < 12
        # a new session in an old folder changes that folder: it alone is listed again
        new = write_session(dataset, "late", "2026-05-18T23:00:00+00:00",
                            [ev("2026-05-18T23:10:00+00:00", "llm_call")])
        third = ingest(str(dataset), st, workers=1)
        assert third.files_read == 1 and new.parent.name == "2026-05-18"
        assert st.counts()["sessions"] == 13
        assert paths  # the history stays in the store, unread


def test_a_live_session_grown_in_place_is_found_and_counted_in_every_hour(
        dataset: Path, tmp_path: Path) -> None:
    paths = _history(dataset)
    store = str(tmp_path / "s.duckdb")
    rollup(str(tmp_path / "o"), source=str(dataset), store=store,
           start="2026-05-20T10", end="2026-05-20T14", workers=1)
    # the newest session keeps running for two more days, its file rewritten in place
    live = paths[-1]
    _grow(live, "2026-05-21T09:30:00+00:00", keep_folder_time=True)
    _grow(live, "2026-05-22T08:15:00+00:00", keep_folder_time=True)
    r = rollup(str(tmp_path / "o"), source=str(dataset), store=store,
               start="2026-05-20T13", end="2026-05-22T09", workers=1)
    assert r.ingest is not None and r.ingest.files_read == 1
    for hour in ("2026-05-20T13", "2026-05-21T09", "2026-05-22T08"):
        assert r.rows[hour]["sessions"] == 1 and r.rows[hour]["llm_calls"] == 1, hour
    assert "2026-05-21T10" not in r.rows  # nothing happened then


def test_an_old_file_rewritten_in_place_waits_for_the_rescan(dataset: Path,
                                                             tmp_path: Path) -> None:
    paths = _history(dataset)
    with Store(tmp_path / "s.duckdb") as st:
        ingest(str(dataset), st, workers=1)
        old = paths[0]  # a session of two days before the newest data: not live
        _grow(old, "2026-05-18T10:40:00+00:00", keep_folder_time=True)
        assert ingest(str(dataset), st, workers=1).files_read == 0  # the documented limit
        r = ingest(str(dataset), st, workers=1, rescan=True)
        assert (r.files_seen, r.files_read) == (12, 1)
        calls = st.con.execute("SELECT count(*) FROM events WHERE session_id = 'd18s0' AND "
                               "event_type = 'llm_call'").fetchall()[0][0]
        assert calls == 2


def test_the_whole_source_is_listed_again_once_a_day(dataset: Path, tmp_path: Path) -> None:
    paths = _history(dataset)
    with Store(tmp_path / "s.duckdb") as st:
        ingest(str(dataset), st, workers=1)
        _grow(paths[0], "2026-05-18T10:40:00+00:00", keep_folder_time=True)
        st.con.execute("UPDATE source_scans SET full_scan_at = full_scan_at - "
                       f"INTERVAL {int(RESCAN_HOURS) + 1} HOUR")
        r = ingest(str(dataset), st, workers=1)
        assert (r.files_seen, r.files_read) == (12, 1)


def test_a_folder_modified_during_the_scan_is_not_trusted(dataset: Path, tmp_path: Path) -> None:
    _history(dataset)
    fresh = write_session(dataset, "now", "2026-05-20T20:00:00+00:00",
                          [ev("2026-05-20T20:01:00+00:00", "llm_call")])
    with Store(tmp_path / "s.duckdb") as st:
        ingest(str(dataset), st, workers=1)
        _, folders = st.scan_state(str(dataset))
        # just modified (timestamps are coarse): scanned again next run, not recorded
        assert str(fresh.parent) not in folders and len(folders) == 2
        added = write_session(dataset, "now2", "2026-05-20T20:30:00+00:00",
                              [ev("2026-05-20T20:31:00+00:00", "llm_call")])
        _age(added.parent, 0)
        assert ingest(str(dataset), st, workers=1).files_read == 1
