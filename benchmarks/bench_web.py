"""Dashboard benchmark: JSON API latency and time to first render in Chromium.

    python benchmarks/bench_web.py --store /tmp/akbench/web.duckdb [--requests 30]
        [--out benchmarks/RESULTS_web.md]

Starts the real app (uvicorn, in a thread, on a free port) over an existing
store and measures:

* API latency per route, p50/p95 over ``--requests`` requests, both *uncached*
  (response cache cleared before each request: the store is opened and the
  KPIs computed every time, as after every ingest) and *cached* (unchanged
  store: what the 10 s polling costs);
* time to first render of the overview in headless Chromium
  (``/usr/bin/chromium`` via Playwright): from navigation start to the charts
  drawn (``performance.now()`` when ``body[data-renders]`` is set), cold
  (cache empty) and warm.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import cpu_model

from agentkpi.store import DuckDBStore
from agentkpi.web import create_app

CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def machine() -> str:
    cpu = cpu_model("?")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU ({cpu}), "
            f"{mem:.0f} GB RAM, Python {platform.python_version()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default="/tmp/akbench/web.duckdb")
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_web.md")))
    a = ap.parse_args()

    with DuckDBStore(a.store, read_only=True) as st:
        counts = st.counts()
        lo, hi = st.time_range()
        sid = st.con.execute("SELECT session_id FROM sessions LIMIT 1").fetchall()[0][0]
    print(f"store {a.store}: {counts}, events {lo} .. {hi}", flush=True)

    import uvicorn

    app = create_app(a.store, poll=10)
    dash = app.state.dashboard
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    while not srv.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    assert hi is not None, "empty store"
    last_hour = hi.replace(minute=0, second=0, microsecond=0)
    week_end = last_hour + timedelta(hours=1)
    week = f"from={(week_end - timedelta(days=7)):%Y-%m-%dT%H}&to={week_end:%Y-%m-%dT%H}"
    day = f"from={(week_end - timedelta(days=1)):%Y-%m-%dT%H}&to={week_end:%Y-%m-%dT%H}"
    routes = [
        ("overview, 7 days hourly (default)", "/api/overview?" + week),
        ("overview, 7 days daily", "/api/overview?grain=day&" + week),
        ("overview filtered tool=bash", "/api/overview?tool=bash&" + week),
        ("breakdown by tool", "/api/breakdown/tool?" + week),
        ("breakdown by model", "/api/breakdown/model?" + week),
        ("breakdown by user", "/api/breakdown/user?" + week),
        ("sessions (last 24 h)", "/api/sessions?" + day),
        ("one session", f"/api/session/{sid}"),
    ]
    results: list[dict[str, Any]] = []
    with httpx.Client(base_url=base, timeout=120) as c:
        for name, url in routes:
            unc, cac = [], []
            n = a.requests if "sessions" not in name else max(5, a.requests // 5)
            for _ in range(n):
                dash._cache.clear()
                t0 = time.perf_counter()
                r = c.get(url)
                unc.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, (url, r.text[:300])
            size = len(r.content)
            for _ in range(a.requests):
                t0 = time.perf_counter()
                r = c.get(url)
                cac.append((time.perf_counter() - t0) * 1000)
                assert r.json()["cached"] is True
            row = {"route": name, "url": url, "n": n, "bytes": size,
                   "p50": statistics.median(unc), "p95": pct(unc, 0.95),
                   "c50": statistics.median(cac), "c95": pct(cac, 0.95)}
            results.append(row)
            print(f"{name:40s} uncached p50 {row['p50']:8.1f} ms p95 {row['p95']:8.1f} ms | "
                  f"cached p50 {row['c50']:.1f} ms p95 {row['c95']:.1f} ms | {size} B",
                  flush=True)

    render: dict[str, list[float]] = {"cold": [], "warm": []}
    if Path(CHROMIUM).exists():
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking"])
            ctx = b.new_context(viewport={"width": 1400, "height": 1000})
            pg = ctx.new_page()
            for i in range(10):
                kind = "cold" if i % 2 == 0 else "warm"
                if kind == "cold":
                    dash._cache.clear()
                pg.goto(base + "/?" + week)
                pg.wait_for_function("document.body.dataset.renders >= '1'", timeout=60000)
                ms = pg.evaluate("performance.now()")
                assert pg.locator("path.series").count() >= 10
                render[kind].append(ms)
            b.close()
        for k, v in render.items():
            print(f"first render ({k}): p50 {statistics.median(v):.0f} ms, "
                  f"max {max(v):.0f} ms", flush=True)
    srv.should_exit = True
    th.join(5)

    load = os.getloadavg()
    lines = [
        "# Dashboard benchmark (`agentkpi serve`)", "",
        f"Run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {machine()}; load average "
        f"at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min; other jobs "
        "shared the machine).", "",
        f"Command: `python benchmarks/bench_web.py --store {a.store} --requests {a.requests}`",
        "",
        f"Store: {counts['sessions']:,} sessions, {counts['events']:,} events "
        f"({lo} .. {hi} UTC), DuckDB file {Path(a.store).stat().st_size / 2**20:.0f} MB, "
        "built with `agentkpi ingest --source /tmp/akbench/source-200000 --store "
        f"{a.store}`.", "",
        f"Range of the overview: 7 days, hourly (168 buckets, `{week}`); the data covers "
        f"{(hi - lo).total_seconds() / 3600:.0f} hours of it, so every session of the store "
        "is in range.", "",
        "## JSON API latency (real uvicorn server, one client, ms)", "",
        "*Uncached*: response cache cleared before each request, so the store is opened "
        "read-only and the KPIs computed every time (what the first poll after an ingest "
        "costs). *Cached*: the store did not change, so the last response is served "
        "without opening the store (what polling costs).", "",
        "| route | requests | uncached p50 | uncached p95 | cached p50 | cached p95 | bytes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['route']} | {r['n']} | {r['p50']:.0f} | {r['p95']:.0f} | "
                     f"{r['c50']:.1f} | {r['c95']:.1f} | {r['bytes']:,} |")
    if render["cold"]:
        lines += ["", "## Time to first render of the overview (headless Chromium)", "",
                  "From navigation start to all 7 charts drawn (`performance.now()` when the "
                  "page has rendered its JSON twin), 5 loads each.", "",
                  "| | p50 ms | max ms | target |", "|---|---:|---:|---|"]
        for k, v in render.items():
            target = "< 1000 ms" if k == "cold" else ""
            lines.append(f"| {k} ({'cache empty: API computes' if k == 'cold' else 'API cached'})"
                         f" | {statistics.median(v):.0f} | {max(v):.0f} | {target} |")
    lines += ["", "## Reading the numbers", "",
              "- Every KPI is computed from the raw events at query time (per-session measures "
              "over ~4.9 M events, then per-bucket aggregates, through the engine-neutral "
              "`agentkpi.kpis.run`); the overview runs two such queries (the hourly series and the "
              "range totals, which are not additive: users, percentiles). On this shared "
              "2-CPU machine that costs seconds, so an *uncached* overview of 200 k sessions "
              "misses the 1 s target.",
              "- The dashboard never makes a reader wait for that after the first time: "
              "responses are cached by the store's change stamp (polling costs ~2 ms); after "
              "an ingest the last result is served at once with `stale: true, refreshing: "
              "true` while it is recomputed in the background (stale-while-revalidate), and "
              "the default overview and breakdowns are computed at server start. The *warm* "
              "render row is what a user sees in those cases: well under 1 s.",
              "- To make the uncached path fast too, the next step is a materialised hourly "
              "rollup table in the store (written by `agentkpi rollup`) that the dashboard "
              "reads for additive KPIs; the per-event path stays for ad-hoc filters.",
              ]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
