"""Gemini CLI chat recordings: one constructed file per trap.

No real Gemini CLI recording with a compatible licence was found, so these files
are CONSTRUCTED from the format Gemini CLI writes (``chatRecordingTypes.ts`` /
``chatRecordingService.ts`` in google-gemini/gemini-cli, FORMATS.md section 7): a
metadata line, message records re-appended under the same id as they change,
``$set`` and ``$rewindTo`` records, and the legacy whole-file ``.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import fsspec
import pytest
from click.testing import CliRunner

from agentkpi.cli import main
from agentkpi.ingestion import ingest
from agentkpi.quality import Quality
from agentkpi.sources import detect, gemini_cli
from agentkpi.store import DuckDBStore as Store

SID = "0f0e0d0c-1111-4222-8333-444455556666"
HASH = "4ea86ddd0000000000000000000000000000000000000000000000000000855e"


def header(sid: str = SID, **extra: Any) -> dict[str, Any]:
    return {"sessionId": sid, "projectHash": HASH, "startTime": "2026-05-20T09:00:00.000Z",
            "lastUpdated": "2026-05-20T09:00:00.000Z", "kind": "main", **extra}


def user(mid: str, ts: str) -> dict[str, Any]:
    return {"id": mid, "timestamp": ts, "type": "user", "content": [{"text": "hi"}]}


def tokens(inp: int, cached: int, out: int, thoughts: int = 0, tool: int = 0
           ) -> dict[str, int]:
    return {"input": inp, "output": out, "cached": cached, "thoughts": thoughts,
            "tool": tool, "total": inp + out + thoughts + tool}


def gemini(mid: str, ts: str, tok: dict[str, int] | None = None,
           model: str | None = "gemini-2.5-pro", tools: list[dict[str, Any]] | None = None
           ) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": mid, "timestamp": ts, "type": "gemini",
                           "content": [{"text": "ok"}], "thoughts": [], "tokens": tok,
                           "model": model}
    if tools is not None:
        rec["toolCalls"] = tools
    return rec


def tool(tid: str, name: str, status: str, ts: str = "2026-05-20T09:00:05.000Z"
         ) -> dict[str, Any]:
    return {"id": tid, "name": name, "args": {}, "status": status, "timestamp": ts,
            "result": []}


def chats(root: Path) -> Path:
    d = root / "tmp" / HASH / "chats"
    d.mkdir(parents=True, exist_ok=True)
    return d


def write(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records))
    return path


def parse(path: Path) -> tuple[dict[str, list[Any]], dict[str, list[Any]], Quality]:
    q = Quality()
    b = gemini_cli.parse_file(str(path), path.read_bytes(), q)
    return b.events, b.sessions, q


def audit(q: Quality) -> dict[str, int]:
    return dict(q.audit)


def sums(ev: dict[str, list[Any]]) -> dict[str, int]:
    calls = [i for i, t in enumerate(ev["event_type"]) if t == "llm_call"]
    return {k: sum(ev[k][i] or 0 for i in calls)
            for k in ("prompt_tokens", "cache_read_tokens", "cache_creation_tokens",
                      "completion_tokens")} | {"calls": len(calls)}


def test_token_convention_four_exclusive_buckets(tmp_path: Path) -> None:
    # input 1000 includes 800 cached; thoughts 40 and tool-use prompt 10 sit outside.
    f = write(chats(tmp_path) / "session-2026-05-20T09-00-0f0e0d0c.jsonl", [
        header(), user("u1", "2026-05-20T09:00:01.000Z"),
        gemini("g1", "2026-05-20T09:00:02.000Z", tokens(1000, 800, 5, thoughts=40, tool=10))])
    ev, sess, q = parse(f)
    assert sums(ev) == {"calls": 1, "prompt_tokens": 210, "cache_read_tokens": 800,
                        "cache_creation_tokens": 0, "completion_tokens": 45}
    assert sum(sums(ev)[k] for k in ("prompt_tokens", "cache_read_tokens",
                                     "completion_tokens")) == 1055  # == tokens.total
    assert ev["reasoning_tokens"] == [40]
    assert sess["session_id"] == [SID] and sess["turns"] == [1]
    assert sess["project"] == [HASH] and sess["model"] == ["gemini-2.5-pro"]
    assert not q.counts


def test_same_id_later_record_replaces_the_earlier(tmp_path: Path) -> None:
    # Gemini CLI re-appends the message as tokens and tool calls arrive.
    f = write(chats(tmp_path) / "session-2026-05-20T09-00-0f0e0d0c.jsonl", [
        header(), user("u1", "2026-05-20T09:00:01.000Z"),
        gemini("g1", "2026-05-20T09:00:02.000Z", None, tools=[
            tool("t1", "run_shell_command", "executing")]),
        gemini("g1", "2026-05-20T09:00:02.000Z", tokens(500, 0, 20), tools=[
            tool("t1", "run_shell_command", "executing")]),
        gemini("g1", "2026-05-20T09:00:02.000Z", tokens(500, 0, 20), tools=[
            tool("t1", "run_shell_command", "success"), tool("t2", "read_file", "error"),
            tool("t3", "write_file", "cancelled")]),
        {"$set": {"lastUpdated": "2026-05-20T09:00:09.000Z"}}])
    ev, sess, q = parse(f)
    assert sums(ev) == {"calls": 1, "prompt_tokens": 500, "cache_read_tokens": 0,
                        "cache_creation_tokens": 0, "completion_tokens": 20}
    assert Counter(ev["event_type"]) == {"llm_call": 1, "tool_call": 3, "tool_output": 2}
    runs = {t: s for t, s, e in zip(ev["tool"], ev["success"], ev["event_type"], strict=True)
            if e == "tool_output"}
    assert runs == {"run_shell_command": True, "read_file": False}  # cancelled never ran
    assert audit(q)["usage_lines_merged"] == 2
    assert str(sess["end_ts"][0]) == "2026-05-20 09:00:09"


def test_rewound_messages_still_count(tmp_path: Path) -> None:
    f = write(chats(tmp_path) / "session-2026-05-20T09-00-0f0e0d0c.jsonl", [
        header(),
        user("u1", "2026-05-20T09:00:01.000Z"),
        gemini("g1", "2026-05-20T09:00:02.000Z", tokens(100, 0, 10)),
        user("u2", "2026-05-20T09:00:03.000Z"),
        gemini("g2", "2026-05-20T09:00:04.000Z", tokens(200, 100, 20)),
        {"$rewindTo": "u2"},  # the user rewinds: u2 and g2 leave the conversation
        user("u3", "2026-05-20T09:00:05.000Z"),
        gemini("g3", "2026-05-20T09:00:06.000Z", tokens(300, 100, 30))])
    ev, sess, q = parse(f)
    assert sums(ev) == {"calls": 3, "prompt_tokens": 100 + 100 + 200,
                        "cache_read_tokens": 200, "cache_creation_tokens": 0,
                        "completion_tokens": 60}
    assert audit(q)["rewound_counted"] == 2
    assert sess["turns"] == [3]


def test_history_snapshot_and_synthetic_messages_are_not_calls(tmp_path: Path) -> None:
    f = write(chats(tmp_path) / "session-2026-05-20T09-00-0f0e0d0c.jsonl", [
        header(),
        user("u1", "2026-05-20T09:00:01.000Z"),
        gemini("g1", "2026-05-20T09:00:02.000Z", tokens(100, 0, 10)),
        {"$set": {"messages": [user("u1", "2026-05-20T09:00:01.000Z"),
                               gemini("g1", "2026-05-20T09:00:02.000Z", tokens(100, 0, 10)),
                               gemini("sum1", "2026-05-20T09:00:03.000Z", None, model=None)],
                  "lastUpdated": "2026-05-20T09:00:03.000Z"}}])
    ev, _, q = parse(f)
    assert sums(ev)["calls"] == 1
    assert audit(q)["history_copies_ignored"] == 1
    assert audit(q)["synthetic_skipped"] == 1


def test_legacy_json_resumed_into_jsonl_counts_once(tmp_path: Path) -> None:
    d = chats(tmp_path)
    legacy = {**header(), "messages": [
        user("u1", "2026-05-20T09:00:01.000Z"),
        gemini("g1", "2026-05-20T09:00:02.000Z", tokens(100, 0, 10)),
        gemini("g2", "2026-05-20T09:00:04.000Z", tokens(200, 50, 20))]}
    old = d / "session-2026-05-20T09-00-0f0e0d0c.json"
    old.write_text(json.dumps(legacy, indent=2))  # legacy files are pretty-printed
    store = tmp_path / "s.duckdb"

    def calls() -> tuple[int, int]:
        with Store(store) as st:
            row = st.sql("SELECT count(*), sum(prompt_tokens + cache_read_tokens + "
                         "completion_tokens) FROM events WHERE event_type='llm_call'"
                         ).to_pylist()[0]
        return tuple(row.values())  # type: ignore[return-value]

    with Store(store) as st:
        assert ingest(str(tmp_path), st, workers=1).format == "gemini-cli"
    assert calls() == (2, 110 + 220)
    # Resume: Gemini CLI copies everything into session-....jsonl, keeps the .json.
    write(d / (old.name + "l"), [
        {k: v for k, v in header().items()}, *legacy["messages"],
        {"$set": {"sessionId": SID}},
        user("u2", "2026-05-20T10:00:01.000Z"),
        gemini("g3", "2026-05-20T10:00:02.000Z", tokens(300, 0, 30))])
    fs = fsspec.filesystem("file")
    assert [Path(p).name for p in gemini_cli.list_files(fs, str(tmp_path))] == [
        old.name + "l"]
    with Store(store) as st:
        ingest(str(tmp_path), st, workers=1)
        assert st.sql("SELECT count(*) AS n FROM ingested_files").to_pylist() == [{"n": 1}]
    assert calls() == (3, 110 + 220 + 330)


def test_subagent_recording_is_its_own_session_with_parent(tmp_path: Path) -> None:
    d = chats(tmp_path) / SID
    f = write(d / "9a9a9a9a-0000-4000-8000-000000000001.jsonl", [
        header("9a9a9a9a-0000-4000-8000-000000000001", kind="subagent"),
        user("u1", "2026-05-20T09:00:01.000Z"),
        gemini("g1", "2026-05-20T09:00:02.000Z", tokens(100, 0, 10), model="gemini-2.5-flash")])
    fs = fsspec.filesystem("file")
    assert str(f) in gemini_cli.list_files(fs, str(tmp_path))
    ev, sess, _ = parse(f)
    assert sess["agent"] == ["subagent"] and sess["session_id"] == [f.stem]
    assert ev["parent_id"] == [SID]


def test_malformed_and_torn_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    f = write(chats(tmp_path) / "session-2026-05-20T09-00-0f0e0d0c.jsonl", [
        header(), "{broken", gemini("g1", "2026-05-20T09:00:02.000Z", tokens(100, 0, 10))])
    with f.open("a") as fh:
        fh.write('{"id":"g2","type":"gem')  # a live recording mid-write
    ev, _, q = parse(f)
    assert sums(ev)["calls"] == 1
    assert q.counts["line_bad_json"] == 2


def test_truncated_legacy_json_is_skipped_with_a_reason(tmp_path: Path) -> None:
    f = chats(tmp_path) / "session-2026-05-20T09-00-0f0e0d0c.json"
    f.write_text(json.dumps({**header(), "messages": []}, indent=2)[:40])
    _, _, q = parse(f)
    assert q.skipped and q.skipped[0]["kind"] == "file_bad_json"


def test_grown_recording_reingest_never_double_counts(tmp_path: Path) -> None:
    f = write(chats(tmp_path) / "session-2026-05-20T09-00-0f0e0d0c.jsonl", [
        header(), user("u1", "2026-05-20T09:00:01.000Z"),
        gemini("g1", "2026-05-20T09:00:02.000Z", None)])
    store = tmp_path / "s.duckdb"
    with Store(store) as st:
        ingest(str(tmp_path), st, workers=1)
    with f.open("a") as fh:  # tokens arrive for g1, then a new exchange
        for r in (gemini("g1", "2026-05-20T09:00:02.000Z", tokens(100, 0, 10)),
                  user("u2", "2026-05-20T09:01:00.000Z"),
                  gemini("g2", "2026-05-20T09:01:02.000Z", tokens(200, 0, 20))):
            fh.write(json.dumps(r) + "\n")
    with Store(store) as st:
        assert ingest(str(tmp_path), st, workers=1).files_read == 1
        rows = st.sql("SELECT count(*) AS n, sum(prompt_tokens + completion_tokens) AS t "
                      "FROM events WHERE event_type='llm_call'").to_pylist()
    assert rows == [{"n": 2, "t": 330}]


def test_detection_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / ".gemini"
    write(chats(root) / "session-2026-05-20T09-00-0f0e0d0c.jsonl", [
        header(), user("u1", "2026-05-20T09:00:01.000Z"),
        gemini("g1", "2026-05-20T09:00:02.000Z", tokens(1000, 800, 5, thoughts=40)),
        gemini("g2", "2026-05-20T09:00:03.000Z", tokens(900, 0, 7), model="gemini-2.5-flash")])
    fs = fsspec.filesystem("file")
    assert detect(fs, str(root)) is gemini_cli
    monkeypatch.setenv("HOME", str(tmp_path))
    assert gemini_cli.default_roots() == [str(root)]
    store = str(tmp_path / "s.duckdb")
    runner = CliRunner()
    r = runner.invoke(main, ["ingest", "--source", str(root), "--format", "gemini_cli",
                             "--store", store])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["query", "--store", store, "-m", "llm_calls,tokens_prompt,"
                             "tokens_cache_read,tokens_completion", "--grain", "none",
                             "--by", "model", "--from", "2026-05-20", "--to", "2026-05-21",
                             "--format", "json"])
    assert r.exit_code == 0, r.output
    assert sorted(json.loads(r.output), key=lambda x: x["model"]) == [
        {"model": "gemini-2.5-flash", "llm_calls": 1, "tokens_prompt": 900,
         "tokens_cache_read": 0, "tokens_completion": 7},
        {"model": "gemini-2.5-pro", "llm_calls": 1, "tokens_prompt": 200,
         "tokens_cache_read": 800, "tokens_completion": 45}]


def test_cli_prints_the_audit(tmp_path: Path) -> None:
    write(chats(tmp_path) / "session-2026-05-20T09-00-0f0e0d0c.jsonl", [
        header(), "not json",
        gemini("g1", "2026-05-20T09:00:02.000Z", None),
        gemini("g1", "2026-05-20T09:00:02.000Z", tokens(100, 0, 10)),
        {"$rewindTo": "g1"}])
    r = CliRunner().invoke(main, ["ingest", "--source", str(tmp_path), "--store",
                                  str(tmp_path / "s.duckdb")])
    assert r.exit_code == 0, r.output
    assert "ingest  gemini-cli: 1 file(s) read" in r.output
    audit_line = next(x for x in r.output.splitlines() if x.startswith("audit:"))
    for part in ("files=1", "lines_read=5", "malformed_skipped=1", "rewound_counted=1",
                 "usage_lines_merged=1"):
        assert part in audit_line


def test_error_messages_are_error_events(tmp_path: Path) -> None:
    f = write(chats(tmp_path) / "session-2026-05-20T09-00-0f0e0d0c.jsonl", [
        header(), user("u1", "2026-05-20T09:00:01.000Z"),
        {"id": "e1", "timestamp": "2026-05-20T09:00:02.000Z", "type": "error",
         "content": "[API Error: 429 quota exceeded]"},
        {"id": "i1", "timestamp": "2026-05-20T09:00:03.000Z", "type": "info",
         "content": "Request cancelled."}])
    ev, _, _ = parse(f)
    assert ev["event_type"] == ["error"]
    assert ev["error_message"] == ["[API Error: 429 quota exceeded]"]


def test_ingest_without_source_reads_home_gemini(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    write(chats(tmp_path / ".gemini") / "session-2026-05-20T09-00-0f0e0d0c.jsonl", [
        header(), user("u1", "2026-05-20T09:00:01.000Z"),
        gemini("g1", "2026-05-20T09:00:02.000Z", tokens(100, 0, 10))])
    monkeypatch.setenv("HOME", str(tmp_path))
    store = str(tmp_path / "s.duckdb")
    r = CliRunner().invoke(main, ["ingest", "--format", "gemini-cli", "--store", store])
    assert r.exit_code == 0, r.output
    assert f"reading {tmp_path / '.gemini'}" in r.output
    with Store(store) as st:
        assert st.sql("SELECT count(*) AS n FROM events WHERE event_type = 'llm_call'"
                      ).to_pylist() == [{"n": 1}]
