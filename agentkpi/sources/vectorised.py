"""Vectorised event decoding: a session row's ``events`` JSON text to canonical event rows in
DuckDB, generated from the declarative field map :data:`EVENT_FIELDS`.

The per-event work of the session-dataset importer (pick fields out of ``data``,
coerce them, build one row per event) is done by two SQL statements per chunk of
sessions instead of by the interpreter. Python keeps reading files, decoding the
session row, checking the ``events`` text with orjson (so what counts as bad JSON
is exactly what it was) and reporting bad input.

Exactness: SQL takes only values whose coercion is unambiguous. One
``json_structure`` call per session merges the JSON types of all its events: a
session whose fields all have the types their rule reads (a string for a text
field, an integer for a count, a number for a float, ...) is decoded in SQL; rows
are then checked for the rest (64-bit range, finite floats, time stamps of the
usual ISO-8601 shape). A session failing any check is *dirty*: its events go
through the importer's Python loop
(:func:`agentkpi.sources.session_dataset.add_events`), which coerces and counts
exactly as before. ``tests/test_vectorised.py`` checks that both ways give the same
rows and the same issue counts on clean, dirty and deliberately odd data.

One difference: the ``data`` column holds DuckDB's compact serialisation of the
event's data object for vectorised rows (orjson's for the others); the two are the
same JSON value, but may spell a number or an escape differently.
"""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from agentkpi.model import EVENT_COLUMNS, EVENT_SCHEMA
from agentkpi.quality import Quality

#: The field map: canonical column -> (rule, keys of the event's ``data``), in the order
#: of :data:`agentkpi.model.EVENT_COLUMNS`. Rules (Python semantics in ``add_events``):
#:
#: * ``text``: a string, "" -> NULL; an object/array -> NULL;
#: * ``int``: an integer in the 64-bit range;
#: * ``float``: any finite number, as a double;
#: * ``bool``: ``true`` / ``false``;
#: * ``first_text``: the first key whose value is a non-empty string, else the last
#:   key's string value ("" kept) (``agent_id or agent``);
#: * ``error_type``: error events only, the first non-empty string of the keys;
#: * ``error_message``: error events only, the first key if it is a string ("" kept),
#:   else the second as ``text``.
EVENT_FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("tool", "text", ("tool",)),
    ("success", "bool", ("success",)),
    ("model", "text", ("model",)),
    ("prompt_tokens", "int", ("prompt_tokens",)),
    ("completion_tokens", "int", ("completion_tokens",)),
    ("cache_read_tokens", "int", ("cache_read_tokens",)),
    ("cache_creation_tokens", "int", ("cache_creation_tokens",)),
    ("cost_usd", "float", ("cost_usd",)),
    ("latency_ms", "float", ("latency_ms",)),
    ("duration_ms", "float", ("duration_ms",)),
    ("flavor", "text", ("flavor",)),
    ("status", "text", ("final_status",)),
    ("wall_time_s", "float", ("wall_time_s",)),
    ("rating", "text", ("rating",)),
    ("source", "text", ("source",)),
    ("hardware", "text", ("hardware",)),
    ("error_type", "error_type", ("error_type", "type")),
    ("error_message", "error_message", ("error", "message")),
    ("agent", "first_text", ("agent_id", "agent")),
)

#: Timestamps SQL parses exactly like ``datetime.fromisoformat`` (others go to Python).
TS_PATTERN = (r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
              r"(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?$")


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ident(key: str) -> str:
    return '"' + key.replace('"', '""') + '"'


#: rule -> (DuckDB type the value is read as, JSON types ``json_structure`` may report for it)
_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "text": ("VARCHAR", ("VARCHAR",)),
    "int": ("HUGEINT", ("UBIGINT", "BIGINT", "HUGEINT")),
    "float": ("DOUBLE", ("UBIGINT", "BIGINT", "HUGEINT", "DOUBLE")),
    "bool": ("BOOLEAN", ("BOOLEAN",)),
    "first_text": ("VARCHAR", ("VARCHAR",)),
    "error_type": ("VARCHAR", ("VARCHAR",)),
    "error_message": ("VARCHAR", ("VARCHAR",)),
}


def _v(key: str) -> str:
    return f"e.data.{_ident(key)}"


