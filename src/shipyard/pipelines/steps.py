"""The step and pipeline DSL. Inside a pipeline function, calling a step records a node of the DAG
and returns a reference to its output; outside one, a step is a plain function call."""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

from shipyard.errors import ValidationError, did_you_mean

if TYPE_CHECKING:
    from shipyard.pipelines.runner import PipelineResult

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class StepOptions:
    retries: int = 0
    backoff_seconds: float = 0.5
    cache: bool = True
    depends_on: tuple[Callable[..., Any], ...] = ()  # helper code whose changes must miss the cache
    resources: dict[str, Any] = field(default_factory=dict)  # hints for executors (cpus, memory)


@dataclass(frozen=True)
class OutputRef:
    """A step's output inside a pipeline definition; becomes the value when the step has run."""

    node: str
    index: int | None = None

    def __iter__(self) -> Any:
        raise ValidationError(
            f"The output of step '{self.node}' cannot be unpacked while the pipeline is being defined; "
            "declare the number of outputs with @step(outputs=N) or return one value."
        )


@dataclass
class Node:
    id: str
    step: Step
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def refs(self) -> list[OutputRef]:
        found = []
        for value in (*self.args, *self.kwargs.values()):
            if isinstance(value, OutputRef):
                found.append(value)
            elif isinstance(value, (list, tuple)):
                found.extend(v for v in value if isinstance(v, OutputRef))
        return found

    @property
    def upstream(self) -> list[str]:
        return sorted({r.node for r in self.refs()})


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            arguments = inspect.signature(step.fn).bind(*args, **kwargs).arguments
        except TypeError as exc:
            raise ValidationError(
                f"Step '{step.name}' is not wired correctly: {exc}. Pass every input, as a value or as "
                "the output of another step."
            ) from None
        for value in (*args, *kwargs.values()):
            if isinstance(value, OutputRef) and value.node not in self.nodes:
                raise ValidationError(f"Step '{step.name}' takes an output of '{value.node}', which is not in this pipeline.")
        node_id = step.name
        n = 2
        while node_id in self.nodes:
            node_id = f"{step.name}_{n}"
            n += 1
        step.stored_params  # noqa: B018 - an annotation that cannot be resolved is an error now, not at run time
        if step.options.cache:
            _check_hashable(node_id, arguments)
        self.nodes[node_id] = Node(node_id, step, args, kwargs)
        if step.outputs > 1:
            return tuple(OutputRef(node_id, i) for i in range(step.outputs))
        return OutputRef(node_id)


def element_name(name: str, index: int) -> str:
    """An item of a list argument that mixes step outputs and values, named as params may be named
    (letters, digits and _ - . / : — no brackets)."""
    return f"{name}.{index}"


def _check_hashable(node_id: str, arguments: dict[str, Any]) -> None:
    """Refuse a parameter the cache key could not hash while the pipeline is traced, before any step runs."""
    from shipyard.pipelines.fingerprints import hashable, refusal

    for name, value in arguments.items():
        if isinstance(value, (list, tuple)) and any(isinstance(v, OutputRef) for v in value):
            items = [(element_name(name, i), v) for i, v in enumerate(value)]  # as the runner splits them
        else:
            items = [(name, value)]
        for label, item in items:
            if not isinstance(item, OutputRef) and not hashable(item):
                raise refusal(node_id, label, item)


_building: contextvars.ContextVar[_Builder | None] = contextvars.ContextVar("shipyard_pipeline", default=None)
CURRENT_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar("shipyard_step_run", default=None)


def current_run_id() -> str | None:
    """Inside a step body: the id of the step's run (to link what it registers), else None."""
    return CURRENT_RUN.get()


class Step:
    def __init__(self, fn: Callable[..., Any], options: StepOptions, outputs: int) -> None:
        self.fn = fn
        self.options = options
        self.outputs = outputs
        self.name = fn.__name__
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<step {self.name}>"

    @functools.cached_property
    def stored_params(self) -> frozenset[str]:
        """The parameters annotated `Stored` (or `list[Stored]`): given the output of another step, they
        receive where it is stored (its digest, kind and flavor metadata) instead of the loaded value,
        so that a step can pass a model on, or register it, with the exact bytes its producer stored."""
        return frozenset(p.name for p in inspect.signature(self.fn).parameters.values()
                         if _takes_stored(self, p.name, p.annotation))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = _building.get()
        if builder is None:
            return self.fn(*args, **kwargs)
        return builder.add(self, args, kwargs)


