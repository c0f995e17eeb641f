"""The ClickHouse engine: the same canonical store and the same KPI catalogue on ClickHouse.

Nothing about a KPI is implemented here. :class:`ClickHouseDialect` says how the
aggregates of :mod:`agentkpi.kpis.sql` are spelled in ClickHouse SQL, and
:class:`ClickHouseStore` is a :class:`agentkpi.store.base.Store`, so ingest,
rollup, queries, exports and the dashboard run unchanged.

DSNs:

* ``clickhouse://user:pass@host:8123/db`` (``clickhouses://`` or ``https://`` for
  TLS): a ClickHouse server over HTTP via ``clickhouse_connect.get_client``;
  the database is created when missing (default ``agentkpi``).
* ``chdb:///path/to/dir`` (on disk) or ``chdb://`` (in memory): in-process
  chDB through clickhouse-connect's ``chdb`` interface (clickhouse-connect
  >= 0.10 with the ``chdb`` package). chDB allows one data directory per
  process: close a store before opening another path.

Storage (see ``docs/clickhouse.md`` for the measured trade-offs):

* ``events``: MergeTree, ``PARTITION BY toYYYYMMDD(coalesce(ts, epoch))``,
  ``ORDER BY (session_id, file, seq)``. A changed file (or, with
  ``replace_sessions``, a grown session) is replaced by a lightweight
  ``DELETE`` of the rows it produced followed by one Arrow insert, so KPI
  queries read the table directly (no ``FINAL``).
* ``sessions``: a view ``SELECT ... FROM sessions_rmt FINAL`` over a
  ``ReplacingMergeTree(_version) ORDER BY session_id``; upserts insert the
  merged row (new non-null values win, earliest start) with a higher version.
* ``ingested_files``: ``ReplacingMergeTree(_version) ORDER BY path``.

ClickHouse has no multi-statement transactions, so a batch is made
*idempotent under retry* instead of atomic: events are deleted and inserted
first, the ledger row is written last; a crash in between leaves the file
"not ingested" and the next run replaces its rows again.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc

from agentkpi.errors import StoreError, StoreMissingError, UsageError, redact_url
from agentkpi.kpis import aggregates as agg
from agentkpi.model import (
    EVENT_COLUMNS,
    EVENT_COLUMNS_V1,
    EVENT_COLUMNS_V2,
    EVENT_COLUMNS_V3,
    EVENT_COLUMNS_V4,
    EVENT_SCHEMA,
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

# ----------------------------------------------------------------------------- dialect


class ClickHouseDialect:
    """The :class:`agentkpi.store.base.Dialect` for ClickHouse.

    Percentiles are the seed's (numpy's default) linear interpolation, bit for
    bit, as in the DuckDB dialect: the values are collected and sorted
    (``groupArrayIf`` + ``arraySort``) and interpolated as
    ``lo + (hi - lo) * d`` with ``RN = (n - 1) * p``, ``d = RN - floor(RN)``.
    ClickHouse's ``quantileExactInclusive`` uses the same method but derives
    ``d`` differently, which is off in the last bit often enough to flip a
    2-dp or 6-dp rounding; ``tests/test_clickhouse.py`` checks both.
    """

    name = "clickhouse"

    def count_if(self, where: str) -> str:
        return f"countIf({where})" if where else "count()"

    def sum_if(self, expr: str, where: str, order: str = "") -> str:
        if not order:
            return f"sumIf({expr}, {where})" if where else f"sum({expr})"
        # An ordered float sum (DuckDB: sum(x ORDER BY k)): collect values and keys,
        # sort the values by key (value breaks ties), add up left to right, so both
        # engines round identically. Parallel arrays are ~10% cheaper than tuples.
        # arrayCumSum adds left to right from +0.0 (one double accumulator, every partial
        # sum stored), the same additions as arrayFold((acc, x) -> acc + x, a, 0.), but
        # in one loop: arrayFold runs its lambda once per element, 1 s over the 200k
        # sessions of one bucket. The last partial sum is the total; 0 for no values.
        cond = f"({where}) AND ({expr}) IS NOT NULL" if where else f"({expr}) IS NOT NULL"
        values = f"groupArrayIf(assumeNotNull(toFloat64({expr})), {cond})"
        keys = f"groupArrayIf(tuple({order}), {cond})"
        return f"arrayCumSum(arraySort((v, k) -> (k, v), {values}, {keys}))[-1]"

    def min_if(self, expr: str, where: str) -> str:
        return f"minIfOrNull({expr}, {where})" if where else f"minOrNull({expr})"

    def max_if(self, expr: str, where: str) -> str:
        return f"maxIfOrNull({expr}, {where})" if where else f"maxOrNull({expr})"

    def count_distinct_if(self, expr: str, where: str) -> str:
        return f"uniqExactIf({expr}, {where})" if where else f"uniqExact({expr})"

    def distinct_list_if(self, expr: str, where: str) -> str:
        return f"groupUniqArrayIf({expr}, {where})" if where else f"groupUniqArray({expr})"

    def count_distinct_lists(self, expr: str) -> str:
        return f"length(arrayDistinct(arrayFlatten(groupArray({expr}))))"

    def list_of(self, expr: str) -> str:
        return f"groupArray({expr})"  # NULLs are left out

    def quantile_if(self, expr: str, p: float, where: str) -> str:
        arr = (f"arraySort(groupArrayIf(toFloat64({expr}), {where}))" if where
               else f"arraySort(groupArray(toFloat64({expr})))")
        # Lambdas bind the sorted values (a), RN, lo/hi/d, so nothing is computed twice.
        interp = ("arrayMap((lo, hi, d) -> if(d = 0, lo, lo + (hi - lo) * d), "
                  "[a[toInt64(floor(rn)) + 1]], [a[toInt64(ceil(rn)) + 1]], "
                  "[rn - floor(rn)])[1]")
        return (f"arrayMap(a -> if(length(a) = 0, NULL, arrayMap(rn -> {interp}, "
                f"[greatest(toInt64(length(a)) - 1, 0) * {p!r}])[1]), [{arr}])[1]")

    def quantile_native_if(self, expr: str, p: float, where: str) -> str:
        """ClickHouse's own exact inclusive quantile (for comparison only)."""
        return (f"quantileExactInclusiveIf({p!r})({expr}, {where})" if where
                else f"quantileExactInclusive({p!r})({expr})")

    def seconds_between(self, later: str, earlier: str) -> str:
        return (f"((toUnixTimestamp64Micro({later}) - toUnixTimestamp64Micro({earlier}))"
                " / 1000000.0)")

    def bucket(self, grain: str | None, col: str, tz: str, week_start: int) -> str:
        if grain is None:
            return "CAST(NULL AS Nullable(DateTime('UTC')))"
        # Wall-clock time of ``tz`` expressed as a UTC value, so the truncation
        # below (done in UTC) yields local bucket starts as naive timestamps,
        # exactly like DuckDB's timezone(tz, ts AT TIME ZONE 'UTC').
        local = col if tz == "UTC" else (
            f"({col} + toIntervalSecond(timeZoneOffset(toTimeZone({col}, {_q(tz)}))))")
        if grain == "hour":
            return f"toDateTime(toStartOfHour({local}), 'UTC')"
        if grain == "day":
            return f"toDateTime(toStartOfDay({local}), 'UTC')"
        if grain == "week":
            shift = (7 - week_start) % 7  # 0 = Monday, as in the DuckDB dialect
            if shift:
                return (f"toDateTime(toStartOfWeek({local} + toIntervalDay({shift}), 1) "
                        f"- toIntervalDay({shift}), 'UTC')")
            return f"toDateTime(toStartOfWeek({local}, 1), 'UTC')"
        if grain == "month":
            return f"toDateTime(toStartOfMonth({local}), 'UTC')"
        raise ValueError(f"unknown grain {grain!r}")

    def str_literal(self, value: str) -> str:
        return _q(value)

    def ts_literal(self, dt: datetime) -> str:
        return f"toDateTime64('{dt.replace(tzinfo=None).isoformat(' ', 'microseconds')}', 6, 'UTC')"

    def json_field(self, key: str) -> str:
        # DuckDB json_extract_string: NULL when missing or null, the string for a
        # string, the JSON text otherwise.
        path = ", ".join(_q(k) for k in key.split("."))
        return (f"multiIf(JSONType(data, {path}) IN ('Null'), NULL, "
                f"NOT JSONHas(data, {path}), NULL, "
                f"JSONType(data, {path}) = 'String', JSONExtractString(data, {path}), "
                f"JSONExtractRaw(data, {path}))")


