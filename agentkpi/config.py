"""Settings as one declarative table.

Resolution order: explicit argument, ``AGENTKPI_*`` environment variable,
default. The same table drives ``agentkpi config`` and the test that every
setting is documented.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "agentkpi"


def flag(raw: str) -> bool:
    """An on/off environment value: empty, ``0``, ``false``, ``no`` are off."""
    return raw.strip().lower() not in ("", "0", "false", "no", "off")


_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B)", re.IGNORECASE)


def memory_size(raw: str) -> str:
    """A memory size as DuckDB reads it: ``512MB``, ``1.5GB``, ``2GiB``."""
    if not _SIZE.fullmatch(raw.strip()):
        raise ValueError("expected a size such as 512MB or 2GB")
    return raw.strip()


def count(raw: str) -> int:
    """A whole number >= 0."""
    n = int(raw)
    if n < 0:
        raise ValueError(f"{n} is negative")
    return n


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: Any
    type: Callable[[str], Any]  # reads the environment's text
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting("store", "AGENTKPI_STORE", str(_default_home() / "agentkpi.duckdb"), str,
            "Path of the canonical DuckDB store (created on first use)."),
    Setting("engine", "AGENTKPI_ENGINE", "duckdb", str,
            "Store engine: 'duckdb' (embedded default) or 'clickhouse'."),
    Setting("dsn", "AGENTKPI_DSN", "", str,
            "ClickHouse DSN, e.g. clickhouse://user@host:8123/db or chdb:///path."),
    Setting("log_dir", "AGENTKPI_LOG_DIR", "agentkpi-telemetry", str,
            "Directory of the event log written by the default Recorder."),
    Setting("durability", "AGENTKPI_DURABILITY", "batch", str,
            "Event-log durability: 'os', 'batch' (fsync per flushed batch) or 'always'."),
    Setting("seed002_tz", "AGENTKPI_SEED002_TZ", "", str,
            "IANA time zone of seed-002 metrics.jsonl naive timestamps (empty = UTC)."),
    Setting("alert_rules", "AGENTKPI_ALERT_RULES", "", str,
            "Alert rules file evaluated after every rollup (default: alerts.toml next to "
            "the store, when present)."),
    Setting("threads", "AGENTKPI_THREADS", 0, count,
            "Worker processes for ingest (0 = number of CPUs)."),
    Setting("ingest_memory", "AGENTKPI_INGEST_MEMORY", "512MB", memory_size,
            "DuckDB's buffer pool while ingest writes the store (e.g. 512MB, 2GB): the "
            "blocks it writes are not kept in memory beyond this; big batches spill to disk."),
    Setting("aggregate_memory", "AGENTKPI_AGGREGATE_MEMORY", "1GB", memory_size,
            "DuckDB's memory while a writer builds the aggregate tables from every event "
            "(the end of a cold ingest, an old store after an upgrade): bigger GROUP BYs "
            "spill to <store>.tmp."),
    Setting("raise_errors", "AGENTKPI_RAISE_ERRORS", False, flag,
            "Re-raise errors made while recording (SDK, Monitor) instead of counting them; "
            "for tests and debugging."),
    Setting("allowed_hosts", "AGENTKPI_ALLOWED_HOSTS", "localhost,127.0.0.1,::1", str,
            "Host names the dashboard answers to (comma-separated; '*' = any, "
            "'.example.com' = a domain); other Host headers get 400 (DNS rebinding)."),
    Setting("debug", "AGENTKPI_DEBUG", "", str,
            "Set to 1 to let the CLI show the traceback of an unexpected error."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def get(name: str, explicit: Any = None) -> Any:
    """Resolve one setting: explicit value, then env var, then default."""
    setting = _BY_NAME[name]
    if explicit not in (None, ""):
        return explicit
    raw = os.environ.get(setting.env)
    if raw:
        try:
            return setting.type(raw)
        except ValueError as exc:
            from agentkpi.errors import UsageError

            raise UsageError(f"{setting.env}={raw!r} is not a valid value ({exc}): "
                             f"{setting.doc} Fix or unset it.") from None
    return setting.default


def resolved() -> list[dict[str, Any]]:
    """Every setting with its current value and where the value came from."""
    from agentkpi.errors import UsageError

    out = []
    for s in SETTINGS:
        from_env = os.environ.get(s.env) not in (None, "")
        try:
            value = get(s.name)
        except UsageError:  # shown, not raised, where the settings are listed
            value = f"INVALID {os.environ.get(s.env)!r}"
        out.append({"name": s.name, "env": s.env, "value": value,
                    "origin": "env" if from_env else "default", "doc": s.doc})
    return out