def _takes_stored(step: Step, name: str, annotation: Any) -> bool:
    from shipyard.pipelines.materialize import Stored

    if isinstance(annotation, str):  # `from __future__ import annotations`: resolved as typing would
        if not re.search(r"\bStored\b", annotation):
            return False
        try:
            annotation = eval(annotation, getattr(step.fn, "__globals__", {}))  # noqa: S307 - as get_type_hints
        except Exception as exc:  # noqa: BLE001 - reported with the fix
            raise ValidationError(
                f"Step '{step.name}' annotates parameter '{name}' as {annotation!r}, which cannot be resolved "
                f"({type(exc).__name__}: {exc}). Import it where the step is defined, at module level: "
                "`from shipyard.pipelines.materialize import Stored`."
            ) from None
    return annotation is Stored or Stored in typing.get_args(annotation)


@overload
def step(fn: F) -> Step: ...
@overload
def step(
    *, retries: int = 0, backoff_seconds: float = 0.5, cache: bool = True,
    depends_on: Sequence[Callable[..., Any]] = (), resources: dict[str, Any] | None = None, outputs: int = 1,
) -> Callable[[F], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    *,
    retries: int = 0,
    backoff_seconds: float = 0.5,
    cache: bool = True,
    depends_on: Sequence[Callable[..., Any]] = (),
    resources: dict[str, Any] | None = None,
    outputs: int = 1,
) -> Any:
    """Declare a step: `@shipyard.step` or `@shipyard.step(retries=2, depends_on=[helper])`."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValidationError(f"retries must be a non-negative integer, got {retries!r}.")
    if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
        raise ValidationError(f"outputs must be a positive integer, got {outputs!r}.")
    options = StepOptions(retries, float(backoff_seconds), bool(cache), tuple(depends_on), dict(resources or {}))

    def wrap(function: Callable[..., Any]) -> Step:
        if not callable(function):
            raise ValidationError(f"@step decorates a function, got {type(function).__name__}.")
        return Step(function, options, outputs)

    return wrap(fn) if fn is not None else wrap


class Pipeline:
    """A function whose body wires steps; `run()` executes the DAG it defines."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self.name = name
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"

    def build(self, /, **params: Any) -> tuple[dict[str, Node], Any]:
        """Trace the pipeline function into its nodes (and the refs it returns)."""
        self.check_params(params)
        builder = _Builder()
        token = _building.set(builder)
        try:
            returned = self.fn(**params)
        finally:
            _building.reset(token)
        if not builder.nodes:
            raise ValidationError(f"Pipeline '{self.name}' calls no step; decorate its functions with @shipyard.step.")
        return builder.nodes, returned

    def check_params(self, params: Mapping[str, Any], *,
                     how: Callable[[str], str] = lambda name: f"run({{'{name}': VALUE}})") -> None:
        """Every name is a parameter of the pipeline function (a typo gets a did-you-mean) and every
        required parameter has a value; HOW says how to pass one, in the caller's terms."""
        signature = inspect.signature(self.fn)
        named = [p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        declared = [p.name for p in named]
        open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        unknown = [str(k) for k in params if k not in declared]
        if unknown and not open_ended:
            known = ", ".join(declared) or "none"
            if len(unknown) == 1:
                hint = did_you_mean(unknown[0], declared)
            else:
                hint = "".join(f"{h[:-1]} for '{k}'?" for k in unknown if (h := did_you_mean(k, declared)))
            listed = ", ".join(f"'{k}'" for k in unknown)
            raise ValidationError(f"Pipeline '{self.name}' has no parameter{'s' if len(unknown) > 1 else ''} "
                                  f"{listed}.{hint} Parameters: {known}.")
        for p in named:
            if p.default is p.empty and p.name not in params:
                raise ValidationError(f"Pipeline '{self.name}' needs a value for parameter '{p.name}': "
                                      f"pass {how(p.name)}.")

    def __call__(self, params: Mapping[str, Any] | None = None, *, executor: str | None = None, cache: bool = True,
                 until: str | None = None, workspace: Any = None) -> PipelineResult:
        return self.run(params, executor=executor, cache=cache, until=until, workspace=workspace)

    def run(self, params: Mapping[str, Any] | None = None, *, executor: str | None = None, cache: bool = True,
            until: str | None = None, workspace: Any = None) -> PipelineResult:
        """Run the DAG with the pipeline function's parameters as one mapping, so that a parameter may
        be called `until` or `cache`; `until=STEP` runs only that step and the steps it needs."""
        from shipyard.context import open_context
        from shipyard.pipelines.runner import run_pipeline

        if params is not None and not isinstance(params, Mapping):
            raise ValidationError(
                f"Pipeline '{self.name}' takes its parameters as one mapping, not {type(params).__name__}; "
                f"e.g. {self.name}.run({{'n': 5}}). The keywords are run options: executor, cache, until, "
                "workspace."
            )
        values = dict(params or {})
        self.check_params(values)
        return run_pipeline(open_context(workspace), self, values, executor=executor, use_cache=cache, until=until)


def pipeline(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Declare a pipeline: `@shipyard.pipeline` over a function that calls steps."""

    def wrap(function: Callable[..., Any]) -> Pipeline:
        return Pipeline(function, name or function.__name__)

    return wrap(fn) if fn is not None else wrap
