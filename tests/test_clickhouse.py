"""ClickHouse engine (through in-process chDB) against DuckDB: same KPIs, same bytes.

Every KPI is defined once (agentkpi.kpis.catalogue); these tests prove the
ClickHouse dialect + store produce exactly what the DuckDB store produces:
hourly CSV bytes for every hour (clean and dirty data), the whole catalogue at
every grain / by every dimension, the golden constructed row, incremental
re-ingest, and the CLI end to end.

chDB allows one data directory per process, so every test closes its store.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import chdb  # noqa: F401  (the clickhouse extra is part of dev: a missing one fails, never skips)
import clickhouse_connect  # noqa: F401
import pytest

from agentkpi import ingestion, rollups
from agentkpi.kpis.catalogue import BY_NAME
from agentkpi.kpis.sql import Dim, KpiQuery, run
from agentkpi.queries import query as run_query
from agentkpi.store import DuckDBStore
from agentkpi.store.clickhouse import CLICKHOUSE, MIGRATIONS, ClickHouseStore

from .conftest import CONSTRUCTED

pytestmark = pytest.mark.clickhouse

START = datetime(2026, 5, 20, 0, tzinfo=UTC)
HOURS = 6
ALL_KPIS = [n for n in BY_NAME if not n.startswith("_")]


def _generate(root: Path, n: int, dirty: bool, seed: int = 7) -> Path:
    from agentkpi.generate import generate_sessions

    generate_sessions(root, n, START, hours=HOURS, seed=seed, dirty=dirty)
    return root


def _hourly(target: Path) -> dict[str, bytes]:
    base = target / "hourly"
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*.csv"))}


def _rollup_both(tmp: Path, source: Path, **kw: object) -> tuple[dict, dict]:
    duck = DuckDBStore(str(tmp / "duck.duckdb"))
    try:
        rollups.rollup(str(tmp / "out_duck"), source=str(source), store=duck, workers=1, **kw)
    finally:
        duck.close()
    ch = ClickHouseStore(f"chdb://{tmp / 'ch'}")
    try:
        rollups.rollup(str(tmp / "out_ch"), source=str(source), store=ch, workers=1, **kw)
    finally:
        ch.close()
    return _hourly(tmp / "out_duck"), _hourly(tmp / "out_ch")


# ----------------------------------------------------------------------------- golden


def test_golden_constructed_hour_on_clickhouse(tmp_path: Path) -> None:
    rows = sorted(CONSTRUCTED.glob("CONSTRUCTED_session_row_*.jsonl"))
    golden = CONSTRUCTED / "CONSTRUCTED_hourly_2026-05-20_14.csv"
    assert rows and golden.exists(), f"constructed data missing under {CONSTRUCTED}"
    day = tmp_path / "src" / "sessions" / "2026-05-20"
    day.mkdir(parents=True)
    for p in rows:
        shutil.copy(p, day / p.name)
    st = ClickHouseStore(f"chdb://{tmp_path / 'ch'}")
    try:
        rollups.rollup(str(tmp_path / "out"), source=str(tmp_path / "src"), store=st,
                        at="2026-05-20T14", workers=1)
    finally:
        st.close()
    want = list(csv.DictReader(io.StringIO(golden.read_text())))
    got = list(csv.DictReader(io.StringIO(
        (tmp_path / "out" / "hourly" / "2026-05-20" / "14.csv").read_text())))
    assert len(want) == len(got) == 1
    assert len(want[0]) == 50
    assert {k: got[0][k] for k in want[0]} == want[0]


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("dirty", [False, True], ids=["clean", "dirty"])
def test_hourly_csv_bytes_identical(tmp_path: Path, dirty: bool) -> None:
    src = _generate(tmp_path / "src", 250, dirty)
    end = (START + timedelta(hours=HOURS + 2)).strftime("%Y-%m-%dT%H")
    duck, ch = _rollup_both(tmp_path, src, start="2026-05-19T22", end=end)
    assert len(duck) >= HOURS
    assert duck == ch


def _dims() -> list[list[Dim]]:
    from agentkpi.queries import DIMENSIONS

    dims = [[]]
    for name in ("tool", "user", "model", "agent", "project", "event_type", "error_type"):
        d = DIMENSIONS[name]
        dims.append([Dim(f"by_{name}", d.expr, d.level)])
    return dims


def test_whole_catalogue_every_grain_and_dimension(tmp_path: Path) -> None:
    src = _generate(tmp_path / "src", 200, dirty=True, seed=11)
    duck = DuckDBStore(str(tmp_path / "duck.duckdb"))
    ch = ClickHouseStore(f"chdb://{tmp_path / 'ch'}")
    try:
        ingestion.ingest(str(src), duck, workers=1)
        ingestion.ingest(str(src), ch, workers=1)
        assert duck.counts() == ch.counts()
        assert duck.time_range() == ch.time_range()
        start, end = START.replace(tzinfo=None), (START + timedelta(hours=HOURS + 1)
                                                  ).replace(tzinfo=None)
        cases = [dict(grain=g) for g in ("hour", "day", "week", "month", None)]
        cases += [dict(grain="day", tz="America/New_York"), dict(grain="hour", tz="Asia/Kolkata"),
                  dict(grain="week", week_start=6)]
        cases += [dict(grain=None, by=by) for by in _dims()[1:]]
        cases += [dict(grain="day", by=_dims()[1] + _dims()[2])]
        for case in cases:
            q = KpiQuery(start=start, end=end, kpis=ALL_KPIS, **case)  # type: ignore[arg-type]
            want, got = run(duck, q), run(ch, q)
            assert want, case
            assert got == want, case
    finally:
        duck.close()
        ch.close()


def test_query_layer_on_both_engines(tmp_path: Path) -> None:
    src = _generate(tmp_path / "src", 150, dirty=False, seed=5)
    duck = DuckDBStore(str(tmp_path / "duck.duckdb"))
    ch = ClickHouseStore(f"chdb://{tmp_path / 'ch'}")
    try:
        ingestion.ingest(str(src), duck, workers=1)
        ingestion.ingest(str(src), ch, workers=1)
        calls = [
            dict(metrics=["events", "sessions", "users", "duration_ms_p95"], grain="day"),
            dict(metrics=["tool_calls_total", "duration_ms_avg"], grain=None, by=["tool"]),
            dict(metrics=["sessions", "cost_usd"], grain="hour", by=["model"], top=2),
            dict(metrics=["events"], grain="day", where={"event_type": ["llm_call", "error"]},
                 compare="previous", tz="Europe/Paris"),
            dict(metrics=["events", "sessions"], grain=None, by=["data.tool"]),
        ]
        for call in calls:
            want = run_query(store=duck, **call)  # type: ignore[arg-type]
            got = run_query(store=ch, **call)  # type: ignore[arg-type]
            assert want.num_rows > 0, call
            assert got.to_pylist() == want.to_pylist(), call
    finally:
        duck.close()
        ch.close()


# ----------------------------------------------------------------------------- quantile


def _seed_percentile(values: list, p: float) -> float:
    v = sorted(values)
    k = (len(v) - 1) * p
    f = int(k)
    c = min(f + 1, len(v) - 1)
    return float(v[f]) if f == c else float(v[f] + (v[c] - v[f]) * (k - f))


def test_percentile_equals_the_seed_formula_on_both_engines() -> None:
    """Both dialects' percentile is the seed's interpolation bit for bit (ints and floats)."""
    import random

    import duckdb

    from agentkpi.store.duckdb import DUCKDB

    rng = random.Random(4)
    con = duckdb.connect()
    ch = ClickHouseStore("chdb://")
    native_differs = 0
    try:
        for trial in range(300):
            n = rng.randint(1, 30)
            if trial % 2:
                vals: list = sorted(rng.randint(0, 30) for _ in range(n))
                typ, chtyp = "BIGINT", "Int64"
            else:
                vals = sorted(round(rng.random() * rng.choice([1, 0.1, 100, 1e4]),
                                    rng.choice([2, 3, 6, 9])) for _ in range(n))
                typ, chtyp = "DOUBLE", "Float64"
            p = rng.choice([0.05, 0.25, 0.5, 0.9, 0.95, 0.99])
            want = _seed_percentile(vals, p)
            duck = con.execute(f"SELECT {DUCKDB.quantile_if('x', p, 'x >= 0')} FROM "
                               f"(SELECT unnest(?::{typ}[]) AS x)", [vals]).fetchall()[0][0]
            assert duck == want, (vals, p)
            expr = CLICKHOUSE.quantile_if("x", p, "x >= 0")
            native = CLICKHOUSE.quantile_native_if("x", p, "x >= 0")
            lit = ", ".join(repr(v) for v in vals)
            got, nat = ch.fetch(f"SELECT {expr}, {native} FROM "
                                f"(SELECT arrayJoin(CAST([{lit}] AS Array({chtyp}))) AS x)")[1][0]
            assert got == want, (vals, p)
            native_differs += nat != want
        empty = CLICKHOUSE.quantile_if("x", 0.5, "x > 100")
        assert ch.fetch(f"SELECT {empty} FROM (SELECT arrayJoin([1.0]) AS x)")[1][0][0] is None
    finally:
        ch.close()
    # Why the dialect does not use quantileExactInclusive: it is off in the last bit.
    assert native_differs > 0


def test_ordered_float_sum_adds_left_to_right_in_key_order_on_both_engines() -> None:
    """``sum_if(order=...)`` is the seed's left-to-right float sum, from 0.0, over the
    values sorted by key (the value breaks ties on ClickHouse): bit for bit on both
    engines, for keys of one string and of two, over values of every magnitude."""
    import functools
    import operator
    import random

    import duckdb

    from agentkpi.store.duckdb import DUCKDB

    rng = random.Random(11)
    con = duckdb.connect()
    ch = ClickHouseStore("chdb://")
    order_mattered = 0
    try:
        for _ in range(200):
            n = rng.randint(1, 60)
            vals = [rng.choice([-1, 1]) * rng.random() * rng.choice([1e-9, 1e-3, 1, 1e3, 1e12])
                    for _ in range(n)]
            vals[rng.randrange(n)] = -0.0
            first = [rng.choice(["/a/x.jsonl", "/a/y.jsonl", "", "/b"]) for _ in range(n)]
            ids = [f"s{rng.randrange(10**6):06d}-{i}" for i in range(n)]  # unique keys
            rows = sorted(zip(first, ids, vals, strict=True))
            want = functools.reduce(operator.add, (v for *_, v in rows), 0.0)
            order_mattered += want != functools.reduce(operator.add, vals, 0.0)
            duck = con.execute(
                f"SELECT {DUCKDB.sum_if('x', 'x IS NOT NULL', order='p, i')} FROM "
                "(SELECT unnest(?::VARCHAR[]) AS p, unnest(?::VARCHAR[]) AS i, "
                "unnest(?::DOUBLE[]) AS x)", [first, ids, vals]).fetchall()[0][0]
            assert duck == want
            lit = ", ".join(f"({_lit(p)}, {_lit(i)}, {v!r})" for p, i, v in zip(
                first, ids, vals, strict=True))
            table = f"(SELECT t.1 AS p, t.2 AS i, t.3 AS x FROM (SELECT arrayJoin([{lit}]) AS t))"
            got = ch.fetch(f"SELECT {CLICKHOUSE.sum_if('x', 'x > -1e300', order='p, i')} "
                           f"FROM {table}")[1][0][0]
            assert got == want and str(got) == str(want)  # -0.0 and 0.0 too
            # ties on the key: the value breaks them
            tied = sorted(zip(first, vals, strict=True))
            want_tied = functools.reduce(operator.add, (v for _, v in tied), 0.0)
            got = ch.fetch(f"SELECT {CLICKHOUSE.sum_if('x', '', order='p')} FROM {table}"
                           )[1][0][0]
            assert got == want_tied
        none = CLICKHOUSE.sum_if("x", "x > 100", order="x")
        assert ch.fetch(f"SELECT {none} FROM (SELECT arrayJoin([1.0]) AS x)")[1][0][0] == 0
    finally:
        ch.close()
    assert order_mattered > 20  # the data would catch a sum in another order


# ----------------------------------------------------------------------------- re-ingest


def _grow(path: Path, extra_hours: float = 0.5) -> None:
    """Append a tool_call + llm_call to a session row file, as a re-upload would."""
    row = json.loads(path.read_text())
    events = row["events"] if isinstance(row["events"], list) else json.loads(row["events"])
    ts = datetime.fromisoformat(str(row["session_start_time"]).replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    t = (ts + timedelta(hours=extra_hours)).isoformat()
    events += [{"timestamp": t, "event_type": "tool_call", "data": {"tool": "bash"}},
               {"timestamp": t, "event_type": "llm_call",
                "data": {"model": "m", "prompt_tokens": 10, "completion_tokens": 5,
                         "cost_usd": 0.001}}]
    row["events"] = json.dumps(events) if isinstance(row["events"], str) else events
    path.write_text(json.dumps(row) + "\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_incremental_reingest_is_idempotent(tmp_path: Path) -> None:
    src = _generate(tmp_path / "src", 80, dirty=False, seed=3)
    files = sorted((src / "sessions").rglob("*.jsonl"))
    ch = ClickHouseStore(f"chdb://{tmp_path / 'ch'}")
    try:
        first = ingestion.ingest(str(src), ch, workers=1)
        before = ch.counts()
        assert before["events"] == first.events > 0
        again = ingestion.ingest(str(src), ch, workers=1)  # nothing changed
        assert again.files_read == 0 and ch.counts() == before
        for p in files[:5]:
            _grow(p)
        # rewritten in place, in folders whose entries did not change: an hourly run
        # checks only live sessions' files; the daily full listing finds them
        hourly = ingestion.ingest(str(src), ch, workers=1)
        grown = ingestion.ingest(str(src), ch, workers=1, rescan=True)
        assert hourly.files_read + grown.files_read == 5
        after = ch.counts()
        assert after["events"] == before["events"] + 10
        assert after["sessions"] == before["sessions"] and after["files"] == before["files"]
        # the same file re-read twice more (forced by a new fingerprint): still not doubled
        for p in files[:5]:
            st = p.stat()
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        assert ingestion.ingest(str(src), ch, workers=1, rescan=True).files_read == 5
        assert ch.counts() == after
        dup = ch.sql("SELECT count() AS n FROM (SELECT session_id, file, seq FROM events "
                     "GROUP BY session_id, file, seq HAVING count() > 1)").to_pylist()[0]["n"]
        assert dup == 0
        end = (START + timedelta(hours=HOURS + 2)).strftime("%Y-%m-%dT%H")
        rollups.rollup(str(tmp_path / "out_ch"), store=ch, start="2026-05-19T22", end=end)
    finally:
        ch.close()
    # a fresh DuckDB store over the grown files gives the very same CSVs
    duck = DuckDBStore(str(tmp_path / "duck.duckdb"))
    try:
        rollups.rollup(str(tmp_path / "out_duck"), source=str(src), store=duck, workers=1,
                        start="2026-05-19T22", end=end)
    finally:
        duck.close()
    assert _hourly(tmp_path / "out_ch") == _hourly(tmp_path / "out_duck")


def test_events_inserted_in_slices_equal_duckdb(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of events is sent in slices of at most INSERT_BYTES (the writer's memory):
    every row arrives once, and the hourly CSVs still equal DuckDB's byte for byte."""
    from clickhouse_connect.driver.client import Client

    from agentkpi.store import clickhouse as ch_module

    src = _generate(tmp_path / "src", 40, dirty=True, seed=5)
    monkeypatch.setattr(ch_module, "INSERT_BYTES", 64 * 1024)
    monkeypatch.setattr(ch_module, "STAGE_BYTES", 0)  # not staged whole (a small batch is)
    sent: list[int] = []
    real = Client.insert_arrow

    def counting(self: object, table: str, data: object, *a: object, **k: object) -> object:
        if table == "events":
            sent.append(data.num_rows)  # type: ignore[attr-defined]
        return real(self, table, data, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Client, "insert_arrow", counting)
    duck, ch = _rollup_both(tmp_path, src, start="2026-05-20T00", end="2026-05-20T06")
    assert len(sent) > 3  # the one batch went in several slices
    ch_store = ClickHouseStore(f"chdb://{tmp_path / 'ch'}", read_only=True)
    try:
        assert sum(sent) == ch_store.counts()["events"]
    finally:
        ch_store.close()
    assert ch and ch == duck


