"""The canonical model: the one shape between importers and KPIs.

Two tables. ``sessions`` holds one row per session; ``events`` one row per
event with the typed columns KPIs need pulled out of ``data`` (the raw
``data`` object is kept as JSON text so nothing is lost). Every importer in
``agentkpi.sources`` produces exactly these columns through
:class:`CanonicalBatch`; every KPI in ``agentkpi.kpis`` is defined on them.

**Token convention** (the same for every source; importers convert on import):

* ``prompt_tokens``: input tokens *not* read from and *not* written to the
  prompt cache (Anthropic's ``input_tokens``; OpenAI, Codex, Gemini and
  OpenTelemetry report input *including* cached tokens, so their importers
  subtract the cache buckets);
* ``cache_read_tokens``: input tokens read from the cache;
* ``cache_creation_tokens``: input tokens written to the cache, all TTLs;
  ``cache_creation_1h_tokens`` is the part written with a 1-hour TTL (NULL when
  the source has no split);
* ``completion_tokens``: output tokens *including* reasoning/thinking tokens
  (they are billed as output); ``reasoning_tokens`` is the reasoning part,
  informational only, never added again.

The four buckets prompt / cache_read / cache_creation / completion are
exclusive: their sum is every token the call was billed for.

**Costs**: an importer sets ``cost_usd`` only when the source carried a cost
(else ``None``, never 0). Ingest then runs one pricing step
(:mod:`agentkpi.pricing`) over every llm_call: a source cost is kept
(``cost_source = 'source'``); tokens without a cost are priced from the dated
offline table (``cost_source = 'priced'``, ``price_version`` stored); an
unknown model keeps ``cost_usd = NULL`` and its tokens are *unpriced*.

**Which call asked for a tool**: ``response_id`` names a model response. An
llm_call carries its own; a tool_call carries the one of the llm_call that
requested it (Claude Code: the ``message.id`` whose ``tool_use`` block it is;
Gemini CLI: the message holding ``toolCalls``; Codex: the response whose
``token_count`` follows the call; OpenTelemetry: the model-call span whose output
lists the ``gen_ai.tool.call.id``, else the last model call before the tool under
the same parent span). They pair within a session. A call's cost is attributed to
the tools it requested **split evenly** (a call that asked for 3 tools gives each
a third), so the attributed costs plus the cost of calls that requested no tool
sum to the total cost (:func:`agentkpi.views.cost_by_requested_tool`).

**Event keys**: an event with a non-NULL ``event_key`` is the same event
wherever it is read (another file of the same tree, a synced copy on another
machine, a re-read of a grown file); the store keeps one row per key (see
:meth:`agentkpi.store.Store.write_batch`).

Times are stored as naive ``TIMESTAMP`` values in UTC (microseconds). An
event whose timestamp is missing or unparseable is still stored, with
``ts = NULL``, and counted as a data-quality issue; KPIs never see it because
no window contains NULL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

# (name, arrow type, SQL type, description)
SESSION_COLUMNS_V1: tuple[tuple[str, pa.DataType, str, str], ...] = (
    ("session_id", pa.string(), "VARCHAR", "Session identifier (unique within the store)."),
    ("user_id", pa.string(), "VARCHAR", "User who ran the session; NULL when the source has none."),
    ("start_ts", pa.timestamp("us"), "TIMESTAMP", "Session start, UTC."),
    ("end_ts", pa.timestamp("us"), "TIMESTAMP", "Session end, UTC (NULL while running)."),
    ("model", pa.string(), "VARCHAR", "Main model of the session (session-level model_name)."),
    ("turns", pa.int32(), "INTEGER", "User messages in the session (all of them, not windowed)."),
    ("project", pa.string(), "VARCHAR", "Project or workspace the session belongs to."),
    ("agent", pa.string(), "VARCHAR", "Agent name or id that ran the session."),
    ("source", pa.string(), "VARCHAR", "Importer that produced the row (e.g. 'session_dataset')."),
    ("source_path", pa.string(), "VARCHAR", "File or URL the session was read from."),
    ("extra", pa.string(), "VARCHAR", "Other session fields as JSON text (kept, not interpreted)."),
)

#: Session columns added by schema migration 2 (appended, so old stores keep their order).
SESSION_COLUMNS_V2: tuple[tuple[str, pa.DataType, str, str], ...] = (
    ("machine", pa.string(), "VARCHAR", "Machine the session was imported from "
                                        "(`agentkpi ingest --machine`, default the host name)."),
)

EVENT_COLUMNS_V1: tuple[tuple[str, pa.DataType, str, str], ...] = (
    ("session_id", pa.string(), "VARCHAR", "Session the event belongs to."),
    ("seq", pa.int32(), "INTEGER", "Position of the event in its session as recorded."),
    ("ts", pa.timestamp("us"), "TIMESTAMP", "Event time, UTC; NULL when missing or unparseable."),
    ("event_type", pa.string(), "VARCHAR", "Event kind, see EVENT_TYPES."),
    ("tool", pa.string(), "VARCHAR", "Tool name (tool_call, tool_output, tool_use)."),
    ("success", pa.bool_(), "BOOLEAN", "Outcome of a tool_output / job; NULL when not reported."),
    ("model", pa.string(), "VARCHAR", "Model of an llm_call."),
    ("prompt_tokens", pa.int64(), "BIGINT", "Input tokens of an llm_call not read from or "
                                            "written to the prompt cache."),
    ("completion_tokens", pa.int64(), "BIGINT", "Output tokens of an llm_call, reasoning "
                                                "included."),
    ("cache_read_tokens", pa.int64(), "BIGINT", "Prompt tokens served from cache."),
    ("cache_creation_tokens", pa.int64(), "BIGINT", "Prompt tokens written to cache."),
    ("cost_usd", pa.float64(), "DOUBLE", "Cost of an llm_call in USD; NULL when neither the "
                                         "source nor the price table gives one."),
    ("latency_ms", pa.float64(), "DOUBLE", "Latency of an llm_call in milliseconds."),
    ("duration_ms", pa.float64(), "DOUBLE", "Duration of a tool run / operation in milliseconds."),
    ("flavor", pa.string(), "VARCHAR", "Hardware flavor of a job (hf_job_*)."),
    ("status", pa.string(), "VARCHAR", "Final status of a job (hf_job_complete.final_status)."),
    ("wall_time_s", pa.float64(), "DOUBLE", "Wall time of a job in seconds."),
    ("rating", pa.string(), "VARCHAR", "Feedback rating ('up' / 'down')."),
    ("source", pa.string(), "VARCHAR", "Placement of a CTA click (pro_cta_click.source)."),
    ("hardware", pa.string(), "VARCHAR", "Hardware of a sandbox_create."),
    ("error_type", pa.string(), "VARCHAR", "Error class of an error event."),
    ("error_message", pa.string(), "VARCHAR", "Error message of an error event."),
    ("agent", pa.string(), "VARCHAR", "Agent id that emitted the event (sub-agents, seed-003 "
                                      "agent_id)."),
    ("data", pa.string(), "VARCHAR", "The raw event data as JSON text."),
    ("file", pa.string(), "VARCHAR", "File the event was read from; a changed file replaces "
                                     "exactly the rows it produced."),
)

#: Event columns added by schema migration 2 (appended: an old store gets them by
#: ``ALTER TABLE ... ADD COLUMN``, a new one has the same order).
EVENT_COLUMNS_V2: tuple[tuple[str, pa.DataType, str, str], ...] = (
    ("tool_call_id", pa.string(), "VARCHAR", "Id pairing a tool_call with its tool_output."),
    ("mcp_server", pa.string(), "VARCHAR", "MCP server of an MCP tool (`mcp__<server>__<tool>`)."),
    ("parent_id", pa.string(), "VARCHAR", "Id of the tool call / span that started the subagent "
                                          "this event belongs to; NULL for the main agent."),
    ("reasoning_tokens", pa.int64(), "BIGINT", "Reasoning/thinking tokens of an llm_call "
                                               "(already part of completion_tokens)."),
    ("cache_creation_1h_tokens", pa.int64(), "BIGINT", "The part of cache_creation_tokens "
                                                       "written with a 1-hour TTL."),
    ("cost_source", pa.string(), "VARCHAR", "'source' when the source carried the cost, "
                                            "'priced' when computed from the price table, NULL "
                                            "when unpriced."),
    ("price_version", pa.string(), "VARCHAR", "Price table version a 'priced' cost came from."),
    ("event_key", pa.string(), "VARCHAR", "Source-wide identity of the event (e.g. an API "
                                          "response id): the store keeps one row per key."),
)

#: Event columns added by schema migration 3: which model response asked for a tool.
EVENT_COLUMNS_V3: tuple[tuple[str, pa.DataType, str, str], ...] = (
    ("response_id", pa.string(), "VARCHAR", "Id of a model response: on an llm_call the "
                                            "call's own id, on a tool_call the id of the "
                                            "llm_call that requested it (same session)."),
)

#: Event columns added next (schema migration 5 on DuckDB, 4 on ClickHouse).
EVENT_COLUMNS_V4: tuple[tuple[str, pa.DataType, str, str], ...] = (
    ("unsplit_tokens", pa.int64(), "BIGINT", "Tokens a source reported only as a total, "
                                             "without the prompt/completion split (seed-003 "
                                             "token_count; the part of a total beyond the "
                                             "split reported with it). Counted in "
                                             "tokens_total."),
)

SESSION_COLUMNS = SESSION_COLUMNS_V1 + SESSION_COLUMNS_V2
EVENT_COLUMNS = EVENT_COLUMNS_V1 + EVENT_COLUMNS_V2 + EVENT_COLUMNS_V3 + EVENT_COLUMNS_V4

SESSION_SCHEMA = pa.schema([(n, t) for n, t, _, _ in SESSION_COLUMNS])
EVENT_SCHEMA = pa.schema([(n, t) for n, t, _, _ in EVENT_COLUMNS])


class DataField(NamedTuple):
    """One entry of a field map: which key(s) of an event's ``data`` fill an ``events`` column.

    The column gets the first of ``keys`` whose value, coerced by ``coerce`` (a name in
    :data:`agentkpi.quality.COERCIONS`: ``text``, ``int``, ``float``, ``bool``), is not
    NULL; a value that does not coerce is NULL and counted (:mod:`agentkpi.quality`).
    With ``event_type`` set the column is filled for events of that type only.
    """

    column: str
    keys: tuple[str, ...]
    coerce: str
    event_type: str | None = None


#: The field map of the common ``data`` vocabulary (session dataset, SDK event log, seeds
#: 002/003). A ``data`` that is not a JSON object fills no column and is kept as JSON text
#: in ``data`` (an empty object or null: ``data`` NULL). Columns not listed stay NULL.
#: :func:`agentkpi.quality.event_row_builder` applies a map; an importer whose source
#: spells a key differently declares its own map with :func:`field_map`.
DATA_FIELDS: tuple[DataField, ...] = (
    DataField("tool", ("tool",), "text"),
    DataField("success", ("success",), "bool"),
    DataField("model", ("model",), "text"),
    DataField("prompt_tokens", ("prompt_tokens",), "int"),
    DataField("completion_tokens", ("completion_tokens",), "int"),
    DataField("cache_read_tokens", ("cache_read_tokens",), "int"),
    DataField("cache_creation_tokens", ("cache_creation_tokens",), "int"),
    DataField("cost_usd", ("cost_usd",), "float"),
    DataField("latency_ms", ("latency_ms",), "float"),
    DataField("duration_ms", ("duration_ms",), "float"),
    DataField("flavor", ("flavor",), "text"),
    DataField("status", ("final_status", "status"), "text"),
    DataField("wall_time_s", ("wall_time_s",), "float"),
    DataField("rating", ("rating",), "text"),
    DataField("source", ("source",), "text"),
    DataField("hardware", ("hardware",), "text"),
    DataField("error_type", ("error_type", "type"), "text", "error"),
    DataField("error_message", ("error", "message"), "text", "error"),
    DataField("agent", ("agent_id", "agent"), "text"),
    DataField("tool_call_id", ("tool_call_id", "call_id", "tool_use_id"), "text"),
    DataField("response_id", ("response_id",), "text"),
)


def field_map(base: tuple[DataField, ...] = DATA_FIELDS, **keys: tuple[str, ...]
              ) -> tuple[DataField, ...]:
    """``base`` with the source keys of some columns replaced, e.g.
    ``field_map(tool=("tool_name", "tool"))`` for a source that says ``tool_name``."""
    unknown = set(keys) - {f.column for f in base}
    if unknown:
        raise ValueError(f"no column {sorted(unknown)} in the field map")
    return tuple(f._replace(keys=keys[f.column]) if f.column in keys else f for f in base)

#: Event vocabulary: name -> what it means and which KPIs read it.
EVENT_TYPES: dict[str, str] = {
    "session_start": "A session began (SDK / seed-003). Sessions are counted from any event.",
    "session_end": "A session ended (SDK / seed-003).",
    "llm_call": "One model call: model, tokens x4, cost_usd, latency_ms, finish_reason. "
                "KPIs: llm_calls, tokens_*, cost_usd, cost_per_session_*, cache_hit_ratio.",
    "tool_call": "The agent asked for a tool (data.tool). KPIs: time_to_first_action_s_*, "
                 "research_*, tool_calls_per_*, distinct_tools_*, tool_calls_by_name_json.",
    "tool_output": "A tool finished: success, duration_ms. KPIs: tool_calls_total/_succeeded/"
                   "_failed, tool_success_rate, time_to_first_action_s_*.",
    "error": "An error surfaced to the user (error_type, message). KPIs: errored_sessions, "
             "successful_sessions, failure_rate.",
    "feedback": "Thumbs up/down (data.rating). KPIs: thumbs_up, thumbs_down.",
    "undo_complete": "The user undid/regenerated a turn. KPIs: regenerated_sessions, "
                     "regenerate_rate.",
    "hf_job_submit": "A compute job was submitted. KPI: hf_jobs_submitted.",
    "hf_job_complete": "A compute job finished: flavor, final_status, wall_time_s. "
                       "KPIs: hf_jobs_succeeded, gpu_hours_by_flavor_json.",
    "jobs_access_blocked": "A job was refused for lack of access. KPI: hf_jobs_blocked.",
    "pro_cta_click": "An upgrade call-to-action was clicked (data.source). KPIs: "
                     "pro_cta_clicks, pro_cta_by_source_json.",
    "pro_conversion": "A user converted to a paid plan. KPI: pro_conversions.",
    "credits_topped_up": "A user bought credits. KPI: credits_topped_up.",
    "sandbox_create": "A sandbox was created (data.hardware). KPIs: sandboxes_created/_cpu/_gpu.",
    "token_usage": "Tokens reported apart from a model call (seed-003 token_usage lines, "
                   "seed-002 token count metrics): the four token buckets and unsplit_tokens. "
                   "KPIs: tokens_* (not llm_calls).",
    "metric": "A free-form named numeric metric (seed-002 record_metric, seed-003 "
              "performance); name in data.name, value in data.value.",
}

#: Lifecycle/UI events that real session rows carry and no KPI reads; known, so not
#: reported as unknown types.
LIFECYCLE_EVENT_TYPES = frozenset({
    "ready", "processing", "assistant_stream_end", "assistant_message", "tool_log",
    "approval_required", "tool_state_change", "turn_complete", "shutdown", "interrupted",
    "compacted", "user_message", "undo", "tool_use", "error_occurred", "performance",
    "agent_execution", "checkpoint", "hook", "command", "checkpoint_created",
    "hook_triggered", "command_executed", "alert",
})


#: Widths an event tuple may have: the columns of each schema version (later ones NULL).
_VERSIONS = (EVENT_COLUMNS_V1, EVENT_COLUMNS_V2, EVENT_COLUMNS_V3, EVENT_COLUMNS_V4)
_TUPLE_WIDTHS = frozenset(sum(map(len, _VERSIONS[:n])) for n in range(1, len(_VERSIONS) + 1))


@dataclass
class CanonicalBatch:
    """Builder of canonical rows; importers append, the store inserts Arrow tables.

    Two ways in: :meth:`add_event` (keyword values, one call per event) or, for
    hot loops, whole event tuples in ``EVENT_COLUMNS`` order appended to
    :attr:`event_rows` (one list append per event; transposed to columns in C when
    the columns are read). A tuple may stop after the columns of any schema version
    (``EVENT_COLUMNS_V1``, ``..._V2``, ...; the later columns are then NULL).
    """

    def __post_init__(self) -> None:
        self.sessions: dict[str, list[Any]] = {n: [] for n, *_ in SESSION_COLUMNS}
        self._events: dict[str, list[Any]] = {n: [] for n, *_ in EVENT_COLUMNS}
        self.event_rows: list[tuple[Any, ...]] = []
        #: Event rows already in Arrow (``EVENT_SCHEMA``), after the rows above.
        self.event_tables: list[pa.Table] = []
        #: Work an importer left for the end of the batch (:meth:`resolve`):
        #: ``(resolve, item)`` pairs; ``resolve(batch, items)`` adds the rows of its items.
        self.deferred: list[tuple[Callable[[CanonicalBatch, list[Any]], dict[Any, Exception]],
                                  Any]] = []

    def resolve(self) -> dict[Any, Exception]:
        """Do the deferred work (:attr:`deferred`), each importer's items in one call, in
        the order they were deferred. Returns ``{item: error}`` of the items whose rows
        could not be made (their rows are not added; the caller reports them)."""
        failed: dict[Any, Exception] = {}
        while self.deferred:
            fn = self.deferred[0][0]
            n = next((i for i, (f, _) in enumerate(self.deferred) if f is not fn),
                     len(self.deferred))
            items = [item for _, item in self.deferred[:n]]
            del self.deferred[:n]
            failed.update(fn(self, items))
        return failed

    def _resolved(self) -> None:
        """Deferred work done before rows are read; a caller that does not handle failures
        itself (ingest calls :meth:`resolve` and reports them per file) gets an error."""
        if self.deferred and (failed := self.resolve()):
            key, exc = next(iter(failed.items()))
            raise RuntimeError(f"{len(failed)} deferred item(s) failed, first {key}: "
                               f"{type(exc).__name__}: {exc}") from exc

    @property
    def events(self) -> dict[str, list[Any]]:
        """The event columns (pending :attr:`event_rows` and :attr:`event_tables` folded in
        first; deferred work done)."""
        self._resolved()
        if self.event_tables:
            arrow = pa.concat_tables(self.event_tables)
            self.event_tables = []
            self.events  # noqa: B018 - folds event_rows first, to keep the order
            for name, column in self._events.items():
                column.extend(arrow.column(name).to_pylist())
        if self.event_rows:
            rows = self.event_rows
            widths = set(map(len, rows))
            if not widths <= _TUPLE_WIDTHS:
                raise ValueError(f"event tuples of {sorted(widths)} values; expected one of "
                                 f"{sorted(_TUPLE_WIDTHS)}")
            if len(widths) > 1:  # two importers in one batch (e.g. OTLP records in a log)
                full = len(EVENT_COLUMNS)
                rows = [r if len(r) == full else r + (None,) * (full - len(r)) for r in rows]
            columns = list(zip(*rows, strict=True))
            for column, values in zip(self._events.values(), columns, strict=False):
                column.extend(values)
            missing = [None] * len(rows)
            for column in list(self._events.values())[len(columns):]:
                column.extend(missing)
            self.event_rows.clear()
        return self._events

    def add_session(self, **values: Any) -> None:
        for name, column in self.sessions.items():
            column.append(values.get(name))

    def add_event(self, **values: Any) -> None:
        for name, column in self.events.items():
            column.append(values.get(name))

    def extend(self, other: CanonicalBatch) -> None:
        for name, column in self.sessions.items():
            column.extend(other.sessions[name])
        mine = self.events
        for name, column in other.events.items():
            mine[name].extend(column)

    def truncate(self, n_sessions: int, n_events: int, n_deferred: int | None = None) -> None:
        """Drop rows appended after the batch had ``n_sessions``/``n_events`` rows (and
        deferred items after ``n_deferred``): undoes a file an importer failed on. Only
        before :meth:`resolve`: rows it made are not dropped."""
        for column in self.sessions.values():
            del column[n_sessions:]
        if n_deferred is not None:
            del self.deferred[n_deferred:]
        in_lists = len(self._events["session_id"])
        if n_events < in_lists:
            for column in self._events.values():
                del column[n_events:]
            self.event_rows.clear()
        else:
            del self.event_rows[n_events - in_lists:]

    @property
    def n_sessions(self) -> int:
        return len(self.sessions["session_id"])

    @property
    def n_events(self) -> int:
        """Event rows so far (deferred items not counted: :meth:`resolve` first)."""
        return (len(self._events["session_id"]) + len(self.event_rows)
                + sum(t.num_rows for t in self.event_tables))

    def session_table(self) -> pa.Table:
        return pa.table(self.sessions, schema=SESSION_SCHEMA)

    def event_table(self) -> pa.Table:
        self._resolved()
        arrow, self.event_tables = self.event_tables, []
        if not arrow:
            return pa.table(self.events, schema=EVENT_SCHEMA)
        if self.n_events:
            arrow.insert(0, pa.table(self.events, schema=EVENT_SCHEMA))
        return pa.concat_tables(arrow)


def pair_tool_calls(events: pa.Table) -> tuple[pa.Table, int]:
    """Complete each ``tool_output`` that has a ``tool_call_id`` from its ``tool_call``
    (same session and id; the first such call in row order): a missing tool name is the
    call's, a missing duration is the output's time minus the call's (in ms; none when
    either time is missing or the output is timed before its call). Returns the rows and
    the number of outputs completed.

    Many formats name the tool only on the call and time the run only by the two
    events; without this every such output would count under no tool (0 runs on the
    by-tool page) and without a duration. The ingest runs it on every importer's rows,
    so no importer has to remember it. Vectorised (Arrow): no Python per event.
    """
    types, ids = events.column("event_type"), events.column("tool_call_id")
    tools, durations = events.column("tool"), events.column("duration_ms")
    outputs = pc.indices_nonzero(pc.and_(
        pc.and_(pc.fill_null(pc.equal(types, "tool_output"), False), pc.is_valid(ids)),
        pc.or_(pc.is_null(tools), pc.is_null(durations))))
    if not len(outputs):  # the usual case: every output named and timed already
        return events, 0
    sids = events.column("session_id")
    calls = pc.indices_nonzero(pc.and_(pc.fill_null(pc.equal(types, "tool_call"), False),
                                       pc.is_valid(ids)))
    first = pa.table({"sid": sids.take(calls), "id": ids.take(calls), "c": calls}).group_by(
        ["sid", "id"], use_threads=False).aggregate([("c", "min")])
    pairs = pa.table({"sid": sids.take(outputs), "id": ids.take(outputs), "o": outputs}).join(
        first, keys=["sid", "id"], join_type="inner", use_threads=False).sort_by("o")
    o, c = pairs.column("o").combine_chunks(), pairs.column("c_min").combine_chunks()
    name_o, name_c = tools.take(o), tools.take(c)
    fill_name = pc.and_(pc.is_null(name_o), pc.is_valid(name_c))
    times = events.column("ts")
    # whole microseconds / 1000: the nearest double to the exact ms value
    ms = pc.divide(pc.cast(pc.cast(pc.subtract(times.take(o), times.take(c)), pa.int64()),
                           pa.float64()), 1000.0)
    fill_ms = pc.and_(pc.is_null(durations.take(o)), pc.fill_null(pc.greater_equal(ms, 0.0),
                                                                   False))
    completed = pc.sum(pc.or_(fill_name, fill_ms)).as_py() or 0
    if not completed:
        return events, 0

    def fill(column: str, where: pa.Array, values: pa.Array) -> None:
        nonlocal events
        at = o.filter(where).to_pylist()
        if not at:
            return
        mask = [False] * events.num_rows
        for row in at:
            mask[row] = True
        i = events.schema.get_field_index(column)
        events = events.set_column(i, column, pc.replace_with_mask(
            events.column(i).combine_chunks(), pa.array(mask),
            pc.filter(values, where).combine_chunks()))

    fill("tool", fill_name, name_c)
    fill("duration_ms", fill_ms, ms)
    return events, completed
