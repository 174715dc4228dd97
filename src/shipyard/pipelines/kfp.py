"""Export a pipeline as a Kubeflow Pipelines v2 pipeline spec (IR YAML): one container task per step,
each running `shipyard pipeline run REF --until STEP`. Step outputs travel through Shipyard's stores (a
task's upstream steps are cache hits), so Kubeflow only orders the tasks."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import yaml

from shipyard.errors import ValidationError
from shipyard.pipelines.loader import check_params, parameters
from shipyard.pipelines.runner import topological_order
from shipyard.pipelines.steps import Pipeline

SCHEMA_VERSION = "2.1.0"
_TYPES: dict[type, str] = {bool: "BOOLEAN", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", str: "STRING",
                           list: "LIST", tuple: "LIST", dict: "STRUCT"}


def compile_kfp(pipeline: Pipeline, params: dict[str, Any], *, image: str, ref: str) -> dict[str, Any]:
    """The KFP v2 pipeline spec of PIPELINE traced with PARAMS; its tasks run REF in IMAGE."""
    from shipyard._version import __version__

    if not image.strip():
        raise ValidationError("The Kubeflow export needs a container image with Shipyard and the pipeline's code, "
                              "e.g. --image ghcr.io/acme/train:1.4.")
    check_params(pipeline, params)
    nodes, _ = pipeline.build(**params)
    order = topological_order(nodes)
    inputs = pipeline_inputs(pipeline, params)
    names = task_names(order)
    tasks: dict[str, Any] = {}
    components: dict[str, Any] = {}
    executors: dict[str, Any] = {}
    for node_id in order:
        task = names[node_id]
        command = ["shipyard", "pipeline", "run", ref, "--until", node_id]
        for name in inputs:
            command += ["--param", f"{name}={{{{$.inputs.parameters['{name}']}}}}"]
        executors[f"exec-{task}"] = {"container": {"image": image, "command": command}}
        component: dict[str, Any] = {"executorLabel": f"exec-{task}"}
        spec: dict[str, Any] = {
            "taskInfo": {"name": node_id},
            "componentRef": {"name": f"comp-{task}"},
            # Shipyard decides hit or miss with the reason; Kubeflow's own cache would skip a task whose
            # code changed inside an image with the same tag.
            "cachingOptions": {"enableCache": False},
        }
        if inputs:
            component["inputDefinitions"] = {"parameters": {
                n: {"parameterType": i["parameterType"]} for n, i in inputs.items()}}
            spec["inputs"] = {"parameters": {n: {"componentInputParameter": n} for n in inputs}}
        if nodes[node_id].upstream:
            spec["dependentTasks"] = sorted(names[u] for u in nodes[node_id].upstream)
        components[f"comp-{task}"] = component
        tasks[task] = spec
    root: dict[str, Any] = {"dag": {"tasks": tasks}}
    if inputs:
        root["inputDefinitions"] = {"parameters": {n: {**i, "isOptional": True} for n, i in inputs.items()}}
    info = {"name": _k8s_name(pipeline.name) or "pipeline", "displayName": pipeline.name}
    description = (inspect.getdoc(pipeline.fn) or "").strip()
    if description:
        info["description"] = description
    return {
        "pipelineInfo": info,
        "root": root,
        "components": components,
        "deploymentSpec": {"executors": executors},
        "schemaVersion": SCHEMA_VERSION,
        "sdkVersion": f"shipyard-{__version__}",
    }


def write_kfp(pipeline: Pipeline, params: dict[str, Any], path: str | Path, *, image: str, ref: str) -> dict[str, Any]:
    """Compile and write the spec as YAML to PATH (what `kfp` uploads and the Kubeflow UI accepts)."""
    spec = compile_kfp(pipeline, params, image=image, ref=ref)
    header = ["# PIPELINE DEFINITION", f"# Name: {spec['pipelineInfo']['name']}"]
    if "description" in spec["pipelineInfo"]:
        header.append(f"# Description: {spec['pipelineInfo']['description'].splitlines()[0]}")
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    if declared:
        header.append("# Inputs:")
        header += [f"#    {n}: {i['parameterType']} [Default: {json.dumps(i['defaultValue'])}]" for n, i in declared.items()]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(header) + "\n" + yaml.safe_dump(spec, sort_keys=True, allow_unicode=True))
    return spec


def pipeline_inputs(pipeline: Pipeline, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Pipeline parameters as KFP input parameters: the given value (else the default) is the default.
    A parameter whose value is None is left out, so each task uses the function's default."""
    declared = parameters(pipeline)
    inputs: dict[str, dict[str, Any]] = {}
    for name in [*declared, *(k for k in params if k not in declared)]:
        p = declared.get(name)
        value = params.get(name, p.default if p is not None else None)
        if value is None:
            if name in params and p is not None and p.default is not None:
                raise ValidationError(f"Parameter '{name}' is None, which a Kubeflow input cannot hold; give a "
                                      f"value or leave it out to use the default {p.default!r}.")
            continue
        kind: type = type(value)
        if p is not None and p.type is float and kind is int:
            kind, value = float, float(value)
        elif p is not None and p.type is not None and isinstance(value, p.type):
            kind = p.type
        if kind not in _TYPES or not _json_able(value):
            raise ValidationError(f"Parameter '{name}' = {value!r} cannot be a Kubeflow pipeline input; inputs are "
                                  "numbers, strings, booleans, lists and dicts of them.")
        inputs[name] = {"parameterType": _TYPES[kind], "defaultValue": list(value) if isinstance(value, tuple) else value}
    return inputs


def task_names(order: list[str]) -> dict[str, str]:
    """Step ids → Kubeflow task names (lower-case letters, digits and '-', as the kfp SDK makes them)."""
    names: dict[str, str] = {}
    for node_id in order:
        base = _k8s_name(node_id) or "step"
        name, n = base, 2
        while name in names.values():
            name, n = f"{base}-{n}", n + 1
        names[node_id] = name
    return names


def repeated_steps(pipeline: Pipeline, params: dict[str, Any]) -> list[str]:
    """Steps with caching off that other steps need: every downstream Kubeflow task runs them again."""
    nodes, _ = pipeline.build(**params)
    needed = {u for node in nodes.values() for u in node.upstream}
    return [n for n in topological_order(nodes) if n in needed and not nodes[n].step.options.cache]


def _k8s_name(name: str) -> str:
    return re.sub("-+", "-", re.sub("[^-0-9a-z]+", "-", name.lower())).strip("-")


def _json_able(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False
