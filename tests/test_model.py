"""The canonical model and the KPI catalogue document themselves."""

from __future__ import annotations

from agentkpi.kpis import BY_NAME, CATALOGUE, HOURLY_COLUMNS, MEASURES
from agentkpi.kpis.catalogue import QUERY_KPIS
from agentkpi.model import EVENT_COLUMNS, EVENT_TYPES, SESSION_COLUMNS
from agentkpi.quality import ISSUE_KINDS


def test_every_event_type_column_and_issue_kind_is_described() -> None:
    assert all(doc.strip() for doc in EVENT_TYPES.values())
    assert all(doc.strip() for *_, doc in (*EVENT_COLUMNS, *SESSION_COLUMNS))
    assert all(doc.strip() for doc in ISSUE_KINDS.values())


def test_every_kpi_has_a_description_a_unit_and_known_inputs() -> None:
    measures = {m.name for m in MEASURES}
    for k in (*CATALOGUE, *QUERY_KPIS):
        assert k.description.strip() and k.unit.strip(), k.name
        if k.agg in ("ratio", "diff"):
            assert k.num in BY_NAME and k.den in BY_NAME, k.name
        if k.agg == "percentile":
            assert 0 < k.p < 1 and k.digits is not None, k.name
    assert len({k.name for k in (*CATALOGUE, *QUERY_KPIS)}) == len(CATALOGUE) + len(QUERY_KPIS)
    assert measures  # the session stage exists


def test_hourly_columns_keep_the_seed_order() -> None:
    assert HOURLY_COLUMNS[:10] == ("sessions", "users", "turns", "llm_calls", "tokens_prompt",
                                   "tokens_completion", "tokens_cache_read",
                                   "tokens_cache_creation", "cost_usd", "cost_per_session_mean")
    assert HOURLY_COLUMNS[-1] == "pro_cta_by_source_json"
