"""Seed-002 monitor logs: ``metrics.jsonl`` written by GenerationMonitor's
FileMetricHandler (and by :class:`agentkpi.Monitor`).

One line per recorded metric: ``{"metric": name, "value": v, "timestamp":
ISO, ...metadata}``. Every line becomes an event ``metric`` with
``data = {"name", "value", ...metadata}``; ``model`` comes from
``metadata.model_name`` or from the name of a ``model_usage:<model>`` metric,
``success`` from ``metadata.success``.

Sessions: the seed has none, so each file is one synthetic session
``seed002:<stem>`` where stem is the parent folder name for a file called
exactly ``metrics.jsonl`` (the seed writes ``monitoring/<run time>/metrics.jsonl``)
and the file stem otherwise; start/end = first/last timestamp; model = the
first ``model_usage:`` model.

Timestamps: the seed writes naive *local* time (``datetime.now()``). We treat
naive timestamps as UTC unless ``AGENTKPI_SEED002_TZ`` names the writer's IANA
time zone (e.g. ``Europe/Paris``); timestamps with an offset are always exact.
"""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime
from typing import Any

from agentkpi import config
from agentkpi.model import EVENT_COLUMNS, CanonicalBatch, field_map
from agentkpi.quality import Quality, event_row_builder, parse_ts, to_str
from agentkpi.sources.eventlog import readable_lines

NAME = "seed002"
REPLACES_SESSIONS = True   # a file is a whole (synthetic) session
TZ_ENV = "AGENTKPI_SEED002_TZ"
#: A metric line's keys (all but metric/value/timestamp) are its data; the model is model_name.
FIELDS = field_map(model=("model_name",))
_row = event_row_builder(FIELDS)
_MODEL = [n for n, *_ in EVENT_COLUMNS].index("model")


def _is_metrics_file(name: str) -> bool:
    return name == "metrics.jsonl" or (name.endswith("_metrics.jsonl")
                                       and not name.startswith("metrics_"))


def detect(fs: Any, root: str) -> bool:
    try:
        return fs.isdir(root) and bool(list_files(fs, root))
    except OSError:
        return False


def list_files(fs: Any, root: str) -> dict[str, dict[str, Any]]:
    try:
        found = fs.find(root.rstrip("/"), detail=True)
    except (OSError, ValueError):
        return {}
    return {p: found[p] for p in sorted(found) if _is_metrics_file(posixpath.basename(p))}


def session_id_for(path: str) -> str:
    base = posixpath.basename(path)
    if base == "metrics.jsonl":
        stem = posixpath.basename(posixpath.dirname(path)) or "metrics"
    else:
        stem = base[: -len(".jsonl")]
    return f"seed002:{stem}"


def _local_tz() -> Any:
    name = str(config.get("seed002_tz")).strip()
    if not name or name.upper() == "UTC":
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _ts(value: Any, tz: Any, q: Quality, where: str) -> datetime | None:
    if tz is not None and isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return parse_ts(value, q, where)
        if dt.tzinfo is None:
            try:
                return dt.replace(tzinfo=tz).astimezone(UTC).replace(tzinfo=None)
            except OverflowError:
                q.note("ts_unparseable", where)
                return None
    return parse_ts(value, q, where)


def parse_file(path: str, raw: bytes, q: Quality) -> CanonicalBatch:
    batch = CanonicalBatch()
    sid = session_id_for(path)
    tz = _local_tz()
    first = last = None
    model = None
    n = 0
    for _, obj, where in readable_lines(path, raw, q, "metrics file"):
        name = to_str(obj.get("metric"))
        ts = _ts(obj.get("timestamp"), tz, q, where)
        data: dict[str, Any] = {"name": name, "value": obj.get("value")}
        for k, v in obj.items():
            if k not in ("metric", "value", "timestamp"):
                data[k] = v
        row = _row(sid, n, ts, "metric", data, path, q, where)
        if name and name.startswith("model_usage:"):
            # a usage metric names its model: that is the event's model, whatever model_name says
            m = name.split(":", 1)[1] or None
            row = row[:_MODEL] + (m,) + row[_MODEL + 1:]
            if model is None:
                model = m
        batch.event_rows.append(row)
        n += 1
        if ts is not None:
            first = ts if first is None or ts < first else first
            last = ts if last is None or ts > last else last
    if n or first is not None:
        batch.add_session(session_id=sid, start_ts=first, end_ts=last, model=model,
                          source=NAME, source_path=path)
    return batch
