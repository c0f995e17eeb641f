"""The session timeline (agentkpi.views.session_timeline): lanes, bars, marks and cost,
on a real DuckDB file, through the view and the dashboard's JSON twin."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from agentkpi import views
from agentkpi.model import CanonicalBatch
from agentkpi.store import DuckDBStore
from agentkpi.web import create_app

T0 = datetime(2026, 5, 20, 14, 0, 0)


def _at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def _store(path: Path, b: CanonicalBatch, sid: str, events: list[dict[str, Any]]) -> Path:
    """Write ``events`` (keyword values of :meth:`CanonicalBatch.add_event`, in order) of
    session ``sid`` with ``b``'s session row into a store at ``path``, as one file would."""
    for i, e in enumerate(events):
        b.add_event(session_id=sid, seq=i, file="constructed", **e)
    with DuckDBStore(path) as st:
        st.write_batch(b.session_table(), b.event_table(),
                       [{"path": "constructed", "fingerprint": "1", "source": "test",
                         "status": "ok", "reason": None, "n_sessions": 1,
                         "n_events": b.n_events}], replace_sessions=True)
    return path


def make_session(path: Path, sid: str = "s-1") -> Path:
    """A main agent that calls a model, runs Bash (ok) and a Task whose subagent calls a
    model and runs a failing tool; an error and a thumbs-down at the end."""
    b = CanonicalBatch()
    b.add_session(session_id=sid, start_ts=T0, end_ts=_at(60), model="claude-x", turns=1,
                  source="test", source_path="constructed")
    ev: list[dict[str, Any]] = [
        dict(ts=_at(2), event_type="llm_call", model="claude-x", prompt_tokens=10,
             completion_tokens=20, cache_read_tokens=300, cache_creation_tokens=40,
             cost_usd=0.25, latency_ms=1500.0),
        dict(ts=_at(3), event_type="tool_call", tool="Bash", tool_call_id="t-bash"),
        dict(ts=_at(5), event_type="tool_output", tool="Bash", tool_call_id="t-bash",
             success=True, duration_ms=2000.0),
        dict(ts=_at(6), event_type="tool_call", tool="Task", tool_call_id="t-task"),
        dict(ts=_at(8), event_type="llm_call", model="claude-y", prompt_tokens=5,
             completion_tokens=7, cost_usd=0.5, agent="sub-a", parent_id="t-task"),
        dict(ts=_at(9), event_type="tool_call", tool="Read", tool_call_id="t-read",
             agent="sub-a", parent_id="t-task"),
        dict(ts=_at(10), event_type="tool_output", tool="Read", tool_call_id="t-read",
             success=False, agent="sub-a", parent_id="t-task"),
        dict(ts=_at(20), event_type="tool_output", tool="Task", tool_call_id="t-task",
             success=True),
        dict(ts=_at(21), event_type="llm_call", model="claude-x", prompt_tokens=1,
             completion_tokens=1),  # unpriced: no cost, no step in the cost line
        dict(ts=_at(30), event_type="error", error_type="api_error", error_message="overloaded"),
        dict(ts=_at(40), event_type="feedback", rating="down"),
        dict(ts=None, event_type="tool_call", tool="Lost"),
    ]
    return _store(path, b, sid, ev)


@pytest.fixture()
def store_path(tmp_path: Path) -> Path:
    return make_session(tmp_path / "store.duckdb")


def test_timeline_lanes_nest_the_subagent_under_its_task_call(store_path: Path) -> None:
    with DuckDBStore(store_path, read_only=True) as st:
        tl = views.session_timeline(st, "s-1")
    assert [(ln["id"], ln["depth"], ln["parent_call"]) for ln in tl["lanes"]] == [
        ("main", 0, None), ("sub-a", 1, "t-task")]
    assert tl["t0"] == "2026-05-20T14:00:00" and tl["events"] == 12 and tl["untimed"] == 1


