"""The canonical store: one typed seam, one module per engine.

* :mod:`agentkpi.store.base`: the :class:`Store` protocol (what every engine
  offers) and the :class:`Dialect` protocol (how it spells SQL).
* :mod:`agentkpi.store.duckdb`: the embedded default (:class:`DuckDBStore`).
* :mod:`agentkpi.store.clickhouse`: ClickHouse servers and in-process chDB
  (``pip install 'agentkpi[clickhouse]'``).

:func:`open_store` is the only way an entry point (rollup, ingest, query,
serve, report, plot, alerts, export, status) opens a store, so they all honour
the same configuration: ``--engine`` / ``AGENTKPI_ENGINE``, ``--dsn`` /
``AGENTKPI_DSN``, ``--store`` / ``AGENTKPI_STORE``.
"""

from __future__ import annotations

import os

from agentkpi import config
from agentkpi.errors import UsageError
from agentkpi.store.base import Dialect, Fetched, SessionRecord, Store
from agentkpi.store.duckdb import DuckDBStore

__all__ = ["Dialect", "DuckDBStore", "Fetched", "SessionRecord", "Store", "open_store"]


def open_store(engine: str | None = None, dsn: str | None = None,
               path: str | os.PathLike[str] | None = None, *, read_only: bool = False,
               lock_timeout: float | None = None) -> Store:
    """Open the configured store (arguments override the configuration).

    ``engine``: ``duckdb`` (default; ``path`` is the file) or ``clickhouse``
    (``dsn``, e.g. ``clickhouse://user@host:8123/db`` or ``chdb:///dir``).
    ``read_only`` opens for reading (a missing DuckDB file is an error then).
    """
    engine = config.get("engine", engine)
    if engine == "duckdb":
        return DuckDBStore(path, read_only=read_only, lock_timeout=lock_timeout)
    if engine == "clickhouse":
        dsn = config.get("dsn", dsn)
        if not dsn:
            raise UsageError("--engine clickhouse needs --dsn (or AGENTKPI_DSN), e.g. "
                             "clickhouse://default@localhost:8123/agentkpi or chdb:///tmp/ak")
        try:
            import clickhouse_connect  # noqa: F401  (the optional extra)

            from agentkpi.store.clickhouse import ClickHouseStore
        except ImportError as exc:
            raise UsageError(f"the ClickHouse engine needs the extra: pip install "
                             f"'agentkpi[clickhouse]' ({exc})") from None
        return ClickHouseStore(dsn, read_only=read_only)
    raise UsageError(f"unknown engine {engine!r}; use duckdb or clickhouse")
