"""One error base for everything agentkpi raises on purpose.

Every message says what was wrong, where, and what to try next. The CLI prints
``str(error)`` and exits non-zero without a traceback.
"""

from __future__ import annotations


class AgentKpiError(Exception):
    """Base class of every error agentkpi raises deliberately."""

    exit_code = 1


class UsageError(AgentKpiError):
    """The caller asked for something malformed (bad flag, bad range, bad name)."""


class TimeInputError(UsageError):
    """A time, range or time zone given by the caller could not be read.

    Raised only by :mod:`agentkpi.times`; a usage error, so the CLI exits 1 with
    one line and the web API answers 400 with a JSON error.
    """


class SourceError(AgentKpiError):
    """A source could not be opened or listed at all (not a single bad file)."""


class StoreError(AgentKpiError):
    """The canonical store could not be opened, migrated or written."""


class StoreMissingError(StoreError):
    """There is no store yet where one was expected (nothing ingested there)."""


class StoreBusyError(StoreError):
    """The store exists but cannot be opened now (another process holds its lock)."""


class DataError(AgentKpiError):
    """Input data had problems and ``--strict`` asked for them to be fatal."""

    exit_code = 2
