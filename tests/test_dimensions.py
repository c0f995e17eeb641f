"""One dimension registry: the query layer, the views (dashboard), alerts and the nav agree.

Numbers are hand-counted from the query fixture (tests/test_query.py): s2's session
agent is "coder" and one of its events was emitted by agent "sub"; s3 has no model;
only s2 has an agent.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agentkpi import views
from agentkpi.errors import UsageError
from agentkpi.kpis.dimensions import DIMENSIONS, PAGE_DIMENSIONS, resolve_dimension
from agentkpi.queries import query
from agentkpi.store import Store
from agentkpi.web import create_app
from agentkpi.web.app import NAV
from tests.test_query import fixture_store

START, END = datetime(2026, 5, 1), datetime(2026, 7, 1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    st = fixture_store(tmp_path_factory.mktemp("dims"))
    yield st
    st.close()


def sessions_by(st: Store, dim: str, **filters: str) -> dict[str, int]:
    b = views.breakdown(st, dim, START, END, filters=filters)
    return {r[dim]: r["sessions"] for r in b["rows"]}


def test_dashboard_breakdowns_mean_what_the_query_layer_means(store: Store) -> None:
    # agent: the event's agent, else the session's; NULL stays NULL (shown as "(none)")
    assert sessions_by(store, "agent") == {"coder": 1, "sub": 1, "(none)": 3}
    # model: the llm_call's model, else the session's main model
    assert sessions_by(store, "model") == {"m-a": 2, "m-b": 1, "(none)": 1}
    t = query(["sessions"], grain=None, by=["agent"], start="2026-05-01", end="2026-07-01",
              store=store)
    assert {r["agent"] or "(none)": r["sessions"] for r in t.to_pylist()} == \
        sessions_by(store, "agent")
    # a filter narrows by the same expression: agent "sub" emitted one event, in s2
    assert sessions_by(store, "tool", agent="sub") == {"read": 1}
    assert views.overview(store, START, END, filters={"agent": "(none)"})["totals"][
        "sessions"] == 3


def test_every_registry_dimension_groups_and_filters_on_the_store(store: Store) -> None:
    for name, dim in DIMENSIONS.items():
        b = views.breakdown(store, name, START, END)
        assert b["rows"], name
        value = b["rows"][0][name]
        narrowed = views.breakdown(store, name, START, END, filters={name: value})
        assert [r[name] for r in narrowed["rows"]] == [value], name
        assert dim.level in ("event", "session") and dim.description
    # dimensions added for the real-world importers, with the default columns
    assert list(sessions_by(store, "machine").values()) == [4]  # one ingest, one machine
    assert views.breakdown(store, "mcp_server", START, END)["columns"] == [
        "mcp_server", *views.DEFAULT_BREAKDOWN_KPIS]


def test_unknown_names_say_which_exist() -> None:
    with pytest.raises(UsageError, match="unknown dimension 'colour'; choose from session"):
        resolve_dimension("colour")
    assert resolve_dimension("data.flavor").level == "event"
    with pytest.raises(UsageError, match="unknown filter 'colour'"):
        views.run_kpis(None, START, END, ["events"], filters={"colour": "red"})


def test_navigation_pages_and_meta_come_from_the_registry(tmp_path: Path) -> None:
    assert PAGE_DIMENSIONS == tuple(n for n, d in DIMENSIONS.items() if d.page)
    assert {"tool", "model", "user", "agent", "project"} <= set(PAGE_DIMENSIONS)
    names = [n for n, _, _ in NAV]  # other pages (costs, sources, ...) may sit between
    assert names[0] == "overview" and "sessions" in names
    assert [n for n in names if n in DIMENSIONS] == list(PAGE_DIMENSIONS)
    c = TestClient(create_app(str(tmp_path / "none.duckdb"), background=False))
    html = c.get("/").text
    for name in PAGE_DIMENSIONS:
        assert f'<a href="/breakdown/{name}" data-nav="{name}">{DIMENSIONS[name].page}</a>' \
            in html
    assert c.get("/breakdown/event_type").status_code == 200   # any registry dimension
    assert c.get("/breakdown/colour").status_code == 404
