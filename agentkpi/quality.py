"""Data-quality bookkeeping and value coercion shared by every importer.

Nothing bad in the input crashes a run and nothing vanishes silently: a value
of the wrong type becomes NULL and is counted under a named issue kind; a file
that cannot be parsed is skipped and listed with its path and the reason.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, repeat
from typing import Any, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from agentkpi.model import DATA_FIELDS, EVENT_COLUMNS, EVENT_COLUMNS_V1, EVENT_SCHEMA, DataField
from agentkpi.times import to_utc_naive

#: Issue kinds and what each one means (also the report's documentation).
ISSUE_KINDS: dict[str, str] = {
    "file_empty": "The file had no content; skipped.",
    "file_unreadable": "The file could not be read (I/O error); skipped.",
    "file_bad_json": "The file is not valid JSON (truncated or corrupt); skipped.",
    "file_not_object": "The file's row is not a JSON object; skipped.",
    "file_unparseable": "The importer failed on the file (a bug to report); skipped, the "
                        "rest of the run goes on.",
    "line_bad_json": "A line of a JSONL log is not valid JSON (e.g. a torn last line); skipped.",
    "field_bad_json": "A field holding JSON text (messages/events/tools) did not parse; "
                      "treated as empty.",
    "field_wrong_type": "A field had the wrong type (e.g. events is a number); treated as empty.",
    "event_not_object": "An entry of events is not an object; skipped.",
    "ts_missing": "An event has no timestamp; stored with ts NULL and left out of every window.",
    "ts_unparseable": "An event timestamp could not be parsed; stored with ts NULL.",
    "number_unparseable": "A numeric field held a non-number (e.g. 'abc'); treated as missing.",
    "bool_unparseable": "A boolean field held an unrecognised value; treated as missing.",
    "session_id_missing": "A row had no session_id; the file name was used instead.",
    "event_type_unknown": "An event type outside the documented vocabulary (kept as is).",
    "span_id_invalid": "An OpenTelemetry span without a valid trace or span id; skipped.",
    "tokens_inconsistent": "OTel input tokens smaller than the cache tokens they include; "
                           "input kept as the prompt tokens.",
    "model_unpriced": "An llm_call with tokens but no cost whose model is not in the price "
                      "table; cost left NULL (never $0), tokens counted as unpriced_tokens.",
    "line_malformed": "A transcript line is not a JSON object or misses what its type needs; "
                      "skipped (the audit says why).",
    "value_bad_json": "A value inside otherwise valid JSON could not be kept (NaN/Infinity "
                      "literal, lone surrogate, a number of thousands of digits, nesting "
                      "deeper than the parser allows); stored as missing, the rest of its "
                      "event and file kept.",
    "text_bad_utf8": "Bytes that are not UTF-8 inside a line; each replaced by U+FFFD, the "
                     "rest of the value, event and file kept.",
}

#: Import-audit counters: what an ingest read and why some lines did not become rows.
#: Importers add to them with :meth:`Quality.count_audit`; the run report lists them per
#: source and the store keeps them (table ``import_audit``).
AUDIT_KINDS: dict[str, str] = {
    "files": "Source files read in this run (every importer counts them).",
    "lines_read": "Lines (records) read from those files: a session-dataset file's one row, "
                  "the non-blank lines of a JSONL file, an OTel JSON file's documents.",
    "usage_lines_merged": "Lines repeating the usage of an API response already counted "
                          "(one line per content block, partial streaming snapshots); merged "
                          "into one llm_call.",
    "replays_merged": "Responses seen again in another file or under another request id "
                      "(sidechain replays, synced copies, resumed/forked sessions); counted once.",
    "counters_ignored": "Re-emitted cumulative token counters that did not advance; ignored.",
    "usage_copies_ignored": "Lines other than a model response that carry a copy of its usage "
                            "(progress lines, tool results); not counted.",
    "tool_uses_repeated": "A tool-use id seen again (a repeated content block); counted once.",
    "tool_results_repeated": "A tool result for an id already seen; counted once.",
    "malformed_skipped": "Malformed lines skipped (reasons under malformed:<reason>).",
    "synthetic_skipped": "Lines that are not model calls (e.g. Claude Code `<synthetic>` "
                         "error messages); not counted as calls.",
    "unpriced_tokens": "Tokens of llm_calls that have no cost (model not in the price table).",
    "priced_calls": "llm_calls whose cost was computed from the price table.",
    "source_cost_calls": "llm_calls whose cost came from the source.",
    "otel_spans_merged": "OpenTelemetry model-call spans nested in or around another span of "
                         "the same call (wrapper, instrumentation, provider spans); merged into "
                         "one llm_call (docs/otel.md).",
    "otel_agent_usage_ignored": "Agent spans (invoke_agent) carrying usage, which repeats their "
                                "model calls'; not counted again.",
    "otel_tool_spans_merged": "execute_tool spans nested in a span of the same tool; one run.",
    "otel_duplicate_spans": "The same span (trace id, span id) received or read twice (an "
                            "exporter retry); kept once.",
    "duplicate_events_merged": "Rows with the same event_key already in the store (another "
                               "file, another machine's copy); one row kept.",
    "counters_without_usage": "Codex token_count lines with info: null (rate limits only); "
                              "not calls.",
    "tool_calls_merged": "Tool calls whose id was already seen in the file; counted once.",
    "records_merged": "Gemini CLI records re-appended under an existing id that are not "
                      "model replies; the later version replaced the earlier.",
    "rewound_counted": "Gemini CLI messages hidden by $rewindTo; they were billed, so they "
                       "still count.",
    "history_copies_ignored": "Gemini CLI $set.messages copies of the history; their messages "
                              "are counted from their own records.",
}

#: Columns of the store's ``import_audit`` table (one row per run and counter).
AUDIT_COLUMNS: tuple[tuple[str, None, str, str], ...] = (
    ("run_at", None, "TIMESTAMP", "When the ingest ran (UTC)."),
    ("source", None, "VARCHAR", "The --source of the run."),
    ("format", None, "VARCHAR", "Importer name."),
    ("machine", None, "VARCHAR", "The --machine of the run."),
    ("kind", None, "VARCHAR", "Audit counter (AUDIT_KINDS, or malformed:<reason>)."),
    ("n", None, "BIGINT", "Its value."),
)


@dataclass
class Quality:
    """Counts of issues by kind plus the list of skipped files."""

    counts: Counter[str] = field(default_factory=Counter)
    skipped: list[dict[str, str]] = field(default_factory=list)
    examples: dict[str, str] = field(default_factory=dict)
    audit: Counter[str] = field(default_factory=Counter)

    def count_audit(self, kind: str, n: int = 1) -> None:
        """Add ``n`` to the import-audit counter ``kind`` (see :data:`AUDIT_KINDS`).

        ``malformed:<reason>`` counters give the reasons of ``malformed_skipped``;
        ``lines:<type>`` count the lines read by record type.
        """
        if n:
            self.audit[kind] += n

    def malformed(self, reason: str, where: str = "") -> None:
        """A line skipped as malformed: counted under its reason and as an issue."""
        self.audit["malformed_skipped"] += 1
        self.audit[f"malformed:{reason}"] += 1
        self.note("line_bad_json" if reason == "bad_json" else "line_malformed", where)

    def note(self, kind: str, where: str = "") -> None:
        self.counts[kind] += 1
        if where and kind not in self.examples:
            self.examples[kind] = where

    def skip(self, path: str, kind: str, reason: str) -> None:
        self.note(kind, path)
        self.skipped.append({"path": path, "kind": kind, "reason": reason})

    def merge(self, other: Quality) -> None:
        self.counts.update(other.counts)
        self.skipped.extend(other.skipped)
        self.audit.update(other.audit)
        for k, v in other.examples.items():
            self.examples.setdefault(k, v)

    @property
    def data_errors(self) -> int:
        """Issues that mean data was lost or guessed (unknown event types and unpriced
        models are not errors: nothing is lost, the cost stays NULL)."""
        return sum(n for k, n in self.counts.items()
                   if k not in ("event_type_unknown", "model_unpriced"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "issues": dict(sorted(self.counts.items())),
            "issue_kinds": {k: ISSUE_KINDS.get(k, "") for k in sorted(self.counts)},
            "examples": dict(sorted(self.examples.items())),
            "skipped_files": sorted(self.skipped, key=lambda s: s["path"]),
            "audit": dict(sorted(self.audit.items())),
        }


# --------------------------------------------------------------------- coercion

def parse_ts(value: Any, q: Quality, where: str = "") -> datetime | None:
    """ISO-8601 text (offset, ``Z`` or none = UTC) or epoch seconds -> naive UTC."""
    if value is None or value == "":
        q.note("ts_missing", where)
        return None
    if isinstance(value, str):
        try:
            return to_utc_naive(datetime.fromisoformat(value))
        except (ValueError, OverflowError):  # overflow: e.g. 9999-12-31T23:30-01:00
            q.note("ts_unparseable", where)
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        try:
            return datetime.utcfromtimestamp(float(value))  # noqa: DTZ004 - naive UTC wanted
        except (OverflowError, OSError, ValueError):
            pass
    q.note("ts_unparseable", where)
    return None


def to_float(value: Any, q: Quality, where: str = "") -> float | None:
    """Numbers, numeric strings -> float; None stays None; anything else counted."""
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        try:
            f = float(value)
        except OverflowError:  # an integer of hundreds of digits
            f = math.inf
        if math.isfinite(f):
            return f
        q.note("number_unparseable", where)
        return None
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return None
        try:
            f = float(s)
        except ValueError:
            q.note("number_unparseable", where)
            return None
        if math.isfinite(f):
            return f
    q.note("number_unparseable", where)
    return None


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def to_int(value: Any, q: Quality, where: str = "") -> int | None:
    """Like :func:`to_float` but truncated to an integer (token counts).

    Values outside the 64-bit (BIGINT) range are counted as unparseable, not stored.
    """
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    f = value if type(value) is int else to_float(value, q, where)
    if f is None:
        return None
    if not INT64_MIN <= f <= INT64_MAX:
        q.note("number_unparseable", where)
        return None
    return int(f)


_TRUE = {"true", "1", "yes", "y", "ok", "success", "succeeded"}
_FALSE = {"false", "0", "no", "n", "fail", "failed", "failure", "error", ""}


def to_bool(value: Any, q: Quality, where: str = "") -> bool | None:
    """Booleans, 0/1 and the usual words -> bool. The string 'false' is False.

    (The seed took ``bool(value)``, so the string ``"false"`` counted as a
    success; that is a bug we do not reproduce.)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
    q.note("bool_unparseable", where)
    return None