def _rule(rule: str, keys: tuple[str, ...]) -> tuple[str, str]:
    """(value SQL, row check SQL) of one field; ``e`` is the typed event, ``et`` its type."""
    k = keys[0]
    if rule == "text":
        return f"nullif({_v(k)}, '')", ""
    if rule == "int":
        return (f"TRY_CAST({_v(k)} AS BIGINT)",
                f"({_v(k)} IS NULL OR {_v(k)} BETWEEN -9223372036854775808 "
                "AND 9223372036854775807)")
    if rule == "float":
        return _v(k), f"({_v(k)} IS NULL OR isfinite({_v(k)}))"
    if rule == "bool":
        return _v(k), ""
    if rule == "first_text":
        *first, last = keys
        whens = " ".join(f"WHEN {_v(x)} <> '' THEN {_v(x)}" for x in first)
        return f"CASE {whens} ELSE {_v(last)} END", ""
    if rule == "error_type":
        return ("CASE WHEN et = 'error' THEN coalesce("
                + ", ".join(f"nullif({_v(x)}, '')" for x in keys) + ") END", "")
    if rule == "error_message":
        err, msg = keys
        return (f"CASE WHEN et = 'error' THEN CASE WHEN {_v(err)} IS NOT NULL THEN {_v(err)} "
                f"ELSE nullif({_v(msg)}, '') END END", "")
    raise ValueError(f"unknown field rule {rule!r}")


def _data_keys() -> dict[str, str]:
    """Every key of ``data`` the field map reads -> the rule that reads it."""
    out: dict[str, str] = {}
    for _, rule, keys in EVENT_FIELDS:
        for k in keys:
            out.setdefault(k, rule)
    return out


def clean_sql() -> str:
    """Per session: True when every value of its events has a type SQL reads exactly.

    ``json_structure`` merges the types of all events of the session: one call tells
    whether any event anywhere is not an object, has a non-string time stamp or type,
    a ``data`` that is not an object, or a field of another type than its rule reads
    (mixed types merge to ``JSON``). Values are checked row by row later (ranges,
    finiteness, time stamp shape).
    """
    st = "st"
    checks = [f"{st} = '[\"NULL\"]'"]
    parts = [f"json_type({st}, '$[0]') = 'OBJECT'",
             f"coalesce({st} ->> '$[0].timestamp', 'NULL') IN ('VARCHAR', 'NULL')",
             f"coalesce({st} ->> '$[0].event_type', 'NULL') IN ('VARCHAR', 'NULL')",
             f"(coalesce({st} ->> '$[0].data', 'NULL') = 'NULL' "
             f"OR json_type({st}, '$[0].data') = 'OBJECT')"]
    for key, rule in _data_keys().items():
        allowed = ", ".join(_q(t) for t in (*_TYPES[rule][1], "NULL"))
        path = "$[0].data." + json.dumps(key)
        parts.append(f"coalesce({st} ->> {_q(path)}, 'NULL') IN ({allowed})")
    checks.append("(" + " AND ".join(parts) + ")")
    return (f"SELECT i, ({' OR '.join(checks)}) AS clean "
            "FROM (SELECT i, CAST(json_structure(events) AS VARCHAR) AS st FROM _sessions)")


