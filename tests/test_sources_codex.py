"""Codex CLI rollouts: real sample totals (hand-checked) and one constructed file per trap.

The two real files in tests/data/realworld/codex/ are copied byte for byte from
madshn/localpush (MIT), see the README there. The constructed files follow the rollout
format as Codex writes it (``{timestamp, type, payload}`` lines; field names from the
real files and FORMATS.md section 7).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agentkpi.cli import main
from agentkpi.ingestion import ingest
from agentkpi.quality import Quality
from agentkpi.sources import by_name, codex
from agentkpi.store import DuckDBStore as Store

REAL = Path(__file__).parent / "data" / "realworld" / "codex"
BIG = REAL / "rollout-2026-02-23T20-34-25-019c8bfe-ec25-79e0-97d7-bda6a9c575ff.jsonl"
SMALL = REAL / "rollout-2026-02-23T13-19-38-019c8a70-dda7-7f33-98ea-f30553347322.jsonl"


# ------------------------------------------------------------------ builders

def line(ts: str, kind: str, **payload: Any) -> dict[str, Any]:
    return {"timestamp": ts, "type": kind, "payload": payload}


def meta(ts: str, sid: str, **extra: Any) -> dict[str, Any]:
    return line(ts, "session_meta", id=sid, timestamp=ts, cwd="/work/proj",
                originator="codex_cli_rs", cli_version="0.104.0", **extra)


def turn(ts: str, model: str) -> dict[str, Any]:
    return line(ts, "turn_context", cwd="/work/proj", model=model, effort="medium")


def usage(inp: int, cached: int, out: int, reasoning: int = 0) -> dict[str, int]:
    return {"input_tokens": inp, "cached_input_tokens": cached, "output_tokens": out,
            "reasoning_output_tokens": reasoning, "total_tokens": inp + out}


def count(ts: str, total: dict[str, int] | None, last: dict[str, int] | None = None
          ) -> dict[str, Any]:
    if total is None and last is None:
        return line(ts, "event_msg", type="token_count", info=None,
                    rate_limits={"primary": {"used_percent": 1.0}})
    info: dict[str, Any] = {"model_context_window": 258400}
    if total is not None:
        info["total_token_usage"] = total
    if last is not None:
        info["last_token_usage"] = last
    return line(ts, "event_msg", type="token_count", info=info)


def call(ts: str, call_id: str, name: str = "shell", kind: str = "function_call",
         **extra: Any) -> dict[str, Any]:
    return line(ts, "response_item", type=kind, name=name, arguments="{}", call_id=call_id,
                **extra)


def output(ts: str, call_id: str, out: Any, kind: str = "function_call_output"
           ) -> dict[str, Any]:
    return line(ts, "response_item", type=kind, call_id=call_id, output=out)


def user(ts: str) -> dict[str, Any]:
    return line(ts, "event_msg", type="user_message", message="do it")


def write(path: Path, lines: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n"
                            for x in lines))
    return path


def rollout(home: Path, sid: str, day: str = "2026/05/20", stamp: str = "2026-05-20T10-00-00"
            ) -> Path:
    return home / "sessions" / day / f"rollout-{stamp}-{sid}.jsonl"


def parse(path: Path) -> tuple[dict[str, list[Any]], dict[str, list[Any]], Quality]:
    q = Quality()
    b = codex.parse_file(str(path), path.read_bytes(), q)
    return b.events, b.sessions, q


def audit(q: Quality) -> dict[str, int]:
    return dict(q.audit)


def sums(ev: dict[str, list[Any]]) -> dict[str, int]:
    calls = [i for i, t in enumerate(ev["event_type"]) if t == "llm_call"]
    return {k: sum(ev[k][i] or 0 for i in calls)
            for k in ("prompt_tokens", "cache_read_tokens", "cache_creation_tokens",
                      "completion_tokens")} | {"calls": len(calls)}


# ------------------------------------------------------------------ real files

def test_real_rollout_counts_six_calls_not_eleven_usage_lines() -> None:
    # Hand-checked from the file: 12 token_count lines = 1 info:null + 6 whose total
    # advanced + 5 re-emitted copies. last_token_usage of the 6 calls:
    #   input  42772+44218+48969+49326+49647+63441 = 298373 (= the final total)
    #   cached  3456+42880+44288+49152+49408+49664 = 238848
    #   output   204+   96+  245+  179+  113+  286 =   1123 (reasoning 483 inside)
    # A naive sum of every usage line gives 535,265 tokens; the real total is 299,496.
    ev, sess, q = parse(BIG)
    assert sums(ev) == {"calls": 6, "prompt_tokens": 298373 - 238848,
                        "cache_read_tokens": 238848, "cache_creation_tokens": 0,
                        "completion_tokens": 1123}
    total = sum(sums(ev)[k] for k in ("prompt_tokens", "cache_read_tokens",
                                      "completion_tokens"))
    assert total == 299496
    assert audit(q) == {"files": 1, "lines_read": 63, "counters_without_usage": 1,
                        "counters_ignored": 5}
    assert not q.counts  # no data problem in a clean real file
    assert set(ev["model"][i] for i, t in enumerate(ev["event_type"]) if t == "llm_call") \
        == {"gpt-5.3-codex"}
    # 5 function calls, each answered: 5 tool runs, none failed (outputs carry no exit code)
    types = Counter(ev["event_type"])
    assert types == {"llm_call": 6, "tool_call": 5, "tool_output": 5}
    runs = [(t, s) for t, s, e in zip(ev["tool"], ev["success"], ev["event_type"],
                                      strict=True) if e == "tool_output"]
    assert all(s is True for _, s in runs)
    assert Counter(t for t, _ in runs)["mcp__cloud-associates__execute_workflow"] == 3
    assert sess["session_id"] == ["019c8bfe-ec25-79e0-97d7-bda6a9c575ff"]
    assert sess["project"] == ["/redacted/path/ea96e59ed9"]
    assert sess["turns"] == [1] and sess["model"] == ["gpt-5.3-codex"]


def test_real_small_rollout_one_call_and_an_unanswered_tool_call() -> None:
    ev, sess, q = parse(SMALL)
    assert sums(ev) == {"calls": 1, "prompt_tokens": 34469 - 3456, "cache_read_tokens": 3456,
                        "cache_creation_tokens": 0, "completion_tokens": 431}
    assert Counter(ev["event_type"]) == {"llm_call": 1, "tool_call": 1}  # file ends first
    assert audit(q)["counters_without_usage"] == 1


def test_mcp_server_reasoning_and_keys_are_filled() -> None:
    ev, _, _ = parse(BIG)
    assert Counter(ev["mcp_server"])["cloud-associates"] == 8  # 4 calls + 4 runs
    assert sum(x or 0 for x in ev["reasoning_tokens"]) == 483
    assert all(c is None for c in ev["cost_usd"])  # no cost in the file: priced at ingest
    assert len(set(ev["event_key"])) == len(ev["event_key"]) == 16
    # a tool call and its run share the call id
    pairs = Counter(i for i, e in zip(ev["tool_call_id"], ev["event_type"], strict=True)
                    if e.startswith("tool"))
    assert set(pairs.values()) == {2} and len(pairs) == 5


# ------------------------------------------------------------------ traps

def test_reemitted_counters_and_info_null_are_not_calls(tmp_path: Path) -> None:
    u1, u2 = usage(1000, 200, 50, 10), usage(1500, 900, 70, 20)
    t1 = u1
    t2 = {k: u1[k] + u2[k] for k in u1}
    f = write(tmp_path / "rollout-2026-05-20T10-00-00-a.jsonl", [
        meta("2026-05-20T10:00:00Z", "s1"), turn("2026-05-20T10:00:01Z", "gpt-5"),
        count("2026-05-20T10:00:02Z", None),
        count("2026-05-20T10:00:03Z", t1, u1), count("2026-05-20T10:00:04Z", t1, u1),
        count("2026-05-20T10:00:05Z", t1, u1),
        count("2026-05-20T10:00:06Z", t2, u2), count("2026-05-20T10:00:07Z", t2, u2)])
    ev, _, q = parse(f)
    assert sums(ev) == {"calls": 2, "prompt_tokens": 800 + 600, "cache_read_tokens": 1100,
                        "cache_creation_tokens": 0, "completion_tokens": 120}
    assert audit(q) == {"files": 1, "lines_read": 8, "counters_without_usage": 1,
                        "counters_ignored": 3}


def test_totals_without_last_usage_are_differenced(tmp_path: Path) -> None:
    f = write(tmp_path / "rollout-x-b.jsonl", [
        meta("2026-05-20T10:00:00Z", "s2"),
        count("2026-05-20T10:00:02Z", usage(1000, 100, 200)),
        turn("2026-05-20T10:00:03Z", "gpt-5.1"),  # model arrives after the first call
        count("2026-05-20T10:00:04Z", usage(1600, 300, 450))])
    ev, sess, _ = parse(f)
    assert sums(ev) == {"calls": 2, "prompt_tokens": 900 + 400, "cache_read_tokens": 300,
                        "cache_creation_tokens": 0, "completion_tokens": 450}
    assert ev["model"] == ["gpt-5.1", "gpt-5.1"]
    assert sess["model"] == ["gpt-5.1"]


def test_tool_calls_once_per_call_id_and_exit_codes(tmp_path: Path) -> None:
    f = write(tmp_path / "rollout-x-c.jsonl", [
        meta("2026-05-20T10:00:00Z", "s3"), turn("2026-05-20T10:00:00Z", "gpt-5"),
        call("2026-05-20T10:00:01Z", "c-ok", "exec_command"),
        call("2026-05-20T10:00:01Z", "c-ok", "exec_command"),  # recorded twice
        output("2026-05-20T10:00:02Z", "c-ok",
               "Chunk ID: 1\nWall time: 0.5 seconds\nProcess exited with code 0\nOutput:\nx"),
        call("2026-05-20T10:00:03Z", "c-bad", "exec_command"),
        output("2026-05-20T10:00:04Z", "c-bad", "Process exited with code 2\nOutput:\nboom"),
        call("2026-05-20T10:00:05Z", "c-json", "shell"),
        output("2026-05-20T10:00:06Z", "c-json",
               json.dumps({"output": "no", "metadata": {"exit_code": 1,
                                                        "duration_seconds": 0.25}})),
        call("2026-05-20T10:00:07Z", "c-patch", "apply_patch", kind="custom_tool_call",
             status="completed"),
        output("2026-05-20T10:00:08Z", "c-patch",
               json.dumps({"output": "Done", "metadata": {"exit_code": 0}}),
               kind="custom_tool_call_output"),
        line("2026-05-20T10:00:09Z", "response_item", type="local_shell_call",
             call_id="c-local", status="completed",
             action={"type": "exec", "command": ["ls"]}),
        output("2026-05-20T10:00:10Z", "c-local", "Exit code: 127\nOutput:\nnot found"),
        line("2026-05-20T10:00:11Z", "response_item", type="web_search_call", id="ws_1",
             status="completed", action={"type": "search", "query": "x"}),
        call("2026-05-20T10:00:12Z", "c-mcp", "mcp__github__create_issue"),
        output("2026-05-20T10:00:13Z", "c-mcp", {"content": [], "isError": True}),
        output("2026-05-20T10:00:13Z", "c-mcp", {"content": [], "isError": True}),
    ])
    ev, _, q = parse(f)
    calls = [t for t, e in zip(ev["tool"], ev["event_type"], strict=True) if e == "tool_call"]
    assert sorted(calls) == sorted(["exec_command", "exec_command", "shell", "apply_patch",
                                    "local_shell", "web_search",
                                    "mcp__github__create_issue"])
    outcome = Counter((t, s) for t, s, e in zip(ev["tool"], ev["success"], ev["event_type"],
                                                strict=True) if e == "tool_output")
    assert outcome == {("exec_command", True): 1, ("exec_command", False): 1,
                       ("shell", False): 1, ("apply_patch", True): 1,
                       ("local_shell", False): 1, ("web_search", True): 1,
                       ("mcp__github__create_issue", False): 1}
    assert Counter(ev["event_type"])["tool_output"] == 7
    failed = sorted(t for t, s, e in zip(ev["tool"], ev["success"], ev["event_type"],
                                         strict=True) if e == "tool_output" and not s)
    assert failed == ["exec_command", "local_shell", "mcp__github__create_issue", "shell"]
    durations = sorted(d for d, e in zip(ev["duration_ms"], ev["event_type"], strict=True)
                       if e == "tool_output" and d is not None)
    assert durations == [250.0, 500.0]
    assert audit(q)["tool_calls_merged"] == 1


def test_fork_with_parent_in_tree_counts_only_its_own_calls(tmp_path: Path) -> None:
    home = tmp_path / ".codex"
    u1, u2, u3 = usage(1000, 0, 100), usage(1200, 1000, 50), usage(1400, 1200, 30)
    t1 = u1
    t2 = {k: u1[k] + u2[k] for k in u1}
    t3 = {k: t2[k] + u3[k] for k in u1}
    parent_lines = [
        meta("2026-05-20T10:00:00Z", "p-0001"), turn("2026-05-20T10:00:00Z", "gpt-5"),
        user("2026-05-20T10:00:00Z"),
        call("2026-05-20T10:00:01Z", "c-parent"), count("2026-05-20T10:00:01Z", t1, u1),
        output("2026-05-20T10:00:02Z", "c-parent", "Process exited with code 0"),
        count("2026-05-20T10:00:03Z", t2, u2)]
    write(rollout(home, "p-0001"), parent_lines)
    # The fork replays the parent's lines, re-stamped at fork time (10:05:00), then works.
    replay = [dict(x, timestamp="2026-05-20T10:05:00.010Z") for x in parent_lines]
    fork = write(rollout(home, "f-0002", stamp="2026-05-20T10-05-00"), [
        meta("2026-05-20T10:05:00Z", "f-0002", forked_from_id="p-0001"), *replay,
        turn("2026-05-20T10:05:00.020Z", "gpt-5"),
        user("2026-05-20T10:05:00.500Z"),
        call("2026-05-20T10:05:00.900Z", "c-fork"), count("2026-05-20T10:05:00.900Z", t3, u3)])
    ev, sess, q = parse(fork)
    # Exact rule (the parent file is here): the own call lands in the fork second and is
    # still counted, because its cumulative snapshot is not in the parent.
    assert sums(ev) == {"calls": 1, "prompt_tokens": 200, "cache_read_tokens": 1200,
                        "cache_creation_tokens": 0, "completion_tokens": 30}
    assert [t for t, e in zip(ev["tool"], ev["event_type"], strict=True)
            if e.startswith("tool")] == ["shell"]
    assert audit(q)["replays_merged"] == 3  # 2 calls + 1 tool call of the parent
    assert sess["turns"] == [1]
    assert set(ev["parent_id"]) == {"p-0001"}

    # The whole tree through the pipeline: parent 2 calls + fork 1 call, nothing twice.
    with Store(tmp_path / "s.duckdb") as st:
        r = ingest(str(home), st, workers=1)
        assert r.format == "codex"
        rows = st.sql("SELECT count(*) AS n, sum(prompt_tokens + cache_read_tokens + "
                      "completion_tokens) AS tok FROM events WHERE event_type = 'llm_call'"
                      ).to_pylist()[0]
    assert rows == {"n": 3, "tok": sum(u["input_tokens"] + u["output_tokens"]
                                       for u in (u1, u2, u3))}


def test_spawned_subagent_without_parent_file_skips_the_fork_second(tmp_path: Path) -> None:
    u1, u2 = usage(5000, 0, 100), usage(800, 0, 40)
    t1 = u1
    t2 = {k: u1[k] + u2[k] for k in u1}
    f = write(tmp_path / "rollout-2026-05-20T11-00-00-sub1.jsonl", [
        meta("2026-05-20T11:00:00.100Z", "sub1",
             source={"subagent": {"thread_spawn": {"parent_thread_id": "gone",
                                                   "depth": 1, "agent_nickname": "Ada",
                                                   "agent_role": "explorer"}}}),
        meta("2026-05-20T11:00:00.100Z", "gone"),  # the replayed parent meta is ignored
        turn("2026-05-20T11:00:00.150Z", "gpt-5"),
        user("2026-05-20T11:00:00.150Z"),
        call("2026-05-20T11:00:00.200Z", "c-old"),
        count("2026-05-20T11:00:00.200Z", t1, u1),  # replayed, stamped at creation
        user("2026-05-20T11:00:01.500Z"),
        call("2026-05-20T11:00:04Z", "c-new"), count("2026-05-20T11:00:04Z", t2, u2)])
    ev, sess, q = parse(f)
    assert sums(ev)["calls"] == 1 and sums(ev)["prompt_tokens"] == 800
    assert sess["session_id"] == ["sub1"] and sess["agent"] == ["Ada"]
    assert sess["turns"] == [1]
    assert audit(q)["replays_merged"] == 2


def test_malformed_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    u = usage(100, 0, 10)
    f = write(tmp_path / "rollout-x-m.jsonl", [
        meta("2026-05-20T10:00:00Z", "s-m"), "this is not json", "[1, 2]",
        count("2026-05-20T10:00:01Z", u, u)])
    with f.open("a") as fh:
        fh.write('{"timestamp":"2026-05-20T10:00:02Z","type":"event_msg","payl')  # torn
    ev, _, q = parse(f)
    assert sums(ev)["calls"] == 1
    assert q.counts["line_bad_json"] == 3
    assert audit(q)["lines_read"] == 5 and audit(q)["malformed_skipped"] == 3
    assert audit(q)["malformed:bad_json"] == 3


def test_grown_file_reingest_never_double_counts(tmp_path: Path) -> None:
    home = tmp_path / "codexhome"
    shutil.copytree(REAL, home / "sessions" / "2026" / "02" / "23")
    store = tmp_path / "s.duckdb"

    def totals() -> tuple[int, int]:
        with Store(store) as st:
            row = st.sql("SELECT count(*), sum(prompt_tokens + cache_read_tokens + "
                         "completion_tokens) FROM events WHERE event_type = 'llm_call'"
                         ).to_pylist()[0]
        return tuple(row.values())  # type: ignore[return-value]

    with Store(store) as st:
        r = ingest(str(home), st, workers=1)
    assert (r.files_read, r.format) == (2, "codex")
    assert totals() == (7, 299496 + 34900)
    with Store(store) as st:
        assert ingest(str(home), st, workers=1).files_read == 0  # unchanged: not read
    # Codex appends to the live transcript: one more re-emitted counter and a new call.
    big = home / "sessions" / "2026" / "02" / "23" / BIG.name
    last = {"input_tokens": 70000, "cached_input_tokens": 63000, "output_tokens": 100,
            "reasoning_output_tokens": 0, "total_tokens": 70100}
    total = {"input_tokens": 298373 + 70000, "cached_input_tokens": 238848 + 63000,
             "output_tokens": 1123 + 100, "reasoning_output_tokens": 483,
             "total_tokens": 299496 + 70100}
    with big.open("a") as fh:
        fh.write(json.dumps(count("2026-02-23T19:40:00Z", {
            "input_tokens": 298373, "cached_input_tokens": 238848, "output_tokens": 1123,
            "reasoning_output_tokens": 483, "total_tokens": 299496}, None)) + "\n")
        fh.write(json.dumps(count("2026-02-23T19:41:00Z", total, last)) + "\n")
    with Store(store) as st:
        r = ingest(str(home), st, workers=1)
    assert r.files_read == 1
    assert totals() == (8, 299496 + 34900 + 70100)


# ------------------------------------------------------------------ layout and CLI

def test_layout_detection_and_format_names(tmp_path: Path) -> None:
    import fsspec

    home = tmp_path / ".codex"
    shutil.copytree(REAL, home / "sessions" / "2026" / "02" / "23")
    fs = fsspec.filesystem("file")
    assert codex.detect(fs, str(home)) and codex.detect(fs, str(home / "sessions"))
    assert not codex.detect(fs, str(tmp_path / "nothing"))
    assert len(codex.list_files(fs, str(home))) == 2
    assert by_name("codex") is codex
    assert by_name("gemini_cli") is by_name("gemini-cli")


def test_default_root_follows_codex_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                                         ) -> None:
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "ch"))
    assert codex.default_roots() == [str(tmp_path / "ch")]
    monkeypatch.delenv("CODEX_HOME")
    assert codex.default_roots()[0].endswith(".codex")


def test_cli_ingest_then_query_by_model(tmp_path: Path) -> None:
    home = tmp_path / ".codex"
    shutil.copytree(REAL, home / "sessions" / "2026" / "02" / "23")
    store = str(tmp_path / "s.duckdb")
    runner = CliRunner()
    r = runner.invoke(main, ["ingest", "--source", str(home), "--format", "codex",
                             "--store", store])
    assert r.exit_code == 0, r.output
    assert "ingest  codex: 2 file(s) read" in r.output
    r = runner.invoke(main, ["query", "--store", store, "-m",
                             "llm_calls,tokens_prompt,tokens_cache_read,tokens_completion",
                             "--grain", "none", "--by", "model", "--from", "2026-02-23",
                             "--to", "2026-02-24", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == [{
        "model": "gpt-5.3-codex", "llm_calls": 7,
        "tokens_prompt": (298373 - 238848) + (34469 - 3456),
        "tokens_cache_read": 238848 + 3456, "tokens_completion": 1123 + 431}]
    # Priced at ingest from the dated table (gpt-5.3-codex: $1.75 input, $0.175 cached
    # input, $14 output per million): (90,538 x 1.75 + 242,304 x 0.175 + 1,554 x 14) / 1e6
    with Store(store, read_only=True) as st:
        row = st.sql("SELECT round(sum(cost_usd), 8) AS usd, min(cost_source) AS src, "
                     "count(DISTINCT price_version) AS versions FROM events "
                     "WHERE event_type = 'llm_call'").to_pylist()[0]
    assert row == {"usd": round((90538 * 1.75 + 242304 * 0.175 + 1554 * 14) / 1e6, 8),
                   "src": "priced", "versions": 1}
    bad = runner.invoke(main, ["ingest", "--source", str(home), "--format", "codexx",
                               "--store", store])
    assert bad.exit_code == 1 and "unknown source format 'codexx'" in bad.output


def test_synced_copy_from_another_machine_counts_once(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    for name in ("laptop", "desktop"):  # the same transcripts synced to two machines
        home = tmp_path / name / ".codex"
        shutil.copytree(REAL, home / "sessions" / "2026" / "02" / "23")
        with Store(store) as st:
            r = ingest(str(home), st, workers=1, machine=name)
        assert r.files_read == 2
    with Store(store) as st:
        row = st.sql("SELECT count(*) AS n, sum(prompt_tokens + cache_read_tokens + "
                     "completion_tokens) AS tok FROM events WHERE event_type = 'llm_call'"
                     ).to_pylist()[0]
        tools = st.sql("SELECT count(*) AS n FROM events WHERE event_type = 'tool_output'"
                       ).to_pylist()[0]["n"]
    assert row == {"n": 7, "tok": 299496 + 34900}
    assert tools == 5


@pytest.mark.parametrize(("source", "agent"), [
    ("vscode", "main"), ({"subagent": "review"}, "review"),
    ({"subagent": {"other": "memory"}}, "memory")])
def test_agent_from_the_session_source(tmp_path: Path, source: Any, agent: str) -> None:
    u = usage(10, 0, 1)
    f = write(tmp_path / "rollout-x-agent.jsonl", [
        meta("2026-05-20T10:00:00Z", "s-agent", source=source),
        count("2026-05-20T10:00:05Z", u, u)])
    ev, sess, _ = parse(f)
    assert sess["agent"] == [agent] and ev["agent"] == [agent]
    assert ev["parent_id"] == [None]


def test_parse_stream_reads_an_open_file_like_parse_file() -> None:
    from agentkpi.model import CanonicalBatch

    into = CanonicalBatch()
    q = Quality()
    with BIG.open("rb") as fh:
        codex.parse_stream(str(BIG), fh, q, into=into)
    ev, _, q2 = parse(BIG)
    assert into.events == ev and dict(q.audit) == dict(q2.audit)


def test_exit_code_words_inside_the_output_are_not_the_exit_code(tmp_path: Path) -> None:
    f = write(tmp_path / "rollout-x-exit.jsonl", [
        meta("2026-05-20T10:00:00Z", "s-exit"),
        call("2026-05-20T10:00:01Z", "c1", "exec_command"),
        output("2026-05-20T10:00:02Z", "c1", "Chunk ID: 7\nWall time: 1.2 seconds\n"
               "Process exited with code 0\nOutput:\nmake: *** Error: exit code 2 (ignored)"),
        call("2026-05-20T10:00:03Z", "c2", "shell"),
        output("2026-05-20T10:00:04Z", "c2", "grep says: process exited with code 1")])
    ev, _, _ = parse(f)
    assert [s for s, e in zip(ev["success"], ev["event_type"], strict=True)
            if e == "tool_output"] == [True, True]


def test_ingest_without_source_reads_the_default_roots(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "codexhome"
    shutil.copytree(REAL, home / "sessions" / "2026" / "02" / "23")
    monkeypatch.setenv("CODEX_HOME", str(home))
    store = str(tmp_path / "s.duckdb")
    r = CliRunner().invoke(main, ["ingest", "--format", "codex", "--store", store])
    assert r.exit_code == 0, r.output
    assert "2 file(s) read" in r.output and str(home) in r.output
    with Store(store) as st:
        assert st.sql("SELECT count(*) AS n FROM events WHERE event_type = 'llm_call'"
                      ).to_pylist() == [{"n": 7}]
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "missing"))
    r = CliRunner().invoke(main, ["ingest", "--format", "codex", "--store", store])
    assert r.exit_code == 1 and "--source" in r.output
