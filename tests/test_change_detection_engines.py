"""Change detection on both engines: a ClickHouse store keeps the same scan state as a
DuckDB one (folder fingerprints, the entries of the folders read), so an hourly run on it
lists what changed, not the history (tests/test_change_detection.py has the DuckDB
store's finer cases)."""

from __future__ import annotations

from pathlib import Path

from agentkpi.ingestion import RESCAN_HOURS, ingest
from agentkpi.rollups import rollup
from agentkpi.store.base import Store

from .conftest import ev, write_session
from .test_change_detection import _age, _grow, _history, _replace


def _calls(st: Store, session: str) -> int:
    _, rows = st.fetch("SELECT count(*) FROM events WHERE session_id = "
                       f"{st.dialect.str_literal(session)} AND event_type = 'llm_call'")
    return int(rows[0][0])


def _recorded(st: Store, folder: Path) -> set[tuple[str, int]]:
    lit = st.dialect.str_literal(str(folder))
    if st.engine == "clickhouse":
        sql = ("SELECT p, i FROM source_entries FINAL ARRAY JOIN paths AS p, inos AS i "
               f"WHERE folder = {lit}")
    else:
        sql = f"SELECT path, ino FROM source_entries WHERE folder = {lit}"
    _, rows = st.fetch(sql)
    got = [(str(p), int(i)) for p, i in rows]
    assert len(got) == len(set(got))  # one record per entry
    return set(got)


def _on_disk(folder: Path) -> set[tuple[str, int]]:
    return {(str(p), p.stat().st_ino) for p in folder.glob("*.jsonl")}


def test_only_changed_folders_and_live_sessions_are_listed(store: Store, dataset: Path) -> None:
    paths = _history(dataset)
    first = ingest(str(dataset), store, workers=1)
    assert (first.files_seen, first.files_read) == (12, 12)
    _, folders = store.scan_state(str(dataset))  # type: ignore[attr-defined]
    assert len(folders) == 3
    assert all(_recorded(store, p.parent) == _on_disk(p.parent) for p in paths)
    second = ingest(str(dataset), store, workers=1)  # only the live files are checked
    assert second.files_read == 0 and 0 < second.files_seen < 12
    new = write_session(dataset, "late", "2026-05-18T23:00:00+00:00",
                        [ev("2026-05-18T23:10:00+00:00", "llm_call")])
    third = ingest(str(dataset), store, workers=1)
    assert third.files_read == 1 and third.files_seen == second.files_seen + 1
    assert _recorded(store, new.parent) == _on_disk(new.parent)
    assert store.counts()["sessions"] == 13


def test_an_old_file_replaced_by_rename_is_found_at_once(store: Store, dataset: Path) -> None:
    paths = _history(dataset)
    ingest(str(dataset), store, workers=1)
    live = ingest(str(dataset), store, workers=1).files_seen
    old = paths[1]  # not live
    _replace(old, "2026-05-18T11:40:00+00:00")
    r = ingest(str(dataset), store, workers=1)
    assert r.files_read == 1 and r.files_seen == live + 1
    assert _calls(store, "d18s1") == 2
    _age(old.parent)
    assert ingest(str(dataset), store, workers=1).files_seen == live


def test_removed_and_replaced_entries_leave_the_record(store: Store, dataset: Path) -> None:
    paths = _history(dataset)
    d19 = paths[4].parent
    ingest(str(dataset), store, workers=1)
    paths[5].unlink()
    _replace(paths[6], "2026-05-19T12:40:00+00:00")
    write_session(dataset, "new19", "2026-05-19T22:00:00+00:00",
                  [ev("2026-05-19T22:10:00+00:00", "llm_call")])
    assert ingest(str(dataset), store, workers=1).files_read == 2
    assert _recorded(store, d19) == _on_disk(d19) and len(_on_disk(d19)) == 4
    ingest(str(dataset), store, workers=1, rescan=True)
    assert _recorded(store, d19) == _on_disk(d19)
    d18 = paths[0].parent  # a folder removed whole: a full listing forgets its entries
    assert _recorded(store, d18)
    for p in d18.iterdir():
        p.unlink()
    d18.rmdir()
    ingest(str(dataset), store, workers=1, rescan=True)
    assert _recorded(store, d18) == set() and _recorded(store, d19) == _on_disk(d19)


def test_the_whole_source_is_listed_again_once_a_day(store: Store, dataset: Path) -> None:
    paths = _history(dataset)
    ingest(str(dataset), store, workers=1)
    full_at, _ = store.scan_state(str(dataset))  # type: ignore[attr-defined]
    assert full_at is not None and full_at.tzinfo is None
    # an old file grown in place (its folder unchanged) waits for the daily full listing
    _grow(paths[0], "2026-05-18T10:40:00+00:00", keep_folder_time=True)
    assert ingest(str(dataset), store, workers=1).files_read == 0
    # an hourly run does not move the last full listing's time: a day after it, it is due
    _age_scan(store, int(RESCAN_HOURS) - 1)
    r = ingest(str(dataset), store, workers=1)
    assert r.files_read == 0 and r.files_seen < 12
    _age_scan(store, 2)
    r = ingest(str(dataset), store, workers=1)
    assert (r.files_seen, r.files_read) == (12, 1)
    assert _calls(store, "d18s0") == 2


def _age_scan(st: Store, hours: int) -> None:
    """Make the last full listing ``hours`` older."""
    if st.engine == "clickhouse":
        st.client.command(  # type: ignore[attr-defined]
            "INSERT INTO source_scans SELECT root, full_scan_at - toIntervalHour("
            f"{hours}), folders, _version + 1 FROM source_scans FINAL")
    else:
        st.con.execute(  # type: ignore[attr-defined]
            f"UPDATE source_scans SET full_scan_at = full_scan_at - INTERVAL {hours} HOUR")


def test_a_session_active_for_days_is_counted_in_every_hour(store: Store, dataset: Path,
                                                            tmp_path: Path) -> None:
    """The cron: one rollup per hour, each after that hour's data arrived. A session runs
    for three days, its file rewritten (by rename) now and then; new sessions keep
    arriving in the day folders. Every hour it was active counts it, in the CSV written
    that hour and in a rollup of the whole range afterwards."""
    paths = _history(dataset)
    out = str(tmp_path / "o")
    rollup(out, source=str(dataset), store=store, at="2026-05-20T13", workers=1)
    long = paths[-1]  # d20s3, started 2026-05-20T13:00
    active = ["2026-05-20T13"]
    for n, hour in enumerate(["2026-05-20T19", "2026-05-21T02", "2026-05-21T16",
                              "2026-05-22T09", "2026-05-23T00"]):
        day, hh = hour.split("T")
        _replace(long, f"{day}T{hh}:07:00+00:00")
        write_session(dataset, f"new{n}", f"{day}T{hh}:30:00+00:00",
                      [ev(f"{day}T{hh}:31:00+00:00", "llm_call", prompt_tokens=1)])
        active.append(hour)
        r = rollup(out, source=str(dataset), store=store, at=hour, workers=1)
        assert r.ingest is not None and r.ingest.files_read == 2, hour
        assert r.rows[hour]["sessions"] == 2 and r.rows[hour]["llm_calls"] == 2, hour
    r = rollup(out, store=store, start="2026-05-20T13", end="2026-05-23T01")
    for hour in active:
        assert r.rows[hour]["sessions"] >= 1, hour
    assert set(active) <= {h for h, row in r.rows.items() if row["sessions"]}
    assert "2026-05-21T10" not in r.rows  # nothing happened then
