"""Running a pipeline: order the DAG, decide per step between a cache hit and a run (saying why),
submit runs to the executor, and record one run per pipeline with one child run per step. The driver
owns those runs: it keeps them alive with heartbeats, wherever the steps execute, and marks them
failed if it is interrupted."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from shipyard.context import Context
from shipyard.errors import IntegrityError, NotFoundError, ShipyardError, ValidationError
from shipyard.pipelines.cache import KeyParts, code_digest, describe_miss, environment_digest
from shipyard.pipelines.executors import StepOutcome, StepTask, StoredRef, make_executor
from shipyard.pipelines.fingerprints import Fingerprint, fingerprint
from shipyard.pipelines.materialize import Stored, load_value
from shipyard.pipelines.steps import Node, OutputRef, Pipeline, element_name

OUTPUTS = "outputs.json"
TRACEBACK = "traceback.txt"


class PipelineFailed(ShipyardError):
    """A step failed; nothing downstream of it ran. The message names the step and its error; the step's
    traceback is kept with its run (`traceback.txt`) and in `original_traceback`."""

    code = "pipeline_failed"
    status_code = 500

    def __init__(self, message: str, step: str, original: str | None, run_id: str | None = None) -> None:
        super().__init__(message, step=step, run_id=run_id)
        self.step = step
        self.run_id = run_id
        self.original_traceback = original


StepStatus = Literal["waiting", "running", "finished", "failed", "skipped"]
CacheDecision = Literal["hit", "miss", "off", ""]


@dataclass
class StepReport:
    node: str
    status: StepStatus
    cache: CacheDecision
    reason: str
    run_id: str | None = None
    seconds: float = 0.0
    attempts: int = 0
    outputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PipelineResult:
    run_id: str
    name: str
    status: Literal["finished", "failed"]
    steps: dict[str, StepReport]
    returned: Any = None
    ctx: Context | None = field(default=None, repr=False)

    def output(self, node: str, index: int = 0) -> Any:
        """The value a step produced, read back from the blob store."""
        assert self.ctx is not None
        report = self.steps[node]
        return load_value(self.ctx.blobs, Stored.from_dict(report.outputs[index]))

    def value(self) -> Any:
        """What the pipeline function returned, with step outputs read back."""
        def resolve(v: Any) -> Any:
            if isinstance(v, OutputRef):
                return self.output(v.node, v.index or 0)
            if isinstance(v, (list, tuple)):
                return type(v)(resolve(x) for x in v)
            if isinstance(v, dict):
                return {k: resolve(x) for k, x in v.items()}
            return v
        return resolve(self.returned)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "name": self.name, "status": self.status,
                "steps": {k: asdict(v) for k, v in self.steps.items()}}


def topological_order(nodes: dict[str, Node]) -> list[str]:
    """Kahn's algorithm; a cycle is an error naming the steps on it."""
    indegree = {n: 0 for n in nodes}
    children: dict[str, list[str]] = {n: [] for n in nodes}
    for node in nodes.values():
        for up in node.upstream:
            if up not in nodes:
                raise ValidationError(f"Step '{node.id}' takes an output of '{up}', which is not in the pipeline.")
            indegree[node.id] += 1
            children[up].append(node.id)
    ready = sorted(n for n, d in indegree.items() if d == 0)
    order = []
    while ready:
        current = ready.pop(0)
        order.append(current)
        for child in children[current]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if len(order) != len(nodes):
        cycle = sorted(n for n, d in indegree.items() if d > 0)
        raise ValidationError(f"The pipeline has a cycle through steps {', '.join(cycle)}; a step cannot depend on itself.")
    return order


def _literal(value: Any) -> Any:
    """A pipeline parameter as the pipeline run's param: small JSON as itself, else by content. It is never
    refused: a parameter may only wire the pipeline, and the steps' own parameters are what keys hold."""
    return fingerprint(value, step="", name="", cached=False).logged()


def _bind(node: Node, outputs: dict[str, list[dict[str, Any]]]) -> tuple[tuple[Any, ...], dict[str, Any], KeyParts]:
    """Replace refs by stored inputs; split the arguments into params (by content) and input digests."""
    import inspect

    bound = inspect.signature(node.step.fn).bind(*node.args, **node.kwargs)
    params: dict[str, Fingerprint] = {}
    inputs: dict[str, str] = {}

    def swap(name: str, value: Any, as_stored: bool) -> Any:
        if isinstance(value, OutputRef):
            stored = outputs[value.node][value.index or 0]
            inputs[name] = stored["digest"]
            # A `Stored` parameter gets the reference itself; any other is loaded on the worker.
            return Stored.from_dict(stored) if as_stored else StoredRef(Stored.from_dict(stored))
        if isinstance(value, (list, tuple)) and any(isinstance(v, OutputRef) for v in value):
            return type(value)(swap(element_name(name, i), v, as_stored) for i, v in enumerate(value))
        params[name] = fingerprint(value, step=node.id, name=name, cached=node.step.options.cache)
        return value

    for name, value in list(bound.arguments.items()):
        bound.arguments[name] = swap(name, value, name in node.step.stored_params)
    parts = KeyParts(code_digest(node.step), params, inputs, environment_digest())
    return bound.args, bound.kwargs, parts


