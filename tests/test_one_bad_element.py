"""One bad element costs at most that element, in every importer (property-based).

A file of good events is rendered in each source format; Hypothesis then spoils
one element of it: a value inside an event's data, an event's timestamp, an
unknown extra field (of the event or of the session), or the whole event. The
importer must keep every other event with its values and timestamp, keep the
spoiled event itself unless the event as a whole was replaced, skip no file,
count what it dropped, and produce rows a real DuckDB store accepts.

A new importer joins with one line in :data:`FORMATS`: a :class:`Format` naming
its source module, a file name, and a ``render`` function turning the
:class:`Ev` fragments (raw JSON text) into the bytes of one file.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkpi.quality import Quality
from agentkpi.sources import eventlog, seed002, seed003, session_dataset
from agentkpi.store import DuckDBStore

T0 = datetime(2026, 5, 20, 14, 0, 0)


@dataclass
class Ev:
    """One event as raw JSON fragments (so that non-standard JSON can be injected).

    ``ts``: JSON text of the timestamp; ``fields``: JSON text of the data members
    without braces (``"marker": 3, "prompt_tokens": 13``); ``extra``: one more
    top-level member (``"junk": NaN``) or ""; ``whole``: raw text that replaces
    the whole event, or None.
    """

    marker: int
    ts: str
    fields: str
    extra: str = ""
    whole: str | None = None


@dataclass(frozen=True)
class Format:
    module: ModuleType
    filename: str
    render: Callable[[list[Ev], str], bytes]  # (events, extra session member) -> file bytes
    #: Events sit in one JSON document (not one per line): text that breaks the JSON
    #: syntax spoils the document, so only whole events that are JSON values are tried.
    one_document: bool = False


def _members(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


def _render_session_dataset(events: list[Ev], session_extra: str, as_string: bool) -> bytes:
    items = [e.whole if e.whole is not None else
             "{" + _members(f'"timestamp": {e.ts}', '"event_type": "llm_call"',
                            f'"data": {{{e.fields}}}', e.extra) + "}" for e in events]
    listing = "[" + ", ".join(items) + "]"
    value = json.dumps(listing) if as_string else listing
    row = "{" + _members('"session_id": "s1"', '"session_start_time": "2026-05-20T13:59:00Z"',
                         '"user_id": "u1"', '"model_name": "m1"',
                         '"messages": "[{\\"role\\": \\"user\\", \\"content\\": \\"hi\\"}]"',
                         f'"events": {value}', session_extra) + "}"
    return row.encode() + b"\n"


def _render_eventlog(events: list[Ev], session_extra: str) -> bytes:
    lines = ["{" + _members('"seq": 0', '"ts": "2026-05-20T13:59:00Z"', '"session_id": "s1"',
                            '"event_type": "session_start"', '"user_id": "u1"',
                            session_extra) + "}"]
    for i, e in enumerate(events, 1):
        lines.append(e.whole if e.whole is not None else "{" + _members(
            f'"seq": {i}', f'"ts": {e.ts}', '"session_id": "s1"', '"event_type": "llm_call"',
            f'"data": {{{e.fields}}}', e.extra) + "}")
    return ("\n".join(lines) + "\n").encode()


def _render_seed003(events: list[Ev], session_extra: str) -> bytes:
    lines = ["{" + _members('"id": "a"', '"timestamp": "2026-05-20T13:59:00"', '"type": '
                            '"session_start"', '"session_id": "s1"', '"user_id": "u1"',
                            '"data": {"model": "m1"}', '"metadata": {}', session_extra) + "}"]
    for i, e in enumerate(events):
        lines.append(e.whole if e.whole is not None else "{" + _members(
            f'"id": "e{i}"', f'"timestamp": {e.ts}', '"type": "llm_call"', '"session_id": "s1"',
            '"user_id": "u1"', f'"data": {{{e.fields}}}', '"metadata": {}', e.extra) + "}")
    return ("\n".join(lines) + "\n").encode()


def _render_seed002(events: list[Ev], session_extra: str) -> bytes:
    lines = []
    for e in events:
        lines.append(e.whole if e.whole is not None else "{" + _members(
            '"metric": "latency"', '"value": 1.5', f'"timestamp": {e.ts}', e.fields,
            e.extra) + "}")
    if session_extra:  # seed-002 has no session line: the extra member rides on the first
        lines[0] = lines[0][:-1] + ", " + session_extra + "}" if lines[0].endswith("}") \
            else lines[0]
    return ("\n".join(lines) + "\n").encode()


#: Every importer, as (module, file name, renderer). New importers: add one line here.
FORMATS: dict[str, Format] = {
    "session_dataset": Format(session_dataset, "sessions/2026-05-20/s1.jsonl",
                              lambda evs, extra: _render_session_dataset(evs, extra, True),
                              one_document=True),
    "session_dataset_decoded": Format(
        session_dataset, "sessions/2026-05-20/s1.jsonl",
        lambda evs, extra: _render_session_dataset(evs, extra, False), one_document=True),
    "eventlog": Format(eventlog, "log/events-20260520T140000-1-0.jsonl", _render_eventlog),
    "seed003": Format(seed003, "metrics/metrics_20260520_140000.jsonl", _render_seed003),
    "seed002": Format(seed002, "monitoring/run1/metrics.jsonl", _render_seed002),
}


# --------------------------------------------------------------------- bad elements

def _deep(depth: int) -> str:
    return '{"x": ' * depth + "1" + "}" * depth


#: Values that are not representable once decoded: always counted wherever they are.
UNREPRESENTABLE = ("NaN", "Infinity", "-Infinity", "1e400", '"\\ud800 lone"', "9" * 5000,
                   '{"a": NaN}', _deep(1100), _deep(3000))
BAD_VALUES = st.sampled_from([
    *UNREPRESENTABLE, "123456789012345678901234567890", '"abc"', "[1, 2]", _deep(300),
    "-9223372036854775809", "true", "null", "-1", "0.5",
])

BAD_TIMESTAMPS = st.sampled_from([
    '"9999-12-31T23:30:00-01:00"', '"0001-01-01T00:00:00+05:00"', '"not a time"',
    "1e20", "-1e20", "NaN", "Infinity", '{"a": 1}', "[1]", _deep(500), '"2026-13-45T99:00"',
])

WHOLE_VALUES = ["42", '"just a string"', "[1, 2, 3]", "null", "NaN", '{"a": 1}']
WHOLE_LINES = ['{"timestamp": "2026-05-20T14:00:00Z", "data', "\x00\x01 binary", '{"a": 1}}']

#: Typed fields an event's data may carry; the spoiled one gets the bad value.
FIELDS = ("prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "duration_ms",
          "success", "model", "tool", "agent_id", "wall_time_s", "unused_field")


@st.composite
def spoiled(draw: st.DrawFn, one_document: bool) -> tuple[list[Ev], str, int, str, bool]:
    """(events, session extra member, spoiled index, how, must be counted)."""
    n = draw(st.integers(min_value=1, max_value=6))
    events = [Ev(i, f'"{(T0 + timedelta(minutes=i)).isoformat()}Z"',
                 f'"marker": {i}, "prompt_tokens": {10 + i}') for i in range(n)]
    k = draw(st.integers(min_value=0, max_value=n - 1))
    how = draw(st.sampled_from(["value", "ts", "extra", "session_extra", "whole"]))
    counted = True
    session_extra = ""
    e = events[k]
    if how == "value":
        text = draw(BAD_VALUES)
        e.fields += f', "{draw(st.sampled_from(FIELDS))}": {text}'
        counted = text in UNREPRESENTABLE
    elif how == "ts":
        e.ts = draw(BAD_TIMESTAMPS)
    elif how == "extra":
        text = draw(BAD_VALUES)
        e.extra = f'"junk": {text}'
        counted = text in UNREPRESENTABLE
    elif how == "session_extra":
        text = draw(BAD_VALUES)
        session_extra = f'"junk": {text}'
        counted = text in UNREPRESENTABLE
    else:
        e.whole = draw(st.sampled_from(WHOLE_VALUES if one_document
                                       else WHOLE_VALUES + WHOLE_LINES))
    return events, session_extra, k, how, counted


@pytest.fixture(scope="module")
def store_dir() -> Path:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def _markers(data_column: list[str | None]) -> dict[int, int]:
    """marker -> row index, from the kept ``data`` JSON of each event."""
    out = {}
    for i, text in enumerate(data_column):
        if text is None:
            continue
        data = orjson.loads(text)
        marker = data.get("marker") if isinstance(data, dict) else None
        if isinstance(marker, int):
            out[marker] = i
    return out


@pytest.mark.parametrize("name", sorted(FORMATS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(data=st.data())
def test_one_bad_element_costs_at_most_that_element(name: str, data: st.DataObject,
                                                    store_dir: Path) -> None:
    fmt = FORMATS[name]
    events, session_extra, k, how, counted = data.draw(spoiled(fmt.one_document))
    if fmt.module is seed002 and how == "session_extra":
        # no session line in seed-002: the member rides on the first event's line
        how = "extra" if k == 0 else how
    raw = fmt.render(events, session_extra)
    q = Quality()
    batch = fmt.module.parse_file(fmt.filename, raw, q)

    assert q.skipped == [], f"{name}: a file was skipped for one bad {how}: {q.skipped}"
    sessions, evs = batch.session_table(), batch.event_table()
    if any(e.whole is None for e in events):  # (seed-002: no line left, no session)
        assert sessions.num_rows >= 1, f"{name}: the session was lost for one bad {how}"

    found = _markers(evs.column("data").to_pylist())
    ts = evs.column("ts").to_pylist()
    for e in events:
        if e.marker == k:
            if how != "whole":
                assert e.marker in found, f"{name}: the event lost for one bad {how}"
            continue
        assert e.marker in found, f"{name}: good event {e.marker} lost (bad {how} in {k})"
        assert ts[found[e.marker]] == T0 + timedelta(minutes=e.marker)
        if fmt.module is not seed002:
            assert evs.column("prompt_tokens")[found[e.marker]].as_py() == 10 + e.marker
    if counted:
        assert q.counts, f"{name}: a bad {how} was dropped without being counted"

    # What the importer produced, a real store accepts and reads back.
    path = str(store_dir / f"{name}.duckdb")
    with DuckDBStore(path) as store:
        ledger = [{"path": f"{fmt.filename}#{id(raw)}", "fingerprint": "x", "source":
                   fmt.module.NAME, "status": "ok"}]
        store.write_batch(sessions, evs, ledger, replace_sessions=False)
        store.con.execute("SELECT max(ts), sum(prompt_tokens), sum(cost_usd) FROM events"
                          ).fetchall()


@pytest.mark.parametrize("text", UNREPRESENTABLE)
def test_transcript_lines_lose_only_the_bad_value(text: str) -> None:
    """The JSONL reader of the transcript importers (codex, gemini_cli): one bad value in a
    line costs that value, the line and its neighbours are kept."""
    from agentkpi.sources._transcripts import json_lines

    raw = (b'{"n": 1, "v": 1}\n{"n": 2, "v": ' + text.encode() + b', "keep": "yes"}\n'
           b'{"n": 3, "v": 3}\n')
    q = Quality()
    rows = [obj for _, obj in json_lines(io.BytesIO(raw), q, "t.jsonl")]
    assert [r["n"] for r in rows] == [1, 2, 3]
    assert rows[1]["keep"] == "yes" and q.counts["value_bad_json"] >= 1
