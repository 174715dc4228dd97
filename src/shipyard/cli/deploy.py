"""`shipyard deploy export`: a container build context and Kubernetes manifests serving one model version."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from shipyard.cli.output import console, err_console, print_json
from shipyard.cli.workspace import context

app = typer.Typer(help="Deploying models: container images and Kubernetes manifests.", no_args_is_help=True)


@app.command("export")
def export(
    ref: Annotated[str, typer.Argument(help="The model version or alias to serve: credit/3, credit@champion.")],
    out: Annotated[str, typer.Option("--out", "-o", help="The folder to write (created; see --force).")],
    registry: Annotated[str, typer.Option(
        "--registry", help="bundled: the model and a workspace holding only it go into the image; shared: the "
                           "image reads this workspace's shared stores, given by a Secret.")] = "bundled",
    name: Annotated[Optional[str], typer.Option(
        "--name", help="The Kubernetes objects' name (default: the model's name).")] = None,
    namespace: Annotated[Optional[str], typer.Option(
        "--namespace", "-n", help="The namespace of the objects (default: none, kubectl's current one).")] = None,
    image: Annotated[Optional[str], typer.Option(
        "--image", help="The image the Deployment runs (default: NAME:VERSION).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", help="Server processes per pod (`shipyard serve --workers`); memory scales with it.")] = 1,
    cpu: Annotated[str, typer.Option("--cpu", help="CPU request per pod, e.g. 500m or 2.")] = "500m",
    memory: Annotated[Optional[str], typer.Option(
        "--memory", help="Memory request per pod (e.g. 1Gi) instead of the one measured by the infrastructure "
                         "gate.")] = None,
    min_replicas: Annotated[int, typer.Option("--min-replicas", help="Fewest pods the autoscaler keeps.")] = 1,
    max_replicas: Annotated[int, typer.Option("--max-replicas", help="Most pods the autoscaler starts.")] = 3,
    target_cpu: Annotated[int, typer.Option(
        "--target-cpu", help="Average CPU use (percent of the request) the autoscaler aims at.")] = 70,
    secret: Annotated[Optional[str], typer.Option(
        "--secret", help="With --registry shared: the Secret holding SHIPYARD_STORE_URL and SHIPYARD_ARTIFACTS_URL "
                         "(default: NAME-registry).")] = None,
    base_image: Annotated[Optional[str], typer.Option(
        "--base-image", help="The image to build on (default: python:X.Y-slim of the recorded Python).")] = None,
    wheels: Annotated[Optional[list[str]], typer.Option(
        "--wheel", help="A wheel to install from in the image, e.g. Shipyard built from a checkout "
                        "(repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists and is not empty.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Write a Dockerfile (pinned to the version's recorded environment) and Kubernetes manifests."""
    from shipyard.serving.export import ExportOptions
    from shipyard.serving.export import export as write_export

    if registry not in ("bundled", "shared"):
        raise typer.BadParameter(f"{registry!r} is not one of 'bundled', 'shared'.", param_hint="--registry")
    options = ExportOptions(
        registry="shared" if registry == "shared" else "bundled", name=name, namespace=namespace, image=image,
        workers=workers, cpu=cpu, memory=memory, min_replicas=min_replicas, max_replicas=max_replicas,
        target_cpu_percent=target_cpu, secret=secret, base_image=base_image, wheels=tuple(wheels or ()), force=force,
    )
    done = write_export(context(), ref, out, options)
    for warning in done.warnings:
        err_console().print(f"Warning: {warning}")
    if as_json:
        print_json(done.to_dict())
        return
    show = console()
    carried = ("the model and a workspace holding only it are in the image" if done.registry == "bundled"
               else f"the image reads the shared stores from the Secret {done.secret}")
    show.print(f"Exported {done.version_id} to {done.out} ({carried}).")
    show.print(f"Image {done.image} from {done.base_image}; memory request {done.memory_request_mib}Mi, limit "
               f"{done.memory_limit_mib}Mi ({done.memory_source}).")
    show.print("Next:")
    show.print(f"  docker build -t {done.image} {done.out}")
    if done.secret:
        show.print(f"  kubectl create secret generic {done.secret} --from-literal=SHIPYARD_STORE_URL=… "
                   "--from-literal=SHIPYARD_ARTIFACTS_URL=…")
    show.print(f"  kubectl apply -f {done.out}/kubernetes/")
