"""Helpers shared by the coding-agent transcript importers (Codex CLI, Gemini CLI).

Kept small on purpose: line streaming over a file's bytes, the event key, the
``mcp__<server>__<tool>`` split and a local directory walk. Each importer owns its
own format rules; the import-audit kinds live in :data:`agentkpi.quality.AUDIT_KINDS`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

import orjson

from agentkpi.model import EVENT_COLUMNS, CanonicalBatch
from agentkpi.quality import Quality, decode_json

_EVENT_NAMES = tuple(name for name, *_ in EVENT_COLUMNS)


def add_event(batch: CanonicalBatch, **values: Any) -> None:
    """One event row, appended as a tuple in column order (the batch's fast path)."""
    batch.event_rows.append(tuple(map(values.get, _EVENT_NAMES)))


def event_key(*parts: str | bytes) -> str:
    """A source-wide event identity (the store keeps one row per key)."""
    h = hashlib.blake2b(digest_size=12)
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\x00")
    return h.hexdigest()


def json_lines(fh: IO[bytes], q: Quality, path: str
               ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) of every good line of the binary stream ``fh``.

    Reads line by line (memory stays at the longest line, not the file); blank lines
    are skipped; a line that is not a JSON object is counted (``q.malformed``) and
    skipped: a torn last line of a live transcript is read whole on the next ingest,
    once the file has grown.
    """
    n = 0
    loads = orjson.loads
    for lineno, line in enumerate(fh, 1):
        if not line.strip():
            continue
        n += 1
        try:
            obj = loads(line)
        except orjson.JSONDecodeError:
            try:  # one bad value (NaN, 1e400, deep nesting) costs that value, not the line
                obj = decode_json(line, q, f"{path}:{lineno}")
            except ValueError:
                obj = None
        if not isinstance(obj, dict):
            q.malformed("bad_json", f"{path}:{lineno}")
            continue
        yield lineno, obj
    q.count_audit("lines_read", n)


_MCP = re.compile(r"^mcp__(.+?)__(.+)$")


def mcp_server(tool: str | None) -> str | None:
    """``mcp__<server>__<tool>`` -> server (the name MCP tools get in Claude Code and Codex)."""
    if not tool:
        return None
    m = _MCP.match(tool)
    return m.group(1) if m else None


def walk_local(root: str, keep: Callable[[str, str], bool]) -> dict[str, str]:
    """``{path: "size:mtime_ns"}`` of the files under ``root`` for which ``keep(dir, name)``.

    One ``os.scandir`` pass and one stat per kept file; the value is the ready-made
    fingerprint the ingest ledger compares.
    """
    out: dict[str, str] = {}
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif keep(d, e.name) and e.is_file():
                    st = e.stat()
                    out[e.path] = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                continue
    return dict(sorted(out.items()))


def parse_bytes_by_stream(parse_stream: Callable[..., None]
                          ) -> Callable[[str, bytes, Quality], CanonicalBatch]:
    """The importer protocol's ``parse_file(path, raw, q)`` for an importer that streams:
    the bytes are read through its ``parse_stream(path, fh, q, into=batch)``."""
    import io

    def parse_file(path: str, raw: bytes, q: Quality) -> CanonicalBatch:
        batch = CanonicalBatch()
        parse_stream(path, io.BytesIO(raw), q, into=batch)
        return batch

    return parse_file