def test_timeline_bars_pair_calls_with_outputs(store_path: Path) -> None:
    with DuckDBStore(store_path, read_only=True) as st:
        tl = views.session_timeline(st, "s-1")
    llm = [it for it in tl["items"] if it["kind"] == "llm"]
    assert [(it["lane"], it["start"], it["end"], it["model"]) for it in llm] == [
        ("main", 500.0, 2000.0, "claude-x"), ("sub-a", 8000.0, 8000.0, "claude-y"),
        ("main", 21000.0, 21000.0, "claude-x")]
    assert llm[0]["tokens"] == {"input": 10, "output": 20, "cache_read": 300,
                                "cache_write": 40}
    tools = {it["tool"]: it for it in tl["items"] if it["kind"] == "tool"}
    assert set(tools) == {"Bash", "Task", "Read"}  # each call once, paired with its output
    assert (tools["Bash"]["start"], tools["Bash"]["end"], tools["Bash"]["success"]) == (
        3000.0, 5000.0, True)
    assert tools["Bash"]["duration_ms"] == 2000.0
    assert (tools["Task"]["start"], tools["Task"]["end"]) == (6000.0, 20000.0)
    assert tools["Read"]["lane"] == "sub-a" and tools["Read"]["success"] is False
    assert tools["Read"]["duration_ms"] == 1000.0  # from the pair when the output has none
    marks = [(it["event_type"], it["start"], it["label"]) for it in tl["items"]
             if it["kind"] == "mark"]
    assert marks == [("error", 30000.0, "api_error"), ("feedback", 40000.0, "down")]
    assert tl["cost"] == [{"t": 2000.0, "cost_usd": 0.25}, {"t": 8000.0, "cost_usd": 0.75}]
    assert tl["total_cost_usd"] == 0.75 and tl["duration_ms"] == 40000.0


def test_session_api_carries_the_timeline(store_path: Path) -> None:
    client = TestClient(create_app(str(store_path), poll=10))
    d = client.get("/api/session/s-1").json()
    assert d["timeline"]["lanes"][1]["id"] == "sub-a"
    assert len(d["events"]) == 12 and d["events"][0]["tool_call_id"] is None
    assert client.get("/api/session/nope").status_code == 404


def _big_session(path: Path, n: int = 5000) -> Path:
    b = CanonicalBatch()
    b.add_session(session_id="big", start_ts=T0, source="test", source_path="constructed")
    kinds = ("llm_call", "tool_call", "tool_output", "error")
    ev = [dict(ts=_at(i), event_type=kind, model="m" if kind == "llm_call" else None,
               cost_usd=0.001 if i % 4 == 0 else None, tool="Bash" if "tool" in kind else None,
               tool_call_id=f"c{i // 4}" if "tool" in kind else None,
               success=(i % 8 != 2) if kind == "tool_output" else None)
          for i in range(n) for kind in (kinds[i % 4],)]
    return _store(path, b, "big", ev)


@pytest.mark.browser
def test_session_page_draws_the_timeline_in_chromium(tmp_path: Path) -> None:
    """The constructed session and a 5,000-event one render as timelines; the raw events
    stay one click away; no console errors."""
    from tests.test_web_browser import browser_page, serve_app

    make_session(tmp_path / "store.duckdb")
    _big_session(tmp_path / "big.duckdb")
    with serve_app(str(tmp_path / "big.duckdb")) as big_url, \
            browser_page(str(tmp_path / "store.duckdb"),
                         viewport={"width": 1300, "height": 900}) as (url, page):
        page.goto(url + "/session/s-1")
        page.wait_for_selector("svg.timeline")
        assert page.eval_on_selector_all("svg.timeline text.lane-label",
                                         "ts => ts.map(t => t.dataset.lane)") == [
            "main", "sub-a"]
        assert page.locator("svg.timeline rect.bar.llm").count() == 3
        assert page.locator("svg.timeline rect.bar.tool.failed").count() == 1
        assert page.locator("svg.timeline rect.bar.tool.ok").count() == 2
        assert page.locator("svg.timeline path.mark.error").count() == 1
        tip = page.locator("svg.timeline rect.bar.llm title").first.text_content()
        assert tip == ("claude-x \u00b7 in 10, out 20, cache read 300, cache write 40 "
                       "\u00b7 $0.25 \u00b7 1.5 s")
        assert not page.locator("#raw-events table").is_visible()
        page.click("#raw-events summary")
        assert page.locator("#raw-events table").is_visible()
        assert page.get_attribute("#raw-events table", "data-rows") == "12"
        page.goto(big_url + "/session/big")
        page.wait_for_selector("svg.timeline")
        assert page.get_attribute("svg.timeline", "data-items") == str(1250 * 3)