def to_str(value: Any) -> str | None:
    """Any scalar -> str; None and empty string -> None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, (dict, list)):
        return None
    return str(value)


def to_text(value: Any, q: Quality | None = None, where: str = "") -> str | None:
    """:func:`to_str` with the coercion signature (text never counts an issue)."""
    return value if type(value) is str and value else to_str(value)


def _int_fast(value: Any, q: Quality, where: str = "") -> int | None:
    if value is None or (type(value) is int and INT64_MIN <= value <= INT64_MAX):
        return value
    return to_int(value, q, where)


def _float_fast(value: Any, q: Quality, where: str = "") -> float | None:
    if value is None or type(value) is float:
        return value
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return float(value)
    return to_float(value, q, where)  # includes integers of hundreds of digits


def _safe_dumps(value: Any, option: int = 0) -> bytes:
    """orjson.dumps, and any depth / any integer when orjson refuses (:func:`dump_json`)."""
    try:
        return orjson.dumps(value, option=option)
    except TypeError:  # nested deeper than orjson writes (255), or an int beyond 64 bits
        return dump_json(value).encode()


def unsplit_tokens(total: int | None, *parts: int | None) -> int | None:
    """The part of a reported token ``total`` its reported split (``parts``: prompt,
    completion, cache buckets; missing ones skipped) does not account for, for the
    ``unsplit_tokens`` column; None when there is none (a total below its parts adds
    nothing: the parts are counted)."""
    if total is None:
        return None
    rest = total - sum(p for p in parts if p is not None)
    return rest if rest > 0 else None


def _bool_fast(value: Any, q: Quality, where: str = "") -> bool | None:
    return value if value is None or type(value) is bool else to_bool(value, q, where)


#: The coercions a field map (:data:`agentkpi.model.DATA_FIELDS`) may name:
#: ``(value, quality, where) -> value or None`` (bad values counted).
COERCIONS: dict[str, Callable[[Any, Quality, str], Any]] = {
    "text": to_text, "int": _int_fast, "float": _float_fast, "bool": _bool_fast,
}

#: An event-row builder: ``(session_id, seq, ts, event_type, data, file, quality, where)``
#: -> one tuple in ``EVENT_COLUMNS`` order (see :class:`agentkpi.model.CanonicalBatch`).
#: ``where`` (the place an issue is reported at) may be None: ``"{file}: events[{seq}]"``,
#: formatted only when a value needs reporting.
EventRowBuilder = Callable[[Any, Any, Any, Any, Any, str, Quality, str | None],
                           tuple[Any, ...]]


def event_row_builder(fields: Sequence[DataField] = DATA_FIELDS) -> EventRowBuilder:
    """Compile a field map into the function importers call once per event.

    The map stays data; this turns it into one straight-line Python function (the
    ingest hot loop runs it millions of times, so no per-field loop at run time):
    each column is ``coerce(data.get(key), q, where)``, the first non-NULL of its
    keys, NULL for events outside its ``event_type``. ``data`` that is not a
    non-empty object fills no column; it is kept as JSON text (NULL for null/{}).
    """
    names = [n for n, *_ in EVENT_COLUMNS]
    by_column = {f.column: f for f in fields}
    for f in fields:
        if f.column not in names or f.column in ("session_id", "seq", "ts", "event_type",
                                                  "data", "file"):
            raise ValueError(f"field map: {f.column!r} is not a typed event column")
        if f.coerce not in COERCIONS or not f.keys:
            raise ValueError(f"field map: {f.column!r} needs keys and a coercion from "
                             f"{', '.join(COERCIONS)}")
    width = len(EVENT_COLUMNS_V1)
    if any(names.index(c) >= width for c in by_column):
        width = len(names)
    env: dict[str, Any] = {f"_{n}": fn for n, fn in COERCIONS.items()}
    exprs = []
    for name in names[:width]:
        mapped = by_column.get(name)
        if name in ("session_id", "seq", "ts", "event_type"):
            exprs.append(name)
        elif name == "data":
            exprs.append("_dumps(data).decode()")  # decoded JSON: keys are strings
        elif name == "file":
            exprs.append("path")
        elif mapped is None:
            exprs.append("None")
        else:
            expr = "None"
            for n, key in reversed(list(enumerate(mapped.keys))):
                # first key wins: coalesce from the last one up; the common values (absent,
                # or already of the column's type) pass inline, others call the coercion
                one = _inline(mapped.coerce, f"g({key!r})", f"_{len(exprs)}_{n}")
                expr = one if expr == "None" else f"(_v if (_v := {one}) is not None else {expr})"
            if mapped.event_type is not None:
                expr = f"({expr} if event_type == {mapped.event_type!r} else None)"
            exprs.append(expr)
    body = ",\n        ".join(exprs)
    gap = ", ".join(["None"] * (names.index("data") - 4))
    tail = "".join(", None" for _ in range(width - names.index("file") - 1))
    src = ("def event_row(session_id, seq, ts, event_type, data, path, q, where):\n"
           "    if type(data) is not dict or not data:\n"
           "        return (session_id, seq, ts, event_type, " + gap + ", "
           "None if data is None or data == {} else _dumps(data, option=_NON_STR).decode(), "
           "path" + tail + ")\n"
           "    g = data.get\n"
           f"    return (\n        {body},\n    )\n")
    env.update(_dumps=_safe_dumps, _NON_STR=orjson.OPT_NON_STR_KEYS)
    exec(compile(src, "<agentkpi field map>", "exec"), env)  # noqa: S102 - generated from data
    build: EventRowBuilder = env["event_row"]
    build.__doc__ = f"One canonical event row through a field map (generated):\n\n{src}"
    return build


_I64 = "-9223372036854775808 <= {v} <= 9223372036854775807"


def _inline(coerce: str, get: str, v: str) -> str:
    """``COERCIONS[coerce](get, q, where)`` as a Python expression with the function's own
    fast path inline (absent, or already of the column's type: the same value the function
    returns), so the usual event pays no call per field; other values call the function."""
    call = f"_{coerce}({v}, q, where or f'{{path}}: events[{{seq}}]')"
    i64 = _I64.format(v=v)
    if coerce == "text":
        return f"({v} if type({v} := {get}) is str and {v} else (None if {v} is None else {call}))"
    if coerce == "int":
        return f"({v} if ({v} := {get}) is None or (type({v}) is int and {i64}) else {call})"
    if coerce == "float":
        return (f"({v} if ({v} := {get}) is None or type({v}) is float else "
                f"(float({v}) if type({v}) is int and {i64} else {call}))")
    if coerce == "bool":
        return f"({v} if ({v} := {get}) is None or type({v}) is bool else {call})"
    return f"_{coerce}({get}, q, where)"


#: The builder of the common vocabulary (:data:`agentkpi.model.DATA_FIELDS`).
event_row = event_row_builder()


# ------------------------------------------------------------ the same map, vectorised

_ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
#: ISO 8601 timestamps Arrow parses exactly as :func:`parse_ts` does (no fraction, or 3 or
#: 6 digits; ``Z`` or a ``+HH:MM`` offset under 24 h, or none = UTC); any other spelling
#: goes through :func:`parse_ts` itself.
_TS_CORE = (r"^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
            r"(?:\.\d{3}|\.\d{6})?")
_TS_AWARE = _TS_CORE + r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$"
_TS_NAIVE = _TS_CORE + "$"


class EventBlock(NamedTuple):
    """The events of one session, kept decoded until a whole batch of them is converted."""

    session_id: str
    path: str
    events: list[Any]
    q: Quality


class EventArrays:
    """A field map applied to many events at once: Arrow does the per-event work.

    The vectorised twin of :func:`event_row_builder`, generated from the same map, with
    the same result: :meth:`convert` turns a block list of ``{timestamp, event_type,
    data}`` objects into typed arrays in one call, which succeeds only when every mapped
    value already has its column's type (the inline fast path of the row builder: a
    string for text, an integer in the 64-bit range for int, a number for float, a
    boolean for bool) and the data dumps as JSON; a block with any other value is
    refused (None), and its events go through the row builder one by one, which coerces
    and counts them. :meth:`table` builds the canonical rows of converted blocks; the only
    issues it can meet (a missing or unusual timestamp, an unknown event type) are noted
    in each block's own :class:`Quality`, in event order.
    """

    def __init__(self, fields: Sequence[DataField] = DATA_FIELDS,
                 known_types: frozenset[str] = frozenset()) -> None:
        event_row_builder(fields)  # the same checks of the map
        keys: dict[str, pa.DataType] = {}
        for f in fields:
            for key in f.keys:
                if keys.setdefault(key, _ARROW_TYPES[f.coerce]) != _ARROW_TYPES[f.coerce]:
                    raise ValueError(f"field map: key {key!r} feeds columns of two types")
        self.fields = tuple(fields)
        self.known_types = known_types
        self.raw_type = pa.struct([("timestamp", pa.string()), ("event_type", pa.string()),
                                   ("data", pa.struct(list(keys.items())))])

    def convert(self, events: list[Any]) -> tuple[pa.StructArray, pa.Array] | None:
        """``(typed events, data as JSON text)``, or None: convert these one by one."""
        dumps = orjson.dumps
        try:
            raw = pa.array(events, type=self.raw_type)
            # .decode(): a str copy, and orjson's own (over-allocated) bytes freed at once,
            # is 6x faster than keeping the bytes objects (page faults on a growing heap)
            data = pa.array([None if (d := e.get("data")) is None else dumps(d).decode()
                             for e in events], pa.string())
        except (pa.ArrowException, TypeError, ValueError, OverflowError, AttributeError):
            # a value of another type (ArrowInvalid/TypeError), an int beyond 64 bits
            # (OverflowError), a lone surrogate (UnicodeError), an event that is no object
            return None
        return raw, data

    def table(self, blocks: Sequence[EventBlock],
              converted: Sequence[tuple[pa.StructArray, pa.Array]]) -> pa.Table:
        """The canonical event rows (``EVENT_SCHEMA``) of ``blocks`` (converted by
        :meth:`convert`, in the same order)."""
        sizes = [len(b.events) for b in blocks]
        n = sum(sizes)
        raw = (pa.concat_arrays([c[0] for c in converted]) if converted
               else pa.array([], self.raw_type))
        ts_text, types, data = raw.flatten()
        block_of = list(chain.from_iterable(map(repeat, range(len(sizes)), sizes)))
        seqs = list(chain.from_iterable(map(range, sizes)))
        rows_block = pa.array(block_of, pa.int32())
        types = pc.if_else(pc.fill_null(pc.greater(pc.utf8_length(types), 0), False),
                           types, pa.scalar("unknown", pa.string()))
        if self.known_types:
            odd = pc.indices_nonzero(pc.invert(pc.is_in(
                types, value_set=pa.array(sorted(self.known_types), pa.string()))))
            for i in odd.to_pylist():
                b = blocks[block_of[i]]
                b.q.note("event_type_unknown", f"{b.path}: events[{seqs[i]}]: "
                                               f"{types[i].as_py()!r}")
        data_json = (pa.concat_arrays([c[1] for c in converted]) if converted
                     else pa.array([], pa.string()))
        columns: dict[str, Any] = {
            "session_id": pa.array([b.session_id for b in blocks], pa.string()).take(rows_block),
            "seq": pa.array(seqs, pa.int32()),
            "ts": _event_times(ts_text, blocks, block_of, seqs),
            "event_type": types,
            # an empty object is no data (NULL), as in the row builder
            "data": pc.if_else(pc.fill_null(pc.equal(data_json, "{}"), False),
                               pa.scalar(None, pa.string()), data_json),
            "file": pa.array([b.path for b in blocks], pa.string()).take(rows_block),
        }
        values = dict(zip([f.name for f in self.raw_type.field("data").type], data.flatten(),
                          strict=True))
        for f in self.fields:
            typ = _ARROW_TYPES[f.coerce]
            col = pa.nulls(n, typ)
            for key in reversed(f.keys):  # the first key with a value wins
                v = values[key]
                if f.coerce == "text":  # "" is no value
                    v = pc.if_else(pc.fill_null(pc.equal(v, ""), False),
                                   pa.scalar(None, typ), v)
                col = pc.coalesce(v, col)
            if f.event_type is not None:
                col = pc.if_else(pc.fill_null(pc.equal(types, f.event_type), False), col,
                                 pa.scalar(None, typ))
            columns[f.column] = col
        return pa.Table.from_arrays(
            [columns[name] if name in columns else pa.nulls(n, typ)
             for name, typ, _, _ in EVENT_COLUMNS], schema=EVENT_SCHEMA)


def _event_times(text: pa.Array, blocks: Sequence[EventBlock], block_of: list[int],
                 seqs: list[int]) -> pa.Array:
    """Event times (naive UTC) of timestamp strings: the usual ISO 8601 spellings parsed
    by Arrow, every other one (and any Arrow cannot place in Python's datetime range) by
    :func:`parse_ts`, which notes the missing and unparseable ones in the block's Quality."""
    us = pa.timestamp("us")
    aware = pc.fill_null(pc.match_substring_regex(text, _TS_AWARE), False)
    naive = pc.fill_null(pc.match_substring_regex(text, _TS_NAIVE), False)
    try:
        at = pc.cast(pc.cast(pc.cast(pc.if_else(aware, text, pa.scalar(None, pa.string())),
                                     pa.timestamp("us", "UTC")), pa.int64()), us)
        nt = pc.cast(pc.if_else(naive, text, pa.scalar(None, pa.string())), us)
        ts = pc.coalesce(at, nt)
        # (bounds made here: converting a Python value at import would import pandas)
        ok = pc.fill_null(pc.and_(pc.greater_equal(ts, pa.scalar(datetime.min, us)),
                                  pc.less_equal(ts, pa.scalar(datetime.max, us))), False)
    except pa.ArrowInvalid:  # e.g. 2026-02-30: Python says why, value by value
        ts, ok = pa.nulls(len(text), us), pa.repeat(False, len(text))
    slow = pc.indices_nonzero(pc.invert(ok)).to_pylist()
    if not slow:
        return ts
    fixed = []  # in index order, as replace_with_mask takes them
    for i in slow:
        b = blocks[block_of[i]]
        fixed.append(parse_ts(text[i].as_py(), b.q, f"{b.path}: events[{seqs[i]}]"))
    # every value Arrow did not place (Arrow's year 0 included) is parse_ts's
    return pc.replace_with_mask(ts, pc.invert(ok), pa.array(fixed, us))


# ------------------------------------------------------------------------ JSON

#: How deep the slow path descends into a value before giving up on the rest of it.
_MAX_DESCENT = 200
#: Deepest nesting kept (orjson, which reads the stored ``data`` again, stops at 1024).
_MAX_DEPTH = 1000
_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r'["\[\]{}]')


