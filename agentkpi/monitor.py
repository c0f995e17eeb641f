"""In-process generation monitor: a drop-in replacement for seed 002's GenerationMonitor.

Switch by changing the import (``from agentkpi import Monitor``); the constructor
arguments, method names and data classes are the seed's. What is different,
on purpose:

* **Alerts fire.** The seven thresholds (same defaults) are evaluated on a
  background thread every ``metrics_interval`` seconds *and* on demand with
  :meth:`Monitor.check_alerts`. A condition that stays true fires once, then
  again only after ``alert_cooldown_seconds``; when it clears a *resolved*
  alert (``Alert.resolved = True``, level ``"info"``) is sent.
* **Metrics are stored when recorded** (not later by a worker), under the
  timestamp given in ``metadata["timestamp"]`` (the seed used "now" at
  processing time); handlers still run on a worker thread.
* **Exports keep metadata**: every metadata key becomes a ``metadata_<key>``
  column in csv/excel/parquet (the seed dropped them); nested dicts are
  flattened with dots.
* :meth:`get_metrics` adds ``p50``/``p95`` (linear interpolation).
* No pandas/seaborn at runtime. The monitor is thin: the thresholds are
  :class:`agentkpi.alerts.Rule` rows and their transitions an
  :class:`agentkpi.alerts.Tracker`; exports go through :mod:`agentkpi.sinks`
  (spreadsheet cells that would run as formulas are neutralised); percentiles
  and rolling means come from :mod:`agentkpi.kpis.stats`, number coercion from
  :mod:`agentkpi.quality`, charts from :mod:`agentkpi.plots`.
* Given a ``log_dir`` (or ``event_log=``), metrics also go to the agentkpi
  event log through a :class:`agentkpi.Recorder` (``<log_dir>/events``), and
  ``track_generation`` records ``llm_call``/``error`` events, so the
  monitored run reaches the KPI store via ``agentkpi rollup --source <log_dir>/events``.
  ``metrics.jsonl`` keeps the seed's format (ingestible as source ``seed002``).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from agentkpi.alerts import Rule, Tracker
from agentkpi.kpis.stats import percentile, rolling_mean
from agentkpi.quality import Quality, to_float

logger = logging.getLogger("agentkpi")

__all__ = ["Alert", "FileLogHandler", "FileMetricHandler", "GenerationMonitor", "LogHandler",
           "MetricHandler", "ModelTokenUsage", "Monitor", "RecorderMetricHandler",
           "TokenUsageReport", "percentile", "rolling_mean"]

LogLevel = Literal["info", "warning", "error"]


class MetricHandler(Protocol):
    """Receives every recorded metric (on the monitor's worker thread)."""

    def handle_metric(self, metric_name: str, value: float, metadata: dict[str, Any]) -> None:
        ...


class LogHandler(Protocol):
    """Receives every log message (on the monitor's worker thread)."""

    def handle_log(self, message: dict[str, Any]) -> None:
        ...


class FileMetricHandler:
    """Appends ``{"metric", "value", **metadata}`` lines to ``<log_dir>/metrics.jsonl``."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_file = self.log_dir / "metrics.jsonl"
        self._lock = threading.Lock()

    def handle_metric(self, metric_name: str, value: float, metadata: dict[str, Any]) -> None:
        line = json.dumps({"metric": metric_name, "value": value, **metadata}, default=str)
        with self._lock, open(self.log_file, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class FileLogHandler:
    """Appends ``<time> - <json>`` lines to ``<log_dir>/<filename>``."""

    def __init__(self, log_dir: Path, filename: str = "monitor.log") -> None:
        self.log_file = Path(log_dir) / filename
        self._lock = threading.Lock()

    def handle_log(self, message: dict[str, Any]) -> None:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
        line = f"{stamp} - {json.dumps(message, default=str)}\n"
        with self._lock, open(self.log_file, "a", encoding="utf-8") as f:
            f.write(line)


class RecorderMetricHandler:
    """Sends metrics to an agentkpi event log as ``metric`` events."""

    def __init__(self, recorder: Any, session_id: str) -> None:
        self.recorder = recorder
        self.session_id = session_id

    def handle_metric(self, metric_name: str, value: float, metadata: dict[str, Any]) -> None:
        data = {k: v for k, v in metadata.items() if k not in ("timestamp", "session_id")}
        data["name"], data["value"] = metric_name, value
        self.recorder.record("metric", session_id=self.session_id, **data)


@dataclass
class Alert:
    """A monitoring alert (``resolved=True`` when a condition cleared)."""

    name: str
    message: str
    level: str
    timestamp: datetime
    data: dict[str, Any]
    resolved: bool = False


@dataclass(frozen=True)
class ModelTokenUsage:
    """Token usage for a single model."""

    model_name: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass
class TokenUsageReport:
    """Per-model token usage plus totals."""

    by_model: list[ModelTokenUsage]
    total_prompt_tokens: int = 0
    total_completion_tokens: int = 0
    total_tokens: int = 0


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = value


class Monitor:
    """Monitors generation metrics: record, window stats, alerts, export, plots."""

    def __init__(
        self,
        log_dir: str | Path | None = None,
        metric_handlers: list[MetricHandler] | None = None,
        log_handlers: list[LogHandler] | None = None,
        alert_handlers: list[Callable[[Alert], None]] | None = None,
        metrics_interval: int = 60,
        shutdown_timeout: int = 5,
        *,
        alert_min_success_rate: float | None = None,
        alert_max_generation_time_seconds: float | None = None,
        alert_max_error_rate: float | None = None,
        alert_max_prompt_token_mean: float | None = None,
        alert_max_completion_token_mean: float | None = None,
        alert_max_total_token_mean: float | None = None,
        alert_max_conversation_length_mean: float | None = None,
        token_usage_callback: Callable[[TokenUsageReport], None] | None = None,
        token_usage_callback_interval_seconds: float = 60.0,
        alert_window: timedelta = timedelta(minutes=5),
        alert_cooldown_seconds: float = 300.0,
        event_log: str | Path | Any | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        explicit_dir = log_dir is not None
        self.log_dir = (Path(log_dir) if log_dir
                        else Path("monitoring") / datetime.now().strftime("%Y-%m-%d-%H-%M-%S"))
        self.log_dir.mkdir(exist_ok=True, parents=True)
        self._now: Callable[[], datetime] = clock or datetime.now
        self.metric_handlers: list[Any] = list(metric_handlers or [FileMetricHandler(self.log_dir)])
        self.log_handlers: list[Any] = list(log_handlers or [FileLogHandler(self.log_dir)])
        self.alert_handlers = list(alert_handlers or [])
        self.metrics_interval = metrics_interval
        self.shutdown_timeout = shutdown_timeout
        self.alert_window = alert_window
        self.alert_cooldown_seconds = alert_cooldown_seconds

        def pick(v: float | None, default: float) -> float:
            return default if v is None else float(v)

        self._alert_min_success_rate = pick(alert_min_success_rate, 0.8)
        self._alert_max_generation_time_seconds = pick(alert_max_generation_time_seconds, 30.0)
        self._alert_max_error_rate = pick(alert_max_error_rate, 0.2)
        self._alert_max_prompt_token_mean = pick(alert_max_prompt_token_mean, 4096.0)
        self._alert_max_completion_token_mean = pick(alert_max_completion_token_mean, 4096.0)
        self._alert_max_total_token_mean = pick(alert_max_total_token_mean, 8192.0)
        self._alert_max_conversation_length_mean = pick(alert_max_conversation_length_mean, 2.0)
        # The seed's seven thresholds as alert rules on the window mean of a metric.
        tokens = "Average token usage: {:.0f}"
        self._rules: list[tuple[Rule, str]] = [
            (Rule("low_success_rate", "success_rate", "<", self._alert_min_success_rate),
             "Success rate dropped to {:.1%}"),
            (Rule("high_generation_time", "generation_time", ">",
                  self._alert_max_generation_time_seconds),
             "Average generation time: {:.1f}s"),
            (Rule("high_error_rate", "error_rate", ">", self._alert_max_error_rate,
                  severity="error"), "Error rate increased to {:.1%}"),
            (Rule("high_token_usage:prompt", "prompt_token_count", ">",
                  self._alert_max_prompt_token_mean), tokens),
            (Rule("high_token_usage:completion", "completion_token_count", ">",
                  self._alert_max_completion_token_mean), tokens),
            (Rule("high_token_usage:total", "total_token_count", ">",
                  self._alert_max_total_token_mean), tokens),
            (Rule("long_conversations", "conversation_length", ">",
                  self._alert_max_conversation_length_mean),
             "Average conversation length: {:.1f} turns"),
        ]
        self._alerts = Tracker()
        self._alert_lock = threading.Lock()
        #: Values that could not be read as numbers (counted, never raised).
        self.quality = Quality()
        self._token_usage_callback = token_usage_callback
        self._token_usage_callback_interval = token_usage_callback_interval_seconds

        self._metrics: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._lock = threading.Lock()
        self.metric_queue: queue.Queue[Any] = queue.Queue()
        self.log_queue: queue.Queue[Any] = queue.Queue()
        self.handler_errors = 0

        # event log (agentkpi store path)
        self._recorder: Any = None
        self._owns_recorder = False
        self.session_id = f"monitor:{uuid.uuid4().hex[:12]}"
        if event_log is None and explicit_dir:
            event_log = self.log_dir / "events"
        if event_log is not None and event_log is not False:
            from agentkpi.sdk import Recorder

            if isinstance(event_log, Recorder):
                self._recorder = event_log
            else:
                self._recorder = Recorder(event_log)
                self._owns_recorder = True
            self._recorder.record("session_start", session_id=self.session_id,
                                  source="monitor")
            self.metric_handlers.append(RecorderMetricHandler(self._recorder, self.session_id))

        self._shutdown = threading.Event()
        self._stopped = False
        self._workers = [
            threading.Thread(target=self._metric_worker, name="agentkpi-monitor-metrics",
                             daemon=True),
            threading.Thread(target=self._log_worker, name="agentkpi-monitor-logs", daemon=True),
            threading.Thread(target=self._alert_worker, name="agentkpi-monitor-alerts",
                             daemon=True),
        ]
        if self._token_usage_callback is not None:
            self._workers.append(threading.Thread(target=self._token_usage_worker,
                                                  name="agentkpi-monitor-tokens", daemon=True))
        for w in self._workers:
            w.start()

    # ------------------------------------------------------------ workers
    def _metric_worker(self) -> None:
        while True:
            try:
                item = self.metric_queue.get(timeout=0.2)
            except queue.Empty:
                if self._shutdown.is_set():
                    return
                continue
            try:
                self._dispatch_metric(*item)
            finally:
                self.metric_queue.task_done()

    def _dispatch_metric(self, name: str, value: Any, metadata: dict[str, Any]) -> None:
        for handler in self.metric_handlers:
            try:
                handler.handle_metric(name, value, dict(metadata))
            except Exception as exc:  # noqa: BLE001 - a handler must not stop the monitor
                self.handler_errors += 1
                self._enqueue_log({"message": f"Metric handler failed: {exc}",
                                   "error": str(exc)}, "error")

    def _log_worker(self) -> None:
        while True:
            try:
                msg = self.log_queue.get(timeout=0.2)
            except queue.Empty:
                if self._shutdown.is_set():
                    return
                continue
            try:
                for handler in self.log_handlers:
                    try:
                        handler.handle_log(msg)
                    except Exception as exc:  # noqa: BLE001
                        self.handler_errors += 1
                        logger.warning("agentkpi: monitor log handler failed: %s", exc)
            finally:
                self.log_queue.task_done()

    def _alert_worker(self) -> None:
        while not self._shutdown.wait(self.metrics_interval):
            try:
                self.check_alerts()
            except Exception as exc:  # noqa: BLE001
                logger.warning("agentkpi: alert check failed: %s", exc)

    def _token_usage_worker(self) -> None:
        while not self._shutdown.wait(self._token_usage_callback_interval):
            self._call_token_callback()

    def _call_token_callback(self) -> None:
        if self._token_usage_callback is None:
            return
        try:
            self._token_usage_callback(self.get_total_token_usage())
        except Exception as exc:  # noqa: BLE001
            self._enqueue_log({"message": f"Token usage callback failed: {exc}",
                               "error": str(exc)}, "error")

    # ------------------------------------------------------------ logging
    def _enqueue_log(self, message: dict[str, Any], level: LogLevel = "info") -> None:
        message["level"] = level
        message.setdefault("timestamp", self._now().isoformat())
        self.log_queue.put(message)

    def log_info(self, message: str, **data: Any) -> None:
        self._enqueue_log({"message": message, **data}, "info")

    def log_warning(self, message: str, **data: Any) -> None:
        self._enqueue_log({"message": message, **data}, "warning")

    def log_error(self, message: str, error: BaseException | None = None, **data: Any) -> None:
        extra: dict[str, Any] = {}
        if error is not None:
            extra = {"error": str(error), "error_type": type(error).__name__}
        self._enqueue_log({"message": message, **extra, **data}, "error")

    # ------------------------------------------------------------ recording
    def record_metric(self, metric_name: str, value: float,
                      metadata: dict[str, Any] | None = None) -> None:
        """Store a metric now (visible to get_metrics at once) and hand it to the handlers."""
        meta = dict(metadata) if metadata else {}
        ts = meta.get("timestamp")
        if isinstance(ts, str):
            try:
                ts = datetime.fromisoformat(ts)
            except ValueError:
                ts = None
        if not isinstance(ts, datetime):
            ts = self._now()
        meta.pop("timestamp", None)
        with self._lock:
            self._metrics[metric_name].append({"timestamp": ts, "value": value, **meta})
        self.metric_queue.put((metric_name, value, {**meta, "timestamp": ts.isoformat()}))

    def track_generation(self, duration: float, success: bool, **kwargs: Any) -> None:
        """One generation: records generation_time, success_rate, error_rate (when
        ``error`` is given), model_usage:<model>, finish_reason:<reason> and the
        token / conversation_length metrics, like the seed."""
        ts = self._now()
        meta = {"timestamp": ts}
        self.record_metric("generation_time", duration, meta)
        self.record_metric("success_rate", 1.0 if success else 0.0, meta)
        if "error" in kwargs:
            self.record_metric("error_rate", 1.0 if kwargs["error"] else 0.0, meta)
        model = kwargs.get("model_name")
        if "model_name" in kwargs:
            self.record_metric(f"model_usage:{model}", 1.0, meta)
        if "finish_reason" in kwargs:
            self.record_metric(f"finish_reason:{kwargs['finish_reason']}", 1.0, meta)
        token_meta: dict[str, Any] = dict(meta)
        if "model_name" in kwargs:
            token_meta["model_name"] = model
        for name in ("prompt_token_count", "completion_token_count", "total_token_count",
                     "conversation_length"):
            raw = kwargs.get(name)
            if raw is None:
                continue
            self.record_metric(name, raw, token_meta if name != "conversation_length" else meta)
        if self._recorder is not None:
            self._recorder.record(
                "llm_call", session_id=self.session_id, model=model,
                prompt_tokens=kwargs.get("prompt_token_count"),
                completion_tokens=kwargs.get("completion_token_count"),
                latency_ms=duration * 1000.0 if self._number(duration) is not None else None,
                finish_reason=kwargs.get("finish_reason"), success=bool(success))
            if not success or kwargs.get("error"):
                self._recorder.record("error", session_id=self.session_id,
                                      error_type="generation_failed",
                                      error=str(kwargs.get("error") or "generation failed"))
        self._enqueue_log({"message": "Generation metrics",
                           "data": {"timestamp": ts.isoformat(), "duration": duration,
                                    "success": success, **kwargs}})

    def track_evaluation(self, duration: float, success: bool, evaluator_type: str,
                         scores: dict[str, Any], **kwargs: Any) -> None:
        """One evaluation: evaluation_time, evaluation_score_<name> per score
        (a score may be ``{"score": x, "feedback": ...}``), evaluation_error_rate
        and evaluation token counts."""
        ts = self._now()
        self.record_metric("evaluation_time", duration, {
            "timestamp": ts, "evaluator_type": evaluator_type, "success": success})
        for name, sv in scores.items():
            feedback = sv.get("feedback") if isinstance(sv, dict) else None
            value = sv.get("score", 0) if isinstance(sv, dict) else sv
            self.record_metric(f"evaluation_score_{name}", value, {
                "timestamp": ts, "evaluator_type": evaluator_type, "feedback": feedback})
        if "error" in kwargs:
            self.record_metric("evaluation_error_rate", 1 if kwargs["error"] else 0,
                               {"timestamp": ts, "evaluator_type": evaluator_type})
        token_meta: dict[str, Any] = {"timestamp": ts}
        if "model_name" in kwargs:
            token_meta["model_name"] = kwargs["model_name"]
        for name in ("prompt_token_count", "completion_token_count", "total_token_count"):
            raw = kwargs.get(name)
            if raw is not None:
                self.record_metric(name, raw, token_meta)
        self._enqueue_log({"message": "Evaluation metrics",
                           "data": {"timestamp": ts.isoformat(), "duration": duration,
                                    "success": success, "evaluator_type": evaluator_type,
                                    "scores": scores, **kwargs}})

    def _number(self, value: Any) -> float | None:
        return to_float(value, self.quality, "monitor metric")

    # ------------------------------------------------------------ queries
    def _window_values(self, metric_name: str, window: timedelta | None) -> list[float] | None:
        with self._lock:
            entries = self._metrics.get(metric_name)
            if entries is None:
                return None
            start = None if window is None else self._now() - window
            vals = [self._number(e["value"]) for e in entries
                    if start is None or e["timestamp"] >= start]
        return [v for v in vals if v is not None]

    def get_metrics(self, metric_name: str,
                    window: timedelta = timedelta(minutes=5)) -> dict[str, float]:
        """mean/min/max/count/p50/p95 of the metric over the last ``window``.

        As in the seed: an unknown metric gives zeros, a known metric with no
        value in the window gives ``{}``.
        """
        values = self._window_values(metric_name, window)
        if values is None:
            return {"mean": 0.0, "min": 0.0, "max": 0.0, "count": 0, "p50": 0.0, "p95": 0.0}
        if not values:
            return {}
        return {"mean": sum(values) / len(values), "min": min(values), "max": max(values),
                "count": len(values), "p50": percentile(values, 50),
                "p95": percentile(values, 95)}

    def get_total_token_usage(self, window: timedelta | None = None) -> TokenUsageReport:
        """Token totals by model (``model_name`` metadata, else ``"unknown"``)."""
        with self._lock:
            start = None if window is None else self._now() - window
            by_model: dict[str, dict[str, int]] = {}
            for metric, key in (("prompt_token_count", "prompt_tokens"),
                                ("completion_token_count", "completion_tokens"),
                                ("total_token_count", "total_tokens")):
                for e in self._metrics.get(metric, ()):
                    if start is not None and e["timestamp"] < start:
                        continue
                    model = e.get("model_name") or "unknown"
                    counts = by_model.setdefault(model, {"prompt_tokens": 0,
                                                         "completion_tokens": 0,
                                                         "total_tokens": 0})
                    v = self._number(e.get("value"))
                    counts[key] += int(v) if v is not None else 0
        usages = [ModelTokenUsage(m, c["prompt_tokens"], c["completion_tokens"],
                                  c["total_tokens"]) for m, c in sorted(by_model.items())]
        return TokenUsageReport(
            by_model=usages,
            total_prompt_tokens=sum(u.prompt_tokens for u in usages),
            total_completion_tokens=sum(u.completion_tokens for u in usages),
            total_tokens=sum(u.total_tokens for u in usages))

    # ------------------------------------------------------------ alerts
    def check_alerts(self) -> list[Alert]:
        """Evaluate the seven thresholds now; send and return the alerts that fire
        (new, re-fired after the cooldown, or resolved)."""
        out: list[Alert] = []
        with self._alert_lock:
            for rule, text in self._rules:
                stats = self.get_metrics(rule.metric, self.alert_window)
                count = stats.get("count", 0) if stats else 0
                mean = stats.get("mean", 0.0) if stats else 0.0
                firing = bool(count) and rule.holds(mean)
                status = self._alerts.update(rule.name, firing, self.alert_cooldown_seconds)
                data = {**(stats or {}), "threshold": rule.threshold}
                if status == "firing":
                    out.append(Alert(rule.name, text.format(mean), rule.severity, self._now(),
                                     data))
                elif status == "resolved":
                    out.append(Alert(rule.name, f"{rule.name} resolved (mean {mean:.4g})",
                                     "info", self._now(), data, resolved=True))
        for alert in out:
            self._send_alert(alert)
        return out

    def _check_alerts(self, metrics: dict[str, Any] | None = None) -> list[Alert]:
        """Seed name of :meth:`check_alerts`."""
        return self.check_alerts()

    def active_alerts(self) -> list[str]:
        """Names of the alert conditions currently active."""
        return self._alerts.active()

    def _send_alert(self, alert: Alert) -> None:
        if self._recorder is not None:
            self._recorder.record("alert", session_id=self.session_id, name=alert.name,
                                  level=alert.level, message=alert.message,
                                  resolved=alert.resolved)
        for handler in self.alert_handlers:
            try:
                handler(alert)
            except Exception as exc:  # noqa: BLE001
                self.handler_errors += 1
                warnings.warn(f"Alert handler failed: {exc}", RuntimeWarning, stacklevel=2)

    # ------------------------------------------------------------ export
    def _snapshot(self, window: timedelta | None) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            start = None if window is None else self._now() - window
            return {name: [dict(e) for e in entries if start is None or e["timestamp"] >= start]
                    for name, entries in self._metrics.items()}

    def save_metrics(self) -> Path:
        """Dump every metric to ``<log_dir>/metrics_<time>.json``."""
        path = self.log_dir / f"metrics_{datetime.now():%Y%m%d_%H%M%S}.json"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self._snapshot(None), f, default=str)
        return path

    def export_metrics(self, output_path: str | Path, format: str = "json",  # noqa: A002
                       window: timedelta | None = None) -> None:
        """Export to ``json`` (one file), ``csv`` (``<stem>_<metric>.csv`` per
        metric), ``excel`` (a sheet per metric) or ``parquet`` (one table with a
        ``metric_name`` column). Metadata keys become ``metadata_<key>`` columns."""
        from agentkpi.sinks import export as sinks
        from agentkpi.sinks import xlsx

        output_path = Path(output_path)
        data = self._snapshot(window)
        if format not in ("json", "csv", "excel", "parquet"):
            raise ValueError(f"Unsupported format: {format!r}; use json, csv, excel or parquet")
        output_path.parent.mkdir(parents=True, exist_ok=True)
        if format == "json":
            with open(output_path, "w", encoding="utf-8") as f:
                json.dump(data, f, default=str)
        elif format == "csv":
            for name, entries in data.items():
                safe = "".join("_" if c in "/\\\x00" else c for c in name)
                sinks.write(_table([_row(e) for e in entries]),
                            output_path.parent / f"{output_path.stem}_{safe}.csv", "csv")
        elif format == "excel":
            xlsx.write_sheets({name: _table([_row(e) for e in entries])
                               for name, entries in data.items()}, output_path)
        else:
            sinks.write(_table([{"metric_name": name, **_row(e)}
                                for name, entries in data.items() for e in entries]),
                        output_path, "parquet")

    # ------------------------------------------------------------ plots
    def visualize_metrics(self, save_dir: str | Path | None = None,
                          figsize: tuple[float, float] = (12, 6),
                          return_figures: bool = False) -> dict[str, Any] | None:
        """The seed's seven charts as PNG files in ``save_dir`` (default ``<log_dir>/plots``).

        All or nothing, as ``agentkpi plot``: a failed write (full disk, no permission)
        raises :class:`~agentkpi.errors.OutputError` naming ``save_dir`` and leaves no
        partial PNG and none of the folders it created; earlier PNGs stay as they were.
        """
        from agentkpi.plots import all_or_nothing, metric_figures

        save_dir = Path(save_dir) if save_dir is not None else self.log_dir / "plots"
        data = self._snapshot(None)
        if not any(data.values()):
            warnings.warn("No metrics data available for visualization", UserWarning,
                          stacklevel=2)
            return {} if return_figures else None
        figures = metric_figures({name: self._points(entries) for name, entries in data.items()},
                                 figsize)
        with all_or_nothing(save_dir, hint="choose another save_dir") as save:
            for name, fig in figures.items():
                save(fig, save_dir / f"{name}.png")
        return figures if return_figures else None

    def _points(self, entries: list[dict[str, Any]]) -> list[tuple[datetime, float]]:
        pts = [(e["timestamp"], self._number(e["value"])) for e in entries]
        return [(t, v) for t, v in pts if v is not None]

    def plot_metric(self, metric_name: str, window: timedelta = timedelta(hours=1),
                    rolling_window: int = 10, figsize: tuple[float, float] = (12, 8)) -> Any:
        """One metric over time (rolling mean + raw points); returns the Figure."""
        from agentkpi.plots import metric_figure

        data = self._snapshot(window)
        if metric_name not in self._metrics:
            raise ValueError(f"Metric {metric_name} not found")
        pts = self._points(data.get(metric_name, []))
        if not pts:
            raise ValueError(f"No data for metric {metric_name} in specified window")
        return metric_figure(metric_name, pts, rolling_window, figsize)

    # ------------------------------------------------------------ lifecycle
    def shutdown(self) -> None:
        """Deliver queued metrics/logs, run a last alert check, stop the threads
        and flush the event log. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        deadline = _monotonic() + self.shutdown_timeout
        for q in (self.metric_queue, self.log_queue):
            while q.unfinished_tasks and _monotonic() < deadline:
                threading.Event().wait(0.01)
        self._shutdown.set()
        for w in self._workers:
            w.join(timeout=max(0.1, deadline - _monotonic()))
        if self._recorder is not None:
            self._recorder.record("session_end", session_id=self.session_id)
            if self._owns_recorder:
                self._recorder.close(timeout=self.shutdown_timeout)
            else:
                self._recorder.flush(timeout=self.shutdown_timeout)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


#: Seed name, so ``from agentkpi.monitor import GenerationMonitor`` also works.
GenerationMonitor = Monitor


def _monotonic() -> float:
    import time

    return time.monotonic()


def _row(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored entry as an export row: timestamp, value, ``metadata_<key>`` (flattened)."""
    row: dict[str, Any] = {"timestamp": entry["timestamp"], "value": entry["value"]}
    for k, v in entry.items():
        if k not in ("timestamp", "value"):
            _flatten(f"metadata_{k}", v, row)
    return row


def _table(rows: list[dict[str, Any]]) -> Any:
    """Export rows as one Arrow table: base columns first, then sorted metadata columns.

    A column whose values Arrow cannot type as one (mixed numbers and text, lists)
    is written as text (JSON for lists and objects).
    """
    import pyarrow as pa

    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    base = [c for c in ("metric_name", "timestamp", "value") if c in cols]
    names = (base + sorted(c for c in cols if c not in base)) if rows else ["timestamp", "value"]
    arrays = {}
    for c in names:
        values = [r.get(c) for r in rows]
        try:
            arrays[c] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arrays[c] = pa.array([None if v is None else _text(v) for v in values], pa.string())
    return pa.table(arrays)


def _text(v: Any) -> str:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, (list, dict)):
        return json.dumps(v, default=str)
    return str(v)
