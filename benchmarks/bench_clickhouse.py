"""Benchmark: the ClickHouse engine (in-process chDB) beside DuckDB, in the same run.

    python benchmarks/bench_clickhouse.py [--source DIR] [--workdir /tmp/akch_bench]
        [--limit N] [--hours 48] [--json-out FILE]

``--source`` defaults to the 200,000-session dataset of ``bench_rollup.py``
(``/tmp/akbench/source-200000``); if there is none, generate one with
``agentkpi generate --out /tmp/akch --sessions 200000 --start 2026-05-20T00 --hours 48``.
The source is only read, never modified.

Steps (same process, same parsed data for both engines):

1. parse: every session file -> canonical Arrow batches of 1,000 files, in
   worker processes (the ingest's own parser; engine independent).
2. write: each engine gets a fresh store and every batch through
   ``store.write_batch(..., fresh=True)`` -> events/s of the store itself.
   End-to-end ingest throughput = events / (parse + write), as ``agentkpi
   ingest`` overlaps little on 2 cores.
3. rollup: ``rollups.rollup`` over the 48 hours (one KPI query, one CSV per
   hour), cold then warm; the CSV bytes of the two engines are compared.
4. incremental: one batch of 1,000 already-stored session files re-written with
   ``fresh=False, replace_sessions=True`` (what a re-upload of grown sessions
   costs: DuckDB DELETE + INSERT in a transaction; ClickHouse lightweight
   DELETE + insert), then counts are checked (nothing doubled); then a batch of
   1,000 brand-new sessions (``append_hour`` into WORKDIR), the hourly cron case.
5. ClickHouse replacement trade-off: the same events copied into a
   ``ReplacingMergeTree`` and the 48-hour KPI query run through ``FINAL``
   (the alternative design) vs the plain MergeTree the engine uses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from _machine import cpu_model

from agentkpi import ingestion, rollups, sources
from agentkpi.kpis import HOURLY_COLUMNS, KpiQuery
from agentkpi.kpis.sql import build
from agentkpi.store import DuckDBStore
from agentkpi.store.clickhouse import CLICKHOUSE, ClickHouseStore

START = datetime(2026, 5, 20)
DEFAULT_SOURCES = ("/tmp/akbench/source-200000", "/tmp/akch")


def machine() -> dict[str, Any]:
    cpu = cpu_model("")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import chdb
    import clickhouse_connect
    import duckdb

    return {"cpu": cpu, "nproc": os.cpu_count(), "ram_gb": round(mem, 1),
            "python": platform.python_version(), "duckdb": duckdb.__version__,
            "chdb": chdb.__version__, "clickhouse_connect": clickhouse_connect.__version__}


def parse_all(source: str, limit: int | None, workers: int) -> tuple[list[Any], float, str]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(source)
    src = sources.detect(fs, root)
    listing = src.list_files(fs, root)
    paths = sorted(listing if isinstance(listing, dict) else listing)
    if limit:
        paths = paths[:limit]
    todo = [(p, ingestion.fingerprint(listing[p]) if isinstance(listing, dict) else "")
            for p in paths]
    chunks = [todo[i:i + ingestion.CHUNK] for i in range(0, len(todo), ingestion.CHUNK)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        batches = list(pool.map(ingestion.parse_local_chunk, [src.NAME] * len(chunks), chunks))
    return batches, time.perf_counter() - t0, src.NAME


def write_all(store: Any, batches: list[Any]) -> float:
    t0 = time.perf_counter()
    for sess, evs, ledger, _q in batches:
        store.write_batch(sess, evs, ledger, replace_sessions=True, fresh=True)
    return time.perf_counter() - t0


def rollup(store: Any, target: Path, hours: int) -> float:
    t0 = time.perf_counter()
    rollups.rollup(str(target), store=store, start=START.strftime("%Y-%m-%dT%H"),
                    end=(START + timedelta(hours=hours)).strftime("%Y-%m-%dT%H"))
    return time.perf_counter() - t0


def csvs(target: Path) -> dict[str, bytes]:
    base = target / "hourly"
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*.csv"))}


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def final_tradeoff(ch: ClickHouseStore, hours: int) -> dict[str, float]:
    """48-hour KPI query on the plain MergeTree vs a ReplacingMergeTree read with FINAL."""
    c = ch.client
    c.command("DROP TABLE IF EXISTS events_rmt")
    c.command("CREATE TABLE events_rmt AS events ENGINE = ReplacingMergeTree "
              "PARTITION BY toYYYYMMDD(coalesce(ts, toDateTime64(0, 6, 'UTC'))) "
              "ORDER BY (session_id, file, seq) SETTINGS allow_nullable_key = 1")
    _, copy_s = timed(c.command, "INSERT INTO events_rmt SELECT * FROM events")
    q = KpiQuery(start=START, end=START + timedelta(hours=hours), kpis=list(HOURLY_COLUMNS))
    main, maps = build(CLICKHOUSE, q)
    out: dict[str, float] = {"rmt_copy_s": copy_s}
    for label, table in (("plain_mergetree", "events e"), ("rmt_final", "events_rmt AS e FINAL")):
        sqls = [s.replace("FROM events e", f"FROM {table}") for s in (main, *maps.values())]
        best = min(timed(lambda qs=sqls: [ch.fetch(s) for s in qs])[1] for _ in range(2))
        out[f"kpi_query_{label}_s"] = best
    c.command("DROP TABLE IF EXISTS events_rmt")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=None)
    ap.add_argument("--workdir", default="/tmp/akch_bench")
    ap.add_argument("--limit", type=int, default=None, help="only the first N files")
    ap.add_argument("--hours", type=int, default=48)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json-out", default=None)
    a = ap.parse_args()
    source = a.source or next((s for s in DEFAULT_SOURCES if Path(s, "sessions").is_dir()), None)
    if source is None:
        sys.exit("no dataset; run: agentkpi generate --out /tmp/akch --sessions 200000 "
                 "--start 2026-05-20T00 --hours 48")
    work = Path(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    res: dict[str, Any] = {"machine": machine(), "source": source, "limit": a.limit,
                           "command": " ".join([Path(sys.executable).name, *sys.argv])}

    print(f"parsing {source} ...", flush=True)
    batches, parse_s, fmt = parse_all(source, a.limit, a.workers)
    n_files = sum(len(b[2]) for b in batches)
    n_events = sum(b[1].num_rows for b in batches)
    n_sessions = sum(b[0].num_rows for b in batches)
    res.update(files=n_files, sessions=n_sessions, events=n_events, parse_s=parse_s,
               format=fmt)
    print(f"  {n_files} files, {n_events} events, parse {parse_s:.1f}s", flush=True)

    # the hourly cron case: 1,000 brand-new sessions (append_hour, in WORKDIR, not SOURCE)
    from agentkpi.generate import append_hour

    append_hour(work / "new", START + timedelta(hours=a.hours), 1000, seed=1)
    new_batch = ingestion.parse_local_chunk(fmt, [(str(p), "new") for p in
                                                  sorted((work / "new").rglob("*.jsonl"))])

    engines = {
        "duckdb": lambda: DuckDBStore(str(work / "duck.duckdb")),
        "clickhouse": lambda: ClickHouseStore(f"chdb://{work / 'chdb'}"),
    }
    for name, open_store in engines.items():
        r: dict[str, Any] = {}
        st = open_store()
        try:
            print(f"[{name}] write ...", flush=True)
            r["write_s"] = write_all(st, batches)
            r["write_events_per_s"] = n_events / r["write_s"]
            r["ingest_events_per_s"] = n_events / (parse_s + r["write_s"])
            r["counts"] = st.counts()
            print(f"[{name}] rollup ...", flush=True)
            r["rollup_cold_s"] = rollup(st, work / f"out_{name}", a.hours)
            r["rollup_warm_s"] = rollup(st, work / f"out_{name}_warm", a.hours)
            print(f"[{name}] incremental ...", flush=True)
            sess, evs, ledger, _q = batches[len(batches) // 2]
            _, r["reingest_1000_files_s"] = timed(partial(
                st.write_batch, sess, evs, ledger, replace_sessions=True, fresh=False))
            r["counts_after_reingest"] = st.counts()
            r["nothing_doubled"] = r["counts_after_reingest"] == r["counts"]
            sess, evs, ledger, _q = new_batch
            _, r["ingest_1000_new_sessions_s"] = timed(partial(
                st.write_batch, sess, evs, ledger, replace_sessions=True, fresh=False))
            if name == "clickhouse":
                print("[clickhouse] FINAL trade-off ...", flush=True)
                r.update(final_tradeoff(st, a.hours))
        finally:
            st.close()
        res[name] = r
        print(f"[{name}] {json.dumps(r, default=str)}", flush=True)
    a_csv, b_csv = csvs(work / "out_duckdb"), csvs(work / "out_clickhouse")
    res["warm_csv_bytes_identical"] = (csvs(work / "out_duckdb_warm")
                                       == csvs(work / "out_clickhouse_warm") == a_csv)
    res["hours_written"] = len(a_csv)
    res["csv_bytes_identical"] = a_csv == b_csv
    res["differing_hours"] = sorted(k for k in a_csv.keys() | b_csv.keys()
                                    if a_csv.get(k) != b_csv.get(k))
    print(json.dumps(res, indent=2, default=str))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
