"""The Kubeflow Pipelines v2 export: the IR the kfp SDK accepts, a DAG equal to ours, and tasks that,
run in the order Kubeflow would, each run their step while their upstream steps are cache hits."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.errors import ValidationError
from shipyard.pipelines.kfp import compile_kfp, repeated_steps, task_names, write_kfp
from shipyard.pipelines.loader import load_pipeline

FLOW = '''
import shipyard


@shipyard.step
def source(n: int):
    return list(range(n))


@shipyard.step
def scale(values, factor: float):
    return [v * factor for v in values]


@shipyard.step
def shift(values):
    return [v + 1 for v in values]


@shipyard.step
def join(a, b, c, label: str):
    return {"label": label, "total": sum(a) + sum(b) + sum(c)}


@shipyard.pipeline
def fan_flow(n: int = 4, factor: float = 2.0, label: str = "base", strict: bool = False, notes=None):
    """Fan out from one source into three branches and join them."""
    values = source(n)
    return join(scale(values, factor), shift(values), shift(values), label)


@shipyard.step(cache=False)
def clock():
    return 1


@shipyard.pipeline
def uncached():
    return shift(clock())
'''
IMAGE = "registry.example/acme/train:1.4"
PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}")


@pytest.fixture
def flow_ref(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader puts the file's folder on sys.path
    path = tmp_path / "kfp_flow.py"
    path.write_text(FLOW)
    yield f"{path}:fan_flow"
    sys.modules.pop("kfp_flow", None)
    sys.modules.pop("_shipyard_pipeline_kfp_flow", None)


# -- the spec ----------------------------------------------------------------------------------------


def test_the_dag_parameters_and_containers_match_the_pipeline(flow_ref: str) -> None:
    pipeline = load_pipeline(flow_ref)
    spec = compile_kfp(pipeline, {"label": "churn"}, image=IMAGE, ref=flow_ref)
    nodes, _ = pipeline.build(label="churn")
    tasks = spec["root"]["dag"]["tasks"]
    # shift is called twice: its second node is shift_2, a Kubernetes-safe task name shift-2
    assert list(nodes) == ["source", "scale", "shift", "shift_2", "join"]
    assert {t["taskInfo"]["name"]: sorted(t.get("dependentTasks", [])) for t in tasks.values()} == {
        "source": [], "scale": ["source"], "shift": ["source"], "shift_2": ["source"],
        "join": ["scale", "shift", "shift-2"],
    }
    assert set(tasks) == {"source", "scale", "shift", "shift-2", "join"}
    for task in tasks.values():
        executor = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        container = spec["deploymentSpec"]["executors"][executor]["container"]
        assert container["image"] == IMAGE
        assert container["command"][:6] == ["shipyard", "pipeline", "run", flow_ref, "--until", task["taskInfo"]["name"]]
        assert container["command"][6:] == [
            "--param", "n={{$.inputs.parameters['n']}}", "--param", "factor={{$.inputs.parameters['factor']}}",
            "--param", "label={{$.inputs.parameters['label']}}", "--param", "strict={{$.inputs.parameters['strict']}}",
        ]
        assert set(task["inputs"]["parameters"]) == {"n", "factor", "label", "strict"}
        assert task["cachingOptions"] == {"enableCache": False}  # Shipyard's cache decides
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert declared == {  # `notes` defaults to None: left out, so each task uses the function's default
        "n": {"parameterType": "NUMBER_INTEGER", "defaultValue": 4, "isOptional": True},
        "factor": {"parameterType": "NUMBER_DOUBLE", "defaultValue": 2.0, "isOptional": True},
        "label": {"parameterType": "STRING", "defaultValue": "churn", "isOptional": True},
        "strict": {"parameterType": "BOOLEAN", "defaultValue": False, "isOptional": True},
    }
    assert spec["pipelineInfo"] == {"name": "fan-flow", "displayName": "fan_flow",
                                    "description": "Fan out from one source into three branches and join them."}
    assert spec["schemaVersion"] == "2.1.0" and spec["sdkVersion"].startswith("shipyard-")


def test_the_kfp_sdk_accepts_the_spec_and_sees_the_same_dag(flow_ref: str, tmp_path: Path) -> None:
    pytest.importorskip("kfp")
    from google.protobuf import json_format
    from kfp import compiler, components, dsl
    from kfp.pipeline_spec import pipeline_spec_pb2

    path = tmp_path / "out" / "pipeline.yaml"
    written = write_kfp(load_pipeline(flow_ref), {}, path, image=IMAGE, ref=flow_ref)
    text = path.read_text()
    assert text.startswith("# PIPELINE DEFINITION\n# Name: fan-flow\n# Description: Fan out")
    assert yaml.safe_load(text) == written

    # every field is one the PipelineSpec message has, with the right type
    spec = json_format.ParseDict(yaml.safe_load(text), pipeline_spec_pb2.PipelineSpec())
    assert {name: sorted(task.dependent_tasks) for name, task in spec.root.dag.tasks.items()} == {
        "source": [], "scale": ["source"], "shift": ["source"], "shift-2": ["source"],
        "join": ["scale", "shift", "shift-2"],
    }
    assert spec.root.input_definitions.parameters["factor"].parameter_type == \
        pipeline_spec_pb2.ParameterType.NUMBER_DOUBLE
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]  # a Struct in the message
    for task in spec.root.dag.tasks.values():
        label = spec.components[task.component_ref.name].executor_label
        executor = json_format.ParseDict(executors[label],
                                         pipeline_spec_pb2.PipelineDeploymentConfig.ExecutorSpec())
        assert executor.container.image == IMAGE
        assert list(executor.container.command[:6]) == ["shipyard", "pipeline", "run", flow_ref, "--until",
                                                        task.task_info.name]

    # the SDK loads it as a pipeline component with our parameters, and compiles it inside another pipeline
    component = components.load_component_from_file(str(path))
    assert component.name == "fan-flow"
    inputs = component.component_spec.inputs or {}
    assert {k: (v.type, v.default) for k, v in inputs.items()} == {
        "n": ("Integer", 4), "factor": ("Float", 2.0), "label": ("String", "base"), "strict": ("Boolean", False)}

    def outer(n: int = 9) -> None:
        component(n=n)

    outer.__annotations__ = {"n": int}  # the kfp SDK reads real types, not this module's postponed strings
    compiler.Compiler().compile(dsl.pipeline(name="outer")(outer), str(tmp_path / "outer.yaml"))
    nested = yaml.safe_load((tmp_path / "outer.yaml").read_text())
    inner = nested["components"]["comp-fan-flow"]["dag"]["tasks"]
    assert sorted(inner["join"]["dependentTasks"]) == ["scale", "shift", "shift-2"]
    assert nested["deploymentSpec"]["executors"]["exec-shift-2"]["container"]["image"] == IMAGE


# -- the tasks run as Kubeflow would run them --------------------------------------------------------


def _render(value: Any) -> str:
    """A parameter value as Kubeflow substitutes it into a command: JSON, whole numbers without '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else json.dumps(value)


