"""The dashboard: a small Starlette app whose every page has a JSON twin.

``/api/...`` returns the data a page renders (the contract); the page itself
is a static shell plus ``/static/app.js``, which fetches the twin with the
page's own query string, draws it and polls it again every ``poll`` seconds.

============================  =================================  ==========================
page                          JSON twin                          what
============================  =================================  ==========================
``/``                         ``/api/overview``                  KPI time series + totals
``/breakdown/{dim}``          ``/api/breakdown/{dim}``           one row per tool/model/...
``/sessions``                 ``/api/sessions``                  sessions in the range
``/session/{id}``             ``/api/session/{id}``              one session: timeline, events
``/costs``                    ``/api/costs``                     where the money goes
``/sources``                  ``/api/sources``                   the import audit
``/alerts``                   ``/api/alerts``                    alert rules and their state
\u2014                        ``/api/meta``                      store counts, time range
============================  =================================  ==========================

Query parameters (all optional): ``from``, ``to`` (``YYYY-MM-DD[THH]`` or ISO,
half-open, UTC unless ``tz``), ``grain`` (hour/day/week/month), ``tz``,
``sort``/``desc`` (breakdowns) and filters named by any dimension of the registry
(:mod:`agentkpi.kpis.dimensions`: ``tool``, ``model``, ``user``, ``agent``,
``project``, ``session``, ...). Breakdown pages and the navigation come from the
registry too; the data of every route comes from :mod:`agentkpi.views`.

**One writer, many readers.** The store is opened read-only per request and
closed right after, so ``agentkpi ingest``/``rollup`` can write between
requests. Responses are cached by the store file's change stamp (size and
mtime of the file and its WAL): polling an unchanged store never opens it.
If a writer holds the lock, the open is retried for about 1.5 s; then the
last good response for the same URL is served with ``"stale": true`` (or a
503 with a clear message when there is none).
"""

from __future__ import annotations

import functools
import html
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agentkpi import times, views
from agentkpi.errors import StoreError, StoreMissingError, UsageError
from agentkpi.kpis.dimensions import DIMENSIONS, PAGE_DIMENSIONS
from agentkpi.sinks.jsonl import finite

log = logging.getLogger("agentkpi.web")
STATIC = Path(__file__).parent / "static"
FILTERS = tuple(DIMENSIONS)  # ?tool=bash&user=u1: any dimension of the registry
CACHE_SIZE = 256

#: The navigation: (data-nav, href, label); breakdown pages come from the registry.
NAV: tuple[tuple[str, str, str], ...] = (
    ("overview", "/", "Overview"),
    *((d, f"/breakdown/{d}", DIMENSIONS[d].page or d) for d in PAGE_DIMENSIONS),
    ("sessions", "/sessions", "Sessions"),
    ("costs", "/costs", "Costs"),
    ("sources", "/sources", "Sources"),
    ("alerts", "/alerts", "Alerts"),
)