def upstream_closure(nodes: dict[str, Node], target: str) -> set[str]:
    """`target` and every step it depends on, directly or not."""
    if target not in nodes:
        from shipyard.errors import did_you_mean

        raise ValidationError(f"The pipeline has no step '{target}'.{did_you_mean(target, list(nodes))} "
                              f"Steps: {', '.join(nodes)}.")
    keep, stack = set(), [target]
    while stack:
        current = stack.pop()
        if current not in keep:
            keep.add(current)
            stack.extend(nodes[current].upstream)
    return keep


def run_pipeline(ctx: Context, pipeline: Pipeline, params: dict[str, Any], *, executor: str | None = None,
                 use_cache: bool = True, until: str | None = None,
                 on_change: Callable[[dict[str, StepReport]], None] | None = None) -> PipelineResult:
    """Run the pipeline (or, with `until`, only that step and what it needs) and record it."""
    from shipyard.tracking import runs
    from shipyard.tracking.environment import environment, git_state, source_name

    nodes, returned = pipeline.build(**params)
    if until is not None:
        keep = upstream_closure(nodes, until)
        nodes = {k: v for k, v in nodes.items() if k in keep}
        returned = OutputRef(until)
    order = topological_order(nodes)
    runner = make_executor(executor)
    commit, dirty = git_state()
    parent = runs.create_run(
        ctx, name=pipeline.name, experiment="pipelines",
        tags_={"shipyard.kind": "pipeline", "shipyard.pipeline": pipeline.name, "shipyard.executor": runner.name},
        git_commit=commit, git_dirty=dirty, source=source_name(), environment=environment(),
    )
    held = _OpenRuns(ctx, pipeline.name, parent.run_id)
    started = time.perf_counter()
    reports: dict[str, StepReport] = {}
    outputs: dict[str, list[dict[str, Any]]] = {}
    pending: dict[Future[StepOutcome], tuple[str, str, float, str]] = {}
    failed: tuple[str, str, StepOutcome] | None = None
    remaining = list(order)

    def changed() -> None:
        if on_change is not None:
            on_change({n: reports.get(n) or StepReport(n, "waiting", "", "") for n in order})

    try:
        changed()
        if params:
            runs.log_params(ctx, parent.run_id, {k: _literal(v) for k, v in params.items()})
        while remaining or pending:
            hits = 0
            for node_id in [n for n in remaining if all(u in outputs for u in nodes[n].upstream)]:
                if failed is not None:
                    break
                remaining.remove(node_id)
                node = nodes[node_id]
                args, kwargs, parts = _bind(node, outputs)
                cached = _cache_hit(ctx, pipeline.name, node_id, parts) if use_cache and node.step.options.cache else None
                if cached is not None:
                    hit_run, stored = cached
                    run_id = _record_hit(ctx, parent.run_id, pipeline.name, node_id, parts, hit_run, stored)
                    outputs[node_id] = stored
                    reports[node_id] = StepReport(node_id, "finished", "hit", f"same code, params, inputs and "
                                                  f"environment as run {hit_run[:8]}", run_id, 0.0, 0, stored)
                    hits += 1
                    changed()
                    continue
                mode: CacheDecision = "miss" if use_cache and node.step.options.cache else "off"
                reason = describe_miss(parts, _previous_parts(ctx, pipeline.name, node_id)) if mode == "miss" \
                    else "caching is off for this run" if not use_cache else "caching is off for this step"
                step_run = runs.create_run(
                    ctx, name=node_id, experiment="pipelines", parent_id=parent.run_id,
                    tags_=_step_tags(pipeline.name, node_id, parts, mode, reason),
                    git_commit=commit, git_dirty=dirty, source=source_name(), environment=environment(),
                )
                held.opened(step_run.run_id)
                if parts.params:
                    runs.log_params(ctx, step_run.run_id, parts.params)
                task = StepTask(node_id, node.step, tuple(args), dict(kwargs), str(ctx.workspace.root), step_run.run_id,
                                ctx.actor)
                pending[runner.submit(task)] = (node_id, step_run.run_id, time.perf_counter(), reason)
                reports[node_id] = StepReport(node_id, "running", mode, reason, step_run.run_id)
                changed()
            if hits and failed is None:
                continue  # cache hits may have made more steps ready
            if not pending:
                break
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                node_id, run_id, t0, reason = pending.pop(future)
                outcome = future.result()
                report = reports[node_id]
                report.seconds, report.attempts = round(time.perf_counter() - t0, 4), outcome.attempts
                if outcome.ok:
                    _record_success(ctx, run_id, outcome)
                    outputs[node_id] = outcome.outputs
                    report.status, report.outputs = "finished", outcome.outputs
                else:
                    _record_failure(ctx, run_id, outcome)
                    report.status = "failed"
                    failed = failed or (node_id, run_id, outcome)
                held.closed(run_id)
                changed()
        for node_id in remaining:
            reports[node_id] = StepReport(node_id, "skipped", "off", "not run: an upstream step failed")
        changed()
    except BaseException as exc:  # Ctrl-C, or the store or executor failing: no run may stay "running"
        held.fail(exc)  # before waiting for the executor to wind down
        raise
    finally:
        runner.close()
    status: Literal["finished", "failed"] = "failed" if failed else "finished"
    try:
        runs.finish_run(ctx, parent.run_id, status,
                        error=(failed[2].traceback or failed[2].error) if failed else None,
                        resources={"wall_seconds": round(time.perf_counter() - started, 6)})
    finally:
        held.closed(parent.run_id)
    result = PipelineResult(parent.run_id, pipeline.name, status, {n: reports[n] for n in order if n in reports},
                            returned, ctx)
    if failed:
        node_id, failed_run, outcome = failed
        raise PipelineFailed(
            f"Pipeline '{pipeline.name}' failed at step '{node_id}' after {outcome.attempts} attempt(s): "
            f"{outcome.error}\nNothing downstream ran; fix it and run again — finished steps are cache hits. "
            f"The full traceback is kept with the step's run: `shipyard runs show {failed_run}` or "
            f"`shipyard artifacts get {failed_run} {TRACEBACK}` (or add --debug).",
            node_id, outcome.traceback, failed_run,
        )
    return result