@pytest.mark.browser
def test_real_claude_code_sessions_as_timelines(tmp_path: Path) -> None:
    """The real Claude Code samples (../shared/data/realworld/claude-code) ingested where
    Claude Code keeps them: the main transcript's 4 responses and 6 tool runs, and the
    subagent file's 3 responses in its own lane, drawn in Chromium."""
    from agentkpi.ingestion import ingest
    from tests.test_claude_code import MAIN_SESSION, SUB_SESSION, _tree
    from tests.test_web_browser import browser_page

    with DuckDBStore(tmp_path / "s.duckdb") as st:
        ingest(str(_tree(tmp_path)), st, workers=1, machine="laptop")
        main_tl = views.session_timeline(st, MAIN_SESSION)
        sub_tl = views.session_timeline(st, SUB_SESSION)
    kinds = [it["kind"] for it in main_tl["items"]]
    assert kinds.count("llm") == 4 and kinds.count("tool") == 6
    assert [ln["id"] for ln in main_tl["lanes"]] == ["main"]
    assert [it["kind"] for it in sub_tl["items"]].count("llm") == 3
    assert len(sub_tl["lanes"]) == 1 and sub_tl["lanes"][0]["id"] != "main"
    with browser_page(str(tmp_path / "s.duckdb"),
                      viewport={"width": 1300, "height": 900}) as (url, page):
        page.goto(f"{url}/session/{MAIN_SESSION}")
        page.wait_for_selector("svg.timeline")
        assert page.locator("svg.timeline rect.bar.llm").count() == 4
        assert page.locator("svg.timeline rect.bar.tool").count() == 6
        tips = page.eval_on_selector_all("svg.timeline rect.bar.llm title",
                                         "ts => ts.map(t => t.textContent)")
        assert all(t.startswith("claude-opus-4-6 \u00b7 in ") for t in tips), tips
        # the streamed response drawn once, with its final (largest) usage: 47 in, 173
        # out, 26,504 read, 1,115 written
        assert sum("in 47, out 173, cache read 27k, cache write 1.1k" in t
                   for t in tips) == 1, tips
        page.goto(f"{url}/session/{SUB_SESSION}")
        page.wait_for_selector("svg.timeline")
        assert page.locator("svg.timeline rect.bar.llm").count() == 3


def _parallel_session(path: Path) -> Path:
    """Two Task calls at once, each starting a subagent that runs three tools at once; the
    main agent also runs two tools at once and two model calls overlap (latency)."""
    b = CanonicalBatch()
    b.add_session(session_id="par", start_ts=T0, source="test", source_path="constructed")
    ev: list[dict[str, Any]] = [
        dict(ts=_at(2), event_type="llm_call", model="m", latency_ms=2000.0),
        dict(ts=_at(3), event_type="llm_call", model="m", latency_ms=2500.0),
        dict(ts=_at(4), event_type="tool_call", tool="Task", tool_call_id="task-a"),
        dict(ts=_at(4), event_type="tool_call", tool="Task", tool_call_id="task-b"),
        dict(ts=_at(5), event_type="tool_call", tool="Grep", tool_call_id="g"),
        dict(ts=_at(5), event_type="tool_call", tool="Glob", tool_call_id="h"),
        dict(ts=_at(9), event_type="tool_output", tool="Grep", tool_call_id="g", success=True),
        dict(ts=_at(9), event_type="tool_output", tool="Glob", tool_call_id="h", success=False),
    ]
    for agent in ("sub-a", "sub-b"):
        ids = [f"{agent}-{k}" for k in range(3)]
        ev += [dict(ts=_at(6), event_type="llm_call", model="m", agent=agent,
                    parent_id=f"task-{agent[-1]}", latency_ms=1000.0)]
        ev += [dict(ts=_at(7), event_type="tool_call", tool="Read", tool_call_id=i, agent=agent,
                    parent_id=f"task-{agent[-1]}") for i in ids]
        ev += [dict(ts=_at(12 + k), event_type="tool_output", tool="Read", tool_call_id=i,
                    success=True, agent=agent, parent_id=f"task-{agent[-1]}")
               for k, i in enumerate(ids)]
    ev += [dict(ts=_at(20), event_type="tool_output", tool="Task", tool_call_id=t, success=True)
           for t in ("task-a", "task-b")]
    ev += [dict(ts=_at(8), event_type="error", error_type="api_error")]
    return _store(path, b, "par", ev)


