"""One error base for everything agentkpi raises on purpose.

Every message says what was wrong, where, and what to try next. The CLI prints
``str(error)`` and exits non-zero without a traceback.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit


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
class OutputError(AgentKpiError):
    """An output (rollup target, ``--out`` file, upload) could not be written."""


def os_reason(exc: OSError) -> str:
    """``Not a directory: '/x/hourly'`` - the OS's words and the path, without the errno."""
    what = exc.strerror or str(exc) or type(exc).__name__
    return f"{what}: {exc.filename!r}" if exc.filename else what


_SECRET_PARAM = re.compile(r"(?i)(token|key|secret|pass|pwd|sig|auth|code)")


def redact_url(url: str, keep_path: bool = True) -> str:
    """``url`` safe to print: password -> ``***``, secret-looking query values -> ``***``;
    ``keep_path=False`` also hides the path (webhook URLs carry their secret there).
    """
    try:
        u = urlsplit(url)
        host = u.hostname or ""
        port = u.port
    except ValueError:
        return "<unprintable URL>"
    if not u.scheme:
        return url
    user = f"{u.username}{':***' if u.password is not None else ''}@" if u.username else ""
    netloc = f"{user}{host}{f':{port}' if port else ''}"
    if not keep_path:
        return f"{u.scheme}://{netloc}{'/***' if u.path.strip('/') else u.path}"
    query = "&".join(
        f"{k}={'***' if _SECRET_PARAM.search(k) else v}" if sep else k
        for part in u.query.split("&") if part for k, sep, v in (part.partition("="),))
    return f"{u.scheme}://{netloc}{u.path}{'?' + query if query else ''}"


class DataError(AgentKpiError):
    """Input data had problems and ``--strict`` asked for them to be fatal."""

    exit_code = 2
