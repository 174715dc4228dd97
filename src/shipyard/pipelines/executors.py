"""Executors run step bodies: `local` (threads in this process, so independent branches run in
parallel) and `dask` (a dask.distributed cluster given by its scheduler address). A step body loads
its inputs from the blob store, runs with retries and backoff, and stores its outputs."""

from __future__ import annotations

import os
import resource
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import BackendError, ValidationError
from shipyard.pipelines.materialize import Stored, load_value, store_value
from shipyard.pipelines.steps import CURRENT_RUN, Step


@dataclass(frozen=True)
class StoredRef:
    """An input that is the stored output of an upstream step."""

    stored: Stored


@dataclass
class StepTask:
    node: str
    step: Step
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    workspace: str  # the workspace root; the worker opens the same stores
    run_id: str | None = None  # the step's run, visible to the body through current_run_id()
    actor: str | None = None  # who started the pipeline: the step's writes are attributed to them


@dataclass
class StepOutcome:
    ok: bool
    outputs: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 1
    error: str | None = None
    traceback: str | None = None
    resources: dict[str, float | int] = field(default_factory=dict)
    worker: str = ""


def _resolve(value: Any, blobs: Any) -> Any:
    if isinstance(value, StoredRef):
        return load_value(blobs, value.stored)
    if isinstance(value, (list, tuple)) and any(isinstance(v, StoredRef) for v in value):
        return type(value)(_resolve(v, blobs) for v in value)
    return value


def execute(task: StepTask) -> StepOutcome:
    """Run one step body (on any worker that sees the workspace's stores)."""
    from shipyard.config import ACTING_AS
    from shipyard.context import open_context

    started, cpu0 = time.perf_counter(), time.thread_time()
    ctx = open_context(task.workspace, actor=task.actor)
    options = task.step.options
    attempts = 0
    while True:
        attempts += 1
        try:
            args = tuple(_resolve(a, ctx.blobs) for a in task.args)
            kwargs = {k: _resolve(v, ctx.blobs) for k, v in task.kwargs.items()}
            token, acting = CURRENT_RUN.set(task.run_id), ACTING_AS.set(ctx.actor)
            try:
                value = task.step.fn(*args, **kwargs)
            finally:
                ACTING_AS.reset(acting)
                CURRENT_RUN.reset(token)
            values = [value] if task.step.outputs == 1 else list(value)
            if len(values) != task.step.outputs:
                raise ValidationError(f"Step '{task.node}' declared {task.step.outputs} outputs but returned {len(values)}.")
            outputs = [store_value(ctx.blobs, v).to_dict() for v in values]
            break
        except Exception as exc:  # noqa: BLE001 - reported with the original traceback
            if attempts > options.retries:
                return StepOutcome(False, attempts=attempts, error=f"{type(exc).__name__}: {exc}",
                                   traceback=traceback.format_exc(), resources=_used(started, cpu0),
                                   worker=_where())
            time.sleep(options.backoff_seconds * 2 ** (attempts - 1))
    return StepOutcome(True, outputs, attempts, resources=_used(started, cpu0), worker=_where())


def _used(started: float, cpu0: float) -> dict[str, float | int]:
    return {
        "wall_seconds": round(time.perf_counter() - started, 6),
        "cpu_seconds": round(time.thread_time() - cpu0, 6),
        "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def _where() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers or max(2, os.cpu_count() or 2),
                                        thread_name_prefix="shipyard-step")

    def submit(self, task: StepTask) -> Future[StepOutcome]:
        return self._pool.submit(execute, task)

    def close(self) -> None:
        # Steps not started yet are dropped (an interrupted pipeline stops scheduling at once); running
        # steps finish, since a thread cannot be stopped from outside.
        self._pool.shutdown(wait=True, cancel_futures=True)


CONNECT_SECONDS = 10.0  # how long a Dask client keeps trying to reach its scheduler before the pipeline fails


class DaskExecutor:
    """Steps as tasks on a dask.distributed cluster; results come back as concurrent futures."""

    def __init__(self, address: str, *, timeout: float | None = None) -> None:
        try:
            from distributed import Client
        except ModuleNotFoundError:
            raise BackendError(
                "The dask executor needs dask.distributed. Install it with `pip install 'shipyard-mlops[dask]'`."
            ) from None
        self.address = address
        self.name = f"dask://{address}"
        try:
            self._client = Client(address, timeout=CONNECT_SECONDS if timeout is None else timeout,
                                  set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise BackendError(
                f"Cannot reach the Dask scheduler at {address}: {exc}. Start one with `dask scheduler` or "
                "check the address (executor dask://HOST:PORT)."
            ) from None

    def submit(self, task: StepTask) -> Future[StepOutcome]:
        result: Future[StepOutcome] = Future()
        remote = self._client.submit(execute, task, pure=False, key=f"shipyard-{task.node}-{time.time_ns()}")

        def done(f: Any) -> None:
            try:
                result.set_result(f.result())
            except BaseException as exc:  # noqa: BLE001 - a lost worker, a cancelled task
                result.set_result(StepOutcome(False, error=f"{type(exc).__name__}: {exc}",
                                              traceback="".join(traceback.format_exception(exc))))

        remote.add_done_callback(done)
        return result

    def close(self) -> None:
        self._client.close()


def make_executor(spec: str | None) -> LocalExecutor | DaskExecutor:
    if spec in (None, "", "local"):
        return LocalExecutor()
    if spec.startswith("dask://"):
        return DaskExecutor(spec[len("dask://"):])
    raise ValidationError(f"Unknown executor {spec!r}: use 'local' or 'dask://HOST:PORT'.")
