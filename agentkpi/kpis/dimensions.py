"""The dimension registry: every name a KPI can be grouped or filtered by.

One table, next to the KPI catalogue, read by everything that groups or filters:
``agentkpi query`` and :func:`agentkpi.query` (``by=``, ``where=``), the
dashboard's breakdown pages and filters (:mod:`agentkpi.views`), the reports,
the plots and the alert rules (``by =``, ``where =``).

A dimension is portable SQL over the canonical tables, aliased ``e`` (events)
and ``s`` (sessions, joined on ``session_id`` when a dimension or filter reads
it). ``level`` says which rows the value belongs to:

* ``"event"``: the expression reads ``e`` only; a filter keeps matching *events*
  (``tool=bash`` keeps the bash calls of a session, not the whole session);
* ``"session"``: the expression reads ``s`` (possibly ``e`` as well); the engine
  joins sessions. ``user``/``project`` filters keep or drop whole sessions.

A NULL value stays NULL (shown as ``(none)`` by the dashboard). Besides the
table, ``data.KEY`` names any key of an event's ``data`` object (see
:func:`resolve_dimension`).

**Adding a dimension is one row** in :data:`DIMENSIONS` (its column must exist in
:mod:`agentkpi.model`): the query layer, filters and alert rules accept it at once;
give it a ``page`` title and the dashboard also gets a breakdown page (with
:data:`agentkpi.views.DEFAULT_BREAKDOWN_KPIS` unless the view names others).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from agentkpi.errors import UsageError

__all__ = ["DIMENSIONS", "Dimension", "PAGE_DIMENSIONS", "describe_dimensions",
           "resolve_dimension"]


class _JsonDialect(Protocol):
    def json_field(self, key: str) -> str: ...


@dataclass(frozen=True)
class Dimension:
    """A group-by / filter dimension over the canonical tables."""

    name: str
    #: Portable SQL over ``e`` (events) and ``s`` (sessions).
    expr: str
    #: ``"event"`` (reads ``e`` only) or ``"session"`` (reads ``s``: sessions are joined).
    level: str
    description: str
    #: Title of the dashboard's breakdown page (``/breakdown/<name>``); None = no page.
    page: str | None = None


#: The registry, in the order menus and help list it.
DIMENSIONS: dict[str, Dimension] = {d.name: d for d in (
    Dimension("session", "e.session_id", "event", "Session id."),
    Dimension("user", "coalesce(s.user_id, e.session_id)", "session",
              "User of the session (the session id when it has none, as the users KPI).",
              page="Users"),
    Dimension("tool", "e.tool", "event",
              "Tool of tool_call / tool_output events (NULL for other events).", page="Tools"),
    Dimension("agent", "coalesce(e.agent, s.agent)", "session",
              "Agent that emitted the event, else the session's agent.", page="Agents"),
    Dimension("model", "coalesce(e.model, s.model)", "session",
              "Model of an llm_call, else the session's main model.", page="Models"),
    Dimension("project", "s.project", "session", "Project of the session.",
              page="Projects"),
    Dimension("machine", "s.machine", "session",
              "Machine the session was imported from (`ingest --machine`)."),
    Dimension("mcp_server", "e.mcp_server", "event",
              "MCP server of MCP tool events (`mcp__<server>__<tool>`)."),
    Dimension("event_type", "e.event_type", "event", "Event type."),
    Dimension("error_type", "e.error_type", "event", "Error class of error events."),
)}

#: Dimensions with a dashboard breakdown page, in registry (= navigation) order.
PAGE_DIMENSIONS: tuple[str, ...] = tuple(n for n, d in DIMENSIONS.items() if d.page)

_DATA_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def resolve_dimension(name: str, dialect: _JsonDialect | None = None) -> Dimension:
    """The :class:`Dimension` called ``name``; ``data.KEY`` reads a key of the event data.

    ``dialect`` spells the JSON access of ``data.KEY`` (default: DuckDB's).
    Raises :class:`~agentkpi.errors.UsageError` naming the choices.
    """
    if name in DIMENSIONS:
        return DIMENSIONS[name]
    if name.startswith("data."):
        key = name[5:]
        if not _DATA_KEY.match(key):
            raise UsageError(f"bad data key {key!r} in dimension {name!r}; use data.KEY with "
                             "letters, digits, '_' (and '.' for nested keys)")
        if dialect is None:
            from agentkpi.store.duckdb import DUCKDB

            dialect = DUCKDB
        return Dimension(name, dialect.json_field(key), "event", f"data.{key} of the event.")
    raise UsageError(f"unknown dimension {name!r}; choose from "
                     f"{', '.join(DIMENSIONS)} or data.KEY (any key of the event data)")


def describe_dimensions() -> list[dict[str, str]]:
    """The registry as rows (for ``agentkpi query --list`` and the docs)."""
    rows = [{"name": d.name, "level": d.level, "description": d.description}
            for d in DIMENSIONS.values()]
    rows.append({"name": "data.KEY", "level": "event",
                 "description": "Any key of the event's data object, e.g. data.flavor."})
    return rows
