"""Recording SDK: put agent telemetry into a durable local event log.

Two ways in (logfire-style: a default instance plus explicit objects)::

    import agentkpi.sdk as kpi
    kpi.record("feedback", session_id="s1", rating="up")   # no setup needed
    with kpi.session(user_id="alice") as s:
        s.llm_call(model="m", prompt_tokens=10, completion_tokens=2)
    kpi.flush()

    rec = agentkpi.Recorder("telemetry/")                    # explicit, no globals
    with rec.session(user_id="alice", model="claude-sonnet-4") as s:
        ...
    rec.flush()

The default recorder writes to ``AGENTKPI_LOG_DIR`` with durability
``AGENTKPI_DURABILITY`` (see :mod:`agentkpi.config`); it is created on first
use and nothing runs at import time. Format and guarantees of the log:
:mod:`agentkpi.sdk.eventlog`; docs: ``docs/sdk.md``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from agentkpi.sdk.recorder import Recorder, Session

__all__ = ["Recorder", "Session", "record", "session", "flush", "default_recorder",
           "set_default_recorder"]

_default: Recorder | None = None
_default_lock = threading.Lock()


def default_recorder() -> Recorder:
    """The process-wide recorder configured from ``AGENTKPI_*`` settings."""
    global _default
    rec = _default
    if rec is None:
        with _default_lock:
            if _default is None:
                _default = _configured_recorder()
            rec = _default
    return rec


def _configured_recorder() -> Recorder:
    """The recorder of the settings; a bad AGENTKPI_DURABILITY never raises into the host.

    The SDK's promise is that recording never breaks the program it observes: an
    invalid value falls back to ``batch``, is logged, and shows in ``stats()``
    (``last_error``) - unless ``AGENTKPI_RAISE_ERRORS`` asks for errors.
    """
    from agentkpi import config
    from agentkpi.sdk.eventlog import DURABILITY_MODES
    from agentkpi.sdk.recorder import _raise_errors

    durability = str(config.get("durability"))
    if durability in DURABILITY_MODES or _raise_errors():
        return Recorder(config.get("log_dir"), durability=durability)
    rec = Recorder(config.get("log_dir"), durability="batch")
    rec._last_error = (f"AGENTKPI_DURABILITY={durability!r} is not one of "
                       f"{', '.join(DURABILITY_MODES)}; using 'batch'")
    logging.getLogger("agentkpi.sdk").warning("%s", rec._last_error)
    return rec


def set_default_recorder(rec: Recorder | None) -> Recorder | None:
    """Replace the default recorder (returns the previous one, not closed)."""
    global _default
    with _default_lock:
        old, _default = _default, rec
    return old


def record(type: str, /, session_id: str | None = None, **data: Any) -> None:  # noqa: A002
    """Record one event on the default recorder."""
    default_recorder().record(type, session_id=session_id, **data)


def session(session_id: str | None = None, user_id: str | None = None, model: str | None = None,
            project: str | None = None, agent: str | None = None, **data: Any) -> Session:
    """Start a session on the default recorder (see :meth:`Recorder.session`)."""
    return default_recorder().session(session_id, user_id=user_id, model=model,
                                      project=project, agent=agent, **data)


def flush(timeout: float | None = 30.0) -> bool:
    """Flush the default recorder (no-op when nothing was recorded)."""
    rec = _default
    return True if rec is None else rec.flush(timeout)