#: Each lane's band, each bar and mark of the drawn timeline, as the browser laid them out.
BOXES = """() => {
  const box = e => { const r = e.getBoundingClientRect();
                     return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
  const q = s => [...document.querySelectorAll('svg.timeline ' + s)];
  return {lanes: q('rect.lane').map(box), labels: q('text.lane-label').map(e => e.dataset.lane),
          bars: q('rect.bar').map(e => ({...box(e), kind: e.dataset.kind,
                                         tip: e.querySelector('title').textContent})),
          marks: q('path.mark').map(box)};
}"""


def _apart(a: dict[str, float], b: dict[str, float], side: str) -> bool:
    """Boxes ``a`` and ``b`` share at most half a pixel along ``side`` (y or x)."""
    lo, hi = ("top", "bottom") if side == "y" else ("left", "right")
    return min(a[hi], b[hi]) - max(a[lo], b[lo]) <= 0.5


def _assert_no_overlap(drawn: dict[str, Any]) -> None:
    """Lanes' bands are disjoint; every bar and mark lies inside one band (so no two lanes'
    shapes overlap); no two bars cover the same pixels (a bar hidden under another)."""
    bands = sorted(drawn["lanes"], key=lambda b: b["top"])
    assert len(bands) == len(drawn["labels"])
    for upper, lower in zip(bands, bands[1:], strict=False):
        assert upper["bottom"] <= lower["top"] + 0.5, (upper, lower)
    for shape in drawn["bars"] + drawn["marks"]:
        mid = (shape["top"] + shape["bottom"]) / 2
        (band,) = [b for b in bands if b["top"] <= mid < b["bottom"]]
        assert band["top"] - 0.5 <= shape["top"] and shape["bottom"] <= band["bottom"] + 0.5, (
            shape, band)
    bars = drawn["bars"]
    hidden = [(a["tip"], b["tip"]) for i, a in enumerate(bars) for b in bars[i + 1:]
              if not _apart(a, b, "y") and not _apart(a, b, "x")]
    assert hidden == [], hidden


@pytest.mark.browser
def test_no_two_bars_of_the_timeline_overlap_in_chromium(tmp_path: Path) -> None:
    """Parallel tool runs and calls in flight together were drawn on top of each other
    (the real Claude Code subagent's six reads at once were one green bar): each now has a
    row in its lane's band, the bands never overlap, and each lane keeps its own band."""
    from agentkpi.ingestion import ingest
    from tests.test_claude_code import SUB_SESSION, _tree
    from tests.test_web_browser import browser_page

    _parallel_session(tmp_path / "par.duckdb")
    with DuckDBStore(tmp_path / "cc.duckdb") as st:
        ingest(str(_tree(tmp_path)), st, workers=1, machine="laptop")
    for store, sid, lanes, n_bars in (("par.duckdb", "par", ["main", "sub-a", "sub-b"], 14),
                                      ("cc.duckdb", SUB_SESSION, None, 15)):
        with browser_page(str(tmp_path / store),
                          viewport={"width": 1300, "height": 900}) as (url, page):
            page.goto(f"{url}/session/{sid}")
            page.wait_for_selector("svg.timeline")
            drawn = page.evaluate(BOXES)
        assert len(drawn["bars"]) == n_bars, drawn
        if lanes:  # the constructed session: its three lanes and its error mark
            assert drawn["labels"] == lanes and len(drawn["marks"]) == 1, drawn
        _assert_no_overlap(drawn)


