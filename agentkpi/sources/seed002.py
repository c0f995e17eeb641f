"""Seed-002 monitor logs: ``metrics.jsonl`` written by GenerationMonitor's
FileMetricHandler (and by :class:`agentkpi.Monitor`).

One line per recorded metric: ``{"metric": name, "value": v, "timestamp":
ISO, ...metadata}``. Every line becomes an event ``metric`` with
``data = {"name", "value", ...metadata}``; ``model`` comes from
``metadata.model_name`` or from the name of a ``model_usage:<model>`` metric,
``success`` from ``metadata.success``.

Token counts (``prompt_token_count``, ``completion_token_count``,
``total_token_count``, with ``model_name``) become events ``token_usage`` with
``prompt_tokens`` / ``completion_tokens``; a total fills ``unsplit_tokens`` with
what the prompt and completion counts of the same call (same time and model) leave
out, so ``tokens_total`` equals the seed's ``get_total_token_usage().total_tokens``
and ``tokens_prompt``/``tokens_completion`` its prompt/completion totals.

Sessions: the seed has none, so each file is one synthetic session
``seed002:<stem>`` where stem is the parent folder name for a file called
exactly ``metrics.jsonl`` (the seed writes ``monitoring/<run time>/metrics.jsonl``)
and the file stem otherwise; start/end = first/last timestamp; no session model
(a line without a model is the seed's ``unknown``, never the file's first model).

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
from agentkpi.quality import Quality, event_row_builder, parse_ts, to_int, to_str, unsplit_tokens
from agentkpi.sources.eventlog import readable_lines

NAME = "seed002"
REPLACES_SESSIONS = True   # a file is a whole (synthetic) session
TZ_ENV = "AGENTKPI_SEED002_TZ"
#: A metric line's keys (all but metric/value/timestamp) are its data; the model is model_name.
FIELDS = field_map(model=("model_name",))
_row = event_row_builder(FIELDS)
_NAMES = [n for n, *_ in EVENT_COLUMNS]
_MODEL = _NAMES.index("model")
_UNSPLIT = _NAMES.index("unsplit_tokens")
#: Token metrics (``track_generation``'s kwargs) -> the column their value fills.
TOKEN_METRICS = {"prompt_token_count": "prompt_tokens",
                 "completion_token_count": "completion_tokens",
                 "total_token_count": "unsplit_tokens"}
_TOKEN_COLUMN = {name: _NAMES.index(col) for name, col in TOKEN_METRICS.items()}


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
    n = 0
    rows = batch.event_rows
    # (time, model) of one track_generation call -> its prompt+completion, and its totals
    split: dict[tuple[Any, Any], int] = {}
    totals: list[tuple[int, tuple[Any, Any]]] = []
    for _, obj, where in readable_lines(path, raw, q, "metrics file"):
        name = to_str(obj.get("metric"))
        ts = _ts(obj.get("timestamp"), tz, q, where)
        data: dict[str, Any] = {"name": name, "value": obj.get("value")}
        for k, v in obj.items():
            if k not in ("metric", "value", "timestamp"):
                data[k] = v
        column = _TOKEN_COLUMN.get(name or "")
        row = _row(sid, n, ts, "metric" if column is None else "token_usage", data, path, q,
                   where)
        if column is not None:  # a token count: the seed sums these per model
            tokens = to_int(obj.get("value"), q, where)
            row = (*row[:column], tokens, *row[column + 1:])
            key = (ts, row[_MODEL])
            if column == _UNSPLIT:
                totals.append((len(rows), key))
            elif tokens is not None:
                split[key] = split.get(key, 0) + tokens
        elif name and name.startswith("model_usage:"):
            # a usage metric names its model: that is the event's model, whatever model_name says
            m = name.split(":", 1)[1] or None
            row = row[:_MODEL] + (m,) + row[_MODEL + 1:]
        rows.append(row)
        n += 1
        if ts is not None:
            first = ts if first is None or ts < first else first
            last = ts if last is None or ts > last else last
    for i, key in totals:  # a total counts only what its call's prompt+completion leave out
        row = rows[i]
        rows[i] = (*row[:_UNSPLIT], unsplit_tokens(row[_UNSPLIT], split.get(key)),
                   *row[_UNSPLIT + 1:])
    if n or first is not None:
        # No session model: the file's models are per line, and a line that names none is
        # the seed's "unknown" model, not the file's first one.
        batch.add_session(session_id=sid, start_ts=first, end_ts=last, model=None,
                          source=NAME, source_path=path)
    return batch
