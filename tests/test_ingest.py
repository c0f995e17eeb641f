"""Ingest: incremental, idempotent, every kind of bad input counted and reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pytest

from agentkpi.errors import DataError, StoreError, UsageError
from agentkpi.ingestion import ingest
from agentkpi.model import SESSION_SCHEMA
from agentkpi.rollups import rollup
from agentkpi.store import duckdb as duckdb_store
from agentkpi.store.duckdb import MIGRATIONS, DuckDBStore

from .conftest import ev, file_size_limit, row_groups, write_session

H = "2026-05-20T14"


def _events(store: DuckDBStore) -> int:
    return store.counts()["events"]


def test_unchanged_files_are_not_read_again(dataset: Path, tmp_path: Path) -> None:
    for i in range(5):
        write_session(dataset, f"s{i}", "2026-05-20T14:00:00+00:00",
                      [ev("2026-05-20T14:01:00+00:00", "llm_call")])
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        first = ingest(str(dataset), st, workers=1)
        second = ingest(str(dataset), st, workers=1)
        assert (first.files_read, second.files_read, second.files_unchanged) == (5, 0, 5)
        assert _events(st) == 5


def test_a_grown_session_file_replaces_its_rows_nothing_doubled(dataset: Path,
                                                                tmp_path: Path) -> None:
    evs = [ev("2026-05-20T14:01:00+00:00", "llm_call", prompt_tokens=10)]
    path = write_session(dataset, "grow", "2026-05-20T14:00:00+00:00", evs)
    store = str(tmp_path / "s.duckdb")
    r1 = rollup(str(tmp_path / "o"), source=str(dataset), store=store, at=H)
    evs.append(ev("2026-05-20T14:30:00+00:00", "llm_call", prompt_tokens=5))
    write_session(dataset, "grow", "2026-05-20T14:00:00+00:00", evs)
    os.utime(path, (1_900_000_000, 1_900_000_000))  # make sure the mtime moves
    r2 = rollup(str(tmp_path / "o"), source=str(dataset), store=store, at=H)
    assert r1.rows[H]["tokens_prompt"] == 10 and r1.rows[H]["llm_calls"] == 1
    assert r2.rows[H]["tokens_prompt"] == 15 and r2.rows[H]["llm_calls"] == 2
    assert r2.rows[H]["sessions"] == 1
    with DuckDBStore(store) as st:
        assert st.counts() == {"sessions": 1, "events": 2, "files": 1}


def test_sessions_stay_one_row_per_id_without_an_index(dataset: Path, tmp_path: Path) -> None:
    """``sessions`` has no primary key (migration 4): the write path alone keeps one row per
    id, new non-null values winning and the earliest start kept."""
    first = [ev("2026-05-20T14:01:00+00:00", "llm_call")]
    write_session(dataset, "s1", "2026-05-20T14:00:00+00:00", first, user_id=None, model="m1")
    write_session(dataset, "s2", "2026-05-20T15:00:00+00:00", first)
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        ingest(str(dataset), st, workers=1)
        # s1 rewritten (a user now, later start) and also filed under another day; s3 new
        path = write_session(dataset, "s1", "2026-05-20T14:30:00+00:00", first, user_id="u9",
                             model=None, session_end_time="2026-05-20T16:00:00+00:00")
        os.utime(path, (1, 1))  # another fingerprint even within the same clock tick
        write_session(dataset, "s1", "2026-05-20T14:30:00+00:00", first, user_id="u9",
                      day="2026-05-21")
        write_session(dataset, "s3", "2026-05-20T17:00:00+00:00", first)
        ingest(str(dataset), st, workers=1, rescan=True)
        rows = st.sql("SELECT session_id, user_id, model, start_ts, end_ts FROM sessions "
                      "ORDER BY session_id").to_pylist()
        assert [r["session_id"] for r in rows] == ["s1", "s2", "s3"]
        s1 = rows[0]
        assert (s1["user_id"], s1["model"]) == ("u9", "m1")
        assert str(s1["start_ts"]) == "2026-05-20 14:00:00"
        assert str(s1["end_ts"]) == "2026-05-20 16:00:00"
        indexes = st.sql("SELECT count(*) AS n FROM duckdb_constraints() WHERE table_name = "
                         "'sessions' AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')")
        assert indexes.column("n")[0].as_py() == 0


def test_the_ledger_stays_one_row_per_path_without_an_index(dataset: Path,
                                                          tmp_path: Path) -> None:
    """``ingested_files`` has no primary key (migration 6): a file read again, also into a
    store that holds no event yet (its only file was skipped), keeps one ledger row."""
    path = write_session(dataset, "s1", "2026-05-20T14:00:00+00:00",
                         [ev("2026-05-20T14:01:00+00:00", "llm_call")])
    good = Path(path).read_bytes()
    Path(path).write_bytes(b"{not json")
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        assert ingest(str(dataset), st, workers=1).quality.skipped
        assert st.counts() == {"sessions": 0, "events": 0, "files": 1}
        Path(path).write_bytes(good)
        os.utime(path, (1, 1))
        ingest(str(dataset), st, workers=1)  # no event stored yet: a "fresh" write
        Path(path).write_bytes(good.replace(b"llm_call", b"tool_call"))
        os.utime(path, (2, 2))
        ingest(str(dataset), st, workers=1, rescan=True)
        rows = st.sql("SELECT status, count(*) OVER () AS n FROM ingested_files").to_pylist()
        assert rows == [{"status": "ok", "n": 1}]
        assert st.counts() == {"sessions": 1, "events": 1, "files": 1}
        indexes = st.sql("SELECT count(*) AS n FROM duckdb_constraints() WHERE table_name = "
                         "'ingested_files' AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')")
        assert indexes.column("n")[0].as_py() == 0


def test_a_path_found_new_is_looked_up_again_once_written(tmp_path: Path) -> None:
    """``changed_files`` remembers the paths absent from the ledger so that their
    ``write_batch`` skips the lookup; a path written since is looked up again: written
    twice, still one ledger row, and a path never asked about is always looked up."""
    from agentkpi.model import EVENT_SCHEMA, SESSION_SCHEMA

    def write(st: DuckDBStore, *paths: str) -> None:
        st.write_batch(SESSION_SCHEMA.empty_table(), EVENT_SCHEMA.empty_table(),
                       [{"path": p, "fingerprint": "f2", "source": "t", "status": "ok"}
                        for p in paths], replace_sessions=True)

    def ledger(st: DuckDBStore) -> list[tuple[str, str]]:
        return sorted(st.con.execute("SELECT path, fingerprint FROM ingested_files").fetchall())

    with DuckDBStore(tmp_path / "s.duckdb") as st:
        assert st.changed_files([("/d/a", "f1"), ("/d/b", "f1")]) == [("/d/a", "f1"),
                                                                      ("/d/b", "f1")]
        write(st, "/d/a")
        write(st, "/d/a")  # the same path again, without a listing between
        write(st, "/d/b", "/d/c")  # /d/c was never asked about
        write(st, "/d/c")
        assert ledger(st) == [("/d/a", "f2"), ("/d/b", "f2"), ("/d/c", "f2")]
        assert st.changed_files([("/d/a", "f2"), ("/d/b", "f3")]) == [("/d/b", "f3")]
        write(st, "/d/b")
        assert ledger(st) == [("/d/a", "f2"), ("/d/b", "f2"), ("/d/c", "f2")]


def test_a_store_with_the_indexed_ledger_is_migrated_with_its_rows(dataset: Path,
                                                                  tmp_path: Path) -> None:
    import duckdb

    write_session(dataset, "s1", "2026-05-20T14:00:00+00:00",
                  [ev("2026-05-20T14:01:00+00:00", "llm_call")])
    path = tmp_path / "s.duckdb"
    with DuckDBStore(path) as st:
        ingest(str(dataset), st, workers=1)
        before = st.sql("SELECT * FROM ingested_files").to_pylist()
    with duckdb.connect(str(path)) as con:  # back to schema 5: the ledger keyed by path
        con.execute("CREATE TABLE _old AS SELECT * FROM ingested_files")
        con.execute("DROP TABLE ingested_files")
        con.execute("CREATE TABLE ingested_files (path VARCHAR PRIMARY KEY, fingerprint "
                    "VARCHAR, source VARCHAR, status VARCHAR, reason VARCHAR, n_sessions "
                    "INTEGER, n_events INTEGER, ingested_at TIMESTAMP)")
        con.execute("INSERT INTO ingested_files SELECT * FROM _old")
        con.execute("DROP TABLE _old")
        con.execute("DELETE FROM schema_migrations WHERE version >= 6")
    with DuckDBStore(path) as st:
        assert st.schema_version() == 6
        assert st.sql("SELECT * FROM ingested_files").to_pylist() == before
        assert ingest(str(dataset), st, workers=1).files_read == 0  # nothing read again


def test_a_session_reuploaded_under_another_folder_is_not_counted_twice(
        dataset: Path, tmp_path: Path) -> None:
    evs = [ev("2026-05-20T14:01:00+00:00", "llm_call")]
    write_session(dataset, "moved", "2026-05-20T14:00:00+00:00", evs, day="2026-05-19")
    store = str(tmp_path / "s.duckdb")
    rollup(str(tmp_path / "o"), source=str(dataset), store=store, at=H)
    write_session(dataset, "moved", "2026-05-20T14:00:00+00:00", evs)
    r = rollup(str(tmp_path / "o"), source=str(dataset), store=store, at=H)
    assert r.rows[H]["llm_calls"] == 1


def test_store_records_migrations_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with DuckDBStore(path) as st:
        assert st.schema_version() == MIGRATIONS[-1][0]
    with DuckDBStore(path) as st:  # second open applies nothing new
        assert st.migrate() == []
    with DuckDBStore(path, read_only=True) as st:
        assert st.counts()["events"] == 0


def test_read_only_open_of_missing_store_says_what_to_do(tmp_path: Path) -> None:
    from agentkpi.errors import StoreError

    with pytest.raises(StoreError, match="agentkpi ingest"):
        DuckDBStore(tmp_path / "nope.duckdb", read_only=True)


def _bad_dataset(root: Path) -> dict[str, str]:
    day = root / "sessions" / "2026-05-20"
    day.mkdir(parents=True)
    good = write_session(root, "good", "2026-05-20T14:00:00+00:00", [
        ev("2026-05-20T14:01:00+00:00", "llm_call", prompt_tokens="abc"),
        ev("garbage", "llm_call"),
        {"event_type": "tool_call", "data": {}},
        ev("2026-05-20T14:02:00+00:00", "mystery_type")])
    (day / "empty.jsonl").write_text("")
    (day / "blank.jsonl").write_text("\n\n")
    full = good.read_text()
    (day / "truncated.jsonl").write_text(full[: len(full) // 2])
    (day / "array.jsonl").write_text("[1, 2, 3]\n")
    row = json.loads(full)
    row["session_id"], row["messages"] = "badmsgs", "{not json"
    (day / "badmsgs.jsonl").write_text(json.dumps(row) + "\n")
    row["session_id"], row["messages"], row["events"] = "numevents", "[]", 42
    (day / "numevents.jsonl").write_text(json.dumps(row) + "\n")
    row["session_id"], row["events"] = "nullevents", None
    (day / "nullevents.jsonl").write_text(json.dumps(row) + "\n")
    return {"empty": "file_empty", "blank": "file_empty", "truncated": "file_bad_json",
            "array": "file_not_object"}


def test_bad_input_never_crashes_and_every_problem_is_counted(tmp_path: Path) -> None:
    root = tmp_path / "dirty"
    expected_skips = _bad_dataset(root)
    r = rollup(str(tmp_path / "o"), source=str(root), store=str(tmp_path / "s.duckdb"), at=H)
    q = r.ingest.quality
    skipped = {Path(s["path"]).stem: s["kind"] for s in q.skipped}
    assert skipped == expected_skips
    assert all(s["reason"] for s in q.skipped)
    assert q.counts["number_unparseable"] == 2  # the good row and its badmsgs copy
    assert q.counts["ts_unparseable"] >= 1 and q.counts["ts_missing"] >= 1
    assert q.counts["field_bad_json"] == 1 and q.counts["field_wrong_type"] == 1
    assert q.counts["event_type_unknown"] >= 1
    # the readable sessions still count
    assert r.rows[H]["sessions"] == 2  # good + badmsgs (numevents/nullevents have no events)
    report = json.loads((tmp_path / "o" / "_reports" / "latest.json").read_text())
    assert {Path(s["path"]).stem for s in report["ingest"]["skipped_files"]} == set(expected_skips)
    assert report["ingest"]["issues"]["file_bad_json"] == 1


def test_skipped_files_stay_visible_in_the_store_ledger(tmp_path: Path) -> None:
    root = tmp_path / "dirty"
    _bad_dataset(root)
    store = str(tmp_path / "s.duckdb")
    rollup(str(tmp_path / "o"), source=str(root), store=store, at=H)
    with DuckDBStore(store, read_only=True) as st:
        rows = st.sql("SELECT path, reason FROM ingested_files WHERE status = 'skipped'")
    assert rows.num_rows == 4 and all(rows.column("reason").to_pylist())


def test_strict_turns_data_errors_into_a_failure(tmp_path: Path) -> None:
    root = tmp_path / "dirty"
    _bad_dataset(root)
    with pytest.raises(DataError, match="data problem"):
        rollup(str(tmp_path / "o"), source=str(root), store=str(tmp_path / "s.duckdb"), at=H,
               strict=True)


def test_strict_passes_on_clean_data(constructed: Path, tmp_path: Path) -> None:
    r = rollup(str(tmp_path / "o"), source=str(constructed), store=str(tmp_path / "s.duckdb"),
               at="2026-05-20T14", strict=True)
    assert r.written


def test_memory_source_and_memory_target(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    local = tmp_path / "d"
    write_session(local, "m1", "2026-05-20T14:00:00+00:00",
                  [ev("2026-05-20T14:01:00+00:00", "llm_call", prompt_tokens=3)])
    for p in local.rglob("*.jsonl"):
        fs.pipe_file(f"/src/{p.relative_to(local).as_posix()}", p.read_bytes())
    try:
        r = rollup("memory://out", source="memory://src", store=str(tmp_path / "s.duckdb"), at=H)
        assert r.rows[H]["tokens_prompt"] == 3
        text = fs.cat_file("/out/hourly/2026-05-20/14.csv").decode()
        assert text.startswith("bucket,sessions,") and "\n2026-05-20T14,1," in text
    finally:
        fs.rm("/src", recursive=True)
        fs.rm("/out", recursive=True)


def test_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        rollup(str(tmp_path / "o"), source=str(tmp_path / "nope"),
               store=str(tmp_path / "s.duckdb"), at=H)


def test_unrecognised_source_layout_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "weird").mkdir()
    (tmp_path / "weird" / "x.txt").write_text("hello")
    from agentkpi.errors import SourceError

    with pytest.raises(SourceError, match="could not recognise"):
        rollup(str(tmp_path / "o"), source=str(tmp_path / "weird"),
               store=str(tmp_path / "s.duckdb"), at=H)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_session_filed_twice_in_one_run_counts_once(dataset: Path, tmp_path: Path,
                                                       workers: int, monkeypatch) -> None:
    from agentkpi import ingestion

    monkeypatch.setattr(ingestion, "CHUNK", 1)  # each file its own chunk
    monkeypatch.setattr(ingestion, "WRITE_EVENTS", 1)  # and its own transaction
    evs = [ev("2026-05-20T14:01:00+00:00", "llm_call", prompt_tokens=7)]
    write_session(dataset, "twice", "2026-05-20T14:00:00+00:00", evs, day="2026-05-19")
    write_session(dataset, "twice", "2026-05-20T14:00:00+00:00", evs)
    write_session(dataset, "other", "2026-05-20T14:00:00+00:00", evs)
    r = rollup(str(tmp_path / "o"), source=str(dataset), store=str(tmp_path / "s.duckdb"),
               at=H, workers=workers)
    assert (r.rows[H]["sessions"], r.rows[H]["llm_calls"], r.rows[H]["tokens_prompt"]) == \
        (2, 2, 14)


def test_a_session_filed_twice_in_one_batch_counts_once(dataset: Path, tmp_path: Path) -> None:
    evs = [ev("2026-05-20T14:01:00+00:00", "llm_call", prompt_tokens=7)]
    write_session(dataset, "twice", "2026-05-20T14:00:00+00:00", evs, day="2026-05-19")
    write_session(dataset, "twice", "2026-05-20T14:00:00+00:00", evs + evs)
    r = rollup(str(tmp_path / "o"), source=str(dataset), store=str(tmp_path / "s.duckdb"),
               at=H, workers=1)
    # the later folder's copy (two calls) wins, once
    assert (r.rows[H]["sessions"], r.rows[H]["llm_calls"]) == (1, 2)


def test_an_importer_failure_skips_that_file_only(dataset: Path, tmp_path: Path,
                                                  monkeypatch) -> None:
    from agentkpi.sources import session_dataset

    real = session_dataset.add_row

    def flaky(batch, row, path, q):  # fails half-way through one file
        real(batch, row, path, q)
        if row.get("session_id") == "boom":
            raise RuntimeError("importer bug")

    monkeypatch.setattr(session_dataset, "add_row", flaky)
    evs = [ev("2026-05-20T14:01:00+00:00", "llm_call")]
    write_session(dataset, "boom", "2026-05-20T14:00:00+00:00", evs)
    write_session(dataset, "fine", "2026-05-20T14:00:00+00:00", evs)
    r = rollup(str(tmp_path / "o"), source=str(dataset), store=str(tmp_path / "s.duckdb"),
               at=H, workers=1)
    assert (r.rows[H]["sessions"], r.rows[H]["llm_calls"]) == (1, 1)  # no partial rows
    (skip,) = r.ingest.quality.skipped
    assert skip["kind"] == "file_unparseable" and "importer bug" in skip["reason"]


def test_long_statements_print_no_progress_bar_on_stdout(tmp_path: Path) -> None:
    """DuckDB prints a progress bar on stdout for statements over 2 s, even without a
    terminal; a store connection turns it off (cron logs, JSON on stdout)."""
    import subprocess
    import sys

    # The one stand-in: every new connection's bar threshold lowered from 2 s to 10 ms
    # (which also turns the bar on), so the statement needs not run for seconds.
    code = ("import duckdb\n"
            "connect = duckdb.connect\n"
            "def quick(*a, **k):\n"
            "    con = connect(*a, **k)\n"
            "    con.execute('SET progress_bar_time = 10')\n"
            "    return con\n"
            "duckdb.connect = quick\n"
            "from agentkpi.store.duckdb import DuckDBStore\n"
            f"st = DuckDBStore({str(tmp_path / 's.duckdb')!r})\n"
            "st.con.execute('SET threads = 1')\n"
            "n = st.con.execute('SELECT count(*) FROM range(100000000) t(i) "
            "WHERE i % 7 = 3').fetchall()[0][0]\n"
            "print('rows', n)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, check=True)
    assert out.stdout == "rows 14285714\n"


def test_parse_chunks_are_taken_in_order_with_a_bounded_number_in_flight() -> None:
    """Cold ingest memory: the pool never runs more than ``ahead`` chunks ahead of the
    writer (Executor.map would submit them all, and finished chunks would pile up)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from agentkpi.ingestion import _bounded_map

    submitted = []
    lock = threading.Lock()

    def work(fmt: str, chunk: int) -> tuple[str, int]:
        with lock:
            submitted.append(chunk)
        return fmt, chunk

    with ThreadPoolExecutor(2) as pool:
        results = _bounded_map(pool, work, "f", list(range(20)), 3)
        first = next(results)
        assert first == ("f", 0)
        assert len(submitted) <= 4  # three in flight, one more once the first was taken
        rest = list(results)
    assert [first, *rest] == [("f", i) for i in range(20)]
    assert sorted(submitted) == list(range(20))


