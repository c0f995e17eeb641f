"""Importers: each turns one source format into canonical rows.

A source is a module with three plain callables (no class hierarchy):

``NAME: str``
    Short name recorded in ``sessions.source`` and in the ingest report.
``detect(fs, root) -> bool``
    True when the directory ``root`` on fsspec filesystem ``fs`` looks like
    this format (used by ``agentkpi rollup --source DIR`` auto-detection).
``list_files(fs, root) -> list[str]``
    The data files under ``root`` (full fsspec paths), in a stable order.
``default_roots() -> list[str]`` (optional)
    Where the format lives on this machine (e.g. ``~/.claude``): ``agentkpi ingest
    --format NAME`` without ``--source`` reads those that exist.
``parse_stream(path, fh, q, *, into, opener)`` (optional, instead of parse_file)
    For huge files: read the open binary file ``fh`` chunk by chunk into the
    batch ``into``; ``opener(path)`` opens another file of the tree.
``parse_file(path, raw, q) -> CanonicalBatch``
    Bytes of one file in, canonical rows out. Never raises on bad data: bad
    lines/values are counted on ``q``; a file that cannot be parsed at all is
    reported with ``q.skip(path, kind, reason)`` and yields an empty batch.

What importers put in rows (docs/sources.md): the token convention of
:mod:`agentkpi.model` (four exclusive buckets; subtract cache tokens from an
inclusive input count; reasoning inside completion); ``cost_usd=None`` when the
source has no cost (ingest prices it); an ``event_key`` when the event has an
identity across files and machines (an API response id, a tool-call id), so
the store keeps it once.

The import audit: on the ``q`` they are given, importers count what they read
and why a line did not become a row, e.g. ``q.count_audit("files")``,
``q.count_audit("lines_read", n)``, ``q.count_audit("usage_lines_merged")``,
``q.count_audit("counters_ignored")`` and ``q.malformed("bad_json", where)``
for a skipped line (kinds: :data:`agentkpi.quality.AUDIT_KINDS`). Ingest adds
the pricing and store counters, prints them, writes them to the run report
and the store's ``import_audit`` table.

Ingest is per file: a file whose (path, size, mtime/etag) is unchanged is not
read again; a changed file replaces exactly the event rows it produced before
(``events.file``), and session rows are upserted. Register a new source by
adding its module to :data:`ORDER`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from agentkpi.errors import SourceError

#: Importer modules in auto-detection order, imported when first asked for (a cron run
#: reading one format loads one importer). The main job's format first (its detection
#: lists one folder); it refuses a Codex home (``sessions/YYYY/MM/DD``), whose importer
#: comes next. A module's name is its ``NAME`` with ``-`` spelled ``_``.
ORDER = ("session_dataset", "codex", "gemini_cli", "eventlog", "seed003", "seed002", "otel",
         "claude_code")


def _load(module: str) -> ModuleType:
    return importlib.import_module(f"agentkpi.sources.{module}")


def __getattr__(name: str) -> Any:
    if name == "SOURCES":  # every importer module, in detection order
        return [_load(m) for m in ORDER]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def by_name(name: str) -> ModuleType:
    """The source called ``name``; ``-`` and ``_`` are the same (``gemini_cli``)."""
    wanted = name.strip().lower().replace("-", "_")
    if wanted in ORDER:
        return _load(wanted)
    known = ", ".join(s.NAME for s in __getattr__("SOURCES"))
    raise SourceError(f"unknown source format {name!r}; known formats: {known}")


def detect(fs: Any, root: str) -> ModuleType:
    """The first source whose ``detect`` accepts ``root``."""
    for module in ORDER:
        src = _load(module)
        if src.detect(fs, root):
            return src
    known = ", ".join(s.NAME for s in __getattr__("SOURCES"))
    raise SourceError(
        f"could not recognise the data under {root!r} (looked for: {known}); "
        "pass --format NAME, or check the path"
    )
