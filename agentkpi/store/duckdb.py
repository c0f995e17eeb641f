"""The DuckDB engine: the canonical store in an embedded DuckDB file, and its SQL dialect.

One write path (:meth:`Store.write_batch`, one transaction per batch); readers
open the file read-only. Schema changes are recorded migrations in
:data:`MIGRATIONS`; ``schema_migrations`` records which ran, so an old store
opens with a new version.

Default location: ``$AGENTKPI_STORE`` or ``~/.local/share/agentkpi/agentkpi.duckdb``
(``$XDG_DATA_HOME`` respected); every command takes ``--store PATH``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from agentkpi import config
from agentkpi.errors import StoreError, StoreMissingError
from agentkpi.kpis import aggregates as agg
from agentkpi.model import (
    EVENT_COLUMNS_V1,
    EVENT_COLUMNS_V2,
    EVENT_COLUMNS_V3,
    EVENT_COLUMNS_V4,
    SESSION_COLUMNS,
    SESSION_COLUMNS_V1,
    SESSION_COLUMNS_V2,
)
from agentkpi.quality import AUDIT_COLUMNS
from agentkpi.store.base import (
    TOKENS_SQL,
    Fetched,
    ScanTable,
    SessionRecord,
    audit_values,
    scan_sql,
)

_T = TypeVar("_T")

# ----------------------------------------------------------------------------- dialect


class DuckDBDialect:
    """The :class:`agentkpi.store.base.Dialect` for DuckDB."""

    name = "duckdb"

    def count_if(self, where: str) -> str:
        return f"count(*) FILTER (WHERE {where})" if where else "count(*)"

    def sum_if(self, expr: str, where: str, order: str = "") -> str:
        inner = f"{expr} ORDER BY {order}" if order else expr
        return f"sum({inner}) FILTER (WHERE {where})" if where else f"sum({inner})"

    def min_if(self, expr: str, where: str) -> str:
        return f"min({expr}) FILTER (WHERE {where})" if where else f"min({expr})"

    def max_if(self, expr: str, where: str) -> str:
        return f"max({expr}) FILTER (WHERE {where})" if where else f"max({expr})"

    def count_distinct_if(self, expr: str, where: str) -> str:
        return (f"count(DISTINCT {expr}) FILTER (WHERE {where})" if where
                else f"count(DISTINCT {expr})")

    def distinct_list_if(self, expr: str, where: str) -> str:
        # list_distinct of a plain list, not list(DISTINCT): the same values (in no
        # order either way), ~16% less time for the hourly batch's aggregate tables, whose
        # distinct aggregates kept a hash set per group (BENCHMARKS.md §19).
        keep = f"{expr} IS NOT NULL AND ({where})" if where else f"{expr} IS NOT NULL"
        return f"list_distinct(list({expr}) FILTER (WHERE {keep}))"

    def count_distinct_lists(self, expr: str) -> str:
        return f"len(list_distinct(flatten(list({expr}))))"

    def list_of(self, expr: str) -> str:
        # Every non-NULL value of the group, as ClickHouse's groupArray.
        return f"list({expr}) FILTER (WHERE {expr} IS NOT NULL)"

    def quantile_if(self, expr: str, p: float, where: str) -> str:
        # The seed's (numpy's default) linear interpolation, spelled out so the
        # result is bit-identical to it: lo + (hi - lo) * frac. DuckDB's own
        # quantile_cont computes lo*(1-frac) + hi*frac, which can differ in the
        # last bit and so flip a value rounded at a tie.
        agg = f"list(CAST({expr} AS DOUBLE))"
        agg = f"{agg} FILTER (WHERE {where})" if where else agg
        lo = "a[CAST(floor(rn) AS BIGINT) + 1]"
        hi = "a[CAST(ceil(rn) AS BIGINT) + 1]"
        # CAST: a bare 0.95 would be an exact DECIMAL in DuckDB; the seed multiplies floats.
        interp = (f"list_transform([(len(a) - 1) * CAST({p!r} AS DOUBLE)], lambda rn: "
                  f"CASE WHEN rn = floor(rn) THEN {lo} "
                  f"ELSE {lo} + ({hi} - {lo}) * (rn - floor(rn)) END)[1]")
        return (f"list_transform([list_sort({agg})], lambda a: CASE WHEN len(a) = 0 THEN NULL "
                f"ELSE {interp} END)[1]")

    def seconds_between(self, later: str, earlier: str) -> str:
        return f"((epoch_us({later}) - epoch_us({earlier})) / 1000000.0)"

    def bucket(self, grain: str | None, col: str, tz: str, week_start: int) -> str:
        if grain is None:
            return "NULL::TIMESTAMP"
        local = (col if tz == "UTC"
                 else f"timezone({self.str_literal(tz)}, {col} AT TIME ZONE 'UTC')")
        if grain == "week" and week_start != 0:
            # date_trunc('week') starts on Monday (0); shift for another start day.
            shift = f"INTERVAL {(7 - week_start) % 7} DAY"
            return f"(date_trunc('week', {local} + {shift}) - {shift})"
        return f"date_trunc('{grain}', {local})"

    def str_literal(self, value: str) -> str:
        # DuckDB string literals are standard SQL: only the quote is special.
        return "'" + value.replace("'", "''") + "'"

    def ts_literal(self, dt: datetime) -> str:
        # isoformat, not strftime: %Y writes year 1 as "1"
        return f"TIMESTAMP '{dt.replace(tzinfo=None).isoformat(' ', 'microseconds')}'"

    def json_field(self, key: str) -> str:
        return f"json_extract_string(data, {self.str_literal('$.' + key)})"


DUCKDB = DuckDBDialect()

# ----------------------------------------------------------------------------- schema


def _columns_sql(columns: Sequence[tuple[str, Any, str, str]]) -> str:
    return ",\n    ".join(f"{name} {sql}" for name, _, sql, _ in columns)


#: (version, description, statements). Append only; never edit a released one.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "canonical sessions/events tables and the ingest ledger", (
        f"CREATE TABLE sessions (\n    {_columns_sql(SESSION_COLUMNS_V1)},\n"
        "    PRIMARY KEY (session_id))",
        f"CREATE TABLE events (\n    {_columns_sql(EVENT_COLUMNS_V1)})",
        "CREATE TABLE ingested_files (path VARCHAR PRIMARY KEY, fingerprint VARCHAR, "
        "source VARCHAR, status VARCHAR, reason VARCHAR, n_sessions INTEGER, "
        "n_events INTEGER, ingested_at TIMESTAMP)",
    )),
    (2, "real-world transcripts: event keys, tool-call ids, MCP server, subagent parent, "
        "reasoning and 1-hour cache tokens, cost source and price version, session machine, "
        "import audit", (
        *(f"ALTER TABLE events ADD COLUMN IF NOT EXISTS {name} {sql}"
          for name, _, sql, _ in EVENT_COLUMNS_V2),
        *(f"ALTER TABLE sessions ADD COLUMN IF NOT EXISTS {name} {sql}"
          for name, _, sql, _ in SESSION_COLUMNS_V2),
        f"CREATE TABLE IF NOT EXISTS import_audit ({_columns_sql(AUDIT_COLUMNS)})",
    )),
    (3, "the model response that requested a tool call (response_id)", tuple(
        f"ALTER TABLE events ADD COLUMN IF NOT EXISTS {name} {sql}"
        for name, _, sql, _ in EVENT_COLUMNS_V3)),
    (4, "sessions without a primary-key index (random session ids made every commit "
        "rewrite the whole index: seconds per hourly run); write_batch keeps one row per id", (
        "CREATE TABLE _sessions_v4 (\n    "
        + _columns_sql(SESSION_COLUMNS_V1 + SESSION_COLUMNS_V2).replace(
            "session_id VARCHAR", "session_id VARCHAR NOT NULL", 1) + ")",
        "INSERT INTO _sessions_v4 SELECT "
        + ", ".join(n for n, *_ in SESSION_COLUMNS_V1 + SESSION_COLUMNS_V2) + " FROM sessions",
        "DROP TABLE sessions",
        "ALTER TABLE _sessions_v4 RENAME TO sessions",
    )),
    (5, "tokens reported without the prompt/completion split (seed-003 token_count)", tuple(
        f"ALTER TABLE events ADD COLUMN IF NOT EXISTS {name} {sql}"
        for name, _, sql, _ in EVENT_COLUMNS_V4)),
    (6, "the ingest ledger without a primary-key index (every commit rewrote the index "
        "over all paths: 0.27 s of an hourly run at 237k files); write_batch keeps one row "
        "per path", (
        "CREATE TABLE _ingested_files_v6 (path VARCHAR NOT NULL, fingerprint VARCHAR, "
        "source VARCHAR, status VARCHAR, reason VARCHAR, n_sessions INTEGER, "
        "n_events INTEGER, ingested_at TIMESTAMP)",
        "INSERT INTO _ingested_files_v6 SELECT * FROM ingested_files",
        "DROP TABLE ingested_files",
        "ALTER TABLE _ingested_files_v6 RENAME TO ingested_files",
    )),
)

SCHEMA_VERSION = MIGRATIONS[-1][0]

def default_path() -> str:
    return str(config.get("store"))


class DuckDBStore:
    """The canonical store in a DuckDB file (a :class:`agentkpi.store.base.Store`).

    >>> store = DuckDBStore(":memory:")
    >>> store.schema_version()
    1
    """

    engine = "duckdb"
    dialect = DUCKDB

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 read_only: bool = False, lock_timeout: float | None = None) -> None:
        self.path = str(path) if path is not None else default_path()
        self.read_only = read_only
        #: Rows removed because their event_key was already stored (for the import audit).
        self.merged_by_key = 0
        #: The last answer of :meth:`unrecorded_entries` (see :meth:`save_scan_state`).
        self._asked: _Asked | None = None
        #: Paths :meth:`changed_files` found absent from the ledger; :meth:`write_batch`
        #: of only such paths need not look them up again (this connection is the
        #: store's only writer, and ``write_batch`` forgets the paths it writes).
        self._unledgered: set[str] = set()
        #: Inside :meth:`query_memory`, until a query exceeds its bound.
        self._bounded_queries = False
        #: A writer of a file attaches it as the catalog ``_WRITER_CATALOG`` (:meth:`_connect`).
        self._attached = not read_only and self.path != ":memory:"
        #: The row group size the writer's connection attached the file with (None:
        #: DuckDB's default), see :meth:`_write_row_groups`.
        self._row_group_rows: int | None = None
        if self._attached:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if read_only and self.path != ":memory:" and not Path(self.path).exists():
            raise StoreMissingError(f"no store at {self.path}; run `agentkpi ingest` or "
                             "`agentkpi rollup` first, or pass --store PATH")
        # Writers wait longer for a lock than readers (a dashboard answers "stale").
        self.con = self._connect(lock_timeout if lock_timeout is not None
                                 else (1.5 if read_only else 10.0))
        self.con.execute("SET TimeZone = 'UTC'")
        # DuckDB draws a progress bar on stdout for any statement over 2 s, terminal or not:
        # into a cron job's log, or into the JSON/CSV a command writes to stdout.
        self.con.execute("SET enable_progress_bar = false")
        if not read_only:
            self.migrate()
            # Derived state, rebuilt from the tables above when missing (not migrations):
            # the aggregates' signatures and the change-detection state of each source.
            self.con.execute("CREATE TABLE IF NOT EXISTS aggregate_tables (name VARCHAR "
                             "PRIMARY KEY, signature VARCHAR, built_at TIMESTAMP)")
            self.con.execute("CREATE TABLE IF NOT EXISTS source_scans (root VARCHAR PRIMARY "
                             "KEY, full_scan_at TIMESTAMP, folders VARCHAR)")
            self.con.execute("CREATE TABLE IF NOT EXISTS source_entries (root VARCHAR, "
                             "folder VARCHAR, path VARCHAR, ino UBIGINT)")
            self.build_aggregates()
        self.aggregates = self._current_aggregates()

    def _connect(self, lock_timeout: float) -> duckdb.DuckDBPyConnection:
        if not self._attached:
            return self._retrying(lambda: duckdb.connect(self.path, read_only=self.read_only),
                                  lock_timeout)
        # A writer attaches the file to an in-memory database named after it (writers
        # opened on one file in one process share it, as ``duckdb.connect(path)`` would),
        # so that :meth:`defer_compaction` can attach it again with other row groups.
        key = hashlib.sha1(os.path.realpath(self.path).encode()).hexdigest()[:16]
        con = duckdb.connect(f":memory:agentkpi-{key}")
        try:
            self._retrying(lambda: self._attach(con, None), lock_timeout)
        except BaseException:
            con.close()
            raise
        return con

    def _attach(self, con: duckdb.DuckDBPyConnection, rows: int | None) -> None:
        """Attach the store's file to ``con`` as its default database, written in row
        groups of ``rows`` (None: DuckDB's default size)."""
        size = f" (ROW_GROUP_SIZE {rows})" if rows else ""
        con.execute(f"ATTACH IF NOT EXISTS {DUCKDB.str_literal(self.path)} AS "
                    f"{_WRITER_CATALOG}{size}")
        con.execute(f"USE {_WRITER_CATALOG}")
        self._row_group_rows = rows

    def _retrying(self, attempt: Callable[[], _T], lock_timeout: float) -> _T:
        """``attempt()`` (opening the file), again while another process holds its lock."""
        # DuckDB lets one process write a file and no other process open it
        # meanwhile (even read-only). Short-lived readers (the dashboard opens the
        # store per request) release it quickly, so wait a little before failing.
        deadline = time.monotonic() + lock_timeout
        delay = 0.05
        new = self.path != ":memory:" and not os.path.exists(self.path)
        while True:
            try:
                return attempt()
            except duckdb.IOException as exc:
                locked = "lock" in str(exc).lower()
                if not locked:  # disk full, read-only, a directory, not a DuckDB file
                    if new:  # a store that could not be created is not left half-written
                        for leftover in (self.path, self.path + ".wal"):
                            with suppress(OSError):
                                os.remove(leftover)
                    raise StoreError(f"cannot open store {self.path}: {exc}; check the path, "
                                     "its permissions and the free space") from None
                if time.monotonic() >= deadline:
                    raise StoreError(f"cannot open store {self.path}: {exc}; another process "
                                     "is using it (stop it, or pass another --store PATH)"
                                     ) from None
            except duckdb.Error as exc:
                raise StoreError(f"cannot open store {self.path}: {exc}") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    @contextmanager
    def _transaction(self, failed: str, out_of_memory: str = ""
                     ) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction around the block: committed when it ends; on a DuckDB error
        rolled back and raised as a :class:`StoreError` saying what ``failed`` and why
        (``out_of_memory`` added when DuckDB ran out of memory: what bounds it)."""
        con = self.con
        con.execute("BEGIN")
        try:
            yield con
            con.execute("COMMIT")
        except duckdb.Error as exc:
            # A COMMIT that failed (a full disk) has already ended the transaction.
            with suppress(duckdb.TransactionException):
                con.execute("ROLLBACK")
            hint = out_of_memory if isinstance(exc, duckdb.OutOfMemoryException) else ""
            raise StoreError(f"{failed}{hint}: {exc}") from None

    # ---------------------------------------------------------------- schema
    def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied."""
        con = self.con
        con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                    "description VARCHAR, applied_at TIMESTAMP)")
        done = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
        applied = []
        for version, description, statements in MIGRATIONS:
            if version in done:
                continue
            with self._transaction(f"migration {version} ({description}) failed on "
                                   f"{self.path}"):
                for stmt in statements:
                    con.execute(stmt)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                            [version, description, _now()])
            applied.append(version)
        return applied

    # ---------------------------------------------------------------- aggregates
    def build_aggregates(self, force: bool = False) -> list[str]:
        """(Re)build the hourly aggregate tables whose SQL changed; returns their names.

        The tables are kept up to date by :meth:`write_batch`; a full build from the
        events happens only for a new store, an old store, a changed catalogue or at the
        end of a bulk load (:meth:`bulk_load`).
        """
        con = self.con
        sig = agg.signature(DUCKDB)
        have = dict(con.execute("SELECT name, signature FROM aggregate_tables").fetchall())
        todo = agg.with_dependents([t for t in agg.ALL_TABLES
                                    if force or have.get(t) != sig])
        if not todo:
            return []
        # Unbounded, DuckDB held 4.1 GB at 1M sessions (hash tables and cached event
        # blocks); bounded, the GROUP BYs spill to its temp directory (<store>.tmp,
        # removed on close). Setting ``aggregate_memory``; BENCHMARKS section 17.
        bound = str(config.get("aggregate_memory"))
        failed = f"building the aggregate tables of {self.path} failed"
        hint = (f" (its memory bound: AGENTKPI_AGGREGATE_MEMORY={bound}, raise it if that is "
                "too little)")
        try:
            with (self._limits(memory_limit=bound),
                  self._transaction(failed, out_of_memory=hint)):
                for table in todo:
                    con.execute(f"CREATE OR REPLACE TABLE {table} AS "
                                f"{agg.table_sql(DUCKDB, table)}")
                    con.execute("INSERT OR REPLACE INTO aggregate_tables VALUES (?, ?, ?)",
                                [table, sig, _now()])
        except duckdb.Error as exc:  # the limit itself cannot be set (below what is in use)
            raise StoreError(f"{failed}{hint}: {exc}") from None
        return todo

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """See :meth:`agentkpi.store.base.Store.bulk_load`: the signatures go first, in a
        transaction of their own, so that a process that dies inside the block leaves
        tables no reader trusts and the next writer rebuilds (its open does).

        (The block's commits still merge row groups as they go: leaving every merge to
        the build's checkpoint saved ~1 s of a cold ingest at 200k sessions but raised
        its peak from 1.3 to 2.1 GB; BENCHMARKS.md §23.)"""
        if self.read_only or not self.aggregates:
            yield
            return
        with self._transaction(f"writing to store {self.path} failed"):
            self.con.execute("DELETE FROM aggregate_tables")
        self.aggregates = frozenset()
        yield  # an error leaves them stale: built by the next writer's open
        self.build_aggregates()
        self.aggregates = self._current_aggregates()

    # ---------------------------------------------------------------- change detection
    def scan_state(self, root: str) -> tuple[datetime | None, dict[str, str]]:
        """When ``root`` was last listed whole, and its folder fingerprints since then."""
        rows = self.con.execute("SELECT full_scan_at, folders FROM source_scans WHERE root = ?",
                                [root]).fetchall()
        if not rows:
            return None, {}
        return rows[0][0], json.loads(rows[0][1] or "{}")

    def save_scan_state(self, root: str, folders: dict[str, str], full: bool,
                        entries: dict[str, list[Any]] | None = None) -> None:
        """Record the folder fingerprints of ``root`` and the ``entries`` (``folder``,
        ``path``, ``ino`` lists) of the folders read: those folders' records are
        replaced by them (all of the root's after a full listing). Call it only once
        every listed file is in the ledger: an entry recorded is not stat-ed again."""
        con = self.con
        asked, self._asked = self._asked, None
        with self._transaction(f"recording the scan of {root} in {self.path} failed"):
            con.execute(
                "INSERT INTO source_scans VALUES (?, ?, ?) ON CONFLICT (root) DO UPDATE SET "
                "full_scan_at = coalesce(excluded.full_scan_at, source_scans.full_scan_at), "
                "folders = excluded.folders",
                [root, _now() if full else None, json.dumps(folders, sort_keys=True)])
            if full:
                con.execute("DELETE FROM source_entries WHERE root = ?", [root])
            if entries is None or not entries["path"]:
                return
            if not full and asked is not None and asked.answers(root, entries):
                self._record_new_entries(root, entries, asked.unrecorded)
                return
            con.register("_entries", pa.table({
                "folder": pa.array(entries["folder"], pa.string()),
                "path": pa.array(entries["path"], pa.string()),
                "ino": pa.array(entries["ino"], pa.uint64())}))
            try:
                if not full:  # entries gone or replaced (same path, other inode)
                    con.execute(
                        "DELETE FROM source_entries r WHERE r.root = ? AND r.folder IN "
                        "(SELECT DISTINCT folder FROM _entries) AND NOT EXISTS (SELECT 1 "
                        "FROM _entries l WHERE l.path = r.path AND l.ino = r.ino)", [root])
                con.execute(
                    "INSERT INTO source_entries SELECT ?, folder, path, ino FROM _entries l "
                    "WHERE NOT EXISTS (SELECT 1 FROM source_entries r WHERE r.root = ? AND "
                    "r.path = l.path AND r.ino = l.ino)", [root, root])
            finally:
                con.unregister("_entries")

    def _record_new_entries(self, root: str, entries: dict[str, list[Any]],
                            unrecorded: frozenset[str]) -> None:
        """:meth:`save_scan_state` of a folder listing :meth:`unrecorded_entries` was asked
        about, in the open transaction, without joining the whole listing again.

        The records are unchanged since that answer (this store is the only writer and
        only ``save_scan_state`` writes them), so the listing's entries not recorded are
        exactly its ``unrecorded`` paths: only they are inserted. Nothing needs deleting
        when every record of the listed folders matches a listed entry, i.e. when the
        folders hold as many records as the listing has recorded entries (records are
        unique per path); else (a file removed, or replaced by one on another inode) the
        records the listing does not have are deleted as the full statement does.
        """
        con = self.con
        folder, path, ino = entries["folder"], entries["path"], entries["ino"]
        new = [i for i, p in enumerate(path) if p in unrecorded]
        names = sorted(set(folder))
        (held,), = con.execute("SELECT count(*) FROM source_entries WHERE root = ? AND "
                               "list_contains(?, folder)", [root, names]).fetchall()
        con.register("_entries", pa.table({
            "folder": pa.array([folder[i] for i in new], pa.string()),
            "path": pa.array([path[i] for i in new], pa.string()),
            "ino": pa.array([ino[i] for i in new], pa.uint64())}))
        try:
            if held != len(path) - len(new):
                con.register("_listed", pa.table({"path": pa.array(path, pa.string()),
                                                  "ino": pa.array(ino, pa.uint64())}))
                try:
                    con.execute(
                        "DELETE FROM source_entries r WHERE r.root = ? AND "
                        "list_contains(?, r.folder) AND NOT EXISTS (SELECT 1 FROM _listed l "
                        "WHERE l.path = r.path AND l.ino = r.ino)", [root, names])
                finally:
                    con.unregister("_listed")
            con.execute("INSERT INTO source_entries SELECT ?, folder, path, ino FROM _entries",
                        [root])
        finally:
            con.unregister("_entries")

    def unrecorded_entries(self, root: str, paths: list[str], inos: list[int],
                           folders: list[str] | None = None) -> list[str]:
        """The paths among ``paths``/``inos`` not recorded (by :meth:`save_scan_state`)
        with that inode: new names, and names replaced by another file. ``folders``: the
        folders these entries were read from (a path is recorded with the folder it was
        listed in), so only their records are compared (a day folder's, not all history's).

        The answer is kept (:class:`_Asked`): :meth:`save_scan_state` of these very
        entries then inserts only these paths instead of joining the listing again."""
        self._asked = None
        self.con.register("_seen", pa.table({"path": pa.array(paths, pa.string()),
                                             "ino": pa.array(inos, pa.uint64())}))
        within = "" if folders is None else " AND list_contains(?, r.folder)"
        try:
            rows = self.con.execute(
                "SELECT path FROM _seen s WHERE NOT EXISTS (SELECT 1 FROM source_entries r "
                f"WHERE r.root = ?{within} AND r.path = s.path AND r.ino = s.ino)",
                [root] if folders is None else [root, sorted(set(folders))]).fetchall()
        finally:
            self.con.unregister("_seen")
        found = [p for (p,) in rows]
        self._asked = _Asked(root, paths, inos, len(paths), frozenset(found))
        return found

    def live_files(self, hours: float) -> list[str]:
        """Files of the sessions with events in the last ``hours`` before the newest one."""
        if "agg_hourly" not in self.aggregates:
            return [r[0] for r in self.con.execute(
                "SELECT DISTINCT s.source_path FROM sessions s JOIN (SELECT DISTINCT session_id "
                "FROM events WHERE ts >= (SELECT max(ts) FROM events) - to_microseconds(?)) "
                "USING (session_id)", [int(hours * 3.6e9)]).fetchall()]
        return [r[0] for r in self.con.execute(
            "SELECT DISTINCT s.source_path FROM sessions s JOIN (SELECT DISTINCT session_id "
            "FROM agg_hourly WHERE _hour >= (SELECT max(_hour) FROM agg_hourly) "
            "- to_microseconds(?)) USING (session_id)", [int(hours * 3.6e9)]).fetchall()]

    def _current_aggregates(self) -> frozenset[str]:
        """The aggregate tables that match this version's KPI SQL (others are not read)."""
        try:
            rows = self.con.execute("SELECT name, signature FROM aggregate_tables").fetchall()
        except duckdb.CatalogException:
            return frozenset()  # a store written before aggregates existed: raw path
        sig = agg.signature(DUCKDB)
        return agg.usable(frozenset(n for n, s in rows if s == sig and n in agg.ALL_TABLES))

    def _refresh_aggregates(self, from_batch: bool) -> None:
        """Recompute the aggregate rows of the sessions in ``_agg_touched``.

        ``from_batch``: none of them had rows before, so they come from the incoming
        events alone (cold ingest); otherwise from every stored event of the sessions.
        """
        con = self.con
        touched = ("EXISTS (SELECT 1 FROM _agg_touched t WHERE t.session_id IS NOT DISTINCT "
                   "FROM {col})")
        combined = {agg.combined_from(t) for t in agg.SESSION_TABLES if t in self.aggregates}
        batch_rows: set[str] = set()  # hourly tables whose batch rows are in _batch_<table>
        for table in agg.ALL_TABLES:  # the hourly tables before the session tables read them
            if table not in self.aggregates:
                continue
            if table in agg.SESSION_TABLES:
                hourly = agg.combined_from(table)
                if hourly in batch_rows:
                    # The touched sessions' hourly rows are the batch's alone: combine
                    # those, not a scan of the whole (history-sized) hourly table.
                    sql = agg.table_sql(DUCKDB, table, hourly=f"_batch_{hourly}")
                else:
                    if not from_batch:
                        con.execute(f"DELETE FROM {table} WHERE "
                                    + touched.format(col=f"{table}.session_id"))
                    sql = agg.table_sql(DUCKDB, table,
                                        touched.format(col=f"{hourly}.session_id"))
            elif from_batch and table in combined:
                con.execute(f"CREATE OR REPLACE TEMP TABLE _batch_{table} AS "
                            + agg.select_sql(DUCKDB, table, "_in_events"))
                batch_rows.add(table)
                sql = f"SELECT * FROM _batch_{table}"
            elif from_batch:
                sql = agg.table_sql(DUCKDB, table, source="_in_events")
            else:
                con.execute(f"DELETE FROM {table} WHERE "
                            + touched.format(col=f"{table}.session_id"))
                sql = agg.table_sql(DUCKDB, table, touched.format(col="e.session_id"),
                                    source="events e")
            con.execute(f"INSERT INTO {table} {sql}")
        for table in batch_rows:
            con.execute(f"DROP TABLE _batch_{table}")

    def schema_version(self) -> int:
        row = self.con.execute("SELECT max(version) FROM schema_migrations").fetchall()[0]
        return int(row[0] or 0)

    # ---------------------------------------------------------------- ingest ledger
    def fingerprints(self, prefix: str = "") -> dict[str, str]:
        rows = self.con.execute("SELECT path, fingerprint FROM ingested_files "
                                "WHERE starts_with(path, ?)", [prefix]).fetchall()
        return dict(rows)

    def skipped_files(self) -> dict[str, str]:
        """``{path: reason}`` of every file the ledger holds as skipped (still unread)."""
        rows = self.con.execute("SELECT path, coalesce(reason, '') FROM ingested_files "
                                "WHERE status = 'skipped'").fetchall()
        return dict(rows)

    def changed_files(self, listing: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The (path, fingerprint) pairs that are new or changed since their last ingest.

        Done as one anti-join in DuckDB: hundreds of thousands of files in a
        fraction of a second. An empty fingerprint (unknown) always counts as changed.
        """
        if not listing:
            return []
        paths, prints = zip(*listing, strict=True)
        self.con.register("_listing", pa.table({"path": pa.array(paths, pa.string()),
                                                "fingerprint": pa.array(prints, pa.string())}))
        try:
            rows = self.con.execute(
                "SELECT l.path, l.fingerprint, f.path IS NULL FROM _listing l LEFT JOIN "
                "ingested_files f ON f.path = l.path WHERE l.fingerprint = '' OR "
                "f.fingerprint IS NULL OR f.fingerprint <> l.fingerprint").fetchall()
        finally:
            self.con.unregister("_listing")
        self._unledgered = {p for p, _, absent in rows if absent}
        return [(p, fp) for p, fp, _ in rows]

    def write_batch(self, sessions: pa.Table, events: pa.Table, files: list[dict[str, Any]],
                    *, replace_sessions: bool, fresh: bool = False) -> None:
        """Replace what ``files`` produced before with ``sessions``/``events``, atomically.

        ``files``: ledger rows (path, fingerprint, source, status, reason, n_sessions,
        n_events). Events previously read from those paths are deleted; with
        ``replace_sessions`` (a file carries whole sessions) every event of the
        incoming sessions is deleted too, so a grown session is never doubled.
        ``fresh`` skips the deletes (nothing can be there yet: cold ingest). A ledger
        row may name paths it ``supersedes`` (a log segment that was compressed under a
        new name): their rows and ledger entries go, so nothing is counted twice.
        """
        con = self.con
        superseded = sorted({p for f in files for p in f.get("supersedes") or ()})

        ledger = pa.table({
            "path": [f["path"] for f in files],
            "fingerprint": [f["fingerprint"] for f in files],
            "source": [f["source"] for f in files],
            "status": [f["status"] for f in files],
            "reason": [f.get("reason") for f in files],
            "n_sessions": pa.array([f.get("n_sessions", 0) for f in files], pa.int32()),
            "n_events": pa.array([f.get("n_events", 0) for f in files], pa.int32()),
            "ingested_at": pa.array([_now()] * len(files), pa.timestamp("us")),
        })
        con.register("_in_sessions", sessions)
        con.register("_in_events", events)
        con.register("_in_files", ledger)
        try:
            with self._transaction(f"writing to store {self.path} failed"):
                # Sessions whose aggregate rows change: those of the incoming events and
                # those of every event deleted below.
                # (and those whose session row changes: the per-model and per-agent session
                # tables hold the session's model and agent where an event has none).
                con.execute("CREATE OR REPLACE TEMP TABLE _agg_touched AS "
                            "SELECT session_id FROM _in_events UNION "
                            "SELECT session_id FROM _in_sessions")
                replaced = False
                # Deleting scans the events table, so only when something is there to
                # replace: a file read before, or a session already stored. ``fresh``
                # (cold ingest) skips the file delete; the session check is one small join
                # and also catches a session filed twice (two folders) across batches.
                # Files read before are asked on a ``fresh`` store too: the ledger may
                # hold some (skipped or empty files) when no event is stored.
                unledgered = self._unledgered
                seen = 0 if all(f["path"] in unledgered for f in files) else con.execute(
                    "SELECT count(*) FROM _in_files JOIN ingested_files USING (path)"
                ).fetchall()[0][0]
                unledgered.difference_update(f["path"] for f in files)
                if seen and not fresh:
                    replaced = True
                    con.execute("INSERT INTO _agg_touched SELECT DISTINCT session_id FROM "
                                "events WHERE file IN (SELECT path FROM _in_files)")
                    con.execute("DELETE FROM events WHERE file IN (SELECT path FROM _in_files)")
                known: int | None = None  # incoming sessions already stored
                if replace_sessions and sessions.num_rows:
                    known = con.execute("SELECT count(*) FROM (SELECT DISTINCT session_id FROM "
                                        "_in_sessions) JOIN sessions USING (session_id)"
                                        ).fetchall()[0][0]
                    if known:
                        replaced = True
                        con.execute("INSERT INTO _agg_touched SELECT DISTINCT session_id FROM "
                                    "_in_sessions")
                        con.execute("DELETE FROM events WHERE session_id IN (SELECT session_id "
                                    "FROM _in_sessions)")
                if superseded:
                    replaced = True
                    con.execute("INSERT INTO _agg_touched SELECT DISTINCT session_id FROM events "
                                "WHERE list_contains(?, file)", [superseded])
                    con.execute("DELETE FROM events WHERE list_contains(?, file)", [superseded])
                    con.execute("DELETE FROM ingested_files WHERE list_contains(?, path)",
                                [superseded])
                if events.num_rows:
                    # In any order, so that each thread writes row groups of its own
                    # (reset below, after the transaction); every query that needs an
                    # order of events names it.
                    con.execute("SET preserve_insertion_order = false")
                    con.execute("INSERT INTO events BY NAME SELECT * FROM _in_events")
                    if self.aggregates and "event_key" in events.column_names and \
                            events.column("event_key").null_count < events.num_rows:
                        # one row per key may drop rows of other sessions, or incoming ones
                        replaced = True
                        con.execute("INSERT INTO _agg_touched SELECT DISTINCT session_id FROM "
                                    "events WHERE event_key IN (SELECT event_key FROM _in_events "
                                    "WHERE event_key IS NOT NULL)")
                    self.merged_by_key += self._resolve_event_keys(events)
                if sessions.num_rows:
                    self._upsert_sessions(known)
                if self.aggregates and (events.num_rows or sessions.num_rows or replaced):
                    # From the batch alone when none of its sessions has rows yet.
                    old = replaced or self._have_aggregate_rows()
                    self._refresh_aggregates(from_batch=not old)
                # One ledger row per path, without a primary-key index (migration 6): the
                # rows of paths read before go first. A batch lists each path once.
                if seen:
                    con.execute("DELETE FROM ingested_files WHERE path IN "
                                "(SELECT path FROM _in_files)")
                con.execute("INSERT INTO ingested_files SELECT * FROM _in_files")
        finally:
            with suppress(duckdb.Error):
                con.execute("RESET preserve_insertion_order")
            for name in ("_in_sessions", "_in_events", "_in_files"):
                con.unregister(name)

    def _resolve_event_keys(self, events: pa.Table) -> int:
        """Keep one row per ``event_key`` among the incoming keys; returns rows removed.

        The same event read from two files (a sidechain replay, a resumed copy, two
        synced copies of a tree on two machines) is one event. The row kept is the
        one with the most tokens (a later streaming snapshot), then one of the main
        agent (``parent_id`` NULL) over a replay inside a subagent, then the first by
        (file, seq): deterministic whatever the order files arrive in.
        """
        if "event_key" not in events.column_names or events.column("event_key").null_count \
                == events.num_rows:
            return 0
        con = self.con
        con.execute("CREATE OR REPLACE TEMP TABLE _keys AS SELECT DISTINCT event_key FROM "
                    "_in_events WHERE event_key IS NOT NULL")
        try:
            removed = con.execute(f"""
                DELETE FROM events WHERE rowid IN (
                    SELECT rowid FROM (
                        SELECT rowid, row_number() OVER (PARTITION BY event_key ORDER BY
                            {TOKENS_SQL} DESC, parent_id IS NULL DESC, file, seq) AS rank
                        FROM events WHERE event_key IN (SELECT event_key FROM _keys))
                    WHERE rank > 1)""").fetchall()
        finally:
            con.execute("DROP TABLE IF EXISTS _keys")
        return int(removed[0][0]) if removed else 0

    def rewrite_llm_calls(self, start: datetime, end: datetime,
                          transform: Callable[[pa.Table], pa.Table]) -> tuple[int, int]:
        """Replace the llm_calls in ``[start, end)`` without a source cost by ``transform(rows)``.

        ``transform`` gets and returns an Arrow table of those event rows (same
        columns). One transaction. Returns (rows read, rows whose cost changed).
        """
        con = self.con
        pred = ("event_type = 'llm_call' AND ts >= ? AND ts < ? AND "
                "(cost_source = 'priced' OR cost_usd IS NULL)")
        with self._transaction(f"repricing in store {self.path} failed"):
            old = con.sql(f"SELECT * FROM events WHERE {pred}", params=[start, end]
                          ).to_arrow_table()
            new = transform(old)
            changed = sum(a != b for a, b in zip(old.column("cost_usd").to_pylist(),
                                                 new.column("cost_usd").to_pylist(),
                                                 strict=True))
            if changed:
                con.execute(f"DELETE FROM events WHERE {pred}", [start, end])
                con.register("_repriced", new)
                con.execute("INSERT INTO events BY NAME SELECT * FROM _repriced")
                if self.aggregates:
                    con.execute("CREATE OR REPLACE TEMP TABLE _agg_touched AS "
                                "SELECT DISTINCT session_id FROM _repriced")
                    self._refresh_aggregates(from_batch=False)
                con.unregister("_repriced")
        return old.num_rows, int(changed)

    def record_audit(self, rows: list[dict[str, Any]]) -> None:
        """Append import-audit rows (``AUDIT_COLUMNS``) of one ingest run."""
        if not rows:
            return
        names = [n for n, *_ in AUDIT_COLUMNS]
        # One transaction: executemany alone commits every row (a WAL write each).
        with self._transaction(f"recording the import audit in store {self.path} failed"):
            self.con.executemany(
                f"INSERT INTO import_audit ({', '.join(names)}) VALUES "
                f"({', '.join('?' for _ in names)})", audit_values(rows))

    def _have_aggregate_rows(self) -> bool:
        """Whether a session of ``_agg_touched`` has rows in the aggregate tables.

        Asked of the per-session table (one row per session that has hourly rows) when it
        is current, else of the distinct sessions of an hourly table (a longer scan)."""
        if agg.SESSION_TABLE in self.aggregates:
            rows = f"SELECT session_id FROM {agg.SESSION_TABLE}"
        else:
            rows = f"SELECT DISTINCT session_id FROM {sorted(self.aggregates)[0]}"
        return self.con.execute(
            f"SELECT count(*) FROM ({rows}) a WHERE EXISTS (SELECT 1 FROM _agg_touched t "
            "WHERE t.session_id IS NOT DISTINCT FROM a.session_id)").fetchall()[0][0] > 0

    def _upsert_sessions(self, known: int | None = None) -> None:
        """Merge ``_in_sessions`` into ``sessions``; ``known``: how many of its distinct
        session ids are stored, when the caller has just counted them."""
        # One row per session id (a session may arrive from several files in one
        # batch); then new non-null values win over stored ones. The table has no
        # primary-key index (migration 4): an index over random ids is rewritten at
        # every commit. This is the only writer of ``sessions``, so one row per id
        # holds: stored ids are updated, the others inserted.
        con = self.con
        cols = [name for name, *_ in SESSION_COLUMNS]
        merged = ", ".join(
            "session_id" if c == "session_id"
            else f"min({c}) AS {c}" if c == "start_ts"
            else f"max({c}) AS {c}"
            for c in cols)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _up AS SELECT {merged} FROM _in_sessions "
                    "GROUP BY session_id")
        try:
            if known is None:
                known = con.execute("SELECT count(*) FROM _up WHERE session_id IN "
                                    "(SELECT session_id FROM sessions)").fetchall()[0][0]
            if known:
                updates = ", ".join(
                    f"{c} = least(u.{c}, sessions.{c})" if c == "start_ts"
                    else f"{c} = coalesce(u.{c}, sessions.{c})"
                    for c in cols if c != "session_id")
                con.execute(f"UPDATE sessions SET {updates} FROM _up u "
                            "WHERE sessions.session_id = u.session_id")
            con.execute(f"INSERT INTO sessions ({', '.join(cols)}) SELECT {', '.join(cols)} "
                        "FROM _up" + (" WHERE session_id NOT IN (SELECT session_id FROM "
                                      "sessions)" if known else ""))
        finally:
            con.execute("DROP TABLE IF EXISTS _up")

    # ---------------------------------------------------------------- reading
    def counts(self) -> dict[str, int]:
        q = ("SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM events), "
             "(SELECT count(*) FROM ingested_files)")
        s, e, f = self.con.execute(q).fetchall()[0]
        return {"sessions": s, "events": e, "files": f}

    def time_range(self) -> tuple[datetime | None, datetime | None]:
        lo, hi = self.con.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
        return lo, hi

    def fetch(self, sql: str) -> Fetched:
        """Run ``sql`` (DuckDB SQL, e.g. compiled KPI SQL): column names and rows."""
        try:
            cur = self.con.execute(sql)
            rows = cur.fetchall()
        except duckdb.OutOfMemoryException:
            if not self._bounded_queries:
                raise
            # Over the bound of query_memory(): the query needs more than a cache; again
            # without it (and so every query left in the block).
            self._bounded_queries = False
            self.con.execute("RESET memory_limit")
            cur = self.con.execute(sql)
            rows = cur.fetchall()
        return [c[0] for c in cur.description or ()], rows

    def read_session(self, session_id: str) -> SessionRecord:
        cur = self.con.cursor()
        try:
            if self._attached:  # a cursor starts in no USE
                cur.execute(f"USE {_WRITER_CATALOG}")
            srow = _dicts(cur.execute("SELECT * FROM sessions WHERE session_id = ?",
                                      [session_id]))
            events = _dicts(cur.execute(
                "SELECT * FROM events WHERE session_id = ? ORDER BY ts NULLS LAST, seq",
                [session_id]))
        finally:
            cur.close()
        return SessionRecord(srow[0] if srow else None, events)

    def scan(self, table: ScanTable, start: datetime | None = None,
             end: datetime | None = None, batch_rows: int = 65_536) -> pa.RecordBatchReader:
        schema, sql = scan_sql(table, self.dialect, start, end)
        rel = self.con.sql(sql)
        reader = rel.to_arrow_reader(batch_rows)
        if reader.schema.equals(schema):
            return reader
        return pa.RecordBatchReader.from_batches(schema, (b.cast(schema) for b in reader))

    def low_memory(self, table: ScanTable | None = None, start: datetime | None = None,
                   end: datetime | None = None) -> AbstractContextManager[None]:
        # DuckDB keeps the blocks a scan reads in its buffer pool (up to 80% of RAM by
        # default, and a small pool fills up too: 60 MB of 64 MB at the end of a scan);
        # a long scan reads every block once, so it runs with a small pool: SCAN_MEMORY_LIMIT
        # for a plain scan, which pins a block or two per column at a time; LOW_MEMORY_LIMIT
        # when it joins (the sessions of a range: a hash table of the range's session ids).
        # One thread: each scan thread holds its own chunks in flight (about 80 MB less
        # at the peak of an export of 5.3 M events; the writer is the slower side anyway).
        # A streamed result is buffered ahead of the reader up to streaming_buffer_size
        # (10 MB by default; 1 MB: 6 MB less at the peak, BENCHMARKS §11d).
        plain = table == "events" or (table == "sessions" and start is None and end is None)
        return self._limits(memory_limit=SCAN_MEMORY_LIMIT if plain else LOW_MEMORY_LIMIT,
                            threads=1, streaming_buffer_size="1MB")

    def write_memory(self) -> AbstractContextManager[None]:
        # DuckDB keeps every block a long write produces in its buffer pool: a cold
        # ingest of 1M sessions grew the writer to 4.6 GB. The blocks are on disk once
        # committed, so the pool is bounded (setting ``ingest_memory``).
        return self._limits(memory_limit=str(config.get("ingest_memory")))

    @contextmanager
    def query_memory(self) -> Iterator[None]:
        # The hour's KPI queries read a few columns of whole tables (events.ts, the
        # hourly aggregates, the sessions) and DuckDB keeps every block it read: 550 MB at
        # 1M sessions, each page faulted in (nearly half their CPU is system time) for a process
        # that exits next. With QUERY_MEMORY_LIMIT they read as much and keep little
        # (BENCHMARKS §18); a query over the bound runs again without it (fetch).
        self._bounded_queries = True
        try:
            with self._limits(memory_limit=QUERY_MEMORY_LIMIT):
                yield
        finally:
            self._bounded_queries = False

    def defer_compaction(self, defer: bool = True) -> None:
        """Checkpoints of this connection merge no row groups (its commits' and the one
        on close): each commit writes its rows as row groups of their own, and of
        :data:`ROW_GROUP_ROWS` rows (:meth:`_write_row_groups`). ``defer`` false: they
        merge again (DuckDB's default), into row groups of DuckDB's default size, e.g. a
        full listing after an incremental ingest on the same store object.

        DuckDB's checkpoint otherwise merges small neighbouring row groups of every
        table ("vacuum"), as a binary counter carries: a series of hourly commits,
        each adding a small row group per table, rewrote the last ~120k rows of the
        aggregate tables every two or three hours (0.3-1.6 s of an hourly run at 200k
        sessions; BENCHMARKS §16). A connection that does not defer (the periodic full
        listing, a cold ingest, the collector) merges them, each row once.
        """
        self.con.execute("SET max_vacuum_tasks = 0" if defer else "RESET max_vacuum_tasks")
        self._write_row_groups(ROW_GROUP_ROWS if defer else None)

    def _write_row_groups(self, rows: int | None) -> None:
        """Write row groups of ``rows`` rows from now on (None: DuckDB's default size).

        Deferring writers (an incremental ingest) write small row groups: an insert
        writes every full row group to the file itself, compressed by its threads in
        parallel, while the rest waits for the commit's checkpoint, on one thread. The
        hourly batch of the 200k benchmark (~100k events) filled no default row group;
        in row groups of :data:`ROW_GROUP_ROWS` its store write took ~0.2 s less
        (BENCHMARKS.md §19). Every other writer writes, and merges, row groups of the
        default size: DuckDB keeps ~65 KB of metadata per row group a scan reaches, so
        a store of small row groups costs a whole export more memory (§11d, §12d).
        DuckDB takes the size when the file is attached, so the file is attached again
        (while no transaction is open: this is called before an ingest writes)."""
        if not self._attached or rows == self._row_group_rows:
            return
        con = self.con
        con.execute("USE memory")
        con.execute(f"DETACH {_WRITER_CATALOG}")
        # Another process may take the file's lock between the two: wait for it like
        # an open does (a reader lets go within moments).
        self._retrying(lambda: self._attach(con, rows), 10.0)

    @contextmanager
    def _limits(self, **settings: str | int) -> Iterator[None]:
        """DuckDB ``settings`` (``memory_limit``, ``threads``, ...) for the block, then each
        set back to DuckDB's default (the store sets none of them otherwise;
        ``current_setting`` gives a limit rounded, so setting it back would not restore it
        exactly)."""
        for name, value in settings.items():
            lit = str(value) if isinstance(value, int) else self.dialect.str_literal(value)
            self.con.execute(f"SET {name} = {lit}")
        reset = "; ".join(f"RESET {name}" for name in settings)
        try:
            yield
        except BaseException:
            # A failed scan may leave its result open on the connection, so resetting can
            # fail too; the first error (e.g. the disk is full) is the one to report.
            with suppress(duckdb.Error):
                self.con.execute(reset)
            raise
        self.con.execute(reset)

    def sql(self, query: str, params: Iterable[Any] | None = None) -> pa.Table:
        """Run DuckDB SQL with ``?`` placeholders bound to ``params`` (tools and tests)."""
        params = list(params or [])
        rel = self.con.sql(query, params=params) if params else self.con.sql(query)
        return rel.to_arrow_table()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Rows per row group of a writer that defers compaction (an incremental ingest; DuckDB's
#: default: 122,880), see :meth:`DuckDBStore._write_row_groups`.
ROW_GROUP_ROWS = 30_720
#: The name a writer's connection gives the store's file (its default catalog).
_WRITER_CATALOG = "store"


#: The buffer pool of :meth:`DuckDBStore.query_memory` (an hour's KPIs at 1M sessions
#: run within 64 MB; a 48-hour range needs 2 GB, and runs again unbounded).
QUERY_MEMORY_LIMIT = "128MB"
#: The buffer pool of :meth:`DuckDBStore.low_memory` for a scan that joins (the sessions
#: of a range: 1M sessions fail under 32 MB) or an unnamed one.
LOW_MEMORY_LIMIT = "64MB"
#: ... and for a plain scan (``events``, every ``sessions`` row): it fails under ~12 MB
#: at 1M sessions; at 64 MB an export of 24.5 M events peaked at 318 MB (BENCHMARKS §11d).
SCAN_MEMORY_LIMIT = "32MB"


@dataclass(frozen=True)
class _Asked:
    """What :meth:`DuckDBStore.unrecorded_entries` was asked (the listing's own lists) and
    answered: the paths of those entries not recorded with their inode."""

    root: str
    paths: list[str]
    inos: list[int]
    n: int
    unrecorded: frozenset[str]

    def answers(self, root: str, entries: dict[str, list[Any]]) -> bool:
        """``entries`` are the very lists asked about, unchanged in length (a listing that
        dropped entries, e.g. files removed meanwhile, makes new lists: not answered)."""
        return (root == self.root and entries["path"] is self.paths
                and entries["ino"] is self.inos and len(self.paths) == self.n
                and len(entries["folder"]) == self.n)


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [c[0] for c in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