def test_a_parallel_ingest_stores_what_a_serial_one_does(tmp_path: Path) -> None:
    """Parse workers (at a lower priority, in chunks) change how fast, never what is stored."""
    from datetime import UTC, datetime

    from agentkpi.generate import generate_sessions
    from agentkpi.ingestion import MIN_PARALLEL

    data = tmp_path / "data"
    generate_sessions(str(data), 2 * MIN_PARALLEL, datetime(2026, 5, 20, tzinfo=UTC), hours=3,
                      seed=5, workers=1)
    tables = {}
    for workers in (1, 2):
        with DuckDBStore(str(tmp_path / f"w{workers}.duckdb")) as st:
            r = ingest(str(data), st, workers=workers)
            assert r.files_read == 2 * MIN_PARALLEL
            # (an hour's distinct tools are a set: kept as a list in any order)
            tables[workers] = {t: st.fetch(f"SELECT * {tools} FROM {t} ORDER BY ALL")[1]
                               for t, tools in (
                                   ("events", ""), ("sessions", ""), ("agg_session", ""),
                                   *((a, "REPLACE (list_sort(distinct_tools) AS distinct_tools)")
                                     for a in ("agg_hourly", "agg_hourly_tool")))}
    assert tables[1] == tables[2]
    assert len(tables[1]["events"]) > 1000


