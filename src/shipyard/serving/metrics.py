"""The server's Prometheus metrics (prometheus-client): names start with `shipyard_`, durations are in
seconds, counters end in `_total`.

One process: the app's own registry. Several worker processes: `shipyard serve --workers N` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before prometheus-client is imported; every process writes its
values there and whichever worker answers /metrics adds them all up (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Request latency: from a fraction of a millisecond (one row, a small model) to tens of seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class ServerMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        # In multiprocess mode values live in files, whatever registry a metric is created in; this one
        # only keeps the names from clashing between apps made in one process (tests embed several).
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        model = ["model", "version"]
        self.requests = Counter("shipyard_requests", "HTTP requests answered, by model, version, route and status "
                                "code.", [*model, "route", "code"], registry=r)
        self.request_seconds = Histogram("shipyard_request_duration_seconds", "Time from request to response.",
                                         [*model, "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.model_seconds = Histogram("shipyard_model_duration_seconds", "Time of one call to the model "
                                       "(one batch).", model, buckets=LATENCY_BUCKETS, registry=r)
        self.batch_requests = Histogram("shipyard_batch_requests", "Requests combined into one model call.",
                                        model, buckets=BATCH_BUCKETS, registry=r)
        self.batch_rows = Histogram("shipyard_batch_rows", "Rows in one model call.", model,
                                    buckets=BATCH_BUCKETS, registry=r)
        self.in_flight = Gauge("shipyard_requests_in_flight", "Requests being answered now.", registry=r,
                               multiprocess_mode="livesum")
        self.load_seconds = Gauge("shipyard_model_load_duration_seconds", "Time it took to load the model.", model,
                                  registry=r, multiprocess_mode="max")
        self.load_failures = Gauge("shipyard_model_load_failed", "1 for a model ref that failed to load.", ["ref"],
                                   registry=r, multiprocess_mode="max")
        self.loaded = Gauge("shipyard_model_loaded", "1 for each model version served.", model, registry=r,
                            multiprocess_mode="max")
        self.log_depth = Gauge("shipyard_prediction_log_queue_depth", "Predictions waiting to be written to the "
                               "prediction log (in memory and spilled to disk).", registry=r,
                               multiprocess_mode="livesum")
        self.log_lag = Gauge("shipyard_prediction_log_lag_seconds", "Age of the oldest prediction not yet "
                             "written to the prediction log.", registry=r, multiprocess_mode="livemax")
        self.shadow_errors = Counter("shipyard_shadow_errors", "Shadow predictions that failed (never seen by "
                                     "clients).", ["deployment", "version"], registry=r)
        self.deployment_revision = Gauge("shipyard_deployment_revision", "The deployment revision being served.",
                                         ["deployment"], registry=r, multiprocess_mode="livemin")
        self.logged = Counter("shipyard_predictions_logged", "Requests written to the prediction log.",
                              registry=r)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if multiprocess():
            from prometheus_client import multiprocess as mp

            registry: CollectorRegistry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def process_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (in-flight requests, log depth) from the sums."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)
