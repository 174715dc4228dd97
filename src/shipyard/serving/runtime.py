"""What each serving process owns: the prediction threads, a batcher per model, the prediction log's writer,
the metrics, the deployment follower's thread and the shadow copies in flight. Made after a fork, never
shared between processes (unlike the loaded models, see app.Served)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.errors import ValidationError
from shipyard.serving.batching import Answer, Batcher, BatchPolicy
from shipyard.serving.http import HTTPProblem, UnprocessableInput

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    from shipyard.models.loading import LoadedModel
    from shipyard.models.signature import Signature
    from shipyard.serving.app import Served
    from shipyard.serving.enrichment import Enrichment
    from shipyard.serving.metrics import ServerMetrics
    from shipyard.serving.predlog import PredictionLog
    from shipyard.serving.routing import Chosen, RouteTable

log = logging.getLogger("shipyard.serving")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
PREDICT_THREADS = 4


@dataclass
class ServeOptions:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    batching: BatchPolicy = field(default_factory=BatchPolicy)
    log_predictions: bool = True
    log_sample_rate: float = 1.0
    drain_seconds: float = 30.0  # on shutdown, how long writing the prediction log may take; the rest spills


class Runtime:
    """What one serving process owns: the prediction threads, a batcher per model and output, the prediction
    log's writer and the metrics. Started by the app's lifespan (or by the first request when the app is used
    without one) and closed on shutdown, which drains the prediction log."""

    def __init__(self, ctx: Context | None, served: Served, options: ServeOptions) -> None:
        from shipyard.serving.metrics import ServerMetrics

        self.ctx, self.served, self.options = ctx, served, options
        self.metrics: ServerMetrics = ServerMetrics()
        self.log: PredictionLog | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._batchers: dict[int, Batcher] = {}
        self._enrichments: dict[int, Enrichment | None] = {}
        self._shadows: set[Any] = set()  # shadow predictions still running
        self._logged = 0
        for (name, version), seconds in served.load_seconds.items():
            self.metrics.load_seconds.labels(name, version).set(seconds)
            self.metrics.loaded.labels(name, version).set(1)
        for ref in served.failures:
            self.metrics.load_failures.labels(ref).set(1)

    @property
    def started(self) -> bool:
        return self._executor is not None

    def start(self) -> None:
        if self._executor is not None:
            return
        from concurrent.futures import ThreadPoolExecutor

        self._executor = ThreadPoolExecutor(PREDICT_THREADS, thread_name_prefix="shipyard-predict")
        if self.served.follower is not None:  # in each serving process: threads do not survive a fork
            self.served.follower.on_change = self._revision_changed
            self._revision_changed(self.served.follower.table)
            self.served.follower.start()
        if self.options.log_predictions and self.ctx is not None:
            from shipyard.serving.predlog import PredictionLog

            self.log = PredictionLog(self.ctx, sample_rate=self.options.log_sample_rate)
            self.log.start()

    def _revision_changed(self, table: RouteTable | None) -> None:
        if table is not None:
            self.metrics.deployment_revision.labels(table.deployment).set(table.revision)

    async def finish_shadows(self, timeout: float) -> None:
        import asyncio

        if self._shadows:
            await asyncio.wait(list(self._shadows), timeout=timeout)

    def close(self) -> None:
        if self.served.follower is not None:
            self.served.follower.stop()
        if self.log is not None:
            self.log.close(timeout=self.options.drain_seconds)  # past it, what is left goes to a spill file
            self.refresh()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def refresh(self) -> None:
        """Bring the prediction log's gauges up to date (on every scrape and once a second)."""
        if self.log is None:
            return
        self.metrics.log_depth.set(self.log.depth)
        self.metrics.log_lag.set(self.log.lag_seconds)
        written = self.log.written
        if written > self._logged:
            self.metrics.logged.inc(written - self._logged)
            self._logged = written

    async def predict(self, model: LoadedModel, frame: pd.DataFrame, wanted: tuple[str, ...] = ("predict",)
                      ) -> Answer:
        """The outputs `wanted` for the frame's rows, computed in a batch with other requests for the model. A
        model trained through feature views predicts on the frame enriched from the online store, and the
        answer's frame (what the prediction log keeps) is that enriched frame."""
        self.start()
        enrichment = self.enrichment(model)
        if enrichment is not None:
            import asyncio

            if self.ctx is None:
                raise HTTPProblem(503, f"Model '{model.version.model}' reads its features from the online store, "
                                       "but this app was built without a workspace.")
            enriched = await asyncio.get_running_loop().run_in_executor(
                self._executor, enrichment.enrich, self.ctx, frame)
            answer = await self._batcher(model).submit(enriched, wanted)
            return Answer(answer.values, enriched.assign(**{c: answer.frame[c] for c in answer.frame.columns}))
        return await self._batcher(model).submit(frame, wanted)

    def enrichment(self, model: LoadedModel) -> Enrichment | None:
        """What the model reads from the online store for each request (None: nothing)."""
        if id(model) not in self._enrichments:
            from shipyard.serving.enrichment import enrichment_of

            self._enrichments[id(model)] = enrichment_of(self.ctx, model)
        return self._enrichments[id(model)]

    def request_signature(self, model: LoadedModel) -> Signature | None:
        """The columns a client sends: for an enriched model its entity keys and direct inputs, else the
        model's signature."""
        enrichment = self.enrichment(model)
        return enrichment.request if enrichment is not None else model.signature

    def _batcher(self, model: LoadedModel) -> Batcher:
        batcher = self._batchers.get(id(model))
        if batcher is None:
            assert self._executor is not None
            labels = (model.version.model, str(model.version.version))
            batcher = self._batchers[id(model)] = Batcher(
                lambda f: _prepare(model, f), lambda name, f: _output(model, name, f), self._executor,
                self.options.batching, self._observer(labels))
        return batcher

    def _observer(self, labels: tuple[str, str]) -> Any:
        seconds = self.metrics.model_seconds.labels(*labels)
        requests, rows = self.metrics.batch_requests.labels(*labels), self.metrics.batch_rows.labels(*labels)

        def observe(n_requests: int, n_rows: int, took: float) -> None:
            seconds.observe(took)
            requests.observe(n_requests)
            rows.observe(n_rows)

        return observe

    def record(self, state: dict[str, Any], model: LoadedModel, answer: Answer, chosen: Chosen | None = None,
               table: RouteTable | None = None, *, latency_ms: float | None = None) -> None:
        if self.log is None:
            return
        from shipyard.serving.predlog import Prediction

        self.log.record(Prediction(
            request_id=state["request_id"], timestamp=state["time"], model=model.version.model,
            version=model.version.version, route=state.get("route", ""), inputs=answer.frame,
            outputs=answer.values["predict"], probabilities=answer.values.get("predict_proba"),
            latency_ms=latency_ms if latency_ms is not None else (time.perf_counter() - state["started"]) * 1000.0,
            deployment=table.deployment if table is not None else None,
            deployment_route=chosen.route.label if chosen is not None else None,
        ))

    async def answer(self, state: dict[str, Any], model: LoadedModel, frame: pd.DataFrame, wanted: tuple[str, ...],
                     chosen: Chosen | None, table: RouteTable | None) -> Answer:
        """Predict, log the prediction, and copy the request to the deployment's shadows. Served through a
        deployment, a failed prediction is logged too (with its error), so each route's error rate is known."""
        try:
            answer = await self.predict(model, frame, wanted)
        except Exception as exc:
            if table is not None and chosen is not None:
                self.record_failure(state, model, frame, chosen, table, exc)
            raise
        self.record(state, model, answer, chosen, table)
        if table is not None:
            self.shadow(state, table, frame)
        return answer

    def record_failure(self, state: dict[str, Any], model: LoadedModel, frame: pd.DataFrame, chosen: Chosen,
                       table: RouteTable, exc: Exception) -> None:
        if self.log is None:
            return
        import numpy as np

        from shipyard.serving.predlog import Prediction

        self.log.record(Prediction(
            request_id=state["request_id"], timestamp=state["time"], model=model.version.model,
            version=model.version.version, route=state.get("route", ""), inputs=frame,
            outputs=np.full(len(frame), None, dtype=object), probabilities=None,
            latency_ms=(time.perf_counter() - state["started"]) * 1000.0, deployment=table.deployment,
            deployment_route=chosen.route.label, error=f"{type(exc).__name__}: {exc}"[:500],
        ))

    def shadow(self, state: dict[str, Any], table: RouteTable, frame: pd.DataFrame) -> None:
        """Copy the request to the table's shadows, after the primary answered: their answers are logged under
        the same request id, never returned, and their failures only counted."""
        import asyncio

        for chosen in table.shadows:
            task = asyncio.get_running_loop().create_task(self._shadow_one(dict(state), chosen, table, frame))
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)

    async def _shadow_one(self, state: dict[str, Any], chosen: Chosen, table: RouteTable, frame: pd.DataFrame) -> None:
        started = time.perf_counter()
        try:
            answer = await self.predict(chosen.model, frame)
        except Exception as exc:  # noqa: BLE001 - a shadow never fails the request it copies
            self.metrics.shadow_errors.labels(table.deployment, chosen.route.version_id).inc()
            log.debug("Shadow %s failed on request %s", chosen.route.version_id, state["request_id"], exc_info=True)
            self.record_failure(state, chosen.model, frame, chosen, table, exc)
            return
        self.record(state, chosen.model, answer, chosen, table, latency_ms=(time.perf_counter() - started) * 1000.0)


def _prepare(model: LoadedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame checked and cast to the model's signature: 422 naming the column when it does not fit."""
    try:
        return model.prepare(frame)
    except ValidationError as exc:
        raise UnprocessableInput(str(exc), **exc.fields) from None


def _output(model: LoadedModel, name: str, prepared: pd.DataFrame) -> Any:
    import numpy as np

    try:
        if name == "predict_proba":
            values = model.flavor.predict_proba(model.native, prepared)
        else:
            values = model.flavor.predict(model.native, prepared)
    except ValidationError as exc:
        raise UnprocessableInput(str(exc), **exc.fields) from None
    except (ValueError, TypeError) as exc:  # the estimator refused the values the signature let through
        raise UnprocessableInput(f"Model '{model.version.model}' could not predict on this input: "
                                 f"{str(exc).rstrip('.')}. "
                                 "Check the values against the model's metadata.") from None
    if values is None:
        raise HTTPProblem(400, f"Model '{model.version.model}' has no predict_proba; ask for 'predict'.")
    return np.asarray(values)