def test_parse_workers_run_at_a_lower_priority_than_the_writer() -> None:
    from agentkpi.workers import PARSE_NICENESS, worker_pool

    assert PARSE_NICENESS > 0
    with worker_pool(1, PARSE_NICENESS) as pool:
        theirs = pool.submit(os.nice, 0).result()
    assert theirs == min(os.nice(0) + PARSE_NICENESS, 19)


def test_ingest_writes_with_a_bounded_buffer_pool_and_restores_it(
        dataset: Path, tmp_path: Path, monkeypatch) -> None:
    """DuckDB keeps what a long write produces in memory (4.6 GB at 1M sessions) unless
    the pool is bounded while ingest writes (setting ``ingest_memory``)."""
    monkeypatch.setenv("AGENTKPI_INGEST_MEMORY", "300MB")
    write_session(dataset, "s1", "2026-05-20T14:00:00+00:00",
                  [ev("2026-05-20T14:01:00+00:00", "llm_call")])
    seen = []
    with DuckDBStore(str(tmp_path / "s.duckdb")) as st:
        before = st.fetch("SELECT current_setting('memory_limit')")[1][0][0]
        write = st.write_batch

        def spy(*a, **k):  # what DuckDB is set to while the batch is written
            seen.append(st.fetch("SELECT current_setting('memory_limit')")[1][0][0])
            return write(*a, **k)

        monkeypatch.setattr(st, "write_batch", spy)
        ingest(str(dataset), st, workers=1)
        after = st.fetch("SELECT current_setting('memory_limit')")[1][0][0]
    assert seen and all(s.replace(" ", "") in ("286.1MiB", "300.0MB") for s in seen), seen
    assert after == before != seen[0]


