"""Costs from the dated offline price table; the one pricing step of ingest."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from agentkpi import pricing
from agentkpi.model import CanonicalBatch
from agentkpi.quality import Quality
from agentkpi.store.duckdb import MIGRATIONS, DuckDBStore


def test_hand_checked_cost_of_a_real_claude_code_call() -> None:
    # the shape of a real tool_heavy.jsonl call, with a longer answer: 1 uncached,
    # 208 written (1-hour TTL), 25,798 read, 173 out on claude-opus-4-6. Opus 4.6 per
    # MTok: input $5, 1-hour write $10, read $0.50, output $25:
    # 1*5 + 208*10 + 25798*0.5 + 173*25 = 5 + 2080 + 12899 + 4325 = 19309 -> $0.019309
    got = pricing.cost("claude-opus-4-6", prompt=1, completion=173, cache_read=25798,
                       cache_creation=208, cache_creation_1h=208,
                       ts=datetime(2026, 2, 10, 22, 58))
    assert got == pytest.approx(0.019309, abs=1e-12)
    # without the TTL split the writes are 5-minute writes at $6.25: 208*6.25 = 1300
    got5m = pricing.cost("claude-opus-4-6", prompt=1, completion=173, cache_read=25798,
                         cache_creation=208, ts=datetime(2026, 2, 10))
    assert got5m == pytest.approx((5 + 1300 + 12899 + 4325) / 1e6, abs=1e-12)


def test_long_context_tier_bills_the_whole_request_once_input_crosses_it() -> None:
    # claude-sonnet-4-5: $3 in / $15 out / $0.30 read; above 200k input: $6 / $22.50 / $0.60
    below = pricing.cost("claude-sonnet-4-5", prompt=140_000, cache_read=60_000,
                         completion=1000)
    assert below == pytest.approx((140_000 * 3 + 60_000 * 0.3 + 1000 * 15) / 1e6)
    # 150k new + 60k read = 210k > 200k: every token at the premium rate, not just the excess
    above = pricing.cost("claude-sonnet-4-5", prompt=150_000, cache_read=60_000,
                         completion=1000)
    assert above == pytest.approx((150_000 * 6 + 60_000 * 0.6 + 1000 * 22.5) / 1e6)


def test_fast_path_equals_the_tables_own_calculation() -> None:
    rnd = random.Random(7)
    models = ["claude-opus-4-6", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-haiku",
              "gpt-5", "gpt-4o", "gpt-5-codex", "gemini-2.5-pro", "gemini-2.5-flash",
              "o3", "claude-sonnet-4-0"]
    checked = 0
    for model in models:
        assert pricing.is_known(model), model
        for _ in range(40):
            u = {"prompt": rnd.choice([0, 1, 5000, 150_000, 260_000]),
                 "completion": rnd.randrange(0, 40_000),
                 "cache_read": rnd.choice([0, 30_000, 190_000]),
                 "cache_creation": rnd.choice([0, 2000, 60_000])}
            u["cache_creation_1h"] = rnd.choice([0, u["cache_creation"] // 2,
                                                 u["cache_creation"]])
            ts = datetime(2025 + rnd.randrange(2), rnd.randrange(1, 13), 1, rnd.randrange(24))
            fast = pricing.cost(model, ts=ts, **u)
            slow = pricing.table_cost(model, ts=ts, **u)
            assert fast == pytest.approx(slow, rel=1e-12, abs=1e-15), (model, u)
            checked += 1
    assert checked == 40 * len(models)


def test_unknown_model_is_unpriced_never_zero() -> None:
    assert pricing.cost("no-such-model-9000", prompt=10, completion=5) is None
    assert pricing.cost("<synthetic>", prompt=0, completion=0) is None
    assert not pricing.is_known(None)


def _calls() -> CanonicalBatch:
    b = CanonicalBatch()
    t = datetime(2026, 2, 10, 12)
    b.add_event(session_id="s", seq=0, ts=t, event_type="llm_call", model="claude-opus-4-6",
                prompt_tokens=1000, completion_tokens=100, file="f")
    b.add_event(session_id="s", seq=1, ts=t, event_type="llm_call", model="claude-opus-4-6",
                prompt_tokens=1000, completion_tokens=100, cost_usd=0.5, file="f")
    b.add_event(session_id="s", seq=2, ts=t, event_type="llm_call", model="my-local-llm",
                prompt_tokens=300, completion_tokens=20, cache_read_tokens=7, file="f")
    b.add_event(session_id="s", seq=3, ts=t, event_type="tool_call", tool="Bash", file="f")
    return b


def test_price_step_source_cost_wins_tokens_are_priced_unknown_is_null() -> None:
    q = Quality()
    ev = pricing.price_events(_calls().event_table(), q).to_pylist()
    assert ev[0]["cost_usd"] == pytest.approx((1000 * 5 + 100 * 25) / 1e6)
    assert ev[0]["cost_source"] == "priced" and ev[0]["price_version"] == pricing.PRICE_VERSION
    assert ev[1]["cost_usd"] == 0.5 and ev[1]["cost_source"] == "source"
    assert ev[1]["price_version"] is None
    assert ev[2]["cost_usd"] is None and ev[2]["cost_source"] is None
    assert ev[3]["cost_usd"] is None and ev[3]["cost_source"] is None
    assert q.audit["unpriced_tokens"] == 327
    assert q.audit["priced_calls"] == 1 and q.audit["source_cost_calls"] == 1
    assert q.counts["model_unpriced"] == 1
    assert "my-local-llm" in q.examples["model_unpriced"]
    assert q.data_errors == 0  # nothing lost: the cost is NULL and says so


def test_unpriced_tokens_kpi_through_the_store(tmp_path: Path) -> None:
    from agentkpi.queries import query

    st = DuckDBStore(tmp_path / "s.duckdb")
    b = _calls()
    b.add_session(session_id="s", machine="laptop")
    st.write_batch(b.session_table(), pricing.price_events(b.event_table()), [],
                   replace_sessions=False)
    rows = query(["unpriced_tokens", "cost_usd", "llm_calls"], by=["machine"],
                 start="2026-02-10", end="2026-02-11", grain=None, store=st).to_pylist()
    assert len(rows) == 1 and rows[0]["machine"] == "laptop"
    assert rows[0]["unpriced_tokens"] == 327
    assert rows[0]["cost_usd"] == pytest.approx(0.5 + 0.0075, abs=1e-4)
    st.close()


def test_a_version_1_store_opens_and_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                "description VARCHAR, applied_at TIMESTAMP)")
    version, description, statements = MIGRATIONS[0]
    for stmt in statements:
        con.execute(stmt)
    con.execute("INSERT INTO schema_migrations VALUES (1, ?, now())", [description])
    con.execute("INSERT INTO sessions (session_id, model) VALUES ('old', 'm')")
    con.execute("INSERT INTO events (session_id, seq, event_type, prompt_tokens, file) "
                "VALUES ('old', 0, 'llm_call', 12, 'a.jsonl')")
    con.close()
    st = DuckDBStore(path)
    assert st.schema_version() == MIGRATIONS[-1][0] >= 2
    cols = st.sql("SELECT * FROM events").column_names
    assert {"tool_call_id", "mcp_server", "parent_id", "reasoning_tokens",
            "cache_creation_1h_tokens", "cost_source", "price_version", "event_key"} <= set(cols)
    assert st.sql("SELECT machine, model FROM sessions").to_pylist() == [
        {"machine": None, "model": "m"}]
    # new rows still go in (by name) after the old rows
    b = CanonicalBatch()
    b.add_event(session_id="new", seq=0, event_type="llm_call", prompt_tokens=1,
                event_key="k", file="b.jsonl")
    st.write_batch(b.session_table(), b.event_table(), [], replace_sessions=False)
    assert st.sql("SELECT sum(prompt_tokens) FROM events").column(0)[0].as_py() == 13
    st.close()


def test_same_event_key_from_two_files_is_one_row_the_largest_wins(tmp_path: Path) -> None:
    st = DuckDBStore(tmp_path / "s.duckdb")

    def batch(file: str, out: int, parent: str | None = None) -> None:
        b = CanonicalBatch()
        b.add_event(session_id="s", seq=3, event_type="llm_call", prompt_tokens=10,
                    completion_tokens=out, event_key="msg_1", parent_id=parent, file=file)
        b.add_event(session_id="s", seq=4, event_type="tool_call", event_key=None, file=file)
        st.write_batch(b.session_table(), b.event_table(),
                       [{"path": file, "fingerprint": "x", "source": "t", "status": "ok"}],
                       replace_sessions=False)

    batch("/m1/a.jsonl", 25)        # a partial snapshot on machine 1
    batch("/m2/a.jsonl", 173)       # the full response in machine 2's copy
    batch("/m1/a.jsonl", 25)        # machine 1's file re-read (it grew)
    rows = st.sql("SELECT file, completion_tokens FROM events WHERE event_key = 'msg_1'"
                  ).to_pylist()
    assert rows == [{"file": "/m2/a.jsonl", "completion_tokens": 173}]
    assert st.merged_by_key == 2
    # a replay inside a subagent loses to the main agent's row with the same usage
    batch("/m0/z.jsonl", 173, parent="toolu_x")
    assert st.sql("SELECT file FROM events WHERE event_key = 'msg_1'").column(0).to_pylist() \
        == ["/m2/a.jsonl"]
    # events without a key are never merged
    assert st.sql("SELECT count(*) FROM events WHERE event_type = 'tool_call'"
                  ).column(0)[0].as_py() == 3
    st.close()


def test_reprice_recomputes_priced_and_unpriced_keeps_source_costs(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from agentkpi.cli import main

    path = tmp_path / "s.duckdb"
    st = DuckDBStore(path)
    b = _calls()
    ev = pricing.price_events(b.event_table())
    # pretend an older table priced call 0 differently, and knew no price for call 2
    costs = ev.column("cost_usd").to_pylist()
    costs[0] = 123.0
    ev = ev.set_column(ev.schema.get_field_index("cost_usd"), "cost_usd",
                       pa.array(costs, pa.float64()))
    st.write_batch(b.session_table(), ev, [], replace_sessions=False)
    st.close()
    res = CliRunner().invoke(main, ["reprice", "--from", "2026-02-10", "--to", "2026-02-11",
                                    "--store", str(path)])
    assert res.exit_code == 0, res.output
    assert "1 cost(s) changed" in res.output and "327 token(s) still unpriced" in res.output
    st = DuckDBStore(path, read_only=True)
    rows = st.sql("SELECT seq, cost_usd, cost_source FROM events ORDER BY seq").to_pylist()
    st.close()
    assert rows[0]["cost_usd"] == pytest.approx(0.0075) and rows[0]["cost_source"] == "priced"
    assert rows[1]["cost_usd"] == 0.5 and rows[1]["cost_source"] == "source"
    assert rows[2]["cost_usd"] is None and rows[3]["cost_usd"] is None
    assert len(rows) == 4


def test_price_step_on_a_large_mixed_batch_equals_row_by_row_pricing() -> None:
    """Only the calls without a cost go through Python; every row must still get what
    pricing it row by row gives (source costs marked, others priced or NULL), also on a
    table of several chunks (batches from several files)."""
    rnd = random.Random(12)
    t = datetime(2026, 2, 10, 12)
    parts = []
    expected = []
    for _ in range(3):
        b = CanonicalBatch()
        for seq in range(400):
            kind = rnd.choice(["llm_call", "llm_call", "tool_call", "error"])
            model = rnd.choice(["claude-opus-4-6", "my-local-llm", None])
            cost = rnd.choice([None, None, 0.25, 0.0])
            source = "source" if cost is not None and rnd.random() < 0.3 else None
            p, c = rnd.choice([0, 0, 120, 1000]), rnd.choice([0, 30])
            b.add_event(session_id="s", seq=seq, ts=t, event_type=kind, model=model,
                        prompt_tokens=p, completion_tokens=c, cost_usd=cost,
                        cost_source=source, file="f")
            if kind != "llm_call":
                expected.append((cost, source, None))
            elif cost is not None:
                expected.append((cost, "source", None))
            else:
                value = pricing.cost(model, prompt=p, completion=c, cache_read=None,
                                     cache_creation=None, cache_creation_1h=None, ts=t) \
                    if p + c else None
                expected.append((value, "priced" if value is not None else None,
                                 pricing.PRICE_VERSION if value is not None else None))
        parts.append(b.event_table())
    table = pa.concat_tables(parts)
    assert table.column("cost_usd").num_chunks == 3
    q = Quality()
    got = pricing.price_events(table, q)
    rows = list(zip(got.column("cost_usd").to_pylist(), got.column("cost_source").to_pylist(),
                    got.column("price_version").to_pylist(), strict=True))
    assert rows == expected
    assert got.column("event_type").to_pylist() == table.column("event_type").to_pylist()
    calls = [e for e, k in zip(expected, table.column("event_type").to_pylist(), strict=True)
             if k == "llm_call"]
    assert q.audit["priced_calls"] == sum(1 for e in calls if e[1] == "priced") > 0
    marked = sum(1 for c, s, k in zip(table.column("cost_usd").to_pylist(),
                                      table.column("cost_source").to_pylist(),
                                      table.column("event_type").to_pylist(), strict=True)
                 if k == "llm_call" and c is not None and s is None)
    assert q.audit["source_cost_calls"] == marked > 0