def _step_tags(pipeline: str, node: str, parts: KeyParts, mode: str, reason: str) -> dict[str, str]:
    # Nothing here is cut to fit: the key parts record large parameters by digest and the reason is
    # bounded where it is written, so a tag over its limit is an error, never a silently broken cache.
    tags = {
        "shipyard.kind": "step", "shipyard.pipeline": pipeline, "shipyard.step": node,
        "shipyard.cache": mode, "shipyard.cache_reason": reason, "shipyard.key_parts": parts.record(),
    }
    if parts.cacheable:  # a step with caching off may take a parameter that has no content hash
        tags["shipyard.cache_key"] = parts.key()
    return tags


def _record_success(ctx: Context, run_id: str, outcome: StepOutcome) -> None:
    """The step's outputs, worker and attempts, and its end: one transaction."""
    from shipyard.tracking import runs

    info = ctx.blobs.put_bytes(json.dumps(outcome.outputs).encode())
    files = [(OUTPUTS, info.digest, info.size)]
    files += [(f"outputs/{i}.{s['kind'].split(':')[0]}", s["digest"], s["size"]) for i, s in enumerate(outcome.outputs)]
    runs.finish_run(ctx, run_id, "finished", resources=outcome.resources, artifacts_=files,
                    tags_={"shipyard.worker": outcome.worker, "shipyard.attempts": outcome.attempts})


def _record_failure(ctx: Context, run_id: str, outcome: StepOutcome) -> None:
    """The step's error and its end, with the traceback as the run's error and as an artifact."""
    from shipyard.tracking import runs

    text = outcome.traceback or outcome.error or "the step failed without an error message"
    info = ctx.blobs.put_bytes(text.encode())
    runs.finish_run(ctx, run_id, "failed", error=text, resources=outcome.resources,
                    artifacts_=[(TRACEBACK, info.digest, info.size)])


def _cache_hit(ctx: Context, pipeline: str, node: str, parts: KeyParts) -> tuple[str, list[dict[str, Any]]] | None:
    """The latest finished run with this key whose outputs are all stored and intact. Why the others
    were passed over goes into `parts.rejected`, so the miss reason tells the user."""
    from shipyard.tracking.search import search_run_ids

    ids, _ = search_run_ids(ctx, f"tags.shipyard.cache_key = '{parts.key()}' and status = 'finished' "
                            "and tags.shipyard.cache != 'hit'",
                            ["start_time DESC"], max_results=5)
    for run_id in ids:
        try:
            return run_id, _cached_outputs(ctx, run_id)
        except _Unusable as exc:
            parts.rejected.append(str(exc))
    return None


class _Unusable(Exception):
    """A cached run's outputs cannot be reused; the message says why."""