def test_a_bad_ingest_memory_setting_says_what_to_write(dataset: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    write_session(dataset, "s1", "2026-05-20T14:00:00+00:00",
                  [ev("2026-05-20T14:01:00+00:00", "llm_call")])
    monkeypatch.setenv("AGENTKPI_INGEST_MEMORY", "lots")
    with DuckDBStore(str(tmp_path / "s.duckdb")) as st, \
            pytest.raises(UsageError, match=r"AGENTKPI_INGEST_MEMORY='lots'.*512MB or 2GB"):
        ingest(str(dataset), st, workers=1)
    monkeypatch.setenv("AGENTKPI_INGEST_MEMORY", "1.5GB")
    with DuckDBStore(str(tmp_path / "s2.duckdb")) as st:
        assert ingest(str(dataset), st, workers=1).files_read > 0


def test_a_commit_that_cannot_be_written_is_one_clear_error_and_loses_nothing(
        tmp_path: Path) -> None:
    """A store write that fails at COMMIT (here: the WAL may not grow past 50 kB, as on
    a full disk) is a one-line error naming the store, and the next run reads the files
    the failed one could not store."""
    from agentkpi.generate import append_hour, generate_sessions

    src, store = tmp_path / "src", tmp_path / "s.duckdb"
    generate_sessions(src, 40, datetime(2026, 5, 20, tzinfo=UTC), hours=2, seed=1)
    cmd = [sys.executable, "-m", "agentkpi", "ingest", "--source", str(src), "--store",
           str(store), "-q"]
    subprocess.run(cmd, check=True, capture_output=True)
    added = append_hour(src, datetime(2026, 5, 20, 3, tzinfo=UTC), 50, seed=2)
    failed = subprocess.run(cmd, capture_output=True, text=True,
                            preexec_fn=file_size_limit(50_000))
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"error: writing to store {store} failed")
    assert "File too large" in failed.stderr and "bug" not in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    subprocess.run(cmd, check=True, capture_output=True)
    with DuckDBStore(store, read_only=True) as st:
        assert st.counts()["sessions"] == 40 + added.n_sessions


