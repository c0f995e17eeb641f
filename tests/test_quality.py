"""The coercions every importer goes through (agentkpi/quality.py), one by one and end to end."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agentkpi.quality import ISSUE_KINDS, Quality, parse_ts, to_bool, to_float, to_int, to_str

from .conftest import ev, write_session


def _q() -> Quality:
    return Quality()


@pytest.mark.parametrize(("value", "want"), [
    (1779285600, datetime(2026, 5, 20, 14, 0)),            # epoch seconds (int)
    (1779285600.5, datetime(2026, 5, 20, 14, 0, 0, 500000)),  # epoch seconds (float)
    ("2026-05-20T14:00:00Z", datetime(2026, 5, 20, 14)),
    ("2026-05-20T16:30:00+02:00", datetime(2026, 5, 20, 14, 30)),
    ("2026-05-20T09:00:00-05:00", datetime(2026, 5, 20, 14)),
    ("2026-05-20T14:00:00", datetime(2026, 5, 20, 14)),     # no offset means UTC
    ("2026-05-20 14:00:00.250", datetime(2026, 5, 20, 14, 0, 0, 250000)),
])
def test_timestamps_become_naive_utc(value: Any, want: datetime) -> None:
    q = _q()
    assert parse_ts(value, q) == want and not q.counts


@pytest.mark.parametrize(("value", "kind"), [
    (None, "ts_missing"), ("", "ts_missing"), ("not-a-date", "ts_unparseable"),
    (True, "ts_unparseable"), (math.inf, "ts_unparseable"), (1e20, "ts_unparseable"),
    ({"t": 1}, "ts_unparseable"),
])
def test_bad_timestamps_are_none_and_counted(value: Any, kind: str) -> None:
    q = _q()
    assert parse_ts(value, q, "f.jsonl:3") is None
    assert q.counts == {kind: 1} and q.examples == {kind: "f.jsonl:3"}
    assert kind in ISSUE_KINDS


@pytest.mark.parametrize(("value", "as_float", "as_int"), [
    ("12.7", 12.7, 12), (" 12.7 ", 12.7, 12), ("123", 123.0, 123), (7, 7.0, 7),
    (2.9, 2.9, 2), ("-5", -5.0, -5), (-3, -3.0, -3), (True, 1.0, 1), ("1e3", 1000.0, 1000),
])
def test_numbers_and_numeric_strings(value: Any, as_float: float, as_int: int) -> None:
    q = _q()
    assert to_float(value, q) == as_float and to_int(value, q) == as_int and not q.counts


@pytest.mark.parametrize("value", ["abc", "nan", "inf", math.nan, [1], {"a": 1}, "12,7"])
def test_non_numbers_are_none_and_counted(value: Any) -> None:
    q = _q()
    assert to_float(value, q) is None and to_int(value, q) is None
    assert q.counts == {"number_unparseable": 2}


def test_missing_numbers_are_none_and_not_counted() -> None:
    q = _q()
    assert to_float(None, q) is None and to_float("  ", q) is None and to_int(None, q) is None
    assert not q.counts


def test_int_outside_bigint_is_counted_not_stored() -> None:
    q = _q()
    assert to_int(2**63, q) is None and to_int("1e30", q) is None
    assert to_int(2**63 - 1, q) == 2**63 - 1
    assert q.counts == {"number_unparseable": 2}


@pytest.mark.parametrize("word", ["true", "1", "yes", "y", "ok", "success", "succeeded",
                                  " TRUE ", "Yes", "OK"])
def test_true_words(word: str) -> None:
    q = _q()
    assert to_bool(word, q) is True and not q.counts


@pytest.mark.parametrize("word", ["false", "0", "no", "n", "fail", "failed", "failure",
                                  "error", "", "False", " NO "])
def test_false_words(word: str) -> None:
    q = _q()
    assert to_bool(word, q) is False and not q.counts


@pytest.mark.parametrize(("value", "want"), [(True, True), (False, False), (1, True),
                                             (0, False), (2.5, True), (0.0, False),
                                             (None, None)])
def test_bool_from_non_strings(value: Any, want: bool | None) -> None:
    q = _q()
    assert to_bool(value, q) is want and not q.counts


@pytest.mark.parametrize("value", ["maybe", "tru", [True], {"ok": 1}])
def test_unknown_bool_words_are_none_and_counted(value: Any) -> None:
    q = _q()
    assert to_bool(value, q) is None and q.counts == {"bool_unparseable": 1}


def test_to_str() -> None:
    assert (to_str(None), to_str(""), to_str("x"), to_str(3), to_str(1.5), to_str({"a": 1}),
            to_str([1])) == (None, None, "x", "3", "1.5", None, None)


def test_coercions_end_to_end_in_the_hourly_row(dataset: Path, hour_row: Any) -> None:
    """One session with every odd spelling, rolled up; the row worked out by hand."""
    write_session(dataset, "odd", "2026-05-20T14:00:00Z", [
        ev(1779285660, "llm_call", prompt_tokens="12.7", completion_tokens=" 8 ",
           cost_usd="0.25"),                                    # 14:01 as epoch seconds
        ev("2026-05-20T16:02:00+02:00", "llm_call", prompt_tokens=-2, completion_tokens="abc",
           cache_read_tokens="20", cost_usd=None),              # 14:02 UTC, a negative count
        ev("2026-05-20T14:03:00", "tool_output", tool="bash", success="false"),
        ev("2026-05-20T14:04:00Z", "tool_output", tool="bash", success="Succeeded"),
        ev("2026-05-20T14:05:00Z", "tool_output", tool="bash", success="no"),
        ev("2026-05-20T14:06:00Z", "tool_output", tool="bash", success=1),
        ev("2026-05-20T14:07:00Z", "tool_output", tool="bash", success="maybe"),
        ev("not-a-date", "llm_call", prompt_tokens=1000),      # in no hour
        ev(1779289200, "llm_call", prompt_tokens=1000),        # 15:00: the next hour
    ])
    row = hour_row(dataset, "2026-05-20T14")
    assert row is not None
    assert (row["llm_calls"], row["tokens_prompt"], row["tokens_completion"],
            row["tokens_cache_read"], row["cost_usd"]) == (2, 10, 8, 20, 0.25)
    # "false", "no" and an unknown word are not successes; "Succeeded" and 1 are
    assert (row["tool_calls_total"], row["tool_calls_succeeded"],
            row["tool_calls_failed"]) == (5, 2, 3)
    assert row["cache_hit_ratio"] == round(20 / (20 + 10), 4)
    nxt = hour_row(dataset, "2026-05-20T15")
    assert nxt is not None and nxt["tokens_prompt"] == 1000 and nxt["llm_calls"] == 1