def events_sql(known_types: frozenset[str]) -> str:
    """The statement: clean ``_sessions(i, sid, path, events)`` -> one row per event.

    Columns: ``i`` (the session's index), ``clean`` (False: send the session to
    Python), ``issue`` (``ts_missing`` / ``event_not_object`` / NULL), ``unknown``
    (an event type outside the vocabulary), then :data:`EVENT_COLUMNS`.
    """
    typed = json.dumps([{"timestamp": "VARCHAR", "event_type": "VARCHAR",
                         "data": {k: _TYPES[r][0] for k, r in _data_keys().items()}}])
    values, checks = {}, []
    for column, rule, keys in EVENT_FIELDS:
        value, check = _rule(rule, keys)
        values[column] = f"CASE WHEN has_data THEN {value} END"
        if check:
            checks.append(f"(NOT has_data OR {check})")
    fixed = {"session_id": "sid", "seq": "CAST(seq AS INTEGER)", "ts": "ts",
             "event_type": "et", "data": "CASE WHEN has_data THEN CAST(j.data AS VARCHAR) END",
             "file": "path"}
    select = ",\n  ".join(
        f"CAST({fixed.get(name) or values.get(name) or 'NULL'} AS {sql}) AS {_ident(name)}"
        for name, _, sql, _ in EVENT_COLUMNS)
    known = ", ".join(_q(t) for t in sorted(known_types))
    row_ok = " AND ".join(["(ts_missing OR ts IS NOT NULL)", *checks])
    return f"""
WITH lists AS (
  SELECT i, sid, path, from_json(events, {_q(typed)}) AS a,
         from_json(events, '[{{"data": "JSON"}}]') AS b
  FROM _sessions
), ev AS (
  SELECT i, sid, path, unnest(a) AS e, unnest(b) AS j, generate_subscripts(a, 1) - 1 AS seq
  FROM lists
), typed AS (
  SELECT *, e IS NULL AS not_obj,
    coalesce(nullif(e.event_type, ''), 'unknown') AS et,
    coalesce(e.timestamp, '') = '' AS ts_missing,
    CASE WHEN regexp_full_match(e.timestamp, {_q(TS_PATTERN)})
         THEN CAST(TRY_CAST(e.timestamp AS TIMESTAMPTZ) AS TIMESTAMP) END AS ts,
    coalesce(CAST(j.data AS VARCHAR) <> '{{}}', false) AS has_data
  FROM ev
)
SELECT i,
  not_obj OR ({row_ok}) AS clean,
  CASE WHEN not_obj THEN 'event_not_object' WHEN ts_missing THEN 'ts_missing' END AS issue,
  NOT not_obj AND et NOT IN ({known}) AS unknown,
  {select}
FROM typed"""


class Decoder:
    """One DuckDB connection per process (single-threaded: workers are processes)."""

    def __init__(self, known_types: frozenset[str]) -> None:
        import duckdb

        self.con = duckdb.connect(config={"threads": 1})
        self.con.execute("SET TimeZone = 'UTC'")
        self.sql = events_sql(known_types)
        self.clean = clean_sql()

    def decode(self, sids: list[str], paths: list[str], texts: list[str], q: Quality
               ) -> tuple[pa.Table, set[int], Counter[int]]:
        """Event rows of the clean sessions, the indices of the dirty ones, events per index.

        Issues of the clean sessions (missing timestamps, non-object events, unknown
        event types) are counted on ``q``.
        """
        src = pa.table({"i": pa.array(range(len(texts)), pa.int32()),
                        "sid": pa.array(sids, pa.string()),
                        "path": pa.array(paths, pa.string()),
                        "events": pa.array(texts, pa.string())})
        self.con.register("_sessions", src)
        try:
            ok = self.con.sql(self.clean).to_arrow_table().column("clean")
            dirty_sessions = {i for i, c in enumerate(ok.to_pylist()) if not c}
            if dirty_sessions:
                self.con.unregister("_sessions")
                self.con.register("_sessions", src.filter(ok))
            out = self.con.sql(self.sql).to_arrow_table()
        finally:
            self.con.unregister("_sessions")
        idx = out.column("i").to_numpy(zero_copy_only=False)
        clean = out.column("clean").to_numpy(zero_copy_only=False)
        dirty = dirty_sessions | {int(i) for i in idx[~clean]}
        if dirty:
            out = out.filter(pc.invert(pc.is_in(out.column("i"),
                                                value_set=pa.array(sorted(dirty), pa.int32()))))
        noted = out.filter(pc.or_(pc.is_valid(out.column("issue")), out.column("unknown")))
        for r in noted.select(["issue", "unknown", "file", "seq", "event_type"]).to_pylist():
            where = f"{r['file']}: events[{r['seq']}]"
            if r["issue"] is not None:
                q.note(r["issue"], where)
            if r["unknown"]:
                q.note("event_type_unknown", f"{where}: {r['event_type']!r}")
        rows = out.filter(pc.invert(pc.equal(pc.fill_null(out.column("issue"), ""),
                                             "event_not_object")))
        counts: Counter[int] = Counter(rows.column("i").to_pylist())
        table = rows.select([n for n, *_ in EVENT_COLUMNS]).cast(EVENT_SCHEMA)
        return table, dirty, counts


def known_types() -> frozenset[str]:
    from agentkpi.model import EVENT_TYPES, LIFECYCLE_EVENT_TYPES

    return frozenset(EVENT_TYPES) | LIFECYCLE_EVENT_TYPES


_DECODER: Decoder | None = None


def decoder() -> Decoder:
    global _DECODER
    if _DECODER is None:
        _DECODER = Decoder(known_types())
    return _DECODER
