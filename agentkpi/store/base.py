"""The store seam: what every engine offers (:class:`Store`), how it spells SQL (:class:`Dialect`).

Everything above the store (ingest, the KPI compiler, the query layer, exports,
the dashboard, reports, alerts) talks to a store only through these two
protocols; :func:`agentkpi.store.open_store` is the one way to get one. An
engine is one module beside this one (:mod:`.duckdb`, :mod:`.clickhouse`)
holding its store class and its dialect.

The store executes SQL; it does not compile KPIs. :mod:`agentkpi.kpis.sql`
builds the SQL in the store's :attr:`Store.dialect` and runs it through
:meth:`Store.fetch`, so the dependency points one way: kpis -> store.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, Self

import pyarrow as pa

#: Column names and rows of a query (datetimes naive UTC on every engine).
Fetched = tuple[list[str], list[tuple[Any, ...]]]

#: The canonical tables an export can stream.
ScanTable = Literal["events", "sessions"]

#: All billed tokens of an event (the four exclusive buckets), NULLs as 0; portable SQL.
#: Added as DOUBLE: two valid 64-bit counts may sum past BIGINT (an overflow would fail
#: the whole write); it only ranks rows, and doubles are exact to 2**53.
TOKENS_SQL = ("(CAST(coalesce(prompt_tokens, 0) AS DOUBLE) + "
              "CAST(coalesce(completion_tokens, 0) AS DOUBLE) + "
              "CAST(coalesce(cache_read_tokens, 0) AS DOUBLE) + "
              "CAST(coalesce(cache_creation_tokens, 0) AS DOUBLE))")


def audit_values(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """Import-audit rows as values in ``AUDIT_COLUMNS`` order; a count past the BIGINT
    column (the tokens of calls with extreme counts) is stored as its largest value."""
    from agentkpi.quality import AUDIT_COLUMNS

    names = [n for n, *_ in AUDIT_COLUMNS]
    return [[min(r[n], 2**63 - 1) if n == "n" and isinstance(r.get(n), int) else r.get(n)
             for n in names] for r in rows]


def scan_sql(table: ScanTable, dialect: Dialect, start: datetime | None = None,
             end: datetime | None = None) -> tuple[pa.Schema, str]:
    """The schema and SELECT of a :meth:`Store.scan` on any engine: ``events`` in
    ``[start, end)``, or the ``sessions`` with an event in it."""
    from agentkpi.model import EVENT_SCHEMA, SESSION_SCHEMA

    conds = []
    if start is not None:
        conds.append(f"ts >= {dialect.ts_literal(start)}")
    if end is not None:
        conds.append(f"ts < {dialect.ts_literal(end)}")
    where = " AND ".join(conds)
    if table == "events":
        sql = f"SELECT {', '.join(EVENT_SCHEMA.names)} FROM events"
        return EVENT_SCHEMA, sql + (f" WHERE {where}" if where else "")
    if table == "sessions":
        sql = f"SELECT {', '.join(SESSION_SCHEMA.names)} FROM sessions"
        if where:
            sql += f" WHERE session_id IN (SELECT session_id FROM events WHERE {where})"
        return SESSION_SCHEMA, sql
    raise ValueError(f"cannot scan {table!r}; use events or sessions")


class Dialect(Protocol):
    """How one engine spells the aggregates and literals the KPI compiler uses.

    Every value that enters SQL text goes through :meth:`str_literal` or
    :meth:`ts_literal`; callers never quote by hand.
    """

    name: str

    def count_if(self, where: str) -> str: ...
    def sum_if(self, expr: str, where: str, order: str = "") -> str: ...
    def min_if(self, expr: str, where: str) -> str: ...
    def max_if(self, expr: str, where: str) -> str: ...
    def count_distinct_if(self, expr: str, where: str) -> str: ...
    def distinct_list_if(self, expr: str, where: str) -> str: ...
    def count_distinct_lists(self, expr: str) -> str: ...
    def list_of(self, expr: str) -> str: ...
    def quantile_if(self, expr: str, p: float, where: str) -> str: ...
    def seconds_between(self, later: str, earlier: str) -> str: ...
    def bucket(self, grain: str | None, col: str, tz: str, week_start: int) -> str: ...
    def str_literal(self, value: str) -> str: ...
    def ts_literal(self, dt: datetime) -> str: ...
    def json_field(self, key: str) -> str: ...


@dataclass
class SessionRecord:
    """One session as stored: its ``sessions`` row (None when only events exist) and
    every event (all canonical event columns) in recorded order (``ts`` NULLs last, ``seq``)."""

    session: dict[str, Any] | None
    events: list[dict[str, Any]] = field(default_factory=list)


class Store(Protocol):
    """The canonical store on one engine: ``sessions``, ``events`` and the ingest ledger.

    Implemented by :class:`agentkpi.store.duckdb.DuckDBStore` and
    :class:`agentkpi.store.clickhouse.ClickHouseStore`; opened by
    :func:`agentkpi.store.open_store`.
    """

    #: ``"duckdb"`` or ``"clickhouse"``.
    engine: str
    #: Where the data lives (a file path, a chDB directory or a DSN), for messages.
    path: str
    read_only: bool
    @property
    def dialect(self) -> Dialect:
        """How this engine spells SQL (the KPI compiler builds queries with it)."""
        ...

    #: Event rows removed so far because their ``event_key`` was already stored.
    merged_by_key: int
    #: The materialised hourly aggregate tables kept up to date (empty: KPIs read the
    #: events; see :mod:`agentkpi.kpis.aggregates`).
    aggregates: frozenset[str]

    # ---------------------------------------------------------------- schema
    def migrate(self) -> list[int]:
        """Apply pending schema migrations; the versions applied."""
        ...

    def schema_version(self) -> int:
        """The newest migration applied."""
        ...

    # ---------------------------------------------------------------- ingest
    def changed_files(self, listing: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The ``(path, fingerprint)`` pairs new or changed since their last ingest
        (an empty fingerprint always counts as changed)."""
        ...

    def fingerprints(self, prefix: str = "") -> dict[str, str]:
        """``{path: fingerprint}`` of the ledger rows whose path starts with ``prefix``
        (the collector reads its log offsets and trace units back this way)."""
        ...

    def skipped_files(self) -> dict[str, str]:
        """``{path: reason}`` of every file the ledger holds as skipped (still unread)."""
        ...

    def write_batch(self, sessions: pa.Table, events: pa.Table, files: list[dict[str, Any]],
                    *, replace_sessions: bool, fresh: bool = False) -> None:
        """Replace what ``files`` produced before with ``sessions`` / ``events``.

        ``files`` are ledger rows (path, fingerprint, source, status, reason,
        n_sessions, n_events, optional supersedes). Events previously read from
        those paths (and from superseded paths) are deleted; with
        ``replace_sessions`` every event of the incoming sessions too. ``fresh``
        (cold ingest) skips the per-file delete.
        """
        ...

    def bulk_load(self) -> AbstractContextManager[None]:
        """A context for a large load into an empty store (a cold ingest): the writes
        inside it leave the aggregate tables alone, and when it ends they are built from
        the stored events at once (per write, their refresh cost DuckDB's cold ingest at
        200k sessions a sixth of its time; BENCHMARKS.md §23). Meanwhile they are marked
        stale: queries read the events, and if the block raises or the process dies,
        the next writer to open the store builds them. An engine whose writes refresh
        them as cheaply keeps doing so (ClickHouse)."""
        ...

    def rewrite_llm_calls(self, start: datetime, end: datetime,
                          transform: Callable[[pa.Table], pa.Table]) -> tuple[int, int]:
        """Replace the llm_calls in ``[start, end)`` without a source cost by
        ``transform(rows)`` (an Arrow table of those event rows, same columns);
        returns (rows read, rows whose cost changed)."""
        ...

    def record_audit(self, rows: list[dict[str, Any]]) -> None:
        """Append import-audit rows (:data:`agentkpi.quality.AUDIT_COLUMNS`) of one run."""
        ...

    # ---------------------------------------------------------------- reading
    def fetch(self, sql: str) -> Fetched:
        """Run a query written in :attr:`dialect` (e.g. compiled KPI SQL)."""
        ...

    def read_session(self, session_id: str) -> SessionRecord:
        """One session's row and events (both empty when the id is unknown)."""
        ...

    def scan(self, table: ScanTable, start: datetime | None = None,
             end: datetime | None = None, batch_rows: int = 65_536) -> pa.RecordBatchReader:
        """Stream ``events`` with ``start <= ts < end`` (naive UTC), or the ``sessions``
        with at least one such event (every row when both ends are open), in the
        canonical schema (:data:`agentkpi.model.EVENT_SCHEMA` / ``SESSION_SCHEMA``)."""
        ...

    def low_memory(self, table: ScanTable | None = None, start: datetime | None = None,
                   end: datetime | None = None) -> AbstractContextManager[None]:
        """A context for one long ``scan(table, start, end)``: the engine keeps only a
        small cache meanwhile (as much as the scan needs; unnamed, as much as any)."""
        ...

    def write_memory(self) -> AbstractContextManager[None]:
        """A context for a long write (ingest): the engine's cache is bounded meanwhile
        (setting ``ingest_memory``); what it writes is on disk, not kept in memory."""
        ...

    def query_memory(self) -> AbstractContextManager[None]:
        """A context for the few queries of a process that exits after them (the hourly
        rollup's KPIs): the engine keeps only a small cache of what they read, and a query
        that needs more than that runs again without the bound."""
        ...

    def defer_compaction(self, defer: bool = True) -> None:
        """Until the store is closed (or this is called with ``defer`` false), writes add
        their rows and leave the engine's storage otherwise as it is (an incremental run:
        its cost follows the new data); a later writer that does not defer reorganises
        what they left."""
        ...

    def counts(self) -> dict[str, int]:
        """``{"sessions": n, "events": n, "files": n}``."""
        ...

    def time_range(self) -> tuple[datetime | None, datetime | None]:
        """The first and last event time (naive UTC), ``(None, None)`` when empty."""
        ...

    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