def decode_json(text: bytes | str, q: Quality, where: str = "") -> Any:
    """One JSON document -> Python value; one bad value inside costs only that value.

    The fast path is orjson. When it refuses a document, the document is read
    again value by value: ``NaN``/``Infinity`` literals (what Python's
    ``json.dumps`` writes), numbers of thousands of digits, lone surrogates and
    values nested deeper than the parser allows become ``None`` and are counted
    as ``value_bad_json``; everything else is kept. Raises ``ValueError`` only
    when the text is not JSON at all (e.g. a torn line).
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    if isinstance(text, bytes):
        try:
            s = text.decode("utf-8")
        except UnicodeDecodeError:
            q.note("text_bad_utf8", where)
            s = text.decode("utf-8", errors="replace")
    else:
        s = text
    return _Lenient(q, where).document(s)


class _Lenient:
    def __init__(self, q: Quality, where: str) -> None:
        self.q, self.where = q, where
        self.decoder = json.JSONDecoder(parse_constant=self._constant,
                                        parse_float=self._float, strict=False)
        self._literals: list[str] = []

    def _bad(self, what: str) -> None:
        self.q.note("value_bad_json", f"{self.where}: {what}" if self.where else what)

    def _constant(self, name: str) -> None:
        self._literals.append(name)  # counted once the enclosing value decodes
        return None

    def _float(self, text: str) -> float | None:
        f = float(text)
        if math.isfinite(f):
            return f
        self._literals.append(text[:20])  # 1e400: valid JSON, no finite double
        return None

    def document(self, s: str) -> Any:
        i = _WS.match(s, 0).end()  # type: ignore[union-attr]
        value, i = self._value(s, i, 0)
        if _WS.match(s, i).end() != len(s):  # type: ignore[union-attr]
            raise ValueError(f"extra data after the JSON value at character {i}")
        if "\\u" in s:
            value, n = _clean_strings(value)
            for _ in range(n):
                self._bad("lone surrogate in a string")
        return self._prune(value)

    def _prune(self, value: Any) -> Any:
        """Containers nested deeper than orjson reads (1024) -> None, so stored JSON stays
        readable; in practice the descent limit has cut them already."""
        if not isinstance(value, (dict, list)):
            return value
        stack: list[tuple[Any, int]] = [(value, 1)]
        while stack:
            node, depth = stack.pop()
            for k, v in list(node.items() if isinstance(node, dict) else enumerate(node)):
                if isinstance(v, (dict, list)):
                    if depth >= _MAX_DEPTH:
                        node[k] = None
                        self._bad("nested too deep")
                    else:
                        stack.append((v, depth + 1))
        return value

    def _value(self, s: str, i: int, depth: int) -> tuple[Any, int]:
        self._literals.clear()
        try:
            value, end = self.decoder.raw_decode(s, i)
        except (ValueError, RecursionError):
            pass
        else:
            for name in self._literals:
                self._bad(f"{name} literal")
            return value, end
        c = s[i:i + 1]
        if c in ("[", "{"):
            if depth >= _MAX_DESCENT:
                self._bad("nested too deep")
                return None, _skip(s, i)
            return self._container(s, i, depth + 1)
        m = _NUMBER.match(s, i)
        if m:
            self._bad("number out of range")
            return None, m.end()
        raise ValueError(f"not valid JSON at character {i}")

    def _container(self, s: str, i: int, depth: int) -> tuple[Any, int]:
        is_object = s[i] == "{"
        close = "}" if is_object else "]"
        out: Any = {} if is_object else []
        i = _WS.match(s, i + 1).end()  # type: ignore[union-attr]
        if s[i:i + 1] == close:
            return out, i + 1
        while True:
            if is_object:
                m = _STRING.match(s, i)
                if not m:
                    raise ValueError(f"expected a key at character {i}")
                key = self.decoder.decode(m.group())
                i = _WS.match(s, m.end()).end()  # type: ignore[union-attr]
                if s[i:i + 1] != ":":
                    raise ValueError(f"expected ':' at character {i}")
                i = _WS.match(s, i + 1).end()  # type: ignore[union-attr]
                out[key], i = self._value(s, i, depth)
            else:
                value, i = self._value(s, i, depth)
                out.append(value)
            i = _WS.match(s, i).end()  # type: ignore[union-attr]
            c = s[i:i + 1]
            if c == close:
                return out, i + 1
            if c != ",":
                raise ValueError(f"expected ',' or {close!r} at character {i}")
            i = _WS.match(s, i + 1).end()  # type: ignore[union-attr]


def _skip(s: str, i: int) -> int:
    """End of the array/object starting at ``s[i]`` (strings respected)."""
    depth = 0
    while True:
        m = _BRACKET.search(s, i)
        if m is None:
            raise ValueError("unterminated array or object")
        c = m.group()
        if c == '"':
            sm = _STRING.match(s, m.start())
            if sm is None:
                raise ValueError("unterminated string")
            i = sm.end()
            continue
        depth += 1 if c in "[{" else -1
        i = m.end()
        if depth == 0:
            return i


def _clean_strings(value: Any) -> tuple[Any, int]:
    """Lone surrogates (valid JSON escapes, invalid Unicode) -> U+FFFD; (value, strings fixed)."""
    fixed = 0

    def fix(v: str) -> str:
        nonlocal fixed
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            fixed += 1
            return v.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return v

    root = [value]
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        for k, v in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(v, (dict, list)):
                stack.append(v)
            elif isinstance(v, str):
                node[k] = fix(v)
        if isinstance(node, dict):
            for k, good in [(k, fix(k)) for k in node]:
                if good is not k:
                    node[good] = node.pop(k)
    return root[0], fixed


def dump_json(value: Any, sort_keys: bool = False) -> str:
    """Compact JSON text of ``value`` at any depth; non-finite floats -> null."""
    opts = orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        return orjson.dumps(value, option=opts).decode()
    except TypeError:  # nested deeper than orjson writes (255), or an int beyond 64 bits
        return _dump_iterative(value, sort_keys)


def _dump_iterative(value: Any, sort_keys: bool) -> str:
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, _Raw):
            out.append(v.text)
        elif isinstance(v, dict):
            keys = sorted(v, key=str) if sort_keys else list(v)
            parts: list[Any] = [_Raw("{")]
            for n, k in enumerate(keys):
                parts += [_Raw(("," if n else "") + json.dumps(str(k)) + ":"), v[k]]
            parts.append(_Raw("}"))
            stack.extend(reversed(parts))
        elif isinstance(v, (list, tuple)):
            parts = [_Raw("[")]
            for n, item in enumerate(v):
                if n:
                    parts.append(_Raw(","))
                parts.append(item)
            parts.append(_Raw("]"))
            stack.extend(reversed(parts))
        elif v is None or v is True or v is False:
            out.append("null" if v is None else "true" if v else "false")
        elif isinstance(v, int):
            out.append(str(v) if -10**300 < v < 10**300 else "null")
        elif isinstance(v, float):
            out.append(repr(v) if math.isfinite(v) else "null")
        else:
            out.append(json.dumps(v if isinstance(v, str) else str(v)))
    return "".join(out)


@dataclass(frozen=True)
class _Raw:
    text: str