class Dashboard:
    """State of one running dashboard: where the store is and the response cache."""

    def __init__(self, store: str | None = None, engine: str | None = None,
                 dsn: str | None = None, poll: float = 10.0, background: bool = True) -> None:
        from agentkpi import config

        self.engine = config.get("engine", engine)
        self.store = str(store) if store else (None if self.engine != "duckdb"
                                               else str(config.get("store")))
        self.dsn = dsn
        self.poll = poll
        self._cache: OrderedDict[str, tuple[Any, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self.background = background
        self._pending: set[str] = set()
        # one background reader at a time: refreshes never pile up on the store
        self._refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentkpi-refresh")

    def _compute(self, key: str, compute: Callable[[Any], dict[str, Any]],
                 version: Any) -> dict[str, Any]:
        """Open the store read-only, compute, close; cache the payload under ``version``."""
        t0 = time.perf_counter()
        st = views.open_read_only(self.store, self.engine, self.dsn)
        try:
            payload = compute(st)
        finally:
            st.close()
        payload = {**payload, "generated_at": _now(),
                   "query_ms": round((time.perf_counter() - t0) * 1000, 1),
                   "store": self.store if self.engine == "duckdb" else self.engine,
                   "poll_seconds": self.poll}
        if version is not None:
            with self._lock:
                self._cache[key] = (version, payload)
                self._cache.move_to_end(key)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return payload

    def refresh_later(self, key: str, compute: Callable[[Any], dict[str, Any]]) -> None:
        """Recompute ``key`` in the background (at most one pending refresh per key)."""
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)

        def run() -> None:
            try:
                self._compute(key, compute, views.store_version(self.store))
            except Exception as exc:  # noqa: BLE001 - a busy store: the next poll retries
                log.info("background refresh of %s failed: %s", key, exc)
            finally:
                with self._lock:
                    self._pending.discard(key)

        self._refresher.submit(run)

    def warm_up(self) -> None:
        """Compute the default views in the background so the first visits are instant."""
        if not self.store or views.store_version(self.store) is None:
            return
        self.refresh_later("/api/overview?", views.overview)
        for dim in PAGE_DIMENSIONS:
            self.refresh_later(f"/api/breakdown/{dim}?", functools.partial(_breakdown, dim=dim))

    # ------------------------------------------------------------------ data
    def answer(self, key: str, compute: Callable[[Any], dict[str, Any]]) -> JSONResponse:
        """Compute (or reuse) the JSON for ``key``; stale-but-served when the store is busy."""
        version = views.store_version(self.store) if self.engine == "duckdb" else None
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and version is not None and hit[0] == version:
            return StrictJSON({**hit[1], "stale": False, "cached": True})
        if hit is not None and version is not None and self.background:
            # stale-while-revalidate: answer now with the last result, refresh behind it
            self.refresh_later(key, compute)
            return StrictJSON({**hit[1], "stale": True, "refreshing": True, "cached": True})
        try:
            payload = self._compute(key, compute, version)
        except StoreMissingError as exc:
            return StrictJSON({"error": str(exc), "stale": True}, status_code=404)
        except StoreError as exc:
            if hit is not None:
                log.warning("store busy, serving last good response for %s: %s", key, exc)
                return StrictJSON({**hit[1], "stale": True, "cached": True,
                                     "error": str(exc)})
            return StrictJSON({"error": str(exc), "stale": True}, status_code=503,
                                headers={"Retry-After": "2"})
        except UsageError as exc:
            return StrictJSON({"error": str(exc)}, status_code=400)
        except LookupError as exc:
            return StrictJSON({"error": str(exc).strip("'\"")}, status_code=404)
        return StrictJSON({**payload, "stale": False, "cached": False})


class StrictJSON(JSONResponse):
    """Strict JSON: a non-finite float is served as null, never ``Infinity``/``NaN``."""

    def render(self, content: Any) -> bytes:
        return super().render(finite(content))


def _breakdown(st: Any, dim: str) -> dict[str, Any]:
    return views.breakdown(st, dim)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _params(request: Request) -> dict[str, Any]:
    q = request.query_params
    tz = q.get("tz") or "UTC"
    grain = q.get("grain") or "hour"
    return {
        "start": times.parse_time(q.get("from"), tz),
        "end": times.parse_time(q.get("to"), tz),
        "grain": grain,
        "tz": tz,
        "filters": {k: q[k] for k in FILTERS if q.get(k)},
    }


def _key(request: Request) -> str:
    return request.url.path + "?" + "&".join(sorted(
        f"{k}={v}" for k, v in request.query_params.items() if k not in ("download", "table")))


def _guard(f: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """An API route: usage errors (bad ``tz``, time, name) are a 400 with a JSON error.

    ``tz`` is checked on every route, also those that do not use it, so a bad zone
    never passes unnoticed.
    """
    def wrapped(request: Request) -> Response:
        if request.query_params.get("download"):
            return _download(request, f)
        try:
            times.zone(request.query_params.get("tz"))
            return f(request)
        except UsageError as exc:
            return StrictJSON({"error": str(exc)}, status_code=400)
    wrapped.__name__ = f.__name__
    return wrapped


DOWNLOAD_TYPES = {"csv": "text/csv; charset=utf-8",
                  "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def table_bytes(rows: list[dict[str, Any]], fmt: str) -> bytes:
    """``rows`` (a view's table) as a CSV or XLSX file, through the formula-safe sinks."""
    import io

    import pyarrow as pa

    from agentkpi.sinks.export import writer

    flat = [_flat(r) for r in rows]
    names = list(dict.fromkeys(k for r in flat for k in r))
    try:
        table = pa.Table.from_pylist(flat, schema=None) if flat else pa.table({})
        table = table.select(names) if flat else table
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types in a column: as text
        table = pa.table({n: [None if r.get(n) is None else str(r.get(n)) for r in flat]
                          for n in names})
    buf = io.BytesIO()
    writer(fmt).write(table, buf)
    return buf.getvalue()


def _download(request: Request, f: Callable[[Request], Response]) -> Response:
    """``?download=csv|xlsx&table=NAME``: one table of the route's JSON as a file."""
    import json

    fmt = request.query_params.get("download", "")
    name = request.query_params.get("table", "")
    if fmt not in DOWNLOAD_TYPES:
        return JSONResponse({"error": f"download must be one of {', '.join(DOWNLOAD_TYPES)}, "
                                      f"not {fmt!r}"}, status_code=400)
    res = f(request)
    if res.status_code != 200:
        return res
    payload = json.loads(bytes(res.body))
    tables = {k: v for k, v in payload.items()
              if isinstance(v, list) and all(isinstance(r, dict) for r in v)}
    if name not in tables:
        return JSONResponse({"error": f"no table {name!r} on this page; tables: "
                                      f"{', '.join(sorted(tables)) or 'none'}"},
                            status_code=400)
    page = request.url.path.rstrip("/").rsplit("/", 1)[-1] or "overview"
    filename = f"agentkpi-{page}-{name}.{fmt}".replace('"', "")
    return Response(table_bytes(tables[name], fmt), media_type=DOWNLOAD_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# ---------------------------------------------------------------------- API routes
def api_overview(request: Request) -> Response:
    dash: Dashboard = request.app.state.dashboard
    p = _params(request)
    return dash.answer(_key(request), lambda st: views.overview(st, **p))


def api_breakdown(request: Request) -> Response:
    dash: Dashboard = request.app.state.dashboard
    p = _params(request)
    dim = request.path_params["dim"]
    sort = request.query_params.get("sort")
    desc = request.query_params.get("desc", "1") not in ("0", "false", "no")
    return dash.answer(_key(request),
                       lambda st: views.breakdown(st, dim, sort=sort, desc=desc, **p))


def api_sessions(request: Request) -> Response:
    dash: Dashboard = request.app.state.dashboard
    p = _params(request)
    return dash.answer(_key(request), lambda st: views.sessions(st, **p))


def api_session(request: Request) -> Response:
    dash: Dashboard = request.app.state.dashboard
    sid = request.path_params["session_id"]
    return dash.answer(_key(request), lambda st: views.session_events(st, sid))


def api_costs(request: Request) -> Response:
    dash: Dashboard = request.app.state.dashboard
    p = _params(request)
    if "grain" not in request.query_params:
        p["grain"] = "day"
    return dash.answer(_key(request), lambda st: views.costs(st, **p))


def api_sources(request: Request) -> Response:
    dash: Dashboard = request.app.state.dashboard
    return dash.answer(_key(request), views.sources)


def api_alerts(request: Request) -> Response:
    from agentkpi import alerts

    dash: Dashboard = request.app.state.dashboard
    rules = alerts.find_rules_file(dash.store)
    # evaluated against the clock: never cached
    return dash.answer(f"/api/alerts?{time.time()}", lambda st: views.alert_states(st, rules))


def api_meta(request: Request) -> Response:
    dash: Dashboard = request.app.state.dashboard
    return dash.answer(_key(request), views.meta)


def api_health(request: Request) -> Response:
    return StrictJSON({"ok": True, "time": _now()})


# ---------------------------------------------------------------------- HTML pages
def shell(page: str, api: str, title: str, poll: float) -> str:
    """The HTML of every page: navigation, controls, a content slot, the JS app."""
    nav = "".join(f'<a href="{href}" data-nav="{name}">{html.escape(label)}</a>'
                  for name, href, label in NAV)
    t = html.escape(title)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t} \u2014 agentkpi</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/style.css">
</head>
<body data-page="{page}" data-api="{html.escape(api)}" data-poll="{poll}">
<header><span class="brand">agentkpi</span><nav>{nav}</nav>
<span id="status" class="status">loading\u2026</span></header>
<main>
<h1 id="title">{t}</h1>
<div id="filters" class="filters"></div>
<form id="controls" class="controls" onsubmit="return false">
 <label>Range <select id="preset">
  <option value="">custom</option><option value="24h">last 24 h</option>
  <option value="7d">last 7 days</option><option value="30d">last 30 days</option>
  <option value="90d">last 90 days</option><option value="all">all data</option>
 </select></label>
 <label>From <input id="from" type="datetime-local" step="3600"></label>
 <label>To <input id="to" type="datetime-local" step="3600"></label>
 <label>Grain <select id="grain"><option>hour</option><option>day</option>
  <option>week</option><option>month</option></select></label>
 <button id="apply" type="button">Apply</button>
 <a id="json-link" class="json" href="{html.escape(api)}">JSON</a>
</form>
<div id="error" class="error" hidden></div>
<section id="content"></section>
</main>
<script src="/static/chart.js"></script>
<script src="/static/app.js"></script>
</body></html>
"""


def _page(request: Request, page: str, api: str, title: str) -> HTMLResponse:
    dash: Dashboard = request.app.state.dashboard
    return HTMLResponse(shell(page, api, title, dash.poll))


def page_overview(request: Request) -> Response:
    return _page(request, "overview", "/api/overview", "Overview")


def page_breakdown(request: Request) -> Response:
    dim = request.path_params["dim"]
    if dim not in DIMENSIONS:
        return HTMLResponse(f"unknown dimension {html.escape(dim)}; use one of "
                            f"{', '.join(DIMENSIONS)}", status_code=404)
    return _page(request, "breakdown", f"/api/breakdown/{dim}", f"By {dim}")


def page_sessions(request: Request) -> Response:
    return _page(request, "sessions", "/api/sessions", "Sessions")


def page_costs(request: Request) -> Response:
    return _page(request, "costs", "/api/costs", "Where the money goes")


def page_sources(request: Request) -> Response:
    return _page(request, "sources", "/api/sources", "Sources: the import audit")


def page_alerts(request: Request) -> Response:
    return _page(request, "alerts", "/api/alerts", "Alerts")


def page_session(request: Request) -> Response:
    sid = request.path_params["session_id"]
    # The id goes back into a URL: every character that means something there
    # (? # % \ / ..) is percent-encoded, so any session id reaches its JSON route.
    return _page(request, "session", f"/api/session/{quote(sid, safe='')}", f"Session {sid}")


class HostCheck:
    """Refuse requests whose ``Host`` is not an allowed name (DNS rebinding defence).

    A web page on another site can make a browser resolve its own name to
    127.0.0.1 and read the dashboard; its requests still carry that name in
    ``Host``. Allowed: the names of ``allowed_hosts`` (setting ``allowed_hosts``,
    loopback names by default), ``*`` for any, ``.example.com`` for a domain.
    """

    def __init__(self, app: Any, allowed: Sequence[str] | None = None) -> None:
        self.app = app
        self.fixed = None if allowed is None else self._names(allowed)

    @staticmethod
    def _names(allowed: Sequence[str]) -> set[str]:
        return {h.strip().lower().strip("[]") for h in allowed if h.strip()}

    @property
    def allowed(self) -> set[str]:
        """The names served: fixed at creation, else the setting (read per request)."""
        return self.fixed if self.fixed is not None else self._names(allowed_hosts())

    def ok(self, host: str) -> bool:
        allowed = self.allowed
        if "*" in allowed:
            return True
        host = host.strip().lower()
        if host.startswith("["):  # [::1]:8000
            name = host[1:host.find("]")] if "]" in host else host
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return name in allowed or any(
            a.startswith(".") and (name.endswith(a) or name == a[1:]) for a in allowed)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if not self.ok(host):
                resp = StrictJSON({"error": f"host {host!r} is not allowed; add it to "
                                            "AGENTKPI_ALLOWED_HOSTS (comma-separated) to serve "
                                            "the dashboard under that name"}, status_code=400)
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def allowed_hosts(bind_host: str | None = None) -> list[str]:
    """The configured allowed Host names, plus the address the server is bound to."""
    from agentkpi import config

    names = [h for h in str(config.get("allowed_hosts")).split(",") if h.strip()]
    if bind_host and bind_host not in ("0.0.0.0", "::", ""):
        names.append(bind_host)
    return names


def create_app(store: str | None = None, engine: str | None = None, dsn: str | None = None,
               poll: float = 10.0, background: bool = True,
               hosts: Sequence[str] | None = None) -> Starlette:
    """The ASGI app over ``store`` (a DuckDB path; or engine/dsn for ClickHouse).

    ``background``: after the store changed, answer at once with the previous result
    (``"stale": true, "refreshing": true``) and recompute behind it; the page's next
    poll gets the fresh one. Off: every changed-store request computes synchronously.
    ``hosts``: the ``Host`` names served (default: setting ``allowed_hosts``, read per
    request).
    """
    routes = [
        Route("/", page_overview),
        Route("/breakdown/{dim}", page_breakdown),
        Route("/sessions", page_sessions),
        Route("/session/{session_id:path}", page_session),
        Route("/costs", page_costs),
        Route("/sources", page_sources),
        Route("/api/costs", _guard(api_costs)),
        Route("/api/sources", _guard(api_sources)),
        Route("/alerts", page_alerts),
        Route("/api/alerts", _guard(api_alerts)),
        Route("/api/overview", _guard(api_overview)),
        Route("/api/breakdown/{dim}", _guard(api_breakdown)),
        Route("/api/sessions", _guard(api_sessions)),
        Route("/api/session/{session_id:path}", _guard(api_session)),
        Route("/api/meta", _guard(api_meta)),
        Route("/api/health", api_health),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]
    dash = Dashboard(store, engine, dsn, poll, background)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if background:
            dash.warm_up()
        yield
        dash._refresher.shutdown(wait=False, cancel_futures=True)

    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(HostCheck, allowed=hosts)])
    app.state.dashboard = dash
    return app


def serve(store: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          engine: str | None = None, dsn: str | None = None, poll: float = 10.0,
          log_level: str = "info") -> None:
    """Run the dashboard with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(store, engine, dsn, poll, hosts=allowed_hosts(host)), host=host,
                port=port, log_level=log_level)