def test_stores_opened_on_one_file_in_one_process_share_it(dataset: Path,
                                                          tmp_path: Path) -> None:
    """Stores opened on the same file in one process share DuckDB's database (a file
    is opened once per process): the second sees the first's writes and keeps working
    after the first is closed."""
    write_session(dataset, "s1", "2026-05-20T14:00:00+00:00",
                  [ev("2026-05-20T14:01:00+00:00", "llm_call")])
    path = tmp_path / "s.duckdb"
    first, second = DuckDBStore(path), DuckDBStore(str(path))
    ingest(str(dataset), first, workers=1)
    assert second.counts()["events"] == 1
    first.close()
    assert second.read_session("s1").events[0]["event_type"] == "llm_call"
    second.close()
    readers = [DuckDBStore(path, read_only=True) for _ in range(2)]
    assert [r.counts()["sessions"] for r in readers] == [1, 1]
    for r in readers:
        r.close()


def _keeps_order(store: DuckDBStore) -> bool:
    return bool(store.con.execute(
        "SELECT current_setting('preserve_insertion_order')").fetchall()[0][0])


def test_an_incremental_ingest_writes_small_row_groups_that_a_full_listing_merges(
        dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An incremental ingest (it defers compaction) writes row groups of
    ``ROW_GROUP_ROWS`` rows, so that its insert writes the full ones itself; every other
    writer writes DuckDB's default size, and the next full listing merges the small
    groups back into it. Readers see every row throughout."""
    monkeypatch.setattr(duckdb_store, "ROW_GROUP_ROWS", 2048)
    path = tmp_path / "s.duckdb"

    def add(first: int) -> None:
        for s in range(first, first + 3):
            write_session(dataset, f"s{s}", "2026-05-20T14:00:00+00:00",
                          [ev(f"2026-05-20T14:{i // 60:02d}:{i % 60:02d}+00:00", "llm_call",
                              prompt_tokens=i) for i in range(2000)])

    def run(**kw: Any) -> int:
        with DuckDBStore(path) as store:
            ingest(str(dataset), store, workers=1, **kw)
            assert _keeps_order(store)
        with DuckDBStore(path, read_only=True) as reader:
            groups = row_groups(reader, "events")
            _, rows = reader.fetch("SELECT count(*), sum(prompt_tokens) FROM events")
        n = len(list(dataset.rglob("*.jsonl")))
        assert rows == [(2000 * n, n * sum(range(2000)))]
        return groups

    add(0)
    assert run() == 1  # the first (full) listing: 6,000 rows, one default row group
    add(3)
    assert run() >= 4  # incremental: 6,000 more rows in groups of at most 2,048
    add(6)
    assert run(rescan=True) <= 2  # a full listing: every row group merged to full size


def test_a_write_that_fails_leaves_the_insertion_order_setting_as_it_was(
        tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        bad = pa.table({"session_id": ["s1"], "no_such_column": [1]})
        ledger = [{"path": "/x/s1.jsonl", "fingerprint": "1:1", "source": "t", "status": "ok"}]
        with pytest.raises(StoreError, match="no_such_column"):
            store.write_batch(SESSION_SCHEMA.empty_table(), bad, ledger,
                              replace_sessions=False)
        assert _keeps_order(store)
        assert store.counts()["events"] == 0
