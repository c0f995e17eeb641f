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
        # of the changed folder only the new entry is stat-ed, plus the live files
        # (d20s1-3: events in the hours from 2 hours before the newest one)
        assert third.files_seen == second.files_seen + 1 == 4
        assert st.counts()["sessions"] == 13
        assert paths  # the history stays in the store, unread


def _replace(path: Path, ts: str) -> None:
    """Add an event the way an uploader does: write a new file, rename it over the old."""
    row = json.loads(path.read_text())
    events = json.loads(row["events"])
    events.append(ev(ts, "llm_call", prompt_tokens=5, cost_usd=1.0))
    row["events"] = json.dumps(events)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row) + "\n")
    os.replace(tmp, path)


def test_an_old_file_replaced_by_rename_is_found_at_once(dataset: Path, tmp_path: Path) -> None:
    paths = _history(dataset)
    with Store(tmp_path / "s.duckdb") as st:
        ingest(str(dataset), st, workers=1)
        live = ingest(str(dataset), st, workers=1).files_seen  # nothing changed: live files
        old = paths[1]  # d18s1: two days before the newest data, not live
        inode = old.stat().st_ino
        _replace(old, "2026-05-18T11:40:00+00:00")
        assert old.stat().st_ino != inode
        r = ingest(str(dataset), st, workers=1)
        # its folder changed; of its four entries only the replaced one is stat-ed
        assert r.files_read == 1 and r.files_seen == live + 1
        calls = st.con.execute("SELECT count(*) FROM events WHERE session_id = 'd18s1' AND "
                               "event_type = 'llm_call'").fetchall()[0][0]
        assert calls == 2
        # the new inode is recorded: the next run stats nothing of that folder
        _age(old.parent)
        assert ingest(str(dataset), st, workers=1).files_seen == live


def test_a_store_without_recorded_entries_stats_a_changed_folder_whole(
        dataset: Path, tmp_path: Path) -> None:
    """A store written before entries were recorded (or with them lost) checks every file of
    a changed folder once, then records them."""
    paths = _history(dataset)
    with Store(tmp_path / "s.duckdb") as st:
        ingest(str(dataset), st, workers=1)
        live = ingest(str(dataset), st, workers=1).files_seen
        st.con.execute("DELETE FROM source_entries")
        _replace(paths[1], "2026-05-18T11:40:00+00:00")
        r = ingest(str(dataset), st, workers=1)
        assert (r.files_read, r.files_seen) == (1, 4 + live)
        n = st.con.execute("SELECT count(*) FROM source_entries").fetchall()[0][0]
        assert n == 4  # the folder read; the quiet ones are recorded at the next full scan


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


def test_a_skipped_file_fixed_in_place_in_a_trusted_folder_is_read(dataset: Path,
                                                                   tmp_path: Path) -> None:
    """Skipped files are checked every run, like live ones: while one stays it is reported
    (``--strict`` fails), and a fix written in place is read at once."""
    _history(dataset)
    bad = dataset / "sessions" / "2026-05-18" / "broken.jsonl"
    bad.write_text('{"session_id": "broken", "events": [tru\n')
    _age(bad)
    _age(bad.parent)
    with Store(tmp_path / "s.duckdb") as st:
        assert len(ingest(str(dataset), st, workers=1).quality.skipped) == 1
        _age(bad.parent)  # settled: the folder is recorded from now on
        ingest(str(dataset), st, workers=1)
        again = ingest(str(dataset), st, workers=1)
        assert [s["path"] for s in again.still_skipped] == [str(bad)]
        folder = bad.parent.stat()
        write_session(dataset, "broken", "2026-05-18T12:00:00+00:00",
                      [ev("2026-05-18T12:05:00+00:00", "llm_call")])
        os.utime(bad.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns))
        fixed = ingest(str(dataset), st, workers=1)
        assert fixed.files_read == 1 and not fixed.still_skipped
        assert st.counts()["sessions"] == 13


def _recorded(st: Store, folder: Path) -> set[tuple[str, int]]:
    rows = st.con.execute("SELECT path, ino FROM source_entries WHERE folder = ?",
                          [str(folder)]).fetchall()
    assert len(rows) == len(set(rows))  # one record per entry
    return set(rows)


def _on_disk(folder: Path) -> set[tuple[str, int]]:
    return {(str(p), p.stat().st_ino) for p in folder.glob("*.jsonl")}


def test_the_recorded_entries_follow_the_folders_run_after_run(dataset: Path,
                                                                tmp_path: Path) -> None:
    """After every incremental run, the entries recorded for each folder read are exactly
    the files in it (name and inode), as a full listing records them: new files (only
    inserted), a file removed and one replaced by rename (their old records deleted), a
    folder read again with nothing new (nothing changes)."""
    paths = _history(dataset)
    d18, d19 = paths[0].parent, paths[4].parent
    with Store(tmp_path / "s.duckdb") as st:
        ingest(str(dataset), st, workers=1)
        assert all(_recorded(st, d) == _on_disk(d) for d in (d18, d19))
        for i in range(3):  # new sessions in an old folder
            write_session(dataset, f"new{i}", f"2026-05-18T2{i}:00:00+00:00",
                          [ev(f"2026-05-18T2{i}:10:00+00:00", "llm_call")])
        assert ingest(str(dataset), st, workers=1).files_read == 3
        assert _recorded(st, d18) == _on_disk(d18) and len(_on_disk(d18)) == 7
        # read again (just modified, not trusted yet) with nothing new: unchanged
        assert ingest(str(dataset), st, workers=1).files_read == 0
        assert _recorded(st, d18) == _on_disk(d18)
        paths[5].unlink()  # removed
        _replace(paths[6], "2026-05-19T12:40:00+00:00")  # replaced: another inode
        write_session(dataset, "new19", "2026-05-19T22:00:00+00:00",
                      [ev("2026-05-19T22:10:00+00:00", "llm_call")])
        assert ingest(str(dataset), st, workers=1).files_read == 2
        assert _recorded(st, d19) == _on_disk(d19) and len(_on_disk(d19)) == 4
        before = set(st.con.execute("SELECT root, folder, path, ino FROM source_entries")
                     .fetchall())
        ingest(str(dataset), st, workers=1, rescan=True)  # what a full listing records
        after = set(st.con.execute("SELECT root, folder, path, ino FROM source_entries")
                    .fetchall())
        assert {r for r in after if r[1] in (str(d18), str(d19))} == {
            r for r in before if r[1] in (str(d18), str(d19))}
