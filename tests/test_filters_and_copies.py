"""Filter values holding ' or \\ on both engines, and a session filed twice with different
attributes, ingested cold and incrementally on both engines: the same answer every way."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import agentkpi
from agentkpi.queries import query
from agentkpi.store import open_store

from .conftest import ev, write_session

RANGE = {"start": "2026-05-20T00", "end": "2026-05-22T00"}
ODD = ["o'brien", "back\\slash", "both'\\x", "trail\\", "''", "a\\'b"]


def _duck(tmp: Path) -> Any:
    return open_store("duckdb", path=tmp / "s.duckdb")


def _ch(tmp: Path) -> Any:
    return open_store("clickhouse", dsn=f"chdb://{tmp / 'ch'}")


ENGINES: dict[str, Callable[[Path], Any]] = {"duckdb": _duck, "clickhouse": _ch}


@pytest.fixture(params=list(ENGINES))
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    opened: list[Any] = []

    def make() -> Any:
        st = ENGINES[request.param](tmp_path)
        opened.append(st)
        return st

    yield make
    for st in opened:
        st.close()


def _odd_dataset(root: Path) -> None:
    for i, name in enumerate(ODD):
        events = [ev("2026-05-20T10:00:00Z", "llm_call", prompt_tokens=10 * (i + 1))]
        events += [ev("2026-05-20T10:01:00Z", "tool_call", tool=name)] * (i + 1)
        events += [ev("2026-05-20T10:02:00Z", "tool_output", tool=name, success=True)]
        write_session(root, f"s{i}", "2026-05-20T10:00:00Z", events, user_id=name,
                      model=name, project=name)


def test_filter_values_with_quotes_and_backslashes(dataset: Path,
                                                   new_store: Callable[[], Any]) -> None:
    _odd_dataset(dataset)
    st = new_store()
    agentkpi.ingest(str(dataset), st, workers=1)
    for i, name in enumerate(ODD):
        for dim in ("user", "model", "project"):
            (row,) = query(metrics=["sessions", "tokens_prompt"], grain=None,
                           where={dim: name}, store=st, **RANGE).to_pylist()
            assert (row["sessions"], row["tokens_prompt"]) == (1, 10 * (i + 1)), (dim, name)
        (row,) = query(metrics=["tool_calls_total"], grain=None, where={"tool": name},
                       store=st, **RANGE).to_pylist()
        assert row["tool_calls_total"] == 1, name
        (row,) = query(metrics=["sessions"], grain=None, where={"user": [name, "nobody"]},
                       store=st, **RANGE).to_pylist()
        assert row["sessions"] == 1, name
    by = query(metrics=["sessions", "llm_calls"], grain=None, by=["user"], store=st,
               **RANGE).to_pylist()
    assert sorted(r["user"] for r in by) == sorted(ODD)  # names come back byte for byte
    row = agentkpi.rollup(str(dataset.parent / "out"), store=st, at="2026-05-20T10").rows[
        "2026-05-20T10"]
    assert json.loads(row["tool_calls_by_name_json"]) == {n: i + 1 for i, n in enumerate(ODD)}


def test_dashboard_filter_with_quotes_and_backslashes(dataset: Path, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from agentkpi.web import create_app

    _odd_dataset(dataset)
    with open_store("duckdb", path=tmp_path / "w.duckdb") as st:
        agentkpi.ingest(str(dataset), st, workers=1)
    c = TestClient(create_app(str(tmp_path / "w.duckdb"), poll=10))
    for i, name in enumerate(ODD):
        d = c.get("/api/overview", params={"from": "2026-05-20", "to": "2026-05-21",
                                           "user": name}).json()
        assert d["totals"]["sessions"] == 1 and d["totals"]["tokens_prompt"] == 10 * (i + 1)
        b = c.get("/api/breakdown/tool", params={"from": "2026-05-20", "to": "2026-05-21",
                                                 "tool": name}).json()
        assert [(r["tool"], r["tool_calls_total"]) for r in b["rows"]] == [(name, 1)]


# ----------------------------------------------------------------------------- two copies

EVENTS = [ev("2026-05-20T14:05:00Z", "llm_call", prompt_tokens=100, cost_usd=0.5),
          ev("2026-05-20T14:06:00Z", "tool_call", tool="bash"),
          ev("2026-05-20T14:07:00Z", "tool_output", tool="bash", success=True)]


def _copies(root: Path, second_user: str | None) -> tuple[Path, Path]:
    first = write_session(root, "dup", "2026-05-20T14:00:00Z", EVENTS, user_id="u1",
                          model="m1", day="2026-05-20")
    second = write_session(root, "dup", "2026-05-20T14:00:00Z", EVENTS, user_id=second_user,
                           model="m2", day="2026-05-21")
    return first, second


def _answer(st: Any) -> tuple[Any, ...]:
    row = agentkpi.rollup("memory://unused-target", store=st, at="2026-05-20T14").rows[
        "2026-05-20T14"]
    users = query(metrics=["sessions"], grain=None, by=["user"], store=st,
                  **RANGE).to_pylist()
    return (row["sessions"], row["users"], row["llm_calls"], row["tokens_prompt"],
            row["sessions_by_model_json"], sorted((r["user"], r["sessions"]) for r in users))


@pytest.mark.parametrize("second_user", ["u2", None], ids=["user-changes", "user-dropped"])
def test_a_session_filed_twice_counts_once_with_the_same_attributes_cold_or_incremental(
        tmp_path: Path, new_store: Callable[[], Any], second_user: str | None) -> None:
    cold_root, warm_root = tmp_path / "cold", tmp_path / "warm"
    _copies(cold_root, second_user)
    st = new_store()
    agentkpi.ingest(str(cold_root), st, workers=1)
    cold = _answer(st)
    st.close()
    for p in (tmp_path / "s.duckdb", tmp_path / "ch"):
        if p.is_file():
            p.unlink()
        elif p.is_dir():
            import shutil

            shutil.rmtree(p)
    first, second = _copies(warm_root, second_user)
    second.unlink()  # the second copy arrives later
    st = new_store()
    agentkpi.ingest(str(warm_root), st, workers=1)
    assert _answer(st)[4] == '{"m1": 1}'
    _copies(warm_root, second_user)
    agentkpi.ingest(str(warm_root), st, workers=1)
    warm = _answer(st)
    assert cold == warm
    want_user = second_user or "u1"  # the later copy's non-null values win
    assert cold == (1, 1, 1, 100, '{"m2": 1}', [(want_user, 1)])
