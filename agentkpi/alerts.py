"""Alert rules on KPI rollups: TOML rules, evaluation, de-duplicated notifications.

A rules file (``alerts.toml``)::

    [notify]
    stdout = true                        # one line per notification (default true)
    file = "alerts.jsonl"                # append one JSON object per notification
    webhook = "https://hooks.example/x"  # JSON POST, retried with backoff
    webhook_retries = 3                  # attempts after the first (default 3)
    state = "alerts-state.json"          # default: <rules file>.state.json

    [[rule]]
    name = "cost-per-hour"
    metric = "cost_usd"                  # any numeric KPI of `agentkpi kpis`
    op = ">"                             # > >= < <= == !=
    threshold = 25.0
    grain = "hour"                       # hour | day | week | month
    for = 2                              # N consecutive completed buckets (default 1)
    by = "tool"                          # optional: a dimension (`agentkpi query --list`)
    where = { model = "gpt-x" }          # optional filters, dimension names as `by`
    severity = "warning"                 # free text: info | warning | critical ...

A rule *fires* for a group (the ``by`` value, or the whole store) when the
metric satisfies ``op threshold`` in each of the last ``for`` completed
buckets before ``now``. An empty bucket counts as 0 for counts and sums (so
``sessions < 1`` detects silence) and as "no data" for rates and percentiles
(never satisfies the rule).

**Once, not every run.** A state file remembers what is firing: a rule/group
is notified when it starts firing and once more when it resolves. Delivery is
at-least-once: if a notifier fails, the transition is not recorded and is
sent again on the next run.

Rules run from ``agentkpi alerts check`` and after every ``agentkpi rollup``
when a rules file is configured (``$AGENTKPI_ALERT_RULES`` or ``alerts.toml``
next to the store); the rollup never fails because of alerts, and its check is
as of the wall clock whatever hours it wrote (a backfill does not alert).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import operator
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentkpi import config
from agentkpi.errors import UsageError, redact_url
from agentkpi.kpis.catalogue import BY_NAME
from agentkpi.kpis.dimensions import DIMENSIONS

log = logging.getLogger("agentkpi.alerts")
#: Where the ``stdout`` channel writes: ``echo(text)``, ``echo(text, err=True)`` (click.echo).
Echo = Callable[..., Any]

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
GRAINS = ("hour", "day", "week", "month")
WHOLE = ""  # group key of a rule without `by`


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    op: str
    threshold: float
    grain: str = "hour"
    for_: int = 1
    by: str | None = None
    where: Mapping[str, str] = field(default_factory=dict)
    severity: str = "warning"
    description: str = ""

    def holds(self, value: float | None) -> bool:
        return value is not None and OPS[self.op](float(value), self.threshold)


@dataclass
class Notify:
    stdout: bool = True
    file: str | None = None
    webhook: str | None = None
    webhook_retries: int = 3
    webhook_timeout: float = 5.0
    #: Seconds all webhook calls of one check may take together (attempts, retries and
    #: backoff included): a webhook that never answers cannot hold a rollup for long.
    webhook_deadline: float = 15.0
    backoff: float = 0.5
    state: str | None = None


@dataclass
class Finding:
    """The evaluation of one rule for one group over its last ``for`` buckets."""

    rule: Rule
    group: str
    firing: bool
    buckets: list[str]
    values: list[float | None]

    @property
    def key(self) -> str:
        return f"{self.rule.name}|{self.group}"

    @property
    def value(self) -> float | None:
        return self.values[-1] if self.values else None


# --------------------------------------------------------------------------- rules
def load_rules(path: str | os.PathLike[str]) -> tuple[list[Rule], Notify]:
    """Parse and validate a TOML rules file; errors name the file, the rule and the fix."""
    import tomllib  # here: every rollup imports this module, few have a rules file

    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no alert rules file at {p}; write one (see docs/alerts.md) or "
                         f"pass --rules FILE") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{p}: not valid TOML: {exc}") from None
    n = doc.get("notify", {})
    known = set(Notify.__dataclass_fields__)
    if unknown := set(n) - known:
        raise UsageError(f"{p}: unknown [notify] keys {sorted(unknown)}; use {sorted(known)}")
    notify = Notify(**n)
    if notify.state is None:
        notify.state = str(p.with_name(p.name + ".state.json"))
    elif not Path(notify.state).is_absolute():
        notify.state = str(p.parent / notify.state)
    if notify.file and not Path(notify.file).is_absolute():
        notify.file = str(p.parent / notify.file)
    rules = []
    names = set()
    for i, r in enumerate(doc.get("rule", []), 1):
        where = f"{p}: rule #{i} ({r.get('name', 'unnamed')})"
        missing = [k for k in ("name", "metric", "op", "threshold") if k not in r]
        if missing:
            raise UsageError(f"{where}: missing {', '.join(missing)}")
        metric = r["metric"]
        if metric not in BY_NAME or metric.startswith("_") or BY_NAME[metric].kind == "json":
            raise UsageError(f"{where}: unknown or non-numeric metric {metric!r}; "
                             "`agentkpi kpis` lists them")
        if r["op"] not in OPS:
            raise UsageError(f"{where}: op {r['op']!r} is not one of {' '.join(OPS)}")
        grain = r.get("grain", r.get("window", "hour"))
        if grain not in GRAINS:
            raise UsageError(f"{where}: grain {grain!r} is not one of {', '.join(GRAINS)}")
        by = r.get("by")
        if by is not None and by not in DIMENSIONS:
            raise UsageError(f"{where}: by {by!r} is not one of {', '.join(DIMENSIONS)}")
        filters = dict(r.get("where", {}))
        if bad := [k for k in filters if k not in DIMENSIONS]:
            raise UsageError(f"{where}: unknown filter {bad}; use {', '.join(DIMENSIONS)}")
        n_for = int(r.get("for", 1))
        if n_for < 1:
            raise UsageError(f"{where}: for must be >= 1")
        if r["name"] in names:
            raise UsageError(f"{where}: duplicate rule name")
        names.add(r["name"])
        try:
            threshold = float(r["threshold"])
        except (TypeError, ValueError):
            raise UsageError(f"{where}: threshold must be a number") from None
        rules.append(Rule(name=r["name"], metric=metric, op=r["op"], threshold=threshold,
                          grain=grain, for_=n_for, by=by,
                          where={k: str(v) for k, v in filters.items()},
                          severity=str(r.get("severity", "warning")),
                          description=str(r.get("description", ""))))
    return rules, notify


def find_rules_file(store: str | None = None) -> Path | None:
    """The ``alert_rules`` setting, else ``alerts.toml`` next to the DuckDB store, else None."""
    configured = config.get("alert_rules")
    if configured:
        return Path(configured)
    path = config.get("store", store)
    if path and path != ":memory:":
        candidate = Path(path).parent / "alerts.toml"
        if candidate.exists():
            return candidate
    return None


# --------------------------------------------------------------------------- evaluation
def completed_buckets(now: datetime, grain: str, n: int) -> list[tuple[datetime, datetime]]:
    """The last ``n`` completed ``grain`` buckets before ``now`` as (start, end), UTC."""
    from agentkpi.views import buckets

    now = _naive(now)
    span = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7),
            "month": timedelta(days=31)}[grain]
    starts = buckets(now - span * (n + 2), now + span * 2, grain)
    pairs = list(zip(starts, starts[1:], strict=False))
    return [(a, b) for a, b in pairs if b <= now][-n:]


def evaluate_series(rule: Rule, rows: Sequence[Mapping[str, Any]],
                    bucket_starts: Sequence[datetime | str],
                    groups: Sequence[str] = ()) -> list[Finding]:
    """Evaluate ``rule`` on KPI rows (``bucket``, optional ``rule.by``, ``rule.metric``).

    ``bucket_starts``: the buckets that must all satisfy the rule (the last
    ``for``); ``groups``: extra groups to evaluate even without rows (e.g.
    those firing before, so they can resolve). Pure: no store, no clock.
    """
    keys = [_iso(b) for b in bucket_starts]
    zero_when_empty = BY_NAME[rule.metric].kind == "int" or BY_NAME[rule.metric].additive
    table: dict[str, dict[str, Any]] = {}
    for r in rows:
        g = WHOLE if rule.by is None else _group(r.get(rule.by))
        table.setdefault(g, {})[_iso(r["bucket"])] = r.get(rule.metric)
    all_groups = list(dict.fromkeys([*table, *groups] or ([WHOLE] if rule.by is None else [])))
    if rule.by is None and WHOLE not in all_groups:
        all_groups.append(WHOLE)
    out = []
    for g in all_groups:
        vals = [table.get(g, {}).get(k, 0 if zero_when_empty else None) for k in keys]
        firing = bool(keys) and all(rule.holds(v) for v in vals)
        out.append(Finding(rule, g, firing, keys, vals))
    return out


def evaluate(rules: Sequence[Rule], store: Any, now: datetime | None = None,
             firing_before: Mapping[str, Any] | None = None) -> list[Finding]:
    """Evaluate every rule on ``store`` for the completed buckets before ``now``."""
    from agentkpi.views import run_kpis

    now = _naive(now or datetime.now(UTC))
    findings: list[Finding] = []
    for rule in rules:
        spans = completed_buckets(now, rule.grain, rule.for_)
        if not spans:
            continue
        kpi = BY_NAME[rule.metric]
        den = kpi.den if kpi.agg == "ratio" and not kpi.den.startswith("_") else None
        rows = run_kpis(store, spans[0][0], spans[-1][1],
                             [rule.metric, *([den] if den and den != rule.metric else [])],
                             grain=rule.grain, by=[rule.by] if rule.by else [],
                             filters=dict(rule.where))
        if rule.by == "tool":  # events without a tool are not a tool
            rows = [r for r in rows if r.get("tool") not in (None, "")]
        if den:  # a rate over nothing is "no data", not 0
            rows = [{**r, rule.metric: r[rule.metric] if r[den] else None} for r in rows]
        before = [k.split("|", 1)[1] for k in (firing_before or {})
                  if k.split("|", 1)[0] == rule.name]
        findings.extend(evaluate_series(rule, rows, [a for a, _ in spans], before))
    return findings


# --------------------------------------------------------------------------- notifying
def message(f: Finding, status: str) -> dict[str, Any]:
    r = f.rule
    group = {r.by: f.group} if r.by else {}
    where = f" [{r.by}={f.group}]" if r.by else ""
    value = "no data" if f.value is None else f"{f.value:g}"
    text = (f"[{r.severity.upper()}] {r.name}{where} {status.upper()}: {r.metric} = {value} "
            f"({r.op} {r.threshold:g} for {r.for_} {r.grain}(s), last bucket "
            f"{f.buckets[-1] if f.buckets else '?'})")
    return {"status": status, "rule": r.name, "severity": r.severity, "metric": r.metric,
            "op": r.op, "threshold": r.threshold, "grain": r.grain, "for": r.for_,
            "group": group, "value": f.value, "values": f.values, "buckets": f.buckets,
            "where": dict(r.where), "description": r.description,
            "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "text": text}


def post_webhook(url: str, payload: Mapping[str, Any], retries: int = 3, timeout: float = 5.0,
                 backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep,
                 deadline: float | None = None) -> None:
    """POST JSON with retries on errors and 5xx/429 (exponential backoff); raises at the end.

    Bounded in time: one attempt lasts at most ``timeout`` seconds in all (connect,
    send and the whole answer - a server that trickles its answer byte by byte is cut
    off too), and all attempts with their backoff at most ``deadline`` seconds. The
    error (``OSError``) names the webhook without its secret path or credentials.
    The payload has a ``text`` field, so a Slack incoming webhook shows it as is.
    """
    shown = redact_url(url, keep_path=False)
    start = time.monotonic()
    end = start + (deadline if deadline is not None else (timeout + backoff) * (retries + 1))
    last = "no attempt made: the time budget for webhooks was spent"
    attempts = 0
    for attempt in range(retries + 1):
        remaining = end - time.monotonic()
        if remaining <= 0.05:
            break
        attempts += 1
        status, body, error = _post_once(url, payload, min(timeout, remaining))
        if error is None and status is not None and status < 300:
            return
        last = error or f"HTTP {status}: {body[:200]}"
        if error is None and status is not None and status < 500 and status != 429:
            break  # a client error will not get better
        pause = backoff * 2 ** attempt
        if attempt < retries and time.monotonic() + pause < end:
            sleep(pause)
    raise OSError(f"webhook {shown} failed after {attempts} attempt(s) in "
                  f"{time.monotonic() - start:.1f} s: {last.replace(url, shown)}")


def _post_once(url: str, payload: Mapping[str, Any], limit: float
               ) -> tuple[int | None, str, str | None]:
    """(status, body, error) of one POST that takes at most ``limit`` seconds in all.

    httpx's timeouts bound each socket operation, not the whole exchange; the request
    runs on a daemon thread and is abandoned (its client closed) when ``limit`` passes.
    """
    import httpx

    out: dict[str, Any] = {}
    client = httpx.Client(timeout=httpx.Timeout(limit + 0.5))  # the join below cuts first

    def run() -> None:
        try:
            resp = client.post(url, json=payload)
            out["status"], out["body"] = resp.status_code, resp.text
        except Exception as exc:  # noqa: BLE001 - reported as the attempt's error
            out["error"] = f"{type(exc).__name__}: {exc}"

    worker = threading.Thread(target=run, name="agentkpi-webhook", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        with contextlib.suppress(Exception):
            client.close()
        return None, "", f"no complete answer within {limit:.1f} s"
    client.close()
    return out.get("status"), out.get("body", ""), out.get("error")


def deliver(msg: Mapping[str, Any], notify: Notify, echo: Echo | None = None,
            until: float | None = None) -> list[str]:
    """Send one notification to every configured channel; returns the errors.

    The ``stdout`` channel is ``echo`` (the CLI passes ``click.echo``); the library
    itself never prints. A notification not given to ``echo`` is logged to
    ``agentkpi.alerts`` instead: one line per notification, never two (a process that
    configures no logging, like the CLI, prints a WARNING record on stderr).
    ``until``: ``time.monotonic()`` by which webhook calls must be done (the run's budget).
    """
    errors = []
    if notify.stdout and echo is not None:
        echo(msg["text"])
    else:
        log.log(logging.WARNING if msg["status"] == "firing" else logging.INFO, "%s",
                msg["text"])
    if notify.file:
        try:
            Path(notify.file).parent.mkdir(parents=True, exist_ok=True)
            with open(notify.file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(msg, sort_keys=True) + "\n")
        except OSError as exc:
            errors.append(f"file {notify.file}: {exc}")
    if notify.webhook:
        budget = notify.webhook_deadline if until is None else until - time.monotonic()
        try:
            post_webhook(notify.webhook, msg, notify.webhook_retries, notify.webhook_timeout,
                         notify.backoff, deadline=max(0.0, budget))
        except OSError as exc:
            errors.append(str(exc))
    return errors


def load_state(path: str | None) -> dict[str, Any]:
    if not path or not Path(path).exists():
        return {}
    try:
        return dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        log.warning("alert state %s unreadable (%s); starting afresh", path, exc)
        return {}


def save_state(path: str | None, state: Mapping[str, Any]) -> None:
    if not path:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, p)


class Tracker:
    """Once-per-transition alert state in memory, with an optional reminder cooldown.

    :meth:`update` returns ``"firing"`` when a key starts firing (or is still firing
    and its last notification is at least ``cooldown`` seconds old), ``"resolved"``
    when it stops, else None. Rules on the store keep the same transitions in a
    state file (:func:`process`); the in-process :class:`agentkpi.Monitor` keeps them
    here. Thread-safe.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, float] = {}  # key -> time of its last firing notification
        self._lock = threading.Lock()

    def update(self, key: str, firing: bool, cooldown: float = math.inf) -> str | None:
        with self._lock:
            now = self._clock()
            if firing:
                last = self._last.get(key)
                if last is None or now - last >= cooldown:
                    self._last[key] = now
                    return "firing"
                return None
            if self._last.pop(key, None) is not None:
                return "resolved"
            return None

    def active(self) -> list[str]:
        """Keys firing now, in the order they started."""
        with self._lock:
            return list(self._last)