def test_replace_sessions_moves_events(tmp_path: Path) -> None:
    """A session re-uploaded under another file replaces all its events (replace_sessions)."""
    src = _generate(tmp_path / "src", 20, dirty=False, seed=9)
    ch = ClickHouseStore(f"chdb://{tmp_path / 'ch'}")
    try:
        ingestion.ingest(str(src), ch, workers=1)
        before = ch.counts()
        one = sorted((src / "sessions").rglob("*.jsonl"))[0]
        moved = src / "sessions" / "2026-05-21" / one.name
        moved.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(one, moved)  # the same session now also lives in another file
        ingestion.ingest(str(src), ch, workers=1)
        assert ch.counts()["events"] == before["events"]
        assert ch.counts()["sessions"] == before["sessions"]
    finally:
        ch.close()


# ----------------------------------------------------------------------------- schema


def test_migrations_recorded_and_reopen(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'ch'}"
    with ClickHouseStore(dsn) as st:
        assert st.schema_version() == MIGRATIONS[-1][0]
        assert st.migrate() == []
    with ClickHouseStore(dsn, read_only=True) as st:
        assert st.counts() == {"sessions": 0, "events": 0, "files": 0}
        assert st.time_range() == (None, None)
        # the documented cluster DDL (docs/clickhouse.md) is valid ClickHouse SQL
        from agentkpi.store.clickhouse import ddl_script

        script = ddl_script("agentkpi_cluster")
        assert "ReplicatedReplacingMergeTree" in script and "cityHash64(session_id)" in script
        for stmt in filter(None, (x.strip() for x in script.split(";\n"))):
            assert st.fetch(f"SELECT formatQuery({_lit(stmt)})")[1][0][0]


