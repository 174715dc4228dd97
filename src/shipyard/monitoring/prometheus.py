"""Monitoring reports as Prometheus gauges: the latest drift scores, metrics, health and alert states of each
monitor, in the text exposition format (prometheus-client), for a scrape endpoint or a textfile collector."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shipyard.errors import ValidationError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: name: (help, label names); every gauge's first label is the monitor.
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "shipyard_monitor_drift_score": ("A column's drift score in the latest report: the p-value of a test (drift "
                                     "when below its threshold) or a distance (drift at or above it).",
                                     ("monitor", "column", "method")),
    "shipyard_monitor_column_drifted": ("1 when the column drifted in the latest report, 0 when it did not; "
                                        "absent when it could not be judged.", ("monitor", "column")),
    "shipyard_monitor_drift_share": ("The share of judged columns that drifted in the latest report.",
                                     ("monitor",)),
    "shipyard_monitor_prediction_drift_score": ("The predictions' drift score in the latest report.",
                                                ("monitor", "method")),
    "shipyard_monitor_metric": ("A performance metric on the labelled rows of the latest report's window.",
                                ("monitor", "metric")),
    "shipyard_monitor_rows": ("Rows in the latest report's window.", ("monitor",)),
    "shipyard_monitor_report_timestamp_seconds": ("When the latest report was made, in seconds since the epoch.",
                                                  ("monitor",)),
    "shipyard_monitor_health": ("Serving health over the latest report's window: requests, throughput_rps, "
                                "p50_ms, p99_ms, error_rate.", ("monitor", "measure")),
    "shipyard_monitor_alert_firing": ("1 while the alert rule fires, 0 once it is resolved.",
                                      ("monitor", "rule", "severity")),
}


def exposition(reports: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> bytes:
    """The gauges of `reports` (the latest report of each monitor; of two for one monitor, the later one
    counts) and `alerts` (items with monitor, rule, severity and state), in the text format. Values that
    are None, or not numbers, are left out rather than exported as 0."""
    from prometheus_client import CollectorRegistry, generate_latest

    samples = _samples(reports, alerts)  # built whole first: a bad report fails before anything is written
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(samples))
    return generate_latest(registry)


class _Collector:
    """Yields fresh gauge families from samples gathered beforehand (a custom collector: no global state)."""

    def __init__(self, samples: dict[str, dict[tuple[str, ...], float]]) -> None:
        self.samples = samples

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        for name, (help_text, labels) in GAUGES.items():
            family = GaugeMetricFamily(name, help_text, labels=list(labels))
            for values, value in sorted(self.samples[name].items()):
                family.add_metric(list(values), value)
            yield family


def _samples(reports: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> dict[str, dict[tuple[str, ...], float]]:
    samples: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in GAUGES}

    def put(name: str, labels: tuple[Any, ...], value: Any) -> None:
        measured = _value(value)
        if measured is not None:
            samples[name][_labels(labels)] = measured

    for report in _latest(reports):
        monitor = report["monitor"]
        drift = report.get("data_drift") or {}
        for column in drift.get("columns") or []:
            put("shipyard_monitor_drift_score", (monitor, column.get("column"), column.get("method")),
                column.get("score"))
            if column.get("drifted") is not None:
                put("shipyard_monitor_column_drifted", (monitor, column.get("column")), bool(column["drifted"]))
        put("shipyard_monitor_drift_share", (monitor,), drift.get("drift_share"))
        prediction = report.get("prediction_drift") or {}
        put("shipyard_monitor_prediction_drift_score", (monitor, prediction.get("method")), prediction.get("score"))
        for metric, measured in ((report.get("performance") or {}).get("metrics") or {}).items():
            put("shipyard_monitor_metric", (monitor, metric), (measured or {}).get("value"))
        put("shipyard_monitor_rows", (monitor,), (report.get("window") or {}).get("rows"))
        put("shipyard_monitor_report_timestamp_seconds", (monitor,), _seconds(report.get("created")))
        for measure, value in (report.get("health") or {}).items():
            if measure != "limits":
                put("shipyard_monitor_health", (monitor, measure), value)
    for alert in alerts:
        state = alert.get("state")
        if not alert.get("monitor") or not alert.get("rule"):
            raise ValidationError(f"Alert {alert!r} lacks its monitor or rule; each alert needs monitor, rule, "
                                  "severity and state.")
        if state not in ("firing", "resolved"):
            raise ValidationError(f"Alert {alert.get('rule')!r} of monitor {alert.get('monitor')!r} has state "
                                  f"{state!r}; an alert is 'firing' or 'resolved'.", state=state)
        key = ("shipyard_monitor_alert_firing", (alert.get("monitor"), alert.get("rule"), alert.get("severity")))
        # One series a rule and severity: if the list holds the rule twice, firing wins over resolved.
        if samples[key[0]].get(_labels(key[1])) != 1.0:
            put(*key, state == "firing")
    return samples


def _value(value: Any) -> float | None:
    """A gauge's value: a finite number, a verdict as 0 or 1; None (and text, NaN) is not exported."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _labels(values: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if value is None else str(value) for value in values)


def _latest(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One report a monitor (two series with the same labels would make the scrape fail): the later one."""
    latest: dict[str, dict[str, Any]] = {}
    for report in reports:
        monitor = report.get("monitor")
        if not monitor:
            raise ValidationError(f"Report {report.get('id')!r} has no monitor name; every exported report needs "
                                  "the 'monitor' it belongs to.", report=report.get("id"))
        before = latest.get(str(monitor))
        if before is None or _order(report) >= _order(before):
            latest[str(monitor)] = report
    return list(latest.values())


def _order(report: dict[str, Any]) -> tuple[float, float]:
    return (_seconds(report.get("created")) or 0.0, _value(report.get("id")) or 0.0)


def _seconds(created: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (one without an offset is taken as UTC)."""
    if not isinstance(created, str) or not created:
        return None
    try:
        moment = dt.datetime.fromisoformat(created)
    except ValueError as exc:
        raise ValidationError(f"Report time {created!r} is not an ISO 8601 time; write it like "
                              "2026-12-01T18:00:00Z.", created=created) from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
