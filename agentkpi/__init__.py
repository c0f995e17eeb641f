"""agentkpi: turn LLM-agent telemetry into KPIs a team can act on.

The public facade is small; everything else lives in modules named for their
pipeline stage (``sources``, ``store``, ``kpis``, ``sinks``, ``sdk``,
``alerts``, ``web``, ``cli``). Names are imported lazily so that
``import agentkpi`` stays cheap for agents that only record.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "AgentKpiError": "agentkpi.errors",
    "Store": "agentkpi.store",
    "open_store": "agentkpi.store",
    "CATALOGUE": "agentkpi.kpis",
    "rollup": "agentkpi.rollups",
    "ingest": "agentkpi.ingestion",
    "generate_sessions": "agentkpi.generate",
    "Recorder": "agentkpi.sdk",
    "record": "agentkpi.sdk",
    "session": "agentkpi.sdk",
    "flush": "agentkpi.sdk",
    "Monitor": "agentkpi.monitor",
    "query": "agentkpi.queries",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkpi' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