def _early_session(path: Path) -> Path:
    """A session recorded as starting at T0 whose first model call was sent 3 s before it
    (its response at +1 s after 4 s of latency) and whose first tool output, with no call
    in the session, reports a 5 s run that ended at +3 s; a subagent's call reaches back
    too (a session whose recorded start is its first logged event, a response)."""
    b = CanonicalBatch()
    b.add_session(session_id="early", start_ts=T0, end_ts=_at(20), source="test",
                  source_path="constructed")
    ev: list[dict[str, Any]] = [
        dict(ts=_at(1), event_type="llm_call", model="m", latency_ms=4000.0, cost_usd=0.5),
        dict(ts=_at(3), event_type="tool_output", tool="Bash", tool_call_id="gone",
             success=True, duration_ms=5000.0),
        dict(ts=_at(4), event_type="tool_call", tool="Task", tool_call_id="task"),
        dict(ts=_at(5), event_type="llm_call", model="m", latency_ms=7500.0, agent="sub",
             parent_id="task"),
        dict(ts=_at(12), event_type="tool_output", tool="Task", tool_call_id="task",
             success=True),
        dict(ts=_at(15), event_type="error", error_type="api_error"),
    ]
    return _store(path, b, "early", ev)


def test_the_axis_starts_at_the_earliest_drawn_point(tmp_path: Path) -> None:
    """A call whose latency reaches back before the session's start: the axis starts at
    that call's start (no negative time), every bar keeps its true length, and the
    recorded start is placed on the axis (3 s in)."""
    with DuckDBStore(_early_session(tmp_path / "s.duckdb"), read_only=True) as st:
        tl = views.session_timeline(st, "early")
    assert tl["t0"] == "2026-05-20T13:59:57" and tl["session_start_ms"] == 3000.0
    bars = [(it["lane"], it["kind"], it["start"], it["end"]) for it in tl["items"]]
    assert bars == [("main", "llm", 0.0, 4000.0), ("main", "tool", 1000.0, 6000.0),
                    ("main", "tool", 7000.0, 15000.0), ("sub", "llm", 500.0, 8000.0),
                    ("main", "mark", 18000.0, 18000.0)]
    assert tl["cost"] == [{"t": 4000.0, "cost_usd": 0.5}] and tl["duration_ms"] == 18000.0


#: The drawn timeline's plot area (its first and last grid lines), lane labels and bars.
PLOT = """() => {
  const box = e => { const r = e.getBoundingClientRect();
                     return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const q = s => [...document.querySelectorAll('svg.timeline ' + s)];
  const grid = q('line.grid').map(box);
  return {svg: box(document.querySelector('svg.timeline')), x0: grid[0].left,
          x1: grid[grid.length - 1].left, labels: q('text.lane-label').map(box),
          bars: q('rect.bar').map(e => ({...box(e), tip: e.querySelector('title').textContent})),
          start: q('line.session-start').map(box),
          ticks: q('text.tick').map(e => e.textContent)};
}"""


@pytest.mark.browser
def test_no_bar_is_drawn_over_the_lane_labels_in_chromium(tmp_path: Path) -> None:
    """Calls whose latency reaches back before the session's start were drawn left of the
    axis, over the lane labels: every bar now lies right of the label column, inside the
    plot area, the earliest one at the axis' origin; a dashed line marks the recorded start."""
    from tests.test_web_browser import browser_page

    _early_session(tmp_path / "s.duckdb")
    with browser_page(str(tmp_path / "s.duckdb"),
                      viewport={"width": 1300, "height": 900}) as (url, page):
        page.goto(f"{url}/session/early")
        page.wait_for_selector("svg.timeline")
        drawn = page.evaluate(PLOT)
        note = page.locator("#timeline .note").text_content() or ""
    assert len(drawn["bars"]) == 4 and len(drawn["labels"]) == 2, drawn
    labels_end = max(lb["right"] for lb in drawn["labels"])
    svg = drawn["svg"]
    for bar in drawn["bars"]:
        assert bar["left"] >= labels_end and bar["left"] >= drawn["x0"] - 0.5, (bar, drawn)
        assert bar["right"] <= drawn["x1"] + 0.5 and bar["right"] <= svg["right"], (bar, drawn)
        assert svg["top"] <= bar["top"] and bar["bottom"] <= svg["bottom"], (bar, svg)
    assert min(b["left"] for b in drawn["bars"]) == pytest.approx(drawn["x0"], abs=0.5)
    (start,) = drawn["start"]  # 3 s of an 18 s axis
    assert (start["left"] - drawn["x0"]) / (drawn["x1"] - drawn["x0"]) == pytest.approx(
        3 / 18, abs=0.005)
    assert "dashed line: the session's recorded start" in note