CLICKHOUSE = ClickHouseDialect()


def _q(s: str) -> str:
    """A ClickHouse string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ----------------------------------------------------------------------------- schema

_CH_TYPES = {"VARCHAR": "String", "TIMESTAMP": "DateTime64(6, 'UTC')", "INTEGER": "Int32",
             "BIGINT": "Int64", "DOUBLE": "Float64", "BOOLEAN": "Bool"}
_NOT_NULL = {"session_id"}


def _ch_columns(columns: Sequence[tuple[str, Any, str, str]]) -> str:
    return ",\n    ".join(
        f"{n} {_CH_TYPES[t]}" if n in _NOT_NULL else f"{n} Nullable({_CH_TYPES[t]})"
        for n, _, t, _ in columns)


SESSION_NAMES = [n for n, *_ in SESSION_COLUMNS]
EVENT_NAMES = [n for n, *_ in EVENT_COLUMNS]
EPOCH = "toDateTime64(0, 6, 'UTC')"

_LEDGER_COLUMNS = ("path String, fingerprint Nullable(String), source Nullable(String), "
                   "status Nullable(String), reason Nullable(String), n_sessions Nullable(Int32), "
                   "n_events Nullable(Int32), ingested_at Nullable(DateTime64(6, 'UTC')), "
                   "_version UInt64")
_EVENTS_LAYOUT = (f"PARTITION BY toYYYYMMDD(coalesce(ts, {EPOCH}))\n"
                  "ORDER BY (session_id, file, seq) SETTINGS allow_nullable_key = 1")


def _ddl_v1(cluster: str | None = None) -> tuple[str, ...]:
    """Schema v1; with ``cluster``, replicated local tables + Distributed tables.

    Cluster layout: ``<name>_local`` tables are Replicated(Replacing)MergeTree
    on every node (ZooKeeper/Keeper path per shard, macros ``{shard}`` and
    ``{replica}``); ``events``, ``sessions_rmt`` and ``ingested_files`` are
    Distributed over them, sharded by ``cityHash64(session_id)`` (``path`` for
    the ledger) so all versions and all events of a session live on one shard:
    ``FINAL`` and the events/sessions join are then shard-local and exact.
    """
    view = (f"AS SELECT {', '.join(n for n, *_ in SESSION_COLUMNS_V1)} FROM sessions_rmt FINAL")
    if cluster is None:
        return (
            f"CREATE TABLE IF NOT EXISTS sessions_rmt (\n    {_ch_columns(SESSION_COLUMNS_V1)},\n"
            "    _version UInt64)\nENGINE = ReplacingMergeTree(_version) ORDER BY session_id",
            f"CREATE VIEW IF NOT EXISTS sessions {view}",
            f"CREATE TABLE IF NOT EXISTS events (\n    {_ch_columns(EVENT_COLUMNS_V1)})\n"
            f"ENGINE = MergeTree {_EVENTS_LAYOUT}",
            f"CREATE TABLE IF NOT EXISTS ingested_files ({_LEDGER_COLUMNS})\n"
            "ENGINE = ReplacingMergeTree(_version) ORDER BY path",
        )
    on = f"ON CLUSTER {cluster}"

    def zk(table: str) -> str:
        return f"'/clickhouse/tables/{{shard}}/{{database}}/{table}', '{{replica}}'"

    def dist(table: str, key: str) -> str:
        return (f"CREATE TABLE IF NOT EXISTS {table} {on} AS {table}_local\n"
                f"ENGINE = Distributed({cluster}, currentDatabase(), {table}_local, "
                f"cityHash64({key}))")

    return (
        f"CREATE TABLE IF NOT EXISTS sessions_rmt_local {on} (\n"
        f"    {_ch_columns(SESSION_COLUMNS_V1)},\n    _version UInt64)\n"
        f"ENGINE = ReplicatedReplacingMergeTree({zk('sessions_rmt_local')}, _version)\n"
        "ORDER BY session_id",
        dist("sessions_rmt", "session_id"),
        f"CREATE VIEW IF NOT EXISTS sessions {on} {view}",
        f"CREATE TABLE IF NOT EXISTS events_local {on} (\n    {_ch_columns(EVENT_COLUMNS_V1)})\n"
        f"ENGINE = ReplicatedMergeTree({zk('events_local')})\n{_EVENTS_LAYOUT}",
        dist("events", "session_id"),
        f"CREATE TABLE IF NOT EXISTS ingested_files_local {on} ({_LEDGER_COLUMNS})\n"
        f"ENGINE = ReplicatedReplacingMergeTree({zk('ingested_files_local')}, _version)\n"
        "ORDER BY path",
        dist("ingested_files", "path"),
    )


def _ddl_v2(cluster: str | None = None) -> tuple[str, ...]:
    """Schema v2: the real-world transcript columns (appended), and the import audit."""
    on = f" ON CLUSTER {cluster}" if cluster else ""
    # On a cluster both the local tables and the Distributed tables over them change.
    events = ("events_local", "events") if cluster else ("events",)
    sessions = ("sessions_rmt_local", "sessions_rmt") if cluster else ("sessions_rmt",)
    audit_cols = _ch_columns(AUDIT_COLUMNS)
    if cluster is None:
        audit: tuple[str, ...] = (f"CREATE TABLE IF NOT EXISTS import_audit ({audit_cols})\n"
                 "ENGINE = MergeTree ORDER BY tuple()",)
    else:
        audit = (
            f"CREATE TABLE IF NOT EXISTS import_audit_local{on} ({audit_cols})\n"
            "ENGINE = ReplicatedMergeTree("
            "'/clickhouse/tables/{shard}/{database}/import_audit_local', '{replica}')\n"
            "ORDER BY tuple()",
            f"CREATE TABLE IF NOT EXISTS import_audit{on} AS import_audit_local\n"
            f"ENGINE = Distributed({cluster}, currentDatabase(), import_audit_local, rand())",
        )
    return (
        *(f"ALTER TABLE {t}{on} ADD COLUMN IF NOT EXISTS {n} Nullable({_CH_TYPES[sql]})"
          for t in events for n, _, sql, _ in EVENT_COLUMNS_V2),
        *(f"ALTER TABLE {t}{on} ADD COLUMN IF NOT EXISTS {n} Nullable({_CH_TYPES[sql]})"
          for t in sessions for n, _, sql, _ in SESSION_COLUMNS_V2),
        f"CREATE OR REPLACE VIEW sessions{on} AS SELECT {', '.join(SESSION_NAMES)} "
        "FROM sessions_rmt FINAL",
        *audit,
    )


def _ddl_v3(cluster: str | None) -> tuple[str, ...]:
    """Schema v3: ``response_id`` (appended)."""
    on = f" ON CLUSTER {cluster}" if cluster else ""
    events = ("events_local", "events") if cluster else ("events",)
    return tuple(f"ALTER TABLE {t}{on} ADD COLUMN IF NOT EXISTS {n} Nullable({_CH_TYPES[sql]})"
                 for t in events for n, _, sql, _ in EVENT_COLUMNS_V3)


def _ddl_v4(cluster: str | None) -> tuple[str, ...]:
    """Schema v4: tokens reported without the prompt/completion split (appended)."""
    on = f" ON CLUSTER {cluster}" if cluster else ""
    events = ("events_local", "events") if cluster else ("events",)
    return tuple(f"ALTER TABLE {t}{on} ADD COLUMN IF NOT EXISTS {n} Nullable({_CH_TYPES[sql]})"
                 for t in events for n, _, sql, _ in EVENT_COLUMNS_V4)


def migrations(cluster: str | None = None) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """(version, description, statements). Append only; never edit a released one.

    Statements are idempotent (IF NOT EXISTS): ClickHouse has no transactional
    DDL, so a half-applied migration is simply re-run.
    """
    return (
        (1, "canonical sessions/events tables and the ingest ledger", _ddl_v1(cluster)),
        (2, "real-world transcripts: event keys, tool-call ids, MCP server, subagent parent, "
            "reasoning and 1-hour cache tokens, cost source and price version, session "
            "machine, import audit", _ddl_v2(cluster)),
        (3, "the model response that requested a tool call (response_id)", _ddl_v3(cluster)),
        (4, "tokens reported without the prompt/completion split (seed-003 token_count)",
         _ddl_v4(cluster)),
    )


def schema_migrations_ddl(cluster: str | None = None) -> str:
    cols = "(version UInt32, description String, applied_at DateTime64(6, 'UTC'))"
    if cluster is None:
        return (f"CREATE TABLE IF NOT EXISTS schema_migrations {cols} "
                "ENGINE = ReplacingMergeTree ORDER BY version")
    # One copy replicated to every node (no {shard} in the path).
    return (f"CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER {cluster} {cols} "
            "ENGINE = ReplicatedReplacingMergeTree("
            "'/clickhouse/tables/{database}/schema_migrations', '{replica}') ORDER BY version")


MIGRATIONS = migrations()
SCHEMA_VERSION = MIGRATIONS[-1][0]

#: Session settings every query runs with. ``join_use_nulls``: an unmatched
#: LEFT JOIN row gives NULL (SQL semantics, what the KPI SQL expects), not 0/''.
#: ``prefer_column_name_to_alias``: ``sum(cost_usd) AS cost_usd`` reads the column.
#: ``compile_expressions = 0``: no LLVM JIT of arithmetic, so float results never
#: depend on what the JIT fuses (exact parity with DuckDB); it costs nothing here
#: because the KPI query is aggregation-bound.
SETTINGS: dict[str, Any] = {
    "compile_expressions": 0,
    "join_use_nulls": 1,
    "prefer_column_name_to_alias": 1,
    "max_query_size": 64 * 1024 * 1024,
    "max_partitions_per_insert_block": 10000,
    "mutations_sync": 2,
}

#: Most bytes of Arrow sent in one INSERT of events. ClickHouse reads an Arrow insert
#: whole and squashes it into blocks of up to a million rows before it writes parts: one
#: 500,000-event batch (205 MB of Arrow) added 1.2 GB to the writer's peak in chDB. In
#: 24 MB slices a cold rollup peaks at about half that, in the same time (BENCHMARKS.md
#: §10e); smaller slices make more parts for the merges to join.
INSERT_BYTES = 24 << 20
#: Most bytes of Arrow whose aggregate rows are computed from a staged copy of the batch
#: (:meth:`ClickHouseStore._new_sessions`): an hourly run's (~40-60 MB at 4,166 sessions),
#: not a cold ingest's 500,000-event writes, which go in slices (:data:`INSERT_BYTES`).
STAGE_BYTES = 96 << 20
#: A listing of at most this many files is looked up in the ledger path by path (an
#: hourly run's), a larger one against the whole ledger (:meth:`ClickHouseStore.changed_files`).
_LOOKUP_PATHS = 50_000


# ----------------------------------------------------------------------------- store


def parse_dsn(dsn: str) -> dict[str, Any]:
    """Split a DSN into how to connect: ``{"kind": "chdb"|"http", ...}``."""
    u = urlparse(dsn)
    query = {k: v[0] for k, v in parse_qs(u.query).items()}
    if u.scheme == "chdb":
        path = unquote(u.path) if not u.netloc else unquote(u.netloc + u.path)
        if path in ("", "/", "memory", ":memory:"):
            path = ""
        return {"kind": "chdb", "path": path, "database": query.pop("database", "agentkpi"),
                "settings": query}
    if u.scheme in ("clickhouse", "clickhouses", "http", "https"):
        secure = u.scheme in ("clickhouses", "https")
        try:
            port = u.port
        except ValueError:
            raise UsageError(f"bad port in ClickHouse DSN {_redact(dsn)}: use a number "
                             "0-65535, e.g. clickhouse://user@host:8123/db") from None
        db = unquote(u.path.lstrip("/")) or query.pop("database", "") or "agentkpi"
        return {"kind": "http", "host": u.hostname or "localhost",
                "port": port or (8443 if secure else 8123),
                "username": unquote(u.username) if u.username else "default",
                "password": unquote(u.password) if u.password else "",
                "secure": secure, "database": db, "settings": query}
    raise UsageError(f"cannot read ClickHouse DSN {dsn!r}; use "
                     "clickhouse://user:pass@host:8123/db, chdb:///path/to/dir or chdb://")


class ClickHouseStore:
    """The canonical store on ClickHouse (a server, or in-process chDB).

    >>> st = ClickHouseStore("chdb://")      # doctest: +SKIP
    >>> st.counts()                          # doctest: +SKIP
    {'sessions': 0, 'events': 0, 'files': 0}
    """

    engine = "clickhouse"
    dialect = CLICKHOUSE
    #: The materialised aggregate tables this store can read (single node; a cluster
    #: keeps none yet and reads the events: docs/architecture.md).
    aggregates: frozenset[str] = frozenset()

    def __init__(self, dsn: str, *, read_only: bool = False) -> None:
        import clickhouse_connect

        # The driver logs its failures too; without a handler of the host program's own,
        # Python prints them on stderr beside the one-line error raised below.
        _driver_log = logging.getLogger("clickhouse_connect")
        if not _driver_log.handlers:
            _driver_log.addHandler(logging.NullHandler())

        self.dsn = dsn
        self.read_only = read_only
        cfg = parse_dsn(dsn)
        self.database = cfg["database"]
        self.path = cfg.get("path") or _redact(dsn)
        self.cluster: str | None = cfg["settings"].pop("cluster", None)
        #: chDB: the engine lives in this process; after each batch of events the memory
        #: its allocator kept is given back to the system (SYSTEM JEMALLOC PURGE).
        self.embedded = cfg["kind"] == "chdb"
        settings = {**SETTINGS, **cfg["settings"]}
        if self.cluster:
            # inserts reach the shards before write_batch returns (then deletes/queries see them)
            settings.setdefault("distributed_foreground_insert", 1)
        try:
            if cfg["kind"] == "chdb":
                self.client = clickhouse_connect.get_client(
                    interface="chdb", path=cfg["path"] or None)
            else:
                self.client = clickhouse_connect.get_client(
                    host=cfg["host"], port=cfg["port"], username=cfg["username"],
                    password=cfg["password"], secure=cfg["secure"], database="default")
        except Exception as exc:  # noqa: BLE001 - driver errors vary by transport
            hint = ""
            if cfg["kind"] == "chdb":
                hint = ("; chDB opens one data directory per process and locks it against "
                        "other processes: close the other store or process using it, or "
                        "use a ClickHouse server (clickhouse://...) for concurrent access")
            raise StoreError(f"cannot open ClickHouse store {_redact(dsn)}: {exc}{hint}"
                             ) from None
        try:  # a setting the server does not know fails here (chDB) or on the first query
            for key, value in settings.items():
                self.client.set_client_setting(key, value)
            self.client.command("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - driver errors vary by transport
            text = " ".join(str(exc).split())
            self.client.close()
            unknown = [k for k in cfg["settings"] if f"'{k}'" in text]
            if unknown and "UNKNOWN_SETTING" in text.upper().replace(" ", "_"):
                raise UsageError(f"unknown ClickHouse setting {unknown[0]!r} in the DSN "
                                 f"{_redact(dsn)}; remove it or fix its name") from None
            raise StoreError(f"cannot use ClickHouse store {_redact(dsn)}: {text[:300]}"
                             ) from None
        self._last_version = 0
        #: Rows removed because their event_key was already stored (for the import audit).
        self.merged_by_key = 0
        #: Sessions whose aggregate rows the batch being written changes.
        self._touched: set[str] = set()
        if read_only:
            exists = self._cmd(
                f"SELECT count() FROM system.tables WHERE database = {_q(self.database)} "
                "AND name = 'schema_migrations'")
            if not int(exists):
                self.client.close()
                raise StoreMissingError(
                    f"no agentkpi store in ClickHouse database {self.database} at "
                    f"{_redact(dsn)}; run `agentkpi ingest --engine clickhouse` first")
            self.client.database = self.database
        else:
            on = f" ON CLUSTER {self.cluster}" if self.cluster else ""
            self.client.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`{on}")
            self.client.database = self.database
            self.migrate()
            # Versions only grow, even if this host's clock is behind the last writer's.
            self._last_version = int(self._cmd(
                "SELECT greatest((SELECT max(_version) FROM sessions_rmt), "
                "(SELECT max(_version) FROM ingested_files))") or 0)
            if not self.cluster:
                # Derived state, rebuilt from the events when missing or out of date.
                self._cmd("CREATE TABLE IF NOT EXISTS aggregate_tables (name String, "
                          "signature String, built_at DateTime64(6, 'UTC')) "
                          "ENGINE = ReplacingMergeTree(built_at) ORDER BY name")
                # The change-detection state of each source (as DuckDB's store keeps it):
                # when it was last listed whole and its folder fingerprints; per folder
                # read, its entries (the latest row per folder wins).
                self._cmd("CREATE TABLE IF NOT EXISTS source_scans (root String, "
                          "full_scan_at Nullable(DateTime64(6, 'UTC')), folders String, "
                          "_version UInt64) ENGINE = ReplacingMergeTree(_version) ORDER BY root")
                self._cmd("CREATE TABLE IF NOT EXISTS source_entries (root String, "
                          "folder String, paths Array(String), inos Array(UInt64), "
                          "_version UInt64) ENGINE = ReplacingMergeTree(_version) "
                          "ORDER BY (root, folder)")
                self.build_aggregates()
        self.aggregates = self._current_aggregates()

    # ---------------------------------------------------------------- aggregates
    def _current_aggregates(self) -> frozenset[str]:
        """The aggregate tables that match this version's KPI SQL (others are not read)."""
        if self.cluster or not int(self._cmd(
                f"SELECT count() FROM system.tables WHERE database = {_q(self.database)} "
                "AND name = 'aggregate_tables'")):
            return frozenset()  # a cluster, or a store written before aggregates existed
        sig = agg.signature(CLICKHOUSE)
        rows = self.client.query("SELECT name, signature FROM aggregate_tables FINAL"
                                 ).result_rows
        return agg.usable(frozenset(n for n, sg in rows if sg == sig and n in agg.ALL_TABLES))

    def build_aggregates(self, force: bool = False) -> list[str]:
        """(Re)build the aggregate tables whose SQL changed; returns their names.

        Same tables and SQL as on DuckDB (:mod:`agentkpi.kpis.aggregates`), MergeTree
        ordered by session; :meth:`write_batch` keeps them up to date.
        """
        sig = agg.signature(CLICKHOUSE)
        have = {str(n): str(sg) for n, sg in self.client.query(
            "SELECT name, signature FROM aggregate_tables FINAL").result_rows}
        todo = agg.with_dependents([t for t in agg.ALL_TABLES
                                    if force or have.get(t) != sig])
        try:
            for table in todo:
                # Not atomic: a table is marked current only once it is complete (the
                # latest row per name wins).
                self.client.insert("aggregate_tables", [[table, "", _now()]],
                                   column_names=["name", "signature", "built_at"])
                self._cmd(f"DROP TABLE IF EXISTS {table}")
                self._cmd(f"CREATE TABLE {table} ENGINE = MergeTree ORDER BY session_id "
                          f"SETTINGS allow_nullable_key = 1 AS {self._agg_select(table)}")
                self.client.insert("aggregate_tables", [[table, sig, _now()]],
                                   column_names=["name", "signature", "built_at"])
        except Exception as exc:  # noqa: BLE001 - server errors vary by version
            raise StoreError(f"building the aggregate tables of {_redact(self.dsn)} failed: "
                             f"{exc}") from None
        return todo

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """See :meth:`agentkpi.store.base.Store.bulk_load`: here a no-op, the writes keep
        the tables up to date. Each write already fills them from its own staged events
        (:meth:`_new_sessions`), so one build at the end saved nothing on a cold ingest at
        200k sessions (41.2 s against 40.3-41.4 s) and raised its peak from 1.4 to 2.2 GB
        (BENCHMARKS.md §23)."""
        yield

    @staticmethod
    def _agg_select(table: str, where: str = "") -> str:
        return agg.table_sql(CLICKHOUSE, table, where)

    def _refresh_aggregates(self, sessions: Iterable[str], batch: str | None = None) -> None:
        """Recompute the aggregate rows of ``sessions`` from their stored events; with
        ``batch`` (a table of the events just inserted, which are all their sessions'
        events: :meth:`_new_sessions`), the hourly tables' rows from it."""
        ids = sorted({s for s in sessions if s is not None})
        if not self.aggregates or not ids:
            return
        with self._staged("touched", "(session_id String)",
                          pa.table({"session_id": pa.array(ids, pa.string())})) as stage:
            touched = f"session_id IN (SELECT session_id FROM {stage})"
            for table in agg.ALL_TABLES:  # the hourly tables before the session tables
                if table not in self.aggregates:
                    continue
                if batch is not None and table not in agg.SESSION_TABLES:
                    # none of these sessions has rows yet: nothing to delete
                    self._cmd(f"INSERT INTO {table} "
                              + agg.table_sql(CLICKHOUSE, table, touched, source=batch))
                    continue
                # A mutation costs seconds even when it matches nothing: look first.
                if int(self._cmd(f"SELECT count() FROM {table} WHERE {touched}") or 0):
                    self._cmd(f"DELETE FROM {table} WHERE {touched}")
                self._cmd(f"INSERT INTO {table} {self._agg_select(table, touched)}")

    @contextmanager
    def _staged(self, kind: str, columns: str, data: pa.Table) -> Iterator[str]:
        """A temporary Memory table ``_stage_<kind>_…`` holding ``data`` while the block
        runs (``columns``: its column list, or ``AS <table>`` for another table's)."""
        stage = f"_stage_{kind}_{uuid.uuid4().hex}"
        self._cmd(f"CREATE TABLE {stage} {columns} ENGINE = Memory")
        try:
            self.client.insert_arrow(stage, data)
            yield stage
        finally:
            self._cmd(f"DROP TABLE IF EXISTS {stage}")

    # ---------------------------------------------------------------- schema
    def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied."""
        self._cmd(schema_migrations_ddl(self.cluster))
        done = {r[0] for r in self.client.query(
            "SELECT DISTINCT version FROM schema_migrations").result_rows}
        applied = []
        for version, description, statements in migrations(self.cluster):
            if version in done:
                continue
            try:
                for stmt in statements:
                    self._cmd(stmt)
            except Exception as exc:  # noqa: BLE001 - server errors vary by version
                raise StoreError(f"migration {version} ({description}) failed on "
                                 f"{_redact(self.dsn)}: {exc}") from None
            self.client.insert("schema_migrations", [[version, description, _now()]],
                               column_names=["version", "description", "applied_at"])
            applied.append(version)
        return applied

    def schema_version(self) -> int:
        return int(self._cmd("SELECT max(version) FROM schema_migrations") or 0)

    # ---------------------------------------------------------------- ingest ledger
    def fingerprints(self, prefix: str = "") -> dict[str, str]:
        where = f" WHERE startsWith(path, {_q(prefix)})" if prefix else ""
        rows = self.client.query("SELECT path, fingerprint FROM ingested_files FINAL"
                                 + where).result_rows
        return {path: fp for path, fp in rows}

    def changed_files(self, listing: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The (path, fingerprint) pairs that are new or changed since their last ingest.

        A listing much smaller than the ledger (an hourly run's) is looked up path by
        path; a large one against the whole ledger."""
        if not listing:
            return []
        if len(listing) > _LOOKUP_PATHS:
            known = self.fingerprints()
        else:
            paths = pa.array(sorted({p for p, _ in listing}), pa.string())
            with self._staged("paths", "(path String)", pa.table({"path": paths})) as stage:
                known = {str(p): str(fp) for p, fp in self.client.query(
                    "SELECT path, fingerprint FROM ingested_files FINAL WHERE "
                    f"path IN (SELECT path FROM {stage})").result_rows}
        return [(p, fp) for p, fp in listing if not fp or known.get(p) != fp]

    # ---------------------------------------------------------------- change detection
    def scan_state(self, root: str) -> tuple[datetime | None, dict[str, str]]:
        """When ``root`` was last listed whole, and its folder fingerprints since then
        (a cluster keeps none: its sources are listed whole every run)."""
        if self.cluster:
            return None, {}
        rows = self.client.query("SELECT full_scan_at, folders FROM source_scans FINAL "
                                 f"WHERE root = {_q(root)}").result_rows
        if not rows:
            return None, {}
        return _naive(rows[0][0]), json.loads(rows[0][1] or "{}")

    def save_scan_state(self, root: str, folders: dict[str, str], full: bool,
                        entries: dict[str, list[Any]] | None = None) -> None:
        """Record the folder fingerprints of ``root`` and the ``entries`` (``folder``,
        ``path``, ``ino`` lists) of the folders read: each folder's record is replaced by
        its entries (all of the root's after a full listing). Call it only once every
        listed file is in the ledger: an entry recorded is not stat-ed again."""
        if self.cluster:
            return
        full_at = _now() if full else self.scan_state(root)[0]
        by_folder: dict[str, tuple[list[str], list[int]]] = {}
        if entries is not None:
            for folder, path, ino in zip(entries["folder"], entries["path"], entries["ino"],
                                         strict=True):
                paths, inos = by_folder.setdefault(folder, ([], []))
                paths.append(path)
                inos.append(ino)
        version = self._next_version()
        try:
            if full:  # the folders that are gone go with their records
                kept = ", ".join(_q(f) for f in sorted(by_folder)) or "''"
                gone = f"root = {_q(root)} AND folder NOT IN ({kept})"
                if int(self._cmd(f"SELECT count() FROM source_entries WHERE {gone}") or 0):
                    self._cmd(f"DELETE FROM source_entries WHERE {gone}")
            if by_folder:
                names = sorted(by_folder)
                self.client.insert_arrow("source_entries", pa.table({
                    "root": pa.array([root] * len(names), pa.string()),
                    "folder": pa.array(names, pa.string()),
                    "paths": pa.array([by_folder[f][0] for f in names], pa.list_(pa.string())),
                    "inos": pa.array([by_folder[f][1] for f in names], pa.list_(pa.uint64())),
                    "_version": pa.array([version] * len(names), pa.uint64())}))
            # the fingerprints last: a crash before leaves the folders to be read again
            self.client.insert("source_scans", [[root, full_at, json.dumps(
                folders, sort_keys=True), version]], column_names=[
                "root", "full_scan_at", "folders", "_version"])
        except Exception as exc:  # noqa: BLE001 - server errors vary by version
            raise StoreError(f"recording the scan of {root} in {_redact(self.dsn)} failed: "
                             f"{exc}") from None

    def unrecorded_entries(self, root: str, paths: list[str], inos: list[int],
                           folders: list[str] | None = None) -> list[str]:
        """The paths among ``paths``/``inos`` not recorded (by :meth:`save_scan_state`)
        with that inode: new names, and names replaced by another file. ``folders``: the
        folders these entries were read from (only their records are compared)."""
        where = f"root = {_q(root)}"
        if folders is not None:
            where += f" AND folder IN ({', '.join(_q(f) for f in sorted(set(folders)))})"
        recorded: set[tuple[str, int]] = set()
        for rec_paths, rec_inos in self.client.query(
                f"SELECT paths, inos FROM source_entries FINAL WHERE {where}").result_rows:
            recorded.update(zip(rec_paths, rec_inos, strict=True))
        return [p for p, i in zip(paths, inos, strict=True) if (p, i) not in recorded]

    def live_files(self, hours: float) -> list[str]:
        """Files of the sessions with events in the last ``hours`` before the newest one."""
        span = f"toIntervalMicrosecond({int(hours * 3.6e9)})"
        if "agg_hourly" in self.aggregates:
            recent = ("SELECT DISTINCT session_id FROM agg_hourly WHERE _hour >= "
                      f"(SELECT max(_hour) FROM agg_hourly) - {span}")
        else:
            recent = ("SELECT DISTINCT session_id FROM events WHERE ts >= "
                      f"(SELECT max(ts) FROM events) - {span}")
        rows = self.client.query("SELECT DISTINCT source_path FROM sessions WHERE "
                                 f"session_id IN ({recent})").result_rows
        return [str(p) for (p,) in rows if p is not None]

    def skipped_files(self) -> dict[str, str]:
        """``{path: reason}`` of every file the ledger holds as skipped (still unread)."""
        rows = self.client.query("SELECT path, coalesce(reason, '') FROM ingested_files FINAL "
                                 "WHERE status = 'skipped'").result_rows
        return {str(p): str(r) for p, r in rows}

    def write_batch(self, sessions: pa.Table, events: pa.Table, files: list[dict[str, Any]],
                    *, replace_sessions: bool, fresh: bool = False) -> None:
        """Replace what ``files`` produced before with ``sessions``/``events``.

        Same contract as :meth:`agentkpi.store.base.Store.write_batch`: events
        previously read from those paths are deleted (and, with
        ``replace_sessions``, every event of the incoming sessions); ``fresh``
        skips the deletes. Not atomic (ClickHouse has no transactions) but
        idempotent under retry: the ledger row is written last.
        """
        version = self._next_version()
        ledger = pa.table({
            "path": pa.array([f["path"] for f in files], pa.string()),
            "fingerprint": pa.array([f["fingerprint"] for f in files], pa.string()),
            "source": pa.array([f["source"] for f in files], pa.string()),
            "status": pa.array([f["status"] for f in files], pa.string()),
            "reason": pa.array([f.get("reason") for f in files], pa.string()),
            "n_sessions": pa.array([f.get("n_sessions", 0) for f in files], pa.int32()),
            "n_events": pa.array([f.get("n_events", 0) for f in files], pa.int32()),
            "ingested_at": pa.array([_now()] * len(files), pa.timestamp("us")),
            "_version": pa.array([version] * len(files), pa.uint64()),
        })
        superseded = sorted({p for f in files for p in f.get("supersedes") or ()})
        try:
            preds = []
            if files and not fresh:
                preds.append(f"file IN ({', '.join(_q(f['path']) for f in files)})")
            if superseded:
                # a compressed log segment replaces its plain twin's rows
                preds.append(f"file IN ({', '.join(_q(p) for p in superseded)})")
            # the session check also runs on a cold ingest (a session filed twice)
            if replace_sessions and sessions.num_rows:
                ids = pc.unique(sessions.column("session_id").drop_null()).to_pylist()
                if ids:
                    preds.append(f"session_id IN ({', '.join(_q(s) for s in ids)})")
            pred = " OR ".join(preds)
            # Sessions whose aggregate rows change: those of the incoming events and of
            # every event deleted or merged away below.
            self._touched = set()
            if events.num_rows and self.aggregates:
                self._touched.update(pc.unique(_not_null(events, "session_id", "").column(
                    "session_id")).to_pylist())
            if sessions.num_rows and self.aggregates:  # the session tables hold its model
                self._touched.update(pc.unique(_not_null(sessions, "session_id", "").column(
                    "session_id")).to_pylist())
            # A mutation costs seconds even when it matches nothing (new files of an
            # hourly run): look first, through the primary index, and skip it then.
            deleted = bool(preds) and bool(int(
                self._cmd(f"SELECT count() FROM events WHERE {pred}") or 0))
            if deleted:
                if self.aggregates:
                    self._touched.update(r[0] for r in self.client.query(
                        f"SELECT DISTINCT session_id FROM events WHERE {pred}").result_rows)
                # lightweight DELETE: rows are masked at once, dropped by merges
                table = (f"events_local ON CLUSTER {self.cluster}" if self.cluster
                         else "events")
                self._cmd(f"DELETE FROM {table} WHERE {pred}")
            with ExitStack() as stack:
                batch = None  # the incoming events, staged when they are all of their sessions'
                if events.num_rows:
                    rows = _not_null(events, "session_id", "")
                    if not deleted and self._new_sessions(rows):
                        batch = stack.enter_context(self._staged("events", "AS events", rows))
                        self._cmd(f"INSERT INTO events SELECT * FROM {batch}")
                    else:
                        self._insert_events(rows)
                    merged = self._resolve_event_keys(events)
                    self.merged_by_key += merged
                    if merged:  # rows of other sessions went too: refresh from the events
                        batch = None
                if sessions.num_rows:
                    self._upsert_sessions(_not_null(sessions, "session_id", ""), version)
                # Before the ledger row: a crash in between re-reads the file next time,
                # and that refreshes its sessions again.
                self._refresh_aggregates(self._touched, batch)
            if files:
                self.client.insert_arrow("ingested_files", ledger)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is a StoreError
            raise StoreError(f"writing to ClickHouse store {_redact(self.dsn)} failed: "
                             f"{exc}") from None

    def _new_sessions(self, events: pa.Table) -> bool:
        """Whether ``events`` (a batch small enough for one insert) belong only to sessions
        with no aggregate rows yet, i.e. with no event stored: then their aggregate rows
        come from the batch alone (:meth:`_refresh_aggregates`), not from a scan of the
        events table for them (random session ids touch nearly every granule of it)."""
        if self.cluster or agg.SESSION_TABLE not in self.aggregates or \
                events.nbytes > STAGE_BYTES:
            return False
        ids = pc.unique(events.column("session_id")).to_pylist()
        return not int(self._cmd(f"SELECT count() FROM {agg.SESSION_TABLE} WHERE session_id "
                                 f"IN ({', '.join(_q(str(s)) for s in ids)})") or 0)

    def _resolve_event_keys(self, events: pa.Table) -> int:
        """One row per incoming ``event_key`` (same rule as the DuckDB store)."""
        keys = pc.unique(events.column("event_key").drop_null())
        if not len(keys):
            return 0
        with self._staged("keys", "(event_key String)", pa.table({"event_key": keys})) as stage:
            losers = self.client.query(
                "SELECT event_key, file, seq, session_id FROM (SELECT event_key, file, seq, "
                "session_id, row_number() "
                f"OVER (PARTITION BY event_key ORDER BY {TOKENS_SQL} DESC, "
                "parent_id IS NULL DESC, file, seq) AS rank FROM events "
                f"WHERE event_key IN (SELECT event_key FROM {stage})) WHERE rank > 1"
            ).result_rows
        if not losers:
            return 0
        if self.aggregates:
            self._touched.update(str(r[3]) for r in losers)
        table = f"events_local ON CLUSTER {self.cluster}" if self.cluster else "events"
        for i in range(0, len(losers), 10_000):
            rows = ", ".join(f"({_q(k)}, {_q(f) if f is not None else 'NULL'}, {int(n)})"
                             for k, f, n, _ in losers[i:i + 10_000])
            self._cmd(f"DELETE FROM {table} WHERE (event_key, file, seq) IN ({rows})")
        return len(losers)

    def rewrite_llm_calls(self, start: datetime, end: datetime,
                          transform: Callable[[pa.Table], pa.Table]) -> tuple[int, int]:
        """Same contract as :meth:`agentkpi.store.base.Store.rewrite_llm_calls` (not atomic:
        the new rows are written before the old ones are deleted by their version)."""
        pred = ("event_type = 'llm_call' AND ts >= toDateTime64({a}, 6, 'UTC') AND "
                "ts < toDateTime64({b}, 6, 'UTC') AND "
                "(cost_source = 'priced' OR cost_usd IS NULL)").format(
                    a=_q(start.isoformat(sep=" ")), b=_q(end.isoformat(sep=" ")))
        old = self.client.query_arrow(f"SELECT * FROM events WHERE {pred}")
        old = pa.table({n: old.column(n).cast(f.type) for n, f in
                        zip(EVENT_NAMES, EVENT_SCHEMA, strict=True)}, schema=EVENT_SCHEMA)
        new = transform(old)
        changed = sum(a != b for a, b in zip(old.column("cost_usd").to_pylist(),
                                             new.column("cost_usd").to_pylist(), strict=True))
        if changed:
            table = f"events_local ON CLUSTER {self.cluster}" if self.cluster else "events"
            self._cmd(f"DELETE FROM {table} WHERE {pred}")
            self._insert_events(_not_null(new, "session_id", ""))
            self._refresh_aggregates(_not_null(old, "session_id", "").column("session_id")
                                     .to_pylist())
        return old.num_rows, int(changed)

    def record_audit(self, rows: list[dict[str, Any]]) -> None:
        """Append import-audit rows (``AUDIT_COLUMNS``) of one ingest run."""
        if rows:
            names = [n for n, *_ in AUDIT_COLUMNS]
            self.client.insert("import_audit", audit_values(rows), column_names=names)

    def _upsert_sessions(self, sessions: pa.Table, version: int) -> None:
        # One row per session id (a session may arrive from several files in one
        # batch); then new non-null values win over stored ones, earliest start.
        columns = f"(\n    {_ch_columns(SESSION_COLUMNS)})"
        with self._staged("sessions", columns, sessions) as stage:
            merged = ", ".join(
                "session_id" if c == "session_id"
                else f"min({c}) AS n_{c}" if c == "start_ts"
                else f"max({c}) AS n_{c}"
                for c in SESSION_NAMES)
            values = ", ".join(
                "n.session_id" if c == "session_id"
                else f"coalesce(least(n.n_{c}, o.{c}), n.n_{c}, o.{c})" if c == "start_ts"
                else f"coalesce(n.n_{c}, o.{c})"
                for c in SESSION_NAMES)
            self._cmd(
                f"INSERT INTO sessions_rmt ({', '.join(SESSION_NAMES)}, _version) "
                f"SELECT {values}, {version} FROM "
                f"(SELECT {merged} FROM {stage} GROUP BY session_id) AS n "
                f"LEFT JOIN (SELECT * FROM sessions WHERE session_id IN "
                f"(SELECT session_id FROM {stage})) AS o ON o.session_id = n.session_id")

    # ---------------------------------------------------------------- reading
    def counts(self) -> dict[str, int]:
        s, e, f = self.client.query(
            "SELECT (SELECT count() FROM sessions), (SELECT count() FROM events), "
            "(SELECT count() FROM ingested_files FINAL)").result_rows[0]
        return {"sessions": int(s), "events": int(e), "files": int(f)}

    def time_range(self) -> tuple[datetime | None, datetime | None]:
        lo, hi = self.client.query("SELECT min(ts), max(ts) FROM events").result_rows[0]
        return _naive(lo), _naive(hi)

    def fetch(self, sql: str) -> Fetched:
        """Run ``sql``; column names and rows with naive-UTC datetimes."""
        res = self.client.query(sql)
        rows = [tuple(_naive(v) for v in r) for r in res.result_rows]
        return list(res.column_names), rows

    def read_session(self, session_id: str) -> SessionRecord:
        sid = _q(session_id)
        names, srows = self.fetch(f"SELECT * FROM sessions WHERE session_id = {sid}")
        enames, erows = self.fetch(f"SELECT * FROM events WHERE session_id = {sid} "
                                   "ORDER BY ts ASC NULLS LAST, seq")
        return SessionRecord(dict(zip(names, srows[0], strict=True)) if srows else None,
                             [dict(zip(enames, r, strict=True)) for r in erows])

    def scan(self, table: ScanTable, start: datetime | None = None,
             end: datetime | None = None, batch_rows: int = 65_536) -> pa.RecordBatchReader:
        """The rows as Arrow batches (read whole: the driver has no cursor over chDB)."""
        schema, sql = scan_sql(table, CLICKHOUSE, start, end)
        got = self.client.query_arrow(sql)
        cast = pa.table([_as(got.column(f.name), f.type) for f in schema], schema=schema)
        return pa.RecordBatchReader.from_batches(schema, cast.to_batches(batch_rows))

    @contextmanager
    def low_memory(self, table: ScanTable | None = None, start: datetime | None = None,
                   end: datetime | None = None) -> Iterator[None]:
        yield  # the server manages its own caches

    @contextmanager
    def write_memory(self) -> Iterator[None]:
        yield  # the server manages its own caches

    @contextmanager
    def query_memory(self) -> Iterator[None]:
        yield  # the server manages its own caches

    def sql(self, query: str, params: Iterable[Any] | None = None) -> pa.Table:
        """Run ClickHouse SQL; ``params`` bind positionally to ``%s`` placeholders."""
        return self.client.query_arrow(query, parameters=list(params) if params else None)

    def command(self, sql: str) -> Any:
        return self._cmd(sql)

    def defer_compaction(self, defer: bool = True) -> None:
        """Nothing to defer: MergeTree merges parts in the background."""

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ClickHouseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- helpers
    def _cmd(self, sql: str) -> Any:
        return self.client.command(sql)

    def _insert_events(self, events: pa.Table) -> None:
        """Insert ``events`` in slices of at most :data:`INSERT_BYTES` of Arrow each; in
        chDB, give the engine's freed memory back to the system afterwards."""
        parts = max(1, -(-events.nbytes // INSERT_BYTES))
        step = max(1, -(-events.num_rows // parts))
        for i in range(0, events.num_rows, step):
            self.client.insert_arrow("events", events.slice(i, step))
        if self.embedded:
            try:
                self._cmd("SYSTEM JEMALLOC PURGE")
            except Exception:  # noqa: BLE001 - a chDB build without jemalloc
                self.embedded = False

    def _next_version(self) -> int:
        v = max(time.time_ns(), self._last_version + 1)
        self._last_version = v
        return v


def _not_null(table: pa.Table, column: str, fill: Any) -> pa.Table:
    col = table.column(column)
    if col.null_count == 0:
        return table
    i = table.schema.get_field_index(column)
    return table.set_column(i, column, pc.fill_null(col, fill))


def _as(col: pa.ChunkedArray, to: pa.DataType) -> pa.ChunkedArray:
    """A ClickHouse Arrow column in the canonical type (timestamps naive UTC)."""
    if pa.types.is_timestamp(col.type) and col.type.tz is not None:
        col = col.cast(pa.timestamp(col.type.unit))
    return col if col.type.equals(to) else col.cast(to)


def _naive(v: Any) -> Any:
    if isinstance(v, datetime) and v.tzinfo is not None:
        return v.astimezone(UTC).replace(tzinfo=None)
    return v


def _redact(dsn: str) -> str:
    return redact_url(dsn)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ddl_script(cluster: str | None = None, database: str = "agentkpi") -> str:
    """The schema as a SQL script (what :meth:`ClickHouseStore.migrate` runs)."""
    on = f" ON CLUSTER {cluster}" if cluster else ""
    stmts = [f"CREATE DATABASE IF NOT EXISTS {database}{on}", f"USE {database}",
             schema_migrations_ddl(cluster)]
    for _version, _desc, statements in migrations(cluster):
        stmts.extend(statements)
    return ";\n\n".join(stmts) + ";\n"


if __name__ == "__main__":  # python -m agentkpi.store.clickhouse [CLUSTER] [DATABASE]
    import sys

    print(ddl_script(*sys.argv[1:3]), end="")