def _cached_outputs(ctx: Context, run_id: str) -> list[dict[str, Any]]:
    """RUN_ID's outputs, every blob checked for presence, size and SHA-256 (a hit must not hand a
    corrupt value downstream); raises _Unusable naming the run and the blob."""
    from shipyard.tracking.artifacts import artifact_digest

    try:
        listing = artifact_digest(ctx, run_id, OUTPUTS)
        stored: list[dict[str, Any]] = json.loads(ctx.blobs.get_bytes(listing))
    except NotFoundError as exc:
        raise _Unusable(f"cached outputs of run {run_id} are missing from the blob store: {exc}") from None
    except IntegrityError:
        raise _corrupt(ctx, run_id, listing, f"its {OUTPUTS} (blob {listing}) does not match its SHA-256") from None
    for i, output in enumerate(stored):
        digest, size = output["digest"], output["size"]
        try:
            found = ctx.blobs.size(digest)
        except NotFoundError:
            raise _Unusable(f"cached outputs of run {run_id} are missing from the blob store: output {i} "
                            f"(blob {digest})") from None
        if found != size:
            raise _corrupt(ctx, run_id, digest, f"output {i} (blob {digest}) has {found} bytes instead of {size}")
        try:
            ctx.blobs.verify(digest)
        except IntegrityError:
            raise _corrupt(ctx, run_id, digest, f"output {i} (blob {digest}) does not match its SHA-256") from None
    return stored


def _corrupt(ctx: Context, run_id: str, digest: str, problem: str) -> _Unusable:
    # Storing a blob whose digest exists keeps the file there, so the corrupt copy goes: running the
    # step again then stores the right bytes under that digest.
    ctx.blobs.delete(digest)
    return _Unusable(f"cached outputs of run {run_id} are corrupt: {problem}; the corrupt blob was removed "
                     "and the step runs again")


def _quoted(text: str) -> str:
    """A value for a single-quoted string of the filter language."""
    return text.replace("'", "''")


def _previous_parts(ctx: Context, pipeline: str, node: str) -> dict[str, Any] | None:
    from shipyard.tracking.runs import get_run
    from shipyard.tracking.search import search_run_ids

    ids, _ = search_run_ids(ctx, f"tags.shipyard.pipeline = '{_quoted(pipeline)}' and "
                                 f"tags.shipyard.step = '{_quoted(node)}'",
                            ["start_time DESC"], max_results=1)
    if not ids:
        return None
    try:
        parts = json.loads(get_run(ctx, ids[0]).tags.get("shipyard.key_parts", "null"))
    except ValueError:
        return None
    return parts if isinstance(parts, dict) else None


def _record_hit(ctx: Context, parent: str, pipeline: str, node: str, parts: KeyParts, hit_run: str,
                stored: list[dict[str, Any]]) -> str:
    from shipyard.tracking import runs

    reason = f"cache hit: same code, params, inputs and environment as run {hit_run}"
    step_run = runs.create_run(ctx, name=node, experiment="pipelines", parent_id=parent,
                               tags_={**_step_tags(pipeline, node, parts, "hit", reason), "shipyard.cached_from": hit_run})
    info = ctx.blobs.put_bytes(json.dumps(stored).encode())
    runs.finish_run(ctx, step_run.run_id, "finished", resources={"wall_seconds": 0.0},
                    artifacts_=[(OUTPUTS, info.digest, info.size)])
    return step_run.run_id


class _OpenRuns:
    """The runs a pipeline holds open: heartbeated while open (see tracking/liveness.py); if the
    pipeline is interrupted, each one still open is marked failed with the reason."""

    def __init__(self, ctx: Context, pipeline: str, parent: str) -> None:
        from shipyard.tracking import liveness

        self.ctx, self.pipeline, self.parent = ctx, pipeline, parent
        self.open: list[str] = [parent]
        liveness.hold(ctx, parent)

    def opened(self, run_id: str) -> None:
        from shipyard.tracking import liveness

        self.open.append(run_id)
        liveness.hold(self.ctx, run_id)

    def closed(self, run_id: str) -> None:
        from shipyard.tracking import liveness

        if run_id in self.open:
            self.open.remove(run_id)
        liveness.release(run_id)

    def fail(self, exc: BaseException) -> None:
        """Best effort: the store may be what failed; a run that cannot be marked is reported lost
        once its heartbeat stops."""
        from shipyard.tracking import liveness, runs

        if isinstance(exc, KeyboardInterrupt):
            why = f"Pipeline '{self.pipeline}' was interrupted (KeyboardInterrupt) before this run finished."
        else:
            why = f"Pipeline '{self.pipeline}' stopped before this run finished: {type(exc).__name__}: {exc}"
        error = f"{why}\n{''.join(traceback.format_exception(exc))}"
        for run_id in reversed(self.open):  # the steps, then the pipeline's own run
            try:
                runs.finish_run(self.ctx, run_id, "failed", error=error)
            except Exception:  # noqa: BLE001, S110 - the original error is what the caller must see
                pass
            finally:
                liveness.release(run_id)
        self.open.clear()