@dataclass
class CheckResult:
    findings: list[Finding]
    sent: list[dict[str, Any]]
    errors: list[str]

    @property
    def firing(self) -> list[Finding]:
        return [f for f in self.findings if f.firing]

    def to_dict(self) -> dict[str, Any]:
        return {"firing": [{"rule": f.rule.name, "group": f.group, "value": f.value,
                            "buckets": f.buckets, "severity": f.rule.severity}
                           for f in self.firing],
                "evaluated": len(self.findings), "sent": self.sent, "errors": self.errors}


def process(findings: Sequence[Finding], notify: Notify, state: dict[str, Any] | None = None,
            dry_run: bool = False, echo: Echo | None = None) -> CheckResult:
    """Turn findings into firing/resolved notifications using (and updating) the state."""
    state = load_state(notify.state) if state is None else state
    sent, errors = [], []
    until = time.monotonic() + notify.webhook_deadline  # one budget for the whole run
    for f in findings:
        was = f.key in state
        if f.firing == was:
            if was:
                state[f.key]["last_value"] = f.value
            continue
        status = "firing" if f.firing else "resolved"
        msg = message(f, status)
        errs = [] if dry_run else deliver(msg, notify, echo, until)
        if errs:  # not recorded: retried on the next run
            errors.extend(errs)
            continue
        sent.append(msg)
        if f.firing:
            state[f.key] = {"since": f.buckets[-1] if f.buckets else None, "last_value": f.value,
                            "severity": f.rule.severity, "notified_at": msg["at"]}
        else:
            state.pop(f.key, None)
    if not dry_run:
        save_state(notify.state, state)
    return CheckResult(list(findings), sent, errors)