def test_version_1_store_migrates_and_event_keys_merge(tmp_path: Path) -> None:
    from agentkpi.model import CanonicalBatch
    from agentkpi.store.clickhouse import migrations, schema_migrations_ddl

    dsn = f"chdb://{tmp_path / 'ch'}"
    with ClickHouseStore(dsn) as st:  # rebuild the store as schema version 1 had it
        for table in ("events", "sessions", "sessions_rmt", "ingested_files",
                      "schema_migrations", "import_audit"):
            st.command(f"DROP {'VIEW' if table == 'sessions' else 'TABLE'} IF EXISTS {table}")
        st.command(schema_migrations_ddl())
        for stmt in migrations()[0][2]:
            st.command(stmt)
        st.command("INSERT INTO schema_migrations VALUES (1, 'v1', now64())")
        st.command("INSERT INTO events (session_id, seq, event_type, prompt_tokens, file) "
                   "VALUES ('old', 0, 'llm_call', 12, 'a')")
    with ClickHouseStore(dsn) as st:
        assert st.schema_version() == MIGRATIONS[-1][0]
        names = set(st.sql("SELECT * FROM events LIMIT 0").column_names)
        assert {"event_key", "mcp_server", "cost_source", "price_version", "response_id"} <= names
        assert "machine" in st.sql("SELECT * FROM sessions LIMIT 0").column_names
        for file, out in (("/m1/a.jsonl", 25), ("/m2/a.jsonl", 173), ("/m1/a.jsonl", 25)):
            b = CanonicalBatch()
            b.add_session(session_id="s", machine=file[1:3])
            b.add_event(session_id="s", seq=3, event_type="llm_call", prompt_tokens=10,
                        completion_tokens=out, event_key="msg_1", file=file)
            st.write_batch(b.session_table(), b.event_table(),
                           [{"path": file, "fingerprint": "x", "source": "t", "status": "ok"}],
                           replace_sessions=False)
        rows = st.sql("SELECT file, completion_tokens FROM events WHERE event_key = 'msg_1'"
                      ).to_pylist()
        assert rows == [{"file": "/m2/a.jsonl", "completion_tokens": 173}]
        assert st.merged_by_key == 2
        assert st.sql("SELECT sum(prompt_tokens) FROM events").column(0)[0].as_py() == 22
        st.record_audit([{"run_at": datetime(2026, 1, 1), "source": "x", "format": "t",
                          "machine": "m1", "kind": "lines_read", "n": 5}])
        assert st.sql("SELECT kind, n FROM import_audit").to_pylist() == [
            {"kind": "lines_read", "n": 5}]


