"""Costs of llm_calls from a dated, offline price table.

The table is the pinned ``genai-prices`` package (pydantic's, MIT; bundled data, no
network unless asked for): per-model prices per million tokens for uncached input,
output, cache reads, 5-minute and 1-hour cache writes, long-context tiers, and
date-effective prices (a price cut applies from its date on). Tiers are *whole
request*: once the input of a call (uncached + cache read + cache write) crosses a
tier's threshold, every token of the call is billed at that tier's rates, as the
providers bill it.

One step, :func:`price_events`, runs in ingest over every source's events:

* a cost carried by the source wins: ``cost_source = 'source'``;
* tokens but no cost: the cost is computed for the call's model at the call's
  time, ``cost_source = 'priced'`` and ``price_version`` (:data:`PRICE_VERSION`)
  are stored with it;
* a model the table does not know (or no model): ``cost_usd`` stays NULL, never
  $0, and its tokens are counted as *unpriced* (audit counter ``unpriced_tokens``,
  issue kind ``model_unpriced``, KPI ``unpriced_tokens``).

``agentkpi reprice`` recomputes stored priced costs with the installed table.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from agentkpi.quality import Quality

if TYPE_CHECKING:
    from agentkpi.store import Store


def _package_version() -> str | None:
    # The version from the installed metadata: importing genai-prices (pydantic) costs
    # ~0.2 s of start-up, paid only when a call needs a price (:func:`_table`).
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genai-prices")
    except PackageNotFoundError:  # pragma: no cover - a declared dependency
        return None


#: Version stamped on every computed cost: the price table package and its version.
PRICE_VERSION = f"genai-prices=={v}" if (v := _package_version()) else None


@lru_cache(maxsize=1)
def _table() -> Any:
    """The ``genai_prices`` package, imported on first use (``None`` if missing)."""
    try:
        import genai_prices
        from genai_prices import data_snapshot  # noqa: F401 - loads the bundled table
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return genai_prices

#: Model names a source writes that are not models (no call was billed).
NOT_MODELS = frozenset({"<synthetic>"})


@lru_cache(maxsize=4096)
def _resolve(model: str) -> Any:
    """The table's model entry for ``model`` (``None`` when unknown)."""
    prices = _table()
    if prices is None or not model or model in NOT_MODELS:
        return None
    snap = prices.data_snapshot.get_snapshot()
    ref = model.split("/", 1)[1] if model.count("/") == 1 else model  # "anthropic/claude-…"
    try:
        _provider, info = snap.find_provider_model(ref, None, None, None)
    except LookupError:
        return None
    return info




def _usage(p: int = 0, o: int = 0, cr: int = 0, cw: int = 0, cw1h: int = 0) -> Any:
    # genai-prices counts input *including* cache reads and writes (its tier threshold
    # is that total); ours is exclusive, so add them back.
    u = _table().Usage(input_tokens=p + cr + cw, cache_read_tokens=cr, cache_write_tokens=cw,
              output_tokens=o)
    if cw1h:
        u.cache_write_1h_tokens = cw1h
    return u


def _calc(price: Any, usage: Any) -> Decimal:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return price.calc_price(usage)["total_price"]


_RATES: dict[int, tuple[Any, tuple[tuple[int, tuple[Decimal, ...]], ...]]] = {}


def _rates(price: Any) -> tuple[tuple[int, tuple[Decimal, ...]], ...]:
    hit = _RATES.get(id(price))
    if hit is None or hit[0] is not price:
        hit = _RATES[id(price)] = (price, _read_rates(price))
    return hit[1]


def _read_rates(price: Any) -> tuple[tuple[int, tuple[Decimal, ...]], ...]:
    """Per-token rates of one price entry, per tier: ((threshold, rates), ...).

    The table's cost is linear in each token bucket within a tier, and the tier is
    chosen by the call's total input, so the rates are read off the table itself:
    the cost of one more token of each bucket at a usage inside the tier (exact
    Decimal differences). This makes pricing a few multiplications per call instead
    of the table's generic unit decomposition (~200 us per call).
    """
    starts = sorted({t.start for v in vars(price).values() if hasattr(v, "tiers")
                     for t in v.tiers})
    levels = []
    for start in (-1, *starts):
        base_p = start + 1
        base = _calc(price, _usage(p=base_p)) if base_p else Decimal(0)
        rates = tuple(_calc(price, _usage(**{**{"p": base_p}, **bump})) - base
                      for bump in ({"p": base_p + 1}, {"o": 1}, {"cr": 1}, {"cw": 1},
                                   {"cw": 1, "cw1h": 1}))
        levels.append((start, rates))
    return tuple(levels)


def cost(model: str | None, *, prompt: int | None, completion: int | None,
         cache_read: int | None = None, cache_creation: int | None = None,
         cache_creation_1h: int | None = None, ts: datetime | None = None) -> float | None:
    """USD cost of one call with the token convention of :mod:`agentkpi.model`.

    ``None`` when the model is not in the table. ``ts`` (naive UTC) picks the
    prices in force at the call's time (price changes, off-peak hours); none: now.
    """
    info = _resolve(model) if model else None
    if info is None:
        return None
    price = info.get_prices((ts or datetime.now(UTC)).replace(tzinfo=UTC))
    p, o = prompt or 0, completion or 0
    cr, cw = cache_read or 0, cache_creation or 0
    cw1h = min(cache_creation_1h or 0, cw)
    total_input = p + cr + cw
    rates = _rates(price)[0][1]
    for start, level in _rates(price):
        if total_input > start:
            rates = level
    rp, ro, rcr, rcw, rcw1h = rates
    return float(p * rp + o * ro + cr * rcr + (cw - cw1h) * rcw + cw1h * rcw1h)