def check(rules_path: str | os.PathLike[str], store: Any, now: datetime | None = None,
          dry_run: bool = False, echo: Echo | None = None) -> CheckResult:
    """Load rules, evaluate them on ``store`` at ``now``, notify transitions (library call).

    ``echo`` is the ``stdout`` channel (see :func:`deliver`).
    """
    rules, notify = load_rules(rules_path)
    state = load_state(notify.state)
    findings = evaluate(rules, store, now, firing_before=state)
    return process(findings, notify, state, dry_run=dry_run, echo=echo)


def after_rollup(store: str | None = None, engine: str | None = None, dsn: str | None = None,
                 now: datetime | None = None, echo: Echo | None = None) -> CheckResult | None:
    """Hook run by ``agentkpi rollup``: check rules if a rules file is configured.

    As of ``now`` (the wall clock), never of the hours the rollup wrote: a backfill of
    past hours does not alert for them (docs/alerts.md says why).

    Never raises: any problem is given to ``echo(text, err=True)`` (the CLI's stderr),
    or logged when there is no ``echo``; once either way. The rollup's exit status is
    unaffected.
    """
    def warn(text: str) -> None:
        if echo is not None:
            echo(f"warning: {text}", err=True)
        else:
            log.warning("%s", text)

    try:
        path = find_rules_file(store)
        if path is None:
            return None
        from agentkpi.views import open_read_only

        st = open_read_only(store, engine, dsn)
        try:
            result = check(path, st, now, echo=echo)
        finally:
            st.close()
        for err in result.errors:  # not sent: retried on the next run
            warn(f"alert notification failed (retried next run): {err}")
        return result
    except Exception as exc:  # noqa: BLE001 - alerts must never break the rollup
        warn(f"alert check after rollup failed: {exc}")
        return None


def _naive(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _iso(v: Any) -> str:
    if isinstance(v, datetime):
        return _naive(v).isoformat(timespec="seconds")
    return str(v)[:19]


def _group(v: Any) -> str:
    return "(none)" if v is None or v == "" else str(v)


__all__ = ["Finding", "Notify", "Rule", "Tracker", "after_rollup", "check", "evaluate",
           "evaluate_series", "load_rules", "process"]