def _kubeflow_order(tasks: dict[str, Any]) -> list[str]:
    done: list[str] = []
    while len(done) < len(tasks):
        ready = sorted(n for n, t in tasks.items() if n not in done and set(t.get("dependentTasks", [])) <= set(done))
        assert ready, "the task graph has a cycle"
        done.append(ready[0])
    return done


def test_each_task_runs_its_step_and_finds_its_upstream_steps_cached(
    workspace: Path, flow_ref: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipyard.cli.main import main

    spec = compile_kfp(load_pipeline(flow_ref), {}, image=IMAGE, ref=flow_ref)
    arguments = {"n": 3, "factor": 1.0}  # given when the run is submitted; the rest keep their defaults
    defaults = {k: v["defaultValue"] for k, v in spec["root"]["inputDefinitions"]["parameters"].items()}
    tasks = spec["root"]["dag"]["tasks"]
    seen: dict[str, dict[str, Any]] = {}
    for name in _kubeflow_order(tasks):
        task = tasks[name]
        executor = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        values = {k: {**defaults, **arguments}[v["componentInputParameter"]]
                  for k, v in task["inputs"]["parameters"].items()}
        command = [PLACEHOLDER.sub(lambda m, values=values: _render(values[m.group(1)]), part)
                   for part in spec["deploymentSpec"]["executors"][executor]["container"]["command"]]
        capsys.readouterr()
        assert main([*command[1:], "--json"]) == 0, capsys.readouterr().err
        steps = json.loads(capsys.readouterr().out)["steps"]
        seen[task["taskInfo"]["name"]] = {k: s["cache"] for k, s in steps.items()}
    # each task ran its own step; the steps before it, run by earlier tasks, were cache hits
    assert seen == {
        "source": {"source": "miss"},
        "scale": {"source": "hit", "scale": "miss"},
        "shift": {"source": "hit", "shift": "miss"},
        "shift_2": {"source": "hit", "shift_2": "hit"},  # the same step on the same input as shift
        "join": {"source": "hit", "scale": "hit", "shift": "hit", "shift_2": "hit", "join": "miss"},
    }
    import shipyard

    parents = shipyard.search_runs("tags.shipyard.kind = 'pipeline'", experiment="pipelines")
    assert len(parents) == 5 and all(p.params == {"n": "3", "factor": "1.0", "label": "base", "strict": "False"}
                                     for p in parents)


# -- names, notes and errors -------------------------------------------------------------------------


def test_task_names_are_kubernetes_safe_and_unique() -> None:
    assert task_names(["load_data", "Load_Data", "_", "train_2"]) == {
        "load_data": "load-data", "Load_Data": "load-data-2", "_": "step", "train_2": "train-2"}


def test_steps_with_caching_off_are_reported(flow_ref: str) -> None:
    uncached_ref = flow_ref.replace(":fan_flow", ":uncached")
    uncached = load_pipeline(uncached_ref)
    assert repeated_steps(uncached, {}) == ["clock"]  # the shift task runs clock again
    assert repeated_steps(load_pipeline(flow_ref), {}) == []
    spec = compile_kfp(uncached, {}, image=IMAGE, ref=uncached_ref)
    assert "inputDefinitions" not in spec["root"]  # no parameters, no inputs
    assert spec["root"]["dag"]["tasks"]["shift"]["dependentTasks"] == ["clock"]
    assert "inputs" not in spec["root"]["dag"]["tasks"]["shift"]


def test_compile_errors(flow_ref: str) -> None:
    pipeline = load_pipeline(flow_ref)
    with pytest.raises(ValidationError, match="needs a container image"):
        compile_kfp(pipeline, {}, image=" ", ref=flow_ref)
    with pytest.raises(ValidationError, match="has no parameter 'fctor'. Did you mean 'factor'"):
        compile_kfp(pipeline, {"fctor": 3.0}, image=IMAGE, ref=flow_ref)
    with pytest.raises(ValidationError, match="Parameter 'label' is None"):
        compile_kfp(pipeline, {"label": None}, image=IMAGE, ref=flow_ref)
    with pytest.raises(ValidationError, match="Parameter 'notes' = .* cannot be a Kubeflow pipeline input"):
        compile_kfp(pipeline, {"notes": object()}, image=IMAGE, ref=flow_ref)