def table_cost(model: str, *, prompt: int, completion: int, cache_read: int = 0,
               cache_creation: int = 0, cache_creation_1h: int = 0,
               ts: datetime | None = None) -> float:
    """The same cost through genai-prices' own calculation (slow; for checks)."""
    info = _resolve(model)
    price = info.get_prices((ts or datetime.now(UTC)).replace(tzinfo=UTC))
    return float(_calc(price, _usage(prompt, completion, cache_read, cache_creation,
                                     cache_creation_1h)))


def is_known(model: str | None) -> bool:
    """True when the price table has ``model``."""
    return bool(model) and _resolve(str(model)) is not None


_TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "cache_read_tokens",
                  "cache_creation_tokens")


def price_events(events: pa.Table, q: Quality | None = None, *,
                 recompute: bool = False) -> pa.Table:
    """Fill ``cost_usd`` / ``cost_source`` / ``price_version`` of llm_call rows.

    With ``recompute`` (``agentkpi reprice``) costs marked 'priced' are computed
    again and unpriced calls get another chance; source costs are never touched.
    """
    n = events.num_rows
    if not n:
        return events
    is_call = pc.fill_null(pc.equal(events.column("event_type"), "llm_call"), False)
    if not pc.any(is_call).as_py():
        return events
    cost_col, source_col = events.column("cost_usd"), events.column("cost_source")
    # Calls with a source cost and no cost_source are marked 'source' in one step; only
    # the calls that need a price (no cost; with ``recompute`` also 'priced' ones) go
    # through the Python loop below, so a batch of source-costed calls costs no Python.
    has_cost = pc.is_valid(cost_col)
    mark = pc.and_(pc.and_(is_call, has_cost), pc.is_null(source_col))
    if recompute:
        mark = pc.and_(mark, pc.invert(pc.fill_null(pc.equal(source_col, "priced"), False)))
        todo = pc.and_(is_call, pc.or_(pc.invert(has_cost),
                                       pc.fill_null(pc.equal(source_col, "priced"), False)))
    else:
        todo = pc.and_(is_call, pc.invert(has_cost))
    n_marked = pc.sum(mark).as_py() or 0
    if n_marked:
        if q is not None:
            q.count_audit("source_cost_calls", n_marked)
        i = events.schema.get_field_index("cost_source")
        events = events.set_column(i, "cost_source", pc.if_else(
            mark, pa.scalar("source", pa.string()), events.column("cost_source")))
    rows = pc.indices_nonzero(todo)
    if not len(rows):
        return events
    sub = events.take(rows)
    cols = {c: sub.column(c).to_pylist() for c in
            ("model", "ts", "cost_usd", "cost_source", "price_version",
             "cache_creation_1h_tokens", *_TOKEN_COLUMNS)}
    models, times = cols["model"], cols["ts"]
    costs, sources, versions = cols["cost_usd"], cols["cost_source"], cols["price_version"]
    pr, co, cr, cw = (cols[c] for c in _TOKEN_COLUMNS)
    cw1h = cols["cache_creation_1h_tokens"]
    changed = False
    unpriced_models: dict[str, int] = {}
    for i in range(len(models)):
        tokens = (pr[i] or 0) + (co[i] or 0) + (cr[i] or 0) + (cw[i] or 0)
        if not tokens:
            continue
        value = cost(models[i], prompt=pr[i], completion=co[i], cache_read=cr[i],
                     cache_creation=cw[i], cache_creation_1h=cw1h[i], ts=times[i])
        if value is None:
            if costs[i] is not None or sources[i] is not None:
                costs[i] = sources[i] = versions[i] = None
                changed = True
            key = models[i] or "(no model)"
            unpriced_models[key] = unpriced_models.get(key, 0) + 1
            if q is not None:
                q.count_audit("unpriced_tokens", tokens)
            continue
        costs[i], sources[i], versions[i] = value, "priced", PRICE_VERSION
        changed = True
        if q is not None:
            q.count_audit("priced_calls")
    if q is not None:
        for model, calls in sorted(unpriced_models.items()):
            for _ in range(calls):
                q.note("model_unpriced", f"model {model!r} is not in the price table "
                       f"{PRICE_VERSION}")
    if not changed:
        return events
    # Scatter the changed values back: position of each row in ``rows``, else keep.
    where = pc.cumulative_sum(pc.cast(todo, pa.int64()))
    pick = pc.subtract(where, 1)
    for name, values, typ in (("cost_usd", costs, pa.float64()),
                              ("cost_source", sources, pa.string()),
                              ("price_version", versions, pa.string())):
        i = events.schema.get_field_index(name)
        new = pa.array(values, typ).take(pc.if_else(todo, pick, pa.scalar(0, pa.int64())))
        events = events.set_column(i, name, pc.if_else(todo, new, events.column(name)))
    return events


def reprice(store: Store, start: datetime, end: datetime) -> dict[str, Any]:
    """Recompute the costs of stored llm_calls in ``[start, end)`` with this table.

    Costs marked 'priced' are computed again (a newer table may have changed them);
    unpriced calls get another chance; costs the source carried are never touched.
    """
    q = Quality()
    read, changed = store.rewrite_llm_calls(
        start, end, lambda rows: price_events(rows, q, recompute=True))
    return {"calls": read, "changed": changed, "price_version": PRICE_VERSION,
            "priced_calls": q.audit.get("priced_calls", 0),
            "unpriced_tokens": q.audit.get("unpriced_tokens", 0)}
