"""`shipyard pipeline run|compile`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.text import Text

from shipyard.cli.output import console, err_console, print_json, table
from shipyard.cli.workspace import context
from shipyard.errors import ValidationError

if TYPE_CHECKING:
    from shipyard.pipelines.runner import PipelineResult

app = typer.Typer(help="Training pipelines: run one here, or compile it for Kubeflow Pipelines.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RefArgument = Annotated[str, typer.Argument(help="The pipeline: package.module:attribute or path/to/file.py:attribute.")]
ParamOption = Annotated[
    Optional[list[str]],
    typer.Option("--param", "-p", help="NAME=VALUE (repeatable); numbers, booleans and JSON are parsed, e.g. n=5."),
]
TARGETS = ("kfp",)
STATUS_STYLE = {"finished": "green", "failed": "bold red", "skipped": "dim"}


@app.command("run")
def run(
    ref: RefArgument,
    param: ParamOption = None,
    executor: Annotated[str, typer.Option("--executor", help="local (threads here) or dask://HOST:PORT.")] = "local",
    until: Annotated[Optional[str], typer.Option("--until", help="Run only this step and the steps it needs.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step, even those with a cached result.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a pipeline: each step's status, cache hit or miss with the reason, and time (exit 1 if a step fails)."""
    from shipyard.pipelines.loader import load_pipeline, parse_params
    from shipyard.pipelines.runner import run_pipeline

    pipeline = load_pipeline(ref)
    params = parse_params(pipeline, param or [])
    result = run_pipeline(context(), pipeline, params, executor=executor, use_cache=not no_cache, until=until)
    if as_json:
        print_json(result.to_dict())
        return
    _print_result(result)


def _print_result(result: PipelineResult) -> None:
    rows = [[name, Text(s.status, style=STATUS_STYLE.get(s.status, "")), s.cache, s.reason, f"{s.seconds:.2f}", s.attempts]
            for name, s in result.steps.items()]
    out = console()
    out.print(table(f"pipeline {result.name}", ["step", "status", "cache", "reason", "seconds", "attempts"], rows))
    hits = sum(s.cache == "hit" for s in result.steps.values())
    out.print(f"Pipeline '{result.name}' {result.status}: run {result.run_id}, {len(result.steps)} step(s), "
              f"{hits} cache hit(s).")


@app.command("compile")
def compile_(
    ref: RefArgument,
    target: Annotated[str, typer.Option("--target", help="What to compile for: kfp (Kubeflow Pipelines v2).")],
    output: Annotated[str, typer.Option("--output", "-o", help="YAML file to write.")] = "pipeline.yaml",
    image: Annotated[Optional[str], typer.Option("--image", help="Container image with Shipyard and the pipeline's code.")] = None,
    param: ParamOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Compile a pipeline for an orchestrator: one task per step, each running `shipyard pipeline run --until STEP`."""
    from shipyard.pipelines.kfp import repeated_steps, write_kfp
    from shipyard.pipelines.loader import load_pipeline, parse_params

    if target not in TARGETS:
        raise ValidationError(f"Unknown target {target!r}; the supported target is 'kfp' (Kubeflow Pipelines v2), "
                              "e.g. --target kfp -o pipeline.yaml.")
    if not image:
        raise ValidationError("Compiling for Kubeflow needs --image: a container image with Shipyard and the "
                              "pipeline's code, where each task runs `shipyard pipeline run`, e.g. --image "
                              "ghcr.io/acme/train:1.4.")
    pipeline = load_pipeline(ref)
    params = parse_params(pipeline, param or [])
    spec = write_kfp(pipeline, params, output, image=image, ref=ref)
    tasks = spec["root"]["dag"]["tasks"]
    repeated = repeated_steps(pipeline, params)
    if as_json:
        print_json({"target": target, "output": output, "pipeline": spec["pipelineInfo"]["name"], "image": image,
                    "parameters": spec["root"].get("inputDefinitions", {}).get("parameters", {}),
                    "tasks": {name: {"step": t["taskInfo"]["name"], "after": t.get("dependentTasks", [])}
                              for name, t in tasks.items()},
                    "repeated_steps": repeated})
        return
    console().print(f"Wrote Kubeflow pipeline '{spec['pipelineInfo']['name']}' ({len(tasks)} tasks, image {image}) "
                    f"to {output}.")
    for step in repeated:
        err_console().print(f"Note: step '{step}' has caching off, so every task downstream of it runs it again.")
