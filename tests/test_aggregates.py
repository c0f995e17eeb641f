"""Materialised hourly aggregates: the aggregate path equals the raw path, bit for bit,
for every KPI and every dimension, and ingest keeps the tables equal to a rebuild."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from agentkpi import views
from agentkpi.errors import StoreError
from agentkpi.generate import append_hour, generate_sessions
from agentkpi.ingestion import ingest
from agentkpi.kpis import aggregates
from agentkpi.kpis.dimensions import PAGE_DIMENSIONS
from agentkpi.kpis.sql import Dim, KpiQuery, build, run
from agentkpi.queries import DIMENSIONS, metric_names, query
from agentkpi.sdk import Recorder
from agentkpi.store import DuckDBStore as Store
from agentkpi.store.base import Store as AnyStore
from agentkpi.store.duckdb import DUCKDB

from .conftest import row_groups

START = datetime(2026, 5, 20, 20, tzinfo=UTC)
LO, HI = datetime(2026, 5, 20, 18), datetime(2026, 5, 21, 6)


@pytest.fixture(scope="module", params=[False, True], ids=["clean", "dirty"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("agg")
    generate_sessions(tmp / "data", 300, START, hours=8, seed=11, dirty=request.param)
    st = Store(tmp / "s.duckdb")
    ingest(str(tmp / "data"), st, workers=1)
    assert st.aggregates == frozenset(aggregates.ALL_TABLES)
    yield st
    st.close()


def _raw(st: Store, q: KpiQuery) -> list[dict[str, Any]]:
    """``q`` on the events, as if the store kept no aggregate tables."""
    saved, st.aggregates = st.aggregates, frozenset()
    try:
        return run(st, q)
    finally:
        st.aggregates = saved


def _both(st: Store, q: KpiQuery) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return run(st, q), _raw(st, q)


def _served(st: Store, q: KpiQuery) -> bool:
    main, _ = build(DUCKDB, q, st.aggregates)
    return "FROM events" not in main


ALL = metric_names()


@pytest.mark.parametrize("grain,tz", [("hour", "UTC"), ("day", "UTC"), ("week", "UTC"),
                                      ("month", "UTC"), (None, "UTC"),
                                      ("hour", "Europe/Paris"), ("day", "Europe/Paris"),
                                      ("day", "America/New_York")])
def test_every_kpi_by_time_alone_equals_the_raw_path(store: Store, grain: str | None,
                                                     tz: str) -> None:
    q = KpiQuery(start=LO, end=HI, kpis=ALL, grain=grain, tz=tz)
    assert _served(store, q)
    agg, raw = _both(store, q)
    assert agg == raw and len(agg) >= (8 if grain == "hour" else 1)
    assert any(r["sessions"] for r in agg) and any(r["cost_usd"] for r in agg)


@pytest.mark.parametrize("grain,tz", [("hour", "UTC"), ("day", "UTC"), (None, "UTC"),
                                      ("day", "Europe/Paris")])
def test_event_maps_from_their_table_equal_the_raw_path(store: Store, grain: str | None,
                                                        tz: str) -> None:
    names = [k.name for k in aggregates.EVENT_MAP_KPIS]
    q = KpiQuery(start=LO, end=HI, kpis=names, grain=grain, tz=tz)
    _, maps = build(DUCKDB, q, store.aggregates)
    assert maps and all("FROM events" not in sql for sql in maps.values())
    agg, raw = _both(store, q)
    assert agg == raw
    assert all(any(json.loads(r[n]) for r in agg) for n in names)  # no map empty throughout


def test_event_maps_of_part_hours_by_a_dimension_or_not_kept_read_the_events(
        store: Store) -> None:
    names = [k.name for k in aggregates.EVENT_MAP_KPIS]
    assert "tool_outputs_by_name_json" not in names  # a query-set map: not in the table
    for q in (KpiQuery(start=LO + timedelta(minutes=30), end=HI, kpis=names, grain="hour"),
              KpiQuery(start=LO, end=HI, kpis=names, grain="hour", by=(DIMENSIONS["model"],)),
              KpiQuery(start=LO, end=HI, kpis=[*names, "tool_outputs_by_name_json"],
                       grain="hour")):
        _, maps = build(DUCKDB, q, store.aggregates)
        assert all("FROM events" in sql for sql in maps.values())
        agg, raw = _both(store, q)
        assert agg == raw and any(json.loads(r[names[0]]) for r in agg)


#: Dimensions the tables answer (the others read the events), and those the generated
#: data has several values of.
SERVED = {"session", "user", "tool", "agent", "model", "project", "machine"}
VARIED = {"session", "user", "tool", "agent", "model", "event_type"}


@pytest.mark.parametrize("dim", list(DIMENSIONS))
@pytest.mark.parametrize("grain", ["hour", "day", None])
def test_every_query_dimension_equals_the_raw_path(store: Store, dim: str,
                                                   grain: str | None) -> None:
    d = DIMENSIONS[dim]
    q = KpiQuery(start=LO, end=HI, kpis=ALL, grain=grain, by=[Dim("x", d.expr, d.level)])
    assert _served(store, q) == (dim in SERVED), dim
    agg, raw = _both(store, q)
    assert agg == raw and agg
    assert len({r["x"] for r in agg}) > 1 or dim not in VARIED


@pytest.mark.parametrize("dim", PAGE_DIMENSIONS)
def test_every_dashboard_page_equals_the_raw_path(store: Store, dim: str) -> None:
    def pages() -> tuple[dict[str, Any], dict[str, Any]]:
        return (views.breakdown(store, dim, LO, HI, limit=10_000),
                views.overview(store, LO, HI, grain="hour"))

    fast = pages()
    saved, store.aggregates = store.aggregates, frozenset()
    try:
        slow = pages()
    finally:
        store.aggregates = saved
    assert fast == slow
    assert fast[0]["total_rows"] > 1 or dim == "project"
    assert fast[1]["totals"]["sessions"] > 0


@pytest.mark.parametrize("by,where", [
    (["user", "tool"], []),
    (["project", "model"], []),
    (["tool"], ["e.tool = 'bash'"]),
    ([], ["coalesce(s.user_id, e.session_id) IN ('user_00001', 'user_00002')"]),
    (["user"], ["coalesce(e.agent, s.agent, 'unknown') = 'unknown'"]),
    (["model"], ["e.model IS NULL"]),
])
def test_combined_dimensions_and_filters_equal_the_raw_path(store: Store, by: list[str],
                                                            where: list[str]) -> None:
    dims = sorted((Dim(f"d{i}", DIMENSIONS[b].expr, DIMENSIONS[b].level)
                   for i, b in enumerate(by)), key=lambda x: x.level != "event")
    for grain in ("hour", "day"):
        q = KpiQuery(start=LO, end=HI, kpis=ALL, grain=grain, by=dims, where=where)
        agg, raw = _both(store, q)
        assert _served(store, q)
        assert agg == raw and agg


def test_queries_the_tables_cannot_answer_read_the_events(store: Store) -> None:
    cases = [
        KpiQuery(start=LO, end=HI, kpis=ALL, grain="hour", tz="Asia/Kolkata"),  # +5:30
        KpiQuery(start=LO + timedelta(minutes=30), end=HI, kpis=ALL, grain="hour"),
        KpiQuery(start=LO, end=HI, kpis=ALL, grain="day",
                 by=[Dim("x", DUCKDB.json_field("flavor"), "event")]),
        KpiQuery(start=LO, end=HI, kpis=ALL, grain="day", by=[Dim("x", "e.event_type", "event")]),
        KpiQuery(start=LO, end=HI, kpis=ALL, grain="day",
                 by=[Dim("x", "e.tool", "event")], where=["e.agent IS NULL"]),
    ]
    for q in cases:
        assert not _served(store, q)
        agg, raw = _both(store, q)
        assert agg == raw


#: Ranges that cut through sessions (they start or end inside the range), whole days.
CUTS = [(LO, HI), (datetime(2026, 5, 20, 22), datetime(2026, 5, 21, 1)),
        (datetime(2026, 5, 21, 2), datetime(2026, 5, 22)), (datetime(2026, 5, 20), HI)]


@pytest.mark.parametrize("start,end", CUTS)
@pytest.mark.parametrize("by,where", [
    ([], []), (["session"], []), (["user"], []), (["project", "machine"], []),
    (["session", "user"], ["s.project IS NULL", "e.session_id <> 'x'"]),
])
def test_totals_from_the_session_table_equal_the_raw_path(store: Store, start: datetime,
                                                          end: datetime, by: list[str],
                                                          where: list[str]) -> None:
    dims = [Dim(f"d{i}", DIMENSIONS[b].expr, DIMENSIONS[b].level) for i, b in enumerate(by)]
    dims.sort(key=lambda x: x.level != "event")
    q = KpiQuery(start=start, end=end, kpis=ALL, grain=None, by=dims, where=where)
    main, _ = build(DUCKDB, q, store.aggregates)
    assert "FROM agg_session" in main and "FROM events" not in main
    whole = store.con.execute(
        f"SELECT count(*) FROM agg_session WHERE _first_hour >= TIMESTAMP '{start}' "
        f"AND _last_hour < TIMESTAMP '{end}'").fetchall()[0][0]
    cut = store.con.execute(
        f"SELECT count(*) FROM agg_session WHERE _first_hour < TIMESTAMP '{end}' AND "
        f"_last_hour >= TIMESTAMP '{start}' AND NOT (_first_hour >= TIMESTAMP '{start}' "
        f"AND _last_hour < TIMESTAMP '{end}')").fetchall()[0][0]
    assert whole > 0 and (cut > 0 or (start, end) in (CUTS[0], CUTS[3]))
    agg, raw = _both(store, q)
    assert agg == raw and agg


def test_the_dashboard_lists_rank_like_the_full_query(store: Store,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The sessions list and the breakdowns rank every group by one column, then compute
    the rows they show: the same page as computing every row."""
    def pages() -> list[dict[str, Any]]:
        out = []
        for start, end in CUTS:
            for limit in (7, 10_000):
                out.append(views.sessions(store, start, end, limit=limit))
                for dim in ("user", "tool", "model", "project"):
                    for sort, desc in ((None, True), (dim, False), ("failure_rate", False)):
                        out.append(views.breakdown(store, dim, start, end, sort=sort,
                                                   desc=desc, limit=limit))
        return out

    ranked = pages()
    monkeypatch.setattr(views, "rank", lambda *a, **k: None)  # compute every row
    full = pages()
    assert ranked == full
    lists = [p for p in ranked if p["page"] == "sessions"]
    assert all(p["rows"] for p in lists) and any(p["total_rows"] > 7 for p in lists)
    assert all(len(p["rows"]) == min(7, p["total_rows"]) for p in lists[::2])
    assert any(r["model"] for p in lists for r in p["rows"])


