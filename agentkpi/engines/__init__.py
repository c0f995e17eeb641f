"""Store engines. DuckDB (embedded, :class:`agentkpi.store.Store`) is the default.

An engine's store object offers the same small interface the pipeline and the
query layer use: ``fingerprints()``, ``write_batch(...)``, ``counts()``,
``time_range()``, ``run_kpis(KpiQuery)``, ``close()``.
"""

from __future__ import annotations

from typing import Any

from agentkpi import config
from agentkpi.errors import UsageError


def open_store(engine: str | None = None, dsn: str | None = None, path: str | None = None,
               *, read_only: bool = False) -> Any:
    engine = config.get("engine", engine)
    if engine == "duckdb":
        from agentkpi.store import Store

        return Store(path, read_only=read_only)
    if engine == "clickhouse":
        dsn = config.get("dsn", dsn)
        if not dsn:
            raise UsageError("--engine clickhouse needs --dsn (or AGENTKPI_DSN), e.g. "
                             "clickhouse://default@localhost:8123/agentkpi or chdb:///tmp/ak")
        try:
            from agentkpi.engines.clickhouse import ClickHouseStore
        except ImportError as exc:
            raise UsageError(f"the ClickHouse engine needs the extra: pip install "
                             f"'agentkpi[clickhouse]' ({exc})") from None
        return ClickHouseStore(dsn, read_only=read_only)
    raise UsageError(f"unknown engine {engine!r}; use duckdb or clickhouse")
