"""A cold ingest loads in bulk (``Store.bulk_load``): on DuckDB its writes leave the
aggregate tables alone and they are built once at the end. The tables and KPIs equal those
of the same ingest written batch by batch (on ClickHouse, whose writes keep refreshing
them, too); a load that fails, or a process that dies inside it, leaves tables no reader
trusts, and the next writer builds them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentkpi import ingestion
from agentkpi.errors import StoreError
from agentkpi.generate import generate_sessions
from agentkpi.ingestion import ingest
from agentkpi.kpis import aggregates
from agentkpi.kpis.sql import KpiQuery, run
from agentkpi.queries import metric_names
from agentkpi.store import DuckDBStore
from agentkpi.store.base import Store
from agentkpi.store.clickhouse import ClickHouseStore

from .test_aggregates import _table_rows

START = datetime(2026, 5, 20, 20, tzinfo=UTC)
QUERY = KpiQuery(start=datetime(2026, 5, 20, 18), end=datetime(2026, 5, 21, 4),
                 kpis=metric_names(), grain="hour")


def _open(engine: str, where: Path) -> Store:
    # (one chDB data directory per process: two stores are two databases in it)
    return (DuckDBStore(where / "s.duckdb") if engine == "duckdb"
            else ClickHouseStore(f"chdb://{where.parent / 'ch'}?database={where.name}"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bulk") / "data"
    generate_sessions(root, 90, START, hours=6, seed=7, dirty=True)
    return root


@pytest.fixture
def small_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many store writes for a small dataset (a cold ingest writes 500k events at a time)."""
    monkeypatch.setattr(ingestion, "WRITE_EVENTS", 400)
    monkeypatch.setattr(ingestion, "CHUNK", 10)


def _tables(st: Store) -> dict[str, list[tuple[Any, ...]]]:
    return {t: _table_rows(st, f"SELECT * FROM {t}") for t in sorted(st.aggregates)}


def _ingest(engine: str, where: Path, data: Path, bulk: bool,
            monkeypatch: pytest.MonkeyPatch) -> tuple[Store, list[str]]:
    monkeypatch.setattr(ingestion, "BULK_FILES", 1 if bulk else 10**9)
    stages: list[str] = []
    st = _open(engine, where)
    ingest(str(data), st, workers=1, progress=lambda stage, done, total: stages.append(stage))
    return st, stages


@pytest.mark.parametrize("engine", ["duckdb", "clickhouse"])
@pytest.mark.usefixtures("small_writes")
def test_a_bulk_load_equals_the_same_ingest_written_batch_by_batch(
        engine: str, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    batched, stages_a = _ingest(engine, tmp_path / "a", data, False, monkeypatch)
    bulk, stages_b = _ingest(engine, tmp_path / "b", data, True, monkeypatch)
    try:
        assert stages_b.count("write") > 3  # several writes inside the one load
        assert "aggregates" in stages_b and "aggregates" not in stages_a
        if engine == "duckdb":  # the tables were built after the last write
            _, built = bulk.fetch("SELECT (SELECT min(built_at) FROM aggregate_tables) > "
                                  "(SELECT max(ingested_at) FROM ingested_files)")
            assert built[0][0] is True
        assert bulk.aggregates == batched.aggregates and aggregates.SESSION_TABLE in bulk.aggregates
        got, expected = _tables(bulk), _tables(batched)
        assert got == expected and all(got[t] for t in aggregates.TABLES)
        assert run(bulk, QUERY) == run(batched, QUERY)
        # an ingest into the loaded store is an ordinary one: no second build
        again = ingest(str(data), bulk, workers=1,
                       progress=lambda stage, *_: stages_b.append(f"again-{stage}"))
        assert again.files_read == 0 and "again-aggregates" not in stages_b
    finally:
        batched.close()
        bulk.close()


def _reference(data: Path, where: Path) -> list[dict[str, Any]]:
    with DuckDBStore(where / "ref.duckdb") as ref:
        ingest(str(data), ref, workers=1)
        return run(ref, QUERY)


def _assert_rebuilt_by_the_next_writer(path: Path, data: Path, expected: list[dict[str, Any]]
                                       ) -> None:
    with DuckDBStore(path, read_only=True) as ro:
        assert ro.counts()["events"] > 0
        assert ro.aggregates == frozenset()  # stale: the events are read
        partial = run(ro, QUERY)
    assert partial != expected  # (only the first writes landed)
    with DuckDBStore(path) as st:  # a writer's open builds them ...
        assert st.aggregates == frozenset(aggregates.ALL_TABLES)
        ingest(str(data), st, workers=1)  # ... and the next run reads the rest
        assert run(st, QUERY) == expected
        for table in aggregates.ALL_TABLES:
            _, kept = st.fetch(f"SELECT count(*) FROM {table}")
            sql = aggregates.table_sql(st.dialect, table)
            _, rebuilt = st.fetch(f"SELECT count(*) FROM ({sql})")
            assert kept == rebuilt, table


@pytest.mark.usefixtures("small_writes")
def test_a_load_that_fails_leaves_the_tables_to_the_next_writer(
        data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _reference(data, tmp_path)
    real = DuckDBStore.write_batch
    calls = [0]

    def write(st: DuckDBStore, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise StoreError("the disk is full (a write failing on purpose)")
        real(st, *args, **kwargs)

    monkeypatch.setattr(DuckDBStore, "write_batch", write)
    monkeypatch.setattr(ingestion, "BULK_FILES", 1)
    path = tmp_path / "s.duckdb"
    with DuckDBStore(path) as st, pytest.raises(StoreError, match="disk is full"):
        ingest(str(data), st, workers=1)
    monkeypatch.setattr(DuckDBStore, "write_batch", real)
    _assert_rebuilt_by_the_next_writer(path, data, expected)


def test_a_process_that_dies_inside_a_load_leaves_the_tables_to_the_next_writer(
        data: Path, tmp_path: Path) -> None:
    expected = _reference(data, tmp_path)
    path = tmp_path / "s.duckdb"
    # A real process, killed (os._exit: no cleanup, no atexit) after its second write.
    child = textwrap.dedent(f"""
        import os
        from agentkpi import ingestion
        from agentkpi.store import DuckDBStore
        ingestion.BULK_FILES, ingestion.WRITE_EVENTS, ingestion.CHUNK = 1, 400, 10
        real, calls = DuckDBStore.write_batch, [0]
        def write(st, *a, **k):
            real(st, *a, **k)
            calls[0] += 1
            if calls[0] == 2:
                os._exit(9)
        DuckDBStore.write_batch = write
        ingestion.ingest({str(data)!r}, DuckDBStore({str(path)!r}), workers=1)
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 9, done.stderr
    _assert_rebuilt_by_the_next_writer(path, data, expected)


def test_a_store_with_events_loads_batch_by_batch(data: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _reference(data, tmp_path)
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    later = copy / "sessions" / "2026-05-21"
    later.rename(tmp_path / "aside")
    monkeypatch.setattr(ingestion, "BULK_FILES", 1)
    stages: list[str] = []
    with DuckDBStore(tmp_path / "s.duckdb") as st:
        ingest(str(copy), st, workers=1, progress=lambda s, *_: stages.append(s))
        assert stages.count("aggregates") == 2  # empty store: a bulk load (start, end)
        (tmp_path / "aside").rename(later)
        stages.clear()
        got = ingest(str(copy), st, workers=1, progress=lambda s, *_: stages.append(s))
        assert got.files_read > 0 and "aggregates" not in stages
        assert st.aggregates == frozenset(aggregates.ALL_TABLES)
        assert run(st, QUERY) == expected