def test_the_query_layer_and_top_n_read_the_aggregates_and_agree(store: Store) -> None:
    kwargs = dict(start="2026-05-20T18", end="2026-05-21T06", store=store)
    for by, top in ((["user"], 5), (["tool"], 3), (["model", "project"], None)):
        fast = query(["sessions", "users", "cost_usd", "cost_per_session_p95",
                      "time_to_first_action_s_p50", "duration_ms_p95"], grain="day", by=by,
                     top=top, compare="previous", **kwargs)
        saved, store.aggregates = store.aggregates, frozenset()
        try:
            slow = query(["sessions", "users", "cost_usd", "cost_per_session_p95",
                          "time_to_first_action_s_p50", "duration_ms_p95"], grain="day",
                         by=by, top=top, compare="previous", **kwargs)
        finally:
            store.aggregates = saved
        assert fast.to_pylist() == slow.to_pylist() and fast.num_rows > 1


def _table_rows(st: AnyStore, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on either engine's store, lists and row order normalised."""
    _, rows = st.fetch(sql)
    norm = [tuple(sorted(v, key=str) if isinstance(v, list) else v for v in r) for r in rows]
    return sorted(norm, key=lambda r: tuple((v is None, str(v)) for v in r))


def _assert_tables_equal_a_rebuild(st: Store) -> None:
    for table in aggregates.ALL_TABLES:
        kept = _table_rows(st, f"SELECT * FROM {table}")
        rebuilt = _table_rows(st, aggregates.table_sql(DUCKDB, table))
        assert kept == rebuilt, table
        # the event maps' rows need named tool calls, CTA clicks or GPU jobs
        assert kept or (table == aggregates.EVENT_MAPS_TABLE and not _has_mapped_events(st))


def _has_mapped_events(st: Store) -> bool:
    where = " OR ".join(f"({k.where})" for k in aggregates.EVENT_MAP_KPIS)
    return bool(st.con.execute(f"SELECT count(*) FROM events WHERE {where}").fetchall()[0][0])


def test_incremental_ingest_keeps_every_table_equal_to_a_rebuild(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate_sessions(root, 60, START, hours=4, seed=3, dirty=True)
    with Store(tmp_path / "s.duckdb") as st:
        ingest(str(root), st, workers=1)
        _assert_tables_equal_a_rebuild(st)
        # a new hour of sessions, a session that grew, one filed again under another day
        append_hour(root, START + timedelta(hours=4), 20, seed=3)
        files = sorted((root / "sessions").rglob("*.jsonl"))
        grown = next(p for p in files if p.stat().st_size > 2000)
        row = json.loads(grown.read_text())
        events = json.loads(row["events"])
        events.append({"timestamp": "2026-05-21T03:30:00+00:00", "event_type": "llm_call",
                       "data": {"model": "late", "cost_usd": 0.5, "prompt_tokens": 7}})
        row["events"] = json.dumps(events)
        grown.write_text(json.dumps(row) + "\n")
        moved = files[-1]
        again = root / "sessions" / "2026-05-22" / moved.name
        again.parent.mkdir(parents=True, exist_ok=True)
        again.write_bytes(moved.read_bytes())
        before = st.counts()
        ingest(str(root), st, workers=1)
        assert st.counts()["sessions"] == before["sessions"] + 20
        _assert_tables_equal_a_rebuild(st)
        late = st.con.execute("SELECT sum(llm_calls) FROM agg_hourly_model WHERE model = 'late' "
                              "AND _hour = TIMESTAMP '2026-05-21 03:00:00'").fetchall()[0][0]
        assert late == 1
        # an hour of new sessions alone (the hourly cron run: the session tables are
        # combined from the batch's own hourly rows, not from the whole hourly tables)
        append_hour(root, START + timedelta(hours=5), 15, seed=4)
        ingest(str(root), st, workers=1)
        _assert_tables_equal_a_rebuild(st)
        # a whole rebuild gives the same KPIs
        q = KpiQuery(start=LO, end=HI, kpis=ALL, grain="hour")
        before_rows = run(st, q)
        assert st.build_aggregates(force=True) == list(aggregates.ALL_TABLES)
        assert run(st, q) == before_rows


def test_a_session_spread_over_log_segments_is_aggregated_whole(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    t = [datetime(2026, 5, 20, 14, 10, tzinfo=UTC)]
    for part in range(3):  # one recorder run per part: three segments, one session
        rec = Recorder(logs, clock=lambda: t[0], compression=None)
        for i in range(4):
            t[0] += timedelta(minutes=7)
            rec.record("llm_call", session_id="shared", model="m",
                       prompt_tokens=10 * (part + 1), cost_usd=0.1 * (i + 1))
            rec.record("tool_call", session_id="shared", tool=f"t{i % 2}")
        rec.close()
        with Store(tmp_path / "s.duckdb") as st:
            ingest(str(logs), st, workers=1)
            _assert_tables_equal_a_rebuild(st)
            q = KpiQuery(start=datetime(2026, 5, 20), end=datetime(2026, 5, 21),
                         kpis=ALL, grain="day")
            agg, raw = _both(st, q)
            assert agg == raw
            assert agg[0]["llm_calls"] == 4 * (part + 1) and agg[0]["sessions"] == 1


def test_a_store_without_tables_is_read_on_the_raw_path_then_built(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate_sessions(root, 30, START, hours=2, seed=5)
    path = tmp_path / "s.duckdb"
    with Store(path) as st:
        ingest(str(root), st, workers=1)
        q = KpiQuery(start=LO, end=HI, kpis=ALL, grain="hour")
        expected = _raw(st, q)
        for table in aggregates.ALL_TABLES:  # as a store written before aggregates existed
            st.con.execute(f"DROP TABLE {table}")
        st.con.execute("DROP TABLE aggregate_tables")
    with Store(path, read_only=True) as ro:
        assert ro.aggregates == frozenset()
        assert run(ro, q) == expected
    with Store(path) as st:  # a writer builds them from the events
        assert st.aggregates == frozenset(aggregates.ALL_TABLES)
        assert _served(st, q) and run(st, q) == expected


def test_event_key_merges_and_repricing_keep_the_tables_exact(tmp_path: Path) -> None:
    from agentkpi import pricing
    from agentkpi.model import CanonicalBatch

    st = Store(tmp_path / "s.duckdb")

    def batch(file: str, session: str, out: int, model: str = "claude-sonnet-4-5") -> None:
        b = CanonicalBatch()
        b.add_session(session_id=session, start_ts=datetime(2026, 2, 10, 9))
        b.add_event(session_id=session, seq=1, ts=datetime(2026, 2, 10, 9, 5),
                    event_type="llm_call", model=model, prompt_tokens=10,
                    completion_tokens=out, event_key="msg_1", file=file)
        b.add_event(session_id=session, seq=2, ts=datetime(2026, 2, 10, 10, 5),
                    event_type="llm_call", model=model, prompt_tokens=1000,
                    completion_tokens=out, file=file)
        st.write_batch(b.session_table(), pricing.price_events(b.event_table()),
                       [{"path": file, "fingerprint": "x", "source": "t", "status": "ok"}],
                       replace_sessions=False)
        _assert_tables_equal_a_rebuild(st)

    batch("/m1/a.jsonl", "a", 25)  # a partial snapshot
    batch("/m2/b.jsonl", "b", 173)  # the same call, complete, under another session's file
    calls = st.con.execute("SELECT session_id, sum(llm_calls) FROM agg_hourly GROUP BY 1 "
                           "ORDER BY 1").fetchall()
    assert calls == [("a", 1), ("b", 2)]  # the keyed call moved to b: a keeps its other call
    st.con.execute("UPDATE events SET cost_usd = 123.0 WHERE session_id = 'a'")
    st.build_aggregates(force=True)
    before = st.con.execute("SELECT sum(cost_usd) FROM agg_hourly").fetchall()[0][0]
    changed = pricing.reprice(st, datetime(2026, 2, 10), datetime(2026, 2, 11))
    assert changed["changed"] == 1 and st.con.execute("SELECT sum(cost_usd) FROM agg_hourly"
                                      ).fetchall()[0][0] < before
    _assert_tables_equal_a_rebuild(st)
    st.close()


def test_hourly_runs_merge_no_row_groups_and_the_full_listing_merges_them(
        tmp_path: Path) -> None:
    """DuckDB's checkpoint merges small neighbouring row groups of every table, so a series
    of hourly commits rewrote the last ~120k rows of each table every few hours: an
    incremental run's connection merges nothing (one new row group per table and run);
    the periodic full listing (here ``rescan``) merges them. The tables stay exact."""
    root = tmp_path / "data"
    generate_sessions(root, 60, START, hours=4, seed=5)
    path = tmp_path / "s.duckdb"
    with Store(path) as st:
        ingest(str(root), st, workers=1)
    tables = ("events", "agg_hourly", "agg_session", "sessions")
    seen = []
    for i in range(4):
        append_hour(root, START + timedelta(hours=4 + i), 15, seed=20 + i)
        with Store(path) as st:
            assert ingest(str(root), st, workers=1).sessions == 15
        with Store(path, read_only=True) as st:
            seen.append({t: row_groups(st, t) for t in tables})
    for t in tables:
        assert [s[t] for s in seen] == [seen[0][t] + i for i in range(4)], t
    append_hour(root, START + timedelta(hours=8), 15, seed=30)
    with Store(path) as st:
        assert ingest(str(root), st, workers=1, rescan=True).sessions == 15
        _assert_tables_equal_a_rebuild(st)
    with Store(path, read_only=True) as st:
        for t in tables:
            assert row_groups(st, t) < seen[-1][t], t


def test_a_full_listing_merges_again_after_incremental_runs_on_the_same_store_object(
        tmp_path: Path) -> None:
    """A library caller keeping one store object: its incremental ingests defer the
    merging, and a later ``rescan`` on that same object merges again (the deferral was
    per connection: it used to last until the store was closed)."""
    root = tmp_path / "data"
    generate_sessions(root, 60, START, hours=4, seed=5)
    path = tmp_path / "s.duckdb"
    with Store(path) as st:
        ingest(str(root), st, workers=1)
        st.con.execute("CHECKPOINT")
        seen = []
        for i in range(4):  # each checkpointed, as an hour's rows (past 16 MB of WAL) are
            append_hour(root, START + timedelta(hours=4 + i), 15, seed=20 + i)
            assert ingest(str(root), st, workers=1).sessions == 15
            st.con.execute("CHECKPOINT")
            seen.append(row_groups(st, "agg_hourly"))
        assert seen == [seen[0] + i for i in range(4)]
        append_hour(root, START + timedelta(hours=8), 15, seed=30)
        assert ingest(str(root), st, workers=1, rescan=True).sessions == 15
        st.con.execute("CHECKPOINT")
        assert row_groups(st, "agg_hourly") < seen[-1]
        _assert_tables_equal_a_rebuild(st)


def _memory_limit(st: Store) -> str:
    return str(st.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])


def test_a_full_build_runs_in_bounded_memory_and_equals_a_rebuild(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The build from every event (an old store after an upgrade) runs with DuckDB's
    memory bounded (setting ``aggregate_memory``; unbounded it held 4.1 GB at 1M
    sessions), builds the same tables, and sets DuckDB's limit back afterwards."""
    root = tmp_path / "data"
    generate_sessions(root, 120, START, hours=6, seed=5, dirty=True)
    monkeypatch.setenv("AGENTKPI_AGGREGATE_MEMORY", "40MB")
    with Store(tmp_path / "s.duckdb") as st:
        ingest(str(root), st, workers=1)
        kept = {t: _table_rows(st, f"SELECT * FROM {t}") for t in aggregates.ALL_TABLES}
        default = _memory_limit(st)
        seen = []
        transaction = st._transaction

        def spy(failed: str, **kwargs: Any) -> Any:  # DuckDB's limit while tables are built
            seen.append(_memory_limit(st))
            return transaction(failed, **kwargs)

        monkeypatch.setattr(st, "_transaction", spy)
        assert st.build_aggregates(force=True) == list(aggregates.ALL_TABLES)
        assert [v.replace(" ", "") for v in seen] in (["38.1MiB"], ["40.0MB"]), seen
        assert _memory_limit(st) == default != seen[0]
        _assert_tables_equal_a_rebuild(st)
        assert {t: _table_rows(st, f"SELECT * FROM {t}") for t in aggregates.ALL_TABLES} == kept
    assert not (tmp_path / "s.duckdb.tmp").exists()  # DuckDB's spill directory is gone


def test_a_build_over_its_memory_bound_fails_clearly_and_keeps_the_tables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    generate_sessions(root, 120, START, hours=6, seed=5)
    with Store(tmp_path / "s.duckdb") as st:
        ingest(str(root), st, workers=1)
        kept = {t: _table_rows(st, f"SELECT * FROM {t}") for t in aggregates.ALL_TABLES}
        for bound in ("1MB", "4MB"):  # below what DuckDB holds already; too little to build
            monkeypatch.setenv("AGENTKPI_AGGREGATE_MEMORY", bound)
            with pytest.raises(StoreError, match=rf"aggregate tables of .*s\.duckdb failed \(its "
                               rf"memory bound: AGENTKPI_AGGREGATE_MEMORY={bound}, raise it if "
                               r"that is too little\): Out of Memory"):
                st.build_aggregates(force=True)
        monkeypatch.delenv("AGENTKPI_AGGREGATE_MEMORY")
        assert {t: _table_rows(st, f"SELECT * FROM {t}") for t in aggregates.ALL_TABLES} == kept
        assert st.build_aggregates() == []  # their signatures were kept too


def test_a_build_failing_for_another_reason_does_not_blame_the_memory_bound(
        tmp_path: Path) -> None:
    """The memory hint is for running out of memory only: a build that fails on a full
    disk (a real file-size limit on the process, 16 KB: writes past it fail with EFBIG)
    says so, without sending the user to raise AGENTKPI_AGGREGATE_MEMORY; the tables are
    kept."""
    import subprocess
    import sys

    from .conftest import file_size_limit

    root = tmp_path / "data"
    generate_sessions(root, 400, START, hours=6, seed=5)
    path = tmp_path / "s.duckdb"
    with Store(path) as st:
        ingest(str(root), st, workers=1)
        kept = {t: _table_rows(st, f"SELECT * FROM {t}") for t in aggregates.ALL_TABLES}
    child = (
        "import sys\n"
        "from agentkpi.errors import StoreError\n"
        "from agentkpi.store import DuckDBStore\n"
        f"st = DuckDBStore({str(path)!r})\n"
        "try:\n"
        "    st.build_aggregates(force=True)\n"
        "except StoreError as exc:\n"
        "    print(exc); sys.exit(3)\n")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         preexec_fn=file_size_limit(16 * 1024), timeout=120)
    assert out.returncode == 3, out.stderr
    assert "aggregate tables of" in out.stdout and "failed:" in out.stdout
    assert "AGENTKPI_AGGREGATE_MEMORY" not in out.stdout and "Out of Memory" not in out.stdout
    with Store(path, read_only=True) as st:
        assert {t: _table_rows(st, f"SELECT * FROM {t}") for t in aggregates.ALL_TABLES} == kept


def test_the_hourly_rollup_keeps_a_small_cache_and_a_bigger_query_runs_unbounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An hourly rollup computes its hour under ``query_memory`` (DuckDB kept ~550 MB of
    blocks read once at 1M sessions); a query that needs more than the bound runs again
    without it, with the same answer, and the limit is DuckDB's default afterwards."""
    import agentkpi.store.duckdb as duck
    from agentkpi.rollups import compute_rows, rollup

    root = tmp_path / "data"
    generate_sessions(root, 80, START, hours=3, seed=9)
    with Store(tmp_path / "s.duckdb") as st:
        ingest(str(root), st, workers=1)
        default = _memory_limit(st)
        hour = (START + timedelta(hours=1)).replace(tzinfo=None)
        free = compute_rows(st, hour, hour + timedelta(hours=1))
        seen: list[str] = []
        real_fetch = Store.fetch

        def fetch(self: Store, sql: str) -> Any:
            seen.append(_memory_limit(self))
            return real_fetch(self, sql)

        monkeypatch.setattr(Store, "fetch", fetch)
        out = rollup(str(tmp_path / "out"), store=st, at=hour.strftime("%Y-%m-%dT%H"))
        assert out.rows[hour.strftime("%Y-%m-%dT%H")] == free[hour]
        assert seen and all(s != default for s in seen)
        assert _memory_limit(st) == default
        monkeypatch.setattr(Store, "fetch", real_fetch)

        hungry = "SELECT count(*), sum(len(l)) FROM (SELECT i % 200000 AS k, list(i) AS l " \
                 "FROM range(2000000) t(i) GROUP BY k)"
        monkeypatch.setattr(duck, "QUERY_MEMORY_LIMIT", "8MB")
        with st.query_memory():
            assert _memory_limit(st) != default
            with pytest.raises(duckdb.OutOfMemoryException, match="Out of Memory"):
                st.con.execute(hungry)  # the bound is real: this query needs more
            assert st.fetch(hungry)[1] == [(200000, 2000000)]
            assert _memory_limit(st) == default  # later queries of the block: unbounded
        assert _memory_limit(st) == default
        with pytest.raises(duckdb.OutOfMemoryException, match="Out of Memory"):  # outside: no retry
            st.con.execute("SET memory_limit = '8MB'")
            st.fetch(hungry)
