"""The Python tracking API: `with shipyard.start_run() as run:` and module-level logging calls.

The active run is per thread and per asyncio task (a ContextVar): module-level calls and nested runs
follow the code that started them. Metric points are buffered and committed in batches: when enough
are waiting, when the flush interval has passed (the background heartbeat thread sees to that between
calls), when the run ends (normally or by an exception) and at interpreter exit."""

from __future__ import annotations

import atexit
import contextvars
import io
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from shipyard.errors import ConflictError, ShipyardError, ValidationError
from shipyard.tracking import validation as check
from shipyard.tracking.records import ArtifactRecord, MetricPoint

if TYPE_CHECKING:
    from shipyard.context import Context
    from shipyard.tracking.environment import ResourceMeter

# The model registry is a building block above tracking: it plugs its registration in here when it is
# imported (shipyard.models does), so runs can log models while tracking depends on nothing above it.
_model_logger: Callable[..., Any] | None = None
# The runs started by the current thread or asyncio task, outermost first: an immutable tuple, so a
# task that inherits its creator's context never changes the creator's runs by starting its own.
_active: contextvars.ContextVar[tuple[Run, ...]] = contextvars.ContextVar("shipyard_active_runs", default=())
# Every run this process has open, whichever thread or task started it: for interpreter exit only.
_open: dict[str, Run] = {}
_open_lock = threading.Lock()
_hooks_installed = False


