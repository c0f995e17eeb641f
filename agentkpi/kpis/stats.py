"""Statistics computed in Python, with the same definitions as the KPI SQL.

The KPI engine computes percentiles in SQL (every dialect spells the seed's
interpolation ``lo + (hi - lo) * frac``, see :mod:`agentkpi.kpis.sql`); code that
holds values in memory (the in-process :class:`agentkpi.Monitor`) uses these
functions so that its numbers mean the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["percentile", "rolling_mean"]


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100), linear interpolation between closest ranks.

    ``lo + (hi - lo) * frac`` over the sorted values (numpy's default, the KPI
    SQL's definition); 0.0 for no values.
    """
    if not values:
        return 0.0
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return float(s[lo])
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


def rolling_mean(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over up to ``window`` values (pandas ``rolling(w, min_periods=1)``)."""
    out: list[float] = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
