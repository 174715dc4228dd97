"""Pipelines: wiring, caching (each cause of a miss), retries, failures, resume, parallel branches."""

from __future__ import annotations

import importlib
import sys
import threading
import time
from pathlib import Path

import pytest

import shipyard
from shipyard.context import open_context
from shipyard.errors import ValidationError
from shipyard.pipelines.runner import PipelineFailed, topological_order
from shipyard.pipelines.steps import Node, OutputRef, step

FLOW = '''
import shipyard

def helper(x):
    return x + {helper_add}

@shipyard.step
def source(n: int):
    return list(range(n))

@shipyard.step(depends_on=[helper])
def double(values):
    return [helper(v) * {factor} for v in values]

@shipyard.step
def total(values):
    return sum(values)

@shipyard.pipeline
def flow(n: int = 5):
    return total(double(source(n)))
'''


def _module(tmp_path: Path, name: str, helper_add: int = 0, factor: int = 2):  # type: ignore[no-untyped-def]
    (tmp_path / f"{name}.py").write_text(FLOW.format(helper_add=helper_add, factor=factor))
    if str(tmp_path) not in sys.path:
        sys.path.insert(0, str(tmp_path))
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(name)


def _caches(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {k: v.cache for k, v in result.steps.items()}


def test_cache_hits_and_each_cause_of_a_miss(workspace: Path, tmp_path: Path) -> None:
    mod = _module(tmp_path, "flow_a")
    first = mod.flow.run()
    assert first.value() == 20 and _caches(first) == {"source": "miss", "double": "miss", "total": "miss"}
    assert first.steps["source"].reason == "first run of this step"
    again = mod.flow.run()
    assert _caches(again) == {"source": "hit", "double": "hit", "total": "hit"} and again.value() == 20

    params = mod.flow.run({"n": 6})
    assert params.steps["source"].reason == "params changed: n: 5 → 6"
    assert params.steps["double"].reason == "input data changed: values"

    mod = _module(tmp_path, "flow_a", factor=3)  # the step's own code
    code = mod.flow.run({"n": 6})
    assert _caches(code)["source"] == "hit" and code.steps["double"].reason == "code changed"
    assert code.value() == 45

    mod = _module(tmp_path, "flow_a", helper_add=1, factor=3)  # only the helper it declares
    helper = mod.flow.run({"n": 6})
    assert helper.steps["double"].reason == "code changed" and helper.value() == 63

    # an output gone from the blob store means the step runs again
    ctx = open_context()
    digest = helper.steps["total"].outputs[0]["digest"]
    ctx.blobs.delete(digest)
    missing = mod.flow.run({"n": 6})
    assert missing.steps["total"].cache == "miss"
    assert "missing from the blob store" in missing.steps["total"].reason
    assert missing.value() == 63

    off = mod.flow.run({"n": 6}, cache=False)
    assert set(_caches(off).values()) == {"off"}


def test_runs_and_lineage_of_a_pipeline(workspace: Path, tmp_path: Path) -> None:
    mod = _module(tmp_path, "flow_b")
    result = mod.flow.run({"n": 3})
    parent = shipyard.get_run(result.run_id)
    assert parent.tags["shipyard.kind"] == "pipeline" and parent.status == "finished" and parent.params == {"n": "3"}
    children = shipyard.search_runs(f"parent_id = '{result.run_id}'", ["start_time"])
    assert [c.name for c in children] == ["source", "double", "total"]
    assert all(c.tags["shipyard.kind"] == "step" and c.status == "finished" for c in children)
    assert children[0].params == {"n": "3"}
    assert any(a.path == "outputs.json" for a in shipyard.get_run(children[0].run_id).artifacts)
    assert children[0].wall_seconds is not None and children[0].cpu_seconds is not None


CALLS: dict[str, int] = {}


@step(retries=2, backoff_seconds=0.01)
def flaky(x: int) -> int:
    CALLS["flaky"] = CALLS.get("flaky", 0) + 1
    if CALLS["flaky"] < 3:
        raise ConnectionError("feature store timed out")
    return x * 10


@step
def add_one(x: int) -> int:
    return x + 1


@shipyard.pipeline
def retrying(x: int = 1):
    return add_one(flaky(x))


def test_retries_with_backoff(workspace: Path) -> None:
    CALLS.clear()
    result = retrying.run()
    assert result.value() == 11 and result.steps["flaky"].attempts == 3


BROKEN = {"fail": True}


@step
def first(x: int) -> int:
    CALLS["first"] = CALLS.get("first", 0) + 1
    return x + 1


@step
def fragile(x: int) -> int:
    if BROKEN["fail"]:
        raise ValueError(f"bad value {x}")
    return x * 2


@step
def last(x: int) -> int:
    CALLS["last"] = CALLS.get("last", 0) + 1
    return x - 1


@shipyard.pipeline
def resumable(x: int = 1):
    return last(fragile(first(x)))


def test_a_failing_step_stops_downstream_and_a_rerun_resumes(workspace: Path) -> None:
    CALLS.clear()
    BROKEN["fail"] = True
    with pytest.raises(PipelineFailed) as failure:
        resumable.run()
    assert failure.value.step == "fragile" and "ValueError: bad value 2" in str(failure.value)
    assert "Traceback" in (failure.value.original_traceback or "")
    assert CALLS == {"first": 1}  # nothing downstream ran
    runs = {r.name: r for r in shipyard.search_runs(experiment="pipelines")}
    assert runs["fragile"].status == "failed" and "ValueError: bad value 2" in (runs["fragile"].error or "")
    assert runs["resumable"].status == "failed" and "last" not in runs
    BROKEN["fail"] = False
    result = resumable.run()
    assert _caches(result) == {"first": "hit", "fragile": "miss", "last": "miss"}
    assert CALLS == {"first": 1, "last": 1} and result.value() == 3


ACTIVE = {"now": 0, "peak": 0}
LOCK = threading.Lock()


@step(cache=False)
def slow_branch(name: str) -> str:
    with LOCK:
        ACTIVE["now"] += 1
        ACTIVE["peak"] = max(ACTIVE["peak"], ACTIVE["now"])
    time.sleep(0.3)
    with LOCK:
        ACTIVE["now"] -= 1
    return name


@step
def join(a: str, b: str) -> str:
    return a + b


@shipyard.pipeline
def branches():
    return join(slow_branch("a"), slow_branch("b"))


def test_independent_branches_run_in_parallel(workspace: Path) -> None:
    result = branches.run()
    assert result.value() == "ab" and ACTIVE["peak"] == 2
    assert list(result.steps) == ["slow_branch", "slow_branch_2", "join"]


def test_wiring_errors(workspace: Path) -> None:
    @shipyard.pipeline
    def unconnected():
        return join("a")  # 'b' is never given

    with pytest.raises(ValidationError, match="Step 'join' is not wired correctly: missing a required argument: 'b'"):
        unconnected.run()

    @shipyard.pipeline
    def empty():
        return 1

    with pytest.raises(ValidationError, match="calls no step"):
        empty.run()
    nodes = {"a": Node("a", join, (OutputRef("b"), "x"), {}), "b": Node("b", join, (OutputRef("a"), "y"), {})}
    with pytest.raises(ValidationError, match="cycle through steps a, b"):
        topological_order(nodes)
    with pytest.raises(ValidationError, match="Unknown executor 'spark'"):
        branches.run(executor="spark")
    with pytest.raises(ValidationError, match="retries must be a non-negative integer"):
        step(retries=-1)
    assert join("a", "b") == "ab"  # outside a pipeline a step is a plain call


def test_unreachable_dask_scheduler(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    from shipyard.errors import BackendError
    from shipyard.pipelines import executors

    monkeypatch.setattr(executors, "CONNECT_SECONDS", 0.5)  # nothing listens there: no need to keep trying

    with pytest.raises(BackendError, match="Cannot reach the Dask scheduler at 127.0.0.1:9"):
        branches.run(executor="dask://127.0.0.1:9")


def test_until_runs_a_step_and_what_it_needs(workspace: Path, tmp_path: Path) -> None:
    mod = _module(tmp_path, "flow_c")
    partial = mod.flow.run(until="double")
    assert list(partial.steps) == ["source", "double"] and partial.value() == [0, 2, 4, 6, 8]
    full = mod.flow.run()
    assert _caches(full) == {"source": "hit", "double": "hit", "total": "miss"}
    with pytest.raises(ValidationError, match="no step 'dubble'. Did you mean 'double'"):
        mod.flow.run(until="dubble")


def test_a_pipeline_name_with_a_quote_still_finds_its_previous_runs(workspace: Path) -> None:
    @shipyard.pipeline(name="ana's flow")
    def quoted(x: int = 1):
        return add_one(x)

    assert quoted.run().steps["add_one"].reason == "first run of this step"
    assert quoted.run({"x": 2}).steps["add_one"].reason == "params changed: x: 1 → 2"


@step
def echo(until: str, cache: bool, executor: str, workspace: str) -> list:
    return [until, cache, executor, workspace]


@shipyard.pipeline
def options_as_params(until: str = "2025-01-01", cache: bool = True, executor: str = "cpu", workspace: str = "eu"):
    return echo(until, cache, executor, workspace)


def test_parameters_named_like_run_options_reach_the_pipeline(workspace: Path) -> None:
    values = {"until": "2024-06-30", "cache": False, "executor": "gpu", "workspace": "us"}
    result = options_as_params.run(values)
    assert result.value() == ["2024-06-30", False, "gpu", "us"] and _caches(result) == {"echo": "miss"}
    assert options_as_params(values, cache=False).value() == ["2024-06-30", False, "gpu", "us"]
    partial = options_as_params.run({"until": "2023-01-01"}, until="echo")
    assert partial.value()[0] == "2023-01-01" and list(partial.steps) == ["echo"]


def test_unknown_missing_and_misplaced_parameters_are_clear_errors(workspace: Path, tmp_path: Path) -> None:
    mod = _module(tmp_path, "flow_d")
    with pytest.raises(ValidationError, match=r"Pipeline 'flow' has no parameter 'nn'\. Did you mean 'n'\? "
                                              r"Parameters: n\."):
        mod.flow.run({"nn": 6})
    with pytest.raises(ValidationError, match=r"has no parameters 'nn', 'zzz'\. Did you mean 'n' for 'nn'\?"):
        mod.flow.run({"nn": 6, "zzz": 1})
    with pytest.raises(ValidationError, match=r"takes its parameters as one mapping, not int; "
                                              r"e\.g\. flow\.run\(\{'n': 5\}\)"):
        mod.flow.run(6)  # type: ignore[arg-type]

    @shipyard.pipeline
    def needs(x: int):
        return add_one(x)

    with pytest.raises(ValidationError, match=r"needs a value for parameter 'x': pass run\(\{'x': VALUE\}\)"):
        needs.run()
    assert shipyard.search_runs(experiment="pipelines") == []


def test_param_values_that_do_not_fit_the_declared_type_name_the_parameter(workspace: Path) -> None:
    from shipyard.pipelines.loader import parse_params

    @shipyard.pipeline
    def typed(n: int = 5, rate: float = 0.5, strict: bool = False, label: str = "x", cols: list[str] | None = None):
        return add_one(n)

    assert parse_params(typed, ["n=7", "rate=1", "strict=true", "label=007", 'cols=["a"]']) == \
        {"n": 7, "rate": 1.0, "strict": True, "label": "007", "cols": ["a"]}
    for item, expected in [("n=abc", "a whole number; e.g. --param n=5"), ("n=2.5", "a whole number"),
                           ("rate=fast", "a number; e.g. --param rate=0.5"), ("strict=maybe", "true or false"),
                           ("n=true", "a whole number"), ("cols=a,b", "a JSON list")]:
        name, _, text = item.partition("=")
        with pytest.raises(ValidationError, match=rf"--param {name}={text}: the pipeline's parameter '{name}' is "
                                                  rf"declared \w+, so its value must be {expected}"):
            parse_params(typed, [item])