class Run:
    """A run being recorded. Use it as a context manager, or call end() yourself."""

    def __init__(self, ctx: Context, run_id: str, name: str, meter: ResourceMeter) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self.name = name
        self._meter = meter
        self._buffer: list[MetricPoint] = []
        self._steps: dict[str, int] = {}
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        settings = ctx.workspace.settings.tracking
        self._flush_interval = settings.flush_interval_seconds
        self._flush_max = settings.flush_max_points
        self._ended = False
        self._pid = os.getpid()
        self.background_error: BaseException | None = None  # the last failed background flush

    def __repr__(self) -> str:
        return f"<Run {self.run_id} {self.name!r}{' ended' if self._ended else ''}>"

    # -- context manager ------------------------------------------------------------------------
    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.end("finished")
        else:
            status = "killed" if issubclass(exc_type, KeyboardInterrupt) else "failed"
            self.end(status, error="".join(traceback.format_exception(exc_type, exc, tb)))

    # -- logging --------------------------------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, values: Mapping[str, Any]) -> None:
        from shipyard.tracking import runs

        self._check_open()
        runs.log_params(self.ctx, self.run_id, dict(values))

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, values: Mapping[str, Any]) -> None:
        from shipyard.tracking import runs

        self._check_open()
        runs.set_tags(self.ctx, self.run_id, dict(values))

    def log_metric(self, key: str, value: Any, step: int | None = None, timestamp: int | None = None) -> None:
        """Buffer one point. Without a step, each key counts its own steps from 0."""
        self._check_open()
        check.check_key(key, "metric")
        number = check.check_metric_value(key, value)
        ts = time.time_ns() // 1_000_000 if timestamp is None else check.check_timestamp(key, timestamp)
        with self._lock:
            if step is None:
                step = self._steps.get(key, -1) + 1
            else:
                step = check.check_step(key, step)
            self._steps[key] = step
            self._buffer.append(MetricPoint(key, number, step, ts))
            due = len(self._buffer) >= self._flush_max or time.monotonic() - self._last_flush >= self._flush_interval
        if due:
            self.flush()

    def log_metrics(self, values: Mapping[str, Any], step: int | None = None, timestamp: int | None = None) -> None:
        if not isinstance(values, Mapping):
            raise ValidationError(f"log_metrics takes a dict of name → number, got {type(values).__name__}.")
        points = [(check.check_key(k, "metric"), check.check_metric_value(k, v)) for k, v in values.items()]
        for key, number in points:  # all validated first: a bad value logs none of them
            self.log_metric(key, number, step=step, timestamp=timestamp)

    def log_batch(
        self,
        metrics: Iterable[tuple[Any, ...]] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Write metric points (key, value, step[, timestamp_ms]), params and tags now, in one transaction."""
        from shipyard.tracking import runs

        self._check_open()
        points = _points(metrics, time.time_ns() // 1_000_000)
        runs.log_batch(self.ctx, self.run_id, points, dict(params or {}), dict(tags or {}))

    def flush(self) -> None:
        """Commit buffered metric points now."""
        from shipyard.tracking import runs

        with self._lock:
            pending, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
        if not pending:
            return
        try:
            runs.log_metrics(self.ctx, self.run_id, pending)
        except BaseException:
            with self._lock:  # keep the points so a later flush can retry
                self._buffer[:0] = pending
            raise

    def log_artifact(self, source: str | os.PathLike[str] | bytes | IO[bytes], name: str | None = None) -> ArtifactRecord:
        """Store a file, bytes or a binary stream in the blob store and attach it to the run as `name`."""
        from shipyard.tracking import runs

        self._check_open()
        if isinstance(source, (bytes, bytearray, memoryview)):
            if not name:
                raise ValidationError("log_artifact(bytes) needs a name, e.g. log_artifact(data, name='model.bin').")
            info = self.ctx.blobs.put_bytes(bytes(source))
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.is_dir():
                raise ValidationError(f"{path} is a folder; log its files one by one (a folder snapshot is a dataset).")
            info = self.ctx.blobs.put_file(path)
            name = name or path.name
        elif isinstance(source, io.IOBase) or hasattr(source, "read"):
            if not name:
                raise ValidationError("log_artifact(stream) needs a name.")
            info = self.ctx.blobs.put_stream(source)
        else:
            raise ValidationError(
                f"log_artifact takes a path, bytes or a binary stream, got {type(source).__name__}."
            )
        return runs.log_artifact_blob(self.ctx, self.run_id, str(name), info.digest, info.size)

    # -- models ---------------------------------------------------------------------------------
    def log_model(
        self,
        model: Any,
        name: str,
        *,
        input_example: Any = None,
        signature_frame: Any = None,
        flavor: str | None = None,
        dataset: str | None = None,
        description: str | None = None,
        register: bool = True,
    ) -> Any:
        """Attach `model` to this run (as artifacts under models/NAME) and register it as the next
        version of `name`, linked to this run, its metrics and the dataset version it trained on
        (`dataset`, else the run's first logged input). The model predicts on `input_example`; the
        signature's nullability, ranges and categories come from `signature_frame` (pass all the
        training features) when given, else from the example. register=False only attaches it;
        register later with `shipyard models register NAME --run RUN`."""
        self._check_open()
        if _model_logger is None:
            raise ConflictError("Logging a model needs the model registry: `import shipyard.models` first.")
        self.flush()
        return _model_logger(self.ctx, self.run_id, model, name, input_example=input_example,
                             signature_frame=signature_frame, flavor=flavor, dataset=dataset,
                             description=description, register=register)

    # -- lineage --------------------------------------------------------------------------------
    def log_input(self, ref: str) -> str:
        """Record that this run read dataset version `ref` (e.g. "credit@3"); returns its id."""
        return self._link(ref, reads=True)

    def log_output(self, ref: str) -> str:
        """Record that this run wrote dataset version `ref`; returns its id."""
        return self._link(ref, reads=False)

    def _link(self, ref: str, *, reads: bool) -> str:
        from shipyard.data.versions import get_version
        from shipyard.store.lineage import Node, record_edge

        self._check_open()
        version = get_version(self.ctx, ref)
        data, run = Node("dataset_version", version.version_id), Node("run", self.run_id)
        if reads:
            record_edge(self.ctx.store, self.ctx.actor, data, run, "input")
        else:
            record_edge(self.ctx.store, self.ctx.actor, run, data, "output")
        return version.version_id

    # -- ending ---------------------------------------------------------------------------------
    def end(self, status: str = "finished", error: str | None = None) -> None:
        """End the run, committing buffered points and resources used in the same transaction."""
        from shipyard.tracking import liveness, runs

        if self._ended:
            return
        with self._lock:
            pending, self._buffer = self._buffer, []
        try:
            runs.finish_run(self.ctx, self.run_id, status, error=error, resources=self._meter.read(), points=pending)
        except BaseException:
            with self._lock:
                self._buffer[:0] = pending
            raise
        self._ended = True
        liveness.release(self.run_id)
        with _open_lock:
            _open.pop(self.run_id, None)
        # Ended from another thread or task, the run stays in its own context's tuple, where
        # active_run() skips it as ended and the next start_run() there drops it.
        active = _active.get()
        if self in active:
            _active.set(tuple(r for r in active if r is not self))

    def _flush_if_due(self) -> None:
        """Commit buffered points once the flush interval has passed (called by the background thread)."""
        if self._ended or not self._buffer or time.monotonic() - self._last_flush < self._flush_interval:
            return
        try:
            self.flush()
            self.background_error = None
        except Exception as exc:  # noqa: BLE001 - kept; the points stay buffered for a retry
            self.background_error = exc

    def _check_open(self) -> None:
        if self._ended:
            raise ConflictError(f"Run {self.run_id} has ended; start a new run to log more.")


def set_model_logger(logger: Callable[..., Any]) -> None:
    """Install what Run.log_model calls: logger(ctx, run_id, model, name, **options)."""
    global _model_logger
    _model_logger = logger


def start_run(
    name: str | None = None,
    *,
    tags: Mapping[str, Any] | None = None,
    experiment: str = "default",
    nested: bool = False,
    workspace: str | os.PathLike[str] | None = None,
) -> Run:
    """Start a run in the workspace found from the current folder (or `workspace`). It becomes the
    active run of the calling thread or asyncio task; with nested=True, a child of the one active there."""
    from shipyard.context import open_context
    from shipyard.tracking import liveness, runs
    from shipyard.tracking.environment import ResourceMeter, environment, git_state, source_name

    ctx = open_context(workspace)
    parent = active_run()
    if parent is not None and not nested:
        raise ConflictError(
            f"Run {parent.run_id} ({parent.name}) is still active. Use start_run(nested=True) for a "
            "child run, or end the active run first."
        )
    commit, dirty = git_state()
    meter = ResourceMeter()
    meter.start(reset_peak=parent is None)
    record = runs.create_run(
        ctx,
        name=name,
        experiment=experiment,
        tags_=dict(tags or {}),
        parent_id=parent.run_id if parent else None,
        git_commit=commit,
        git_dirty=dirty,
        source=source_name(),
        environment=environment(),
    )
    run = Run(ctx, record.run_id, record.name, meter)
    _active.set((*(r for r in _active.get() if not r._ended), run))
    with _open_lock:
        _open[run.run_id] = run
    _install_hooks()
    liveness.hold(ctx, run.run_id, tick=run._flush_if_due)
    return run


def active_run() -> Run | None:
    """The innermost open run started by the calling thread or asyncio task, if any."""
    for run in reversed(_active.get()):
        if not run._ended:
            return run
    return None


def end_run(status: str = "finished") -> None:
    run = active_run()
    if run is not None:
        run.end(status)


def _require_active() -> Run:
    run = active_run()
    if run is None:
        raise ConflictError("No active run. Start one with `with shipyard.start_run():`.")
    return run


def log_param(key: str, value: Any) -> None:
    _require_active().log_param(key, value)


def log_params(values: Mapping[str, Any]) -> None:
    _require_active().log_params(values)


def log_metric(key: str, value: Any, step: int | None = None, timestamp: int | None = None) -> None:
    _require_active().log_metric(key, value, step=step, timestamp=timestamp)


def log_metrics(values: Mapping[str, Any], step: int | None = None, timestamp: int | None = None) -> None:
    _require_active().log_metrics(values, step=step, timestamp=timestamp)


def set_tag(key: str, value: Any) -> None:
    _require_active().set_tag(key, value)


def set_tags(values: Mapping[str, Any]) -> None:
    _require_active().set_tags(values)


def log_artifact(source: str | os.PathLike[str] | bytes | IO[bytes], name: str | None = None) -> ArtifactRecord:
    return _require_active().log_artifact(source, name)


def _points(items: Iterable[Any], now: int) -> list[MetricPoint]:
    """Validate batch points; well-formed (str, float, int) tuples with known keys take a fast path."""
    out: list[Any] = []
    append = out.append
    known = check.known_keys()
    isfinite = math.isfinite
    for item in items:
        if type(item) is tuple and len(item) == 3:
            key, value, step = item
            if (
                type(key) is str and key in known and type(value) is float and isfinite(value)
                and type(step) is int and -(2**63) <= step < 2**63
            ):
                append((key, value, step, now))
                continue
        append(_point(item, now))
    return out


def _point(item: Any, now: int) -> MetricPoint:
    if not isinstance(item, (tuple, list)) or len(item) not in (3, 4):
        raise ValidationError(
            f"Batch metric {item!r} must be a tuple (key, value, step) or (key, value, step, timestamp_ms)."
        )
    key = check.check_key(item[0], "metric")
    value = check.check_metric_value(key, item[1])
    step = check.check_step(key, item[2])
    ts = check.check_timestamp(key, item[3]) if len(item) == 4 else now
    return MetricPoint(key, value, step, ts)


# -- interpreter exit: no buffered point is lost, and a crash marks its runs failed ----------------

_uncaught: list[str] = []


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def record_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        _uncaught.append("".join(traceback.format_exception(exc_type, exc, tb)))
        previous(exc_type, exc, tb)

    sys.excepthook = record_uncaught
    atexit.register(_end_open_runs)


def _end_open_runs() -> None:
    with _open_lock:  # the newest first, so children end before their parents
        open_runs = [r for r in reversed(_open.values()) if r._pid == os.getpid()]
    for run in open_runs:
        try:
            if _uncaught:
                run.end("failed", error=_uncaught[-1])
            else:
                run.end("finished")
        except ShipyardError as exc:  # the store is gone: say so rather than fail silently
            print(f"shipyard: could not end run {run.run_id} at exit: {exc}", file=sys.stderr)


def _forget_open_runs() -> None:
    """Drop every open run of this process and of the calling context without ending it (tests: a
    failed test must not leave its runs active for the next)."""
    from shipyard.tracking import liveness

    with _open_lock:
        for run_id in _open:
            liveness.release(run_id)
        _open.clear()
    _active.set(())