def _lit(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ----------------------------------------------------------------------------- CLI


def test_cli_rollup_engine_clickhouse(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from agentkpi.cli import main

    src = _generate(tmp_path / "src", 60, dirty=True, seed=2)
    args = ["--source", str(src), "--from", "2026-05-20T00", "--to", "2026-05-20T06", "--quiet"]
    runner = CliRunner()
    r1 = runner.invoke(main, ["rollup", "--target", str(tmp_path / "out_ch"), "--engine",
                              "clickhouse", "--dsn", f"chdb://{tmp_path / 'ch'}", *args])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(main, ["rollup", "--target", str(tmp_path / "out_duck"), "--store",
                              str(tmp_path / "duck.duckdb"), *args])
    assert r2.exit_code == 0, r2.output
    got, want = _hourly(tmp_path / "out_ch"), _hourly(tmp_path / "out_duck")
    assert want and got == want
    r3 = runner.invoke(main, ["status", "--engine", "clickhouse", "--dsn",
                              f"chdb://{tmp_path / 'ch'}"])
    assert r3.exit_code == 0, r3.output


def test_parse_dsn_and_factory(tmp_path: Path) -> None:
    from agentkpi.errors import UsageError
    from agentkpi.store import open_store
    from agentkpi.store.clickhouse import parse_dsn

    http = parse_dsn("clickhouse://u:p%40ss@ch.example:9000/kpis?cluster=c1&max_threads=4")
    assert (http["kind"], http["host"], http["port"], http["username"], http["password"],
            http["database"], http["secure"]) == ("http", "ch.example", 9000, "u", "p@ss",
                                                   "kpis", False)
    assert http["settings"] == {"cluster": "c1", "max_threads": "4"}
    assert parse_dsn("clickhouses://h")["port"] == 8443
    assert parse_dsn("clickhouse://h")["database"] == "agentkpi"
    assert parse_dsn("chdb://")["path"] == ""
    assert parse_dsn("chdb:///var/x?database=d") | {"settings": None} == {
        "kind": "chdb", "path": "/var/x", "database": "d", "settings": None}
    with pytest.raises(UsageError):
        parse_dsn("postgres://x")
    st = open_store("clickhouse", f"chdb://{tmp_path / 'ch'}")
    try:
        assert st.engine == "clickhouse" and st.counts()["events"] == 0
    finally:
        st.close()


def test_reprice_on_clickhouse(tmp_path: Path) -> None:
    import pyarrow as pa

    from agentkpi import pricing
    from agentkpi.model import CanonicalBatch

    with ClickHouseStore(f"chdb://{tmp_path / 'ch'}") as st:
        b = CanonicalBatch()
        t = datetime(2026, 2, 10, 12)
        for seq, cost in ((0, None), (1, 0.5)):
            b.add_event(session_id="s", seq=seq, ts=t, event_type="llm_call",
                        model="claude-opus-4-6", prompt_tokens=1000, completion_tokens=100,
                        cost_usd=cost, file="f")
        ev = pricing.price_events(b.event_table())
        ev = ev.set_column(ev.schema.get_field_index("cost_usd"), "cost_usd",
                           pa.array([9.0, 0.5], pa.float64()))
        st.write_batch(b.session_table(), ev, [], replace_sessions=False)
        r = pricing.reprice(st, datetime(2026, 2, 10), datetime(2026, 2, 11))
        assert r["calls"] == 1 and r["changed"] == 1
        rows = st.sql("SELECT seq, cost_usd, cost_source FROM events ORDER BY seq").to_pylist()
        assert [x["cost_source"] for x in rows] == ["priced", "source"]
        assert rows[0]["cost_usd"] == pytest.approx(0.0075) and rows[1]["cost_usd"] == 0.5


# ----------------------------------------------------------------------------- the store seam


def test_exports_and_session_reads_agree_on_both_engines(tmp_path: Path) -> None:
    """Every Store member the upper layers use gives the same answer on both engines."""
    from agentkpi.sinks.export import export, kpis_table

    src = _generate(tmp_path / "src", 30, dirty=True, seed=5)
    duck = DuckDBStore(str(tmp_path / "duck.duckdb"))
    ch = ClickHouseStore(f"chdb://{tmp_path / 'ch'}")
    try:
        ingestion.ingest(str(src), duck, workers=1)
        ingestion.ingest(str(src), ch, workers=1)
        lo = START.replace(tzinfo=None) + timedelta(hours=1)
        hi = lo + timedelta(hours=2)
        for what in ("events", "sessions"):
            for rng in ((None, None), (lo, hi)):
                d = duck.scan(what, *rng).read_all()
                c = ch.scan(what, *rng).read_all()
                assert d.schema == c.schema
                key = ["session_id", "file", "seq"] if what == "events" else ["session_id"]
                assert d.num_rows > 0
                assert c.sort_by([(k, "ascending") for k in key]).to_pylist() == \
                    d.sort_by([(k, "ascending") for k in key]).to_pylist()
        assert kpis_table(ch).to_pylist() == kpis_table(duck).to_pylist()
        res = export(ch, "events", tmp_path / "ch_events.jsonl")
        assert res.rows == duck.counts()["events"]
        sid = duck.fetch("SELECT session_id FROM events WHERE ts IS NULL LIMIT 1")[1]
        sid = sid[0][0] if sid else duck.fetch("SELECT min(session_id) FROM sessions")[1][0][0]
        d_rec, c_rec = duck.read_session(sid), ch.read_session(sid)
        assert d_rec.session == c_rec.session and d_rec.session is not None
        assert d_rec.events == c_rec.events and d_rec.events
        assert duck.read_session("no-such-session").events == []
        assert ch.read_session("no-such-session").session is None
    finally:
        duck.close()
        ch.close()


def test_str_literal_round_trips_on_both_engines() -> None:
    from agentkpi.store.duckdb import DUCKDB

    tricky = ["it's", "back\\slash", "\\'", "a\\nb", "quote''twice", "ünï"]
    duck = DuckDBStore(":memory:")
    ch = ClickHouseStore("chdb://")
    try:
        for value in tricky:
            assert duck.fetch(f"SELECT {DUCKDB.str_literal(value)}")[1][0][0] == value
            assert ch.fetch(f"SELECT {CLICKHOUSE.str_literal(value)}")[1][0][0] == value
    finally:
        duck.close()
        ch.close()


def test_library_rollup_honours_the_configured_engine(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """agentkpi.rollup() without a store opens the configured engine (it used to be DuckDB)."""
    src = _generate(tmp_path / "src", 10, dirty=False, seed=4)
    dsn = f"chdb://{tmp_path / 'ch'}"
    monkeypatch.setenv("AGENTKPI_ENGINE", "clickhouse")
    monkeypatch.setenv("AGENTKPI_DSN", dsn)
    monkeypatch.setenv("AGENTKPI_STORE", str(tmp_path / "never.duckdb"))
    r = rollups.rollup(str(tmp_path / "out"), source=str(src), workers=1,
                        start="2026-05-20T00", end="2026-05-20T06")
    assert r.written
    assert not (tmp_path / "never.duckdb").exists()
    with ClickHouseStore(dsn, read_only=True) as ch:
        assert ch.counts()["events"] == r.ingest.events > 0


def test_dashboard_tells_a_missing_store_from_a_busy_one(tmp_path: Path) -> None:
    """No store yet is a 404 on ClickHouse too (the error type decides, not its wording)."""
    from starlette.testclient import TestClient

    from agentkpi.web import create_app

    c = TestClient(create_app(engine="clickhouse", dsn=f"chdb://{tmp_path / 'none'}",
                              background=False))
    r = c.get("/api/overview")
    assert r.status_code == 404 and "agentkpi ingest --engine clickhouse" in r.json()["error"]
    assert "Retry-After" not in r.headers


# ----------------------------------------------------------------------------- aggregates


def _agg_rows(st: ClickHouseStore, sql: str) -> list[tuple]:
    rows = st.client.query(sql).result_rows
    norm = [tuple(tuple(sorted(v, key=str)) if isinstance(v, (list, tuple)) else v for v in r)
            for r in rows]
    return sorted(norm, key=lambda r: tuple((v is None, str(v)) for v in r))


def test_aggregate_tables_on_clickhouse_equal_the_raw_path_and_duckdb(tmp_path: Path) -> None:
    """The hourly and per-session tables exist on ClickHouse too (one definition,
    kpis/aggregates.py): the aggregate path equals ClickHouse's raw path and DuckDB, bit
    for bit, and incremental ingest keeps every table equal to a rebuild."""
    from agentkpi.kpis import aggregates
    from agentkpi.kpis.sql import build
    from agentkpi.queries import DIMENSIONS

    src = _generate(tmp_path / "src", 120, dirty=True, seed=11)
    duck = DuckDBStore(str(tmp_path / "duck.duckdb"))
    ch = ClickHouseStore(f"chdb://{tmp_path / 'ch'}")

    def check() -> None:
        for table in aggregates.ALL_TABLES:
            kept = _agg_rows(ch, f"SELECT * FROM {table}")
            assert kept and kept == _agg_rows(ch, ch._agg_select(table)), table
        lo, hi = datetime(2026, 5, 19, 22), datetime(2026, 5, 20, 9)
        for grain in ("hour", "day", None):
            for dim in (None, "user", "tool", "model", "session", "agent"):
                for a, b in ((lo, hi), (datetime(2026, 5, 20, 2), datetime(2026, 5, 20, 4))):
                    d = DIMENSIONS[dim] if dim else None
                    q = KpiQuery(start=a, end=b, kpis=ALL_KPIS, grain=grain,
                                 by=[Dim("x", d.expr, d.level)] if d else [])
                    assert "FROM events" not in build(CLICKHOUSE, q, ch.aggregates)[0]
                    got = run(ch, q)
                    saved, ch.aggregates = ch.aggregates, frozenset()
                    try:
                        raw = run(ch, q)
                    finally:
                        ch.aggregates = saved
                    assert got == raw == run(duck, q) and got, (grain, dim, a)

    try:
        ingestion.ingest(str(src), duck, workers=1)
        ingestion.ingest(str(src), ch, workers=1)
        assert ch.aggregates == frozenset(aggregates.ALL_TABLES)
        check()
        for p in sorted((src / "sessions").rglob("*.jsonl"))[:5]:
            _grow(p, extra_hours=1.5)  # sessions that grow into a later hour
        # files rewritten in place: the folder fingerprints (both engines) see them on a
        # rescan
        ingestion.ingest(str(src), duck, workers=1, rescan=True)
        ingestion.ingest(str(src), ch, workers=1, rescan=True)
        assert ch.counts() == duck.counts()
        check()
    finally:
        duck.close()
        ch.close()
    ro = ClickHouseStore(f"chdb://{tmp_path / 'ch'}", read_only=True)
    try:
        assert ro.aggregates == frozenset(aggregates.ALL_TABLES)
    finally:
        ro.close()
