"""`shipyard deploy create|canary|shadow|ab|promote|rollback|status|history|list|delete|apply`: deployments whose
routes change through audited revisions; and `shipyard deploy export`: a container build context and Kubernetes
manifests serving one model version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.text import Text

from shipyard.cli.output import console, err_console, print_json, table, when
from shipyard.cli.workspace import context

if TYPE_CHECKING:
    from shipyard.context import Context
    from shipyard.deployments.records import Deployment, Revision

app = typer.Typer(help="Deployments (canary, shadow, A/B, promote, rollback), container images and Kubernetes "
                       "manifests.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Name = Annotated[str, typer.Argument(help="The deployment's name, e.g. credit-api.")]
Reason = Annotated[Optional[str], typer.Option("--reason", help="Why: kept in the history and the audit trail.")]


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


# -- deployments -------------------------------------------------------------------------------


def _changed(revision: Revision, as_json: bool) -> None:
    if as_json:
        print_json(revision.to_dict())
        return
    console().print(f"Deployment '{revision.deployment}' is at revision {revision.revision} ({revision.strategy}): "
                    f"{_routes(revision)}.")


def _routes(revision: Revision) -> str:
    if not revision.routes:
        return "no routes"
    return ", ".join(f"{r.label} {r.version_id}" + (" (copy of every request)" if r.role == "shadow" else f" {r.weight}%")
                     for r in revision.routes)


@app.command("create")
def create(
    name: Name,
    model: Annotated[str, typer.Option("--model", help="The version to serve: credit/3, or credit@champion "
                                                       "(resolved to its version now).")],
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a deployment whose primary takes every request."""
    from shipyard.deployments.strategies import create as run

    _changed(run(context(), name, model, reason=reason), as_json)


@app.command("canary")
def canary(
    name: Name,
    model: Annotated[str, typer.Option("--model", help="The version to try: credit/4 or credit@challenger.")],
    percent: Annotated[Optional[int], typer.Option(
        "--percent", help="Share of the requests, 1-100; 100 promotes it. With --auto: the policy's steps.")] = None,
    sticky_by: Annotated[Optional[str], typer.Option(
        "--sticky-by", help="A request header or input field: the same value always reaches the same version.")] = None,
    auto: Annotated[bool, typer.Option(
        "--auto", help="Drive the canary through the policy's steps (deploy.NAME in shipyard.yaml), judging it "
                       "against the primary from the prediction log; promote it or roll it back.")] = False,
    poll_seconds: Annotated[float, typer.Option("--poll-seconds", min=0.1,
                                                help="With --auto: how often to look at the numbers.")] = 5.0,
    timeout: Annotated[Optional[float], typer.Option(
        "--timeout", min=1.0, help="With --auto: roll back when no decision came within this many seconds.")] = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Send a share of the requests to another version (or change the share of the canary in force); with
    --auto, advance it step by step and promote it, or roll it back, on the numbers. Exit code 3 when rolled back."""
    from shipyard.errors import ValidationError

    if auto == (percent is not None):
        raise ValidationError("Give --percent for a canary you drive yourself, or --auto to let the analysis "
                              "drive it (through the policy's steps), not both and not neither.")
    if not auto:
        from shipyard.deployments.strategies import canary as run

        assert percent is not None
        _changed(run(context(), name, model, percent, sticky_by=sticky_by, reason=reason), as_json)
        return
    from shipyard.serving.canary import run_canary

    final = run_canary(context(), name, model, poll_seconds=poll_seconds, timeout=timeout, sticky_by=sticky_by,
                       report=lambda line: err_console().print(line, highlight=False, markup=False))
    _changed(final, as_json)
    if final.analysis and final.analysis.get("decision") == "rollback":
        raise typer.Exit(3)


@app.command("shadow")
def shadow(
    name: Name,
    model: Annotated[Optional[str], typer.Option(
        "--model", help="The version that gets a copy of every request (any registered version).")] = None,
    off: Annotated[bool, typer.Option("--off", help="Remove the shadow.")] = False,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy every request to another version; its answers are logged and never returned."""
    from shipyard.deployments.strategies import shadow as attach
    from shipyard.deployments.strategies import unshadow
    from shipyard.errors import ValidationError

    if off == (model is not None):
        raise ValidationError(f"Give --model VERSION to attach a shadow, or --off to remove it (got "
                              f"{'both' if off else 'neither'}).")
    ctx = context()
    _changed(unshadow(ctx, name, reason=reason) if off else attach(ctx, name, str(model), reason=reason), as_json)


def parse_variant(text: str) -> tuple[str, str, int]:
    """LABEL=MODEL/VERSION:WEIGHT (or LABEL=MODEL@ALIAS:WEIGHT) → (label, ref, weight)."""
    from shipyard.errors import ValidationError

    label, eq, rest = text.partition("=")
    ref, colon, weight = rest.rpartition(":")
    if not eq or not colon or not label or not ref or not weight.strip().isdigit():
        raise ValidationError(f"Invalid --variant {text!r}: expected LABEL=MODEL/VERSION:WEIGHT, e.g. a=credit/3:50.",
                              variant=text)
    return label, ref, int(weight)


@app.command("ab")
def ab(
    name: Name,
    variant: Annotated[list[str], typer.Option(
        "--variant", help="LABEL=MODEL/VERSION:WEIGHT, e.g. a=credit/3:50 (repeat; weights sum to 100).")],
    sticky_by: Annotated[Optional[str], typer.Option(
        "--sticky-by", help="A request header or input field: the same value always reaches the same variant.")] = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Split the requests between labelled variants."""
    from shipyard.deployments.strategies import ab as run
    from shipyard.errors import ValidationError

    variants: dict[str, tuple[str, int]] = {}
    for text in variant:
        label, ref, weight = parse_variant(text)
        if label in variants:
            raise ValidationError(f"Variant label {label!r} is given twice (--variant {text}); give each variant its "
                                  "own label.", label=label)
        variants[label] = (ref, weight)
    _changed(run(context(), name, variants, sticky_by=sticky_by, reason=reason), as_json)


@app.command("promote")
def promote(
    name: Name,
    variant: Annotated[Optional[str], typer.Option("--variant", help="For an A/B test: the variant that wins.")] = None,
    reason: Reason = None,
    as_json: JsonFlag = False,
) -> None:
    """Make the canary (or an A/B variant) the only route."""
    from shipyard.deployments.strategies import promote as run

    _changed(run(context(), name, variant=variant, reason=reason), as_json)


@app.command("rollback")
def rollback(name: Name, reason: Reason = None, as_json: JsonFlag = False) -> None:
    """Go back to the routes of the previous revision."""
    from shipyard.deployments.strategies import rollback as run

    _changed(run(context(), name, reason=reason), as_json)


@app.command("delete")
def delete(name: Name, reason: Reason = None, as_json: JsonFlag = False) -> None:
    """Stop routing; the history stays."""
    from shipyard.deployments.strategies import delete as run

    _changed(run(context(), name, reason=reason), as_json)


@app.command("apply")
def apply(name: Name, as_json: JsonFlag = False) -> None:
    """Make the deployment what deploy.NAME of shipyard.yaml declares (nothing changes when it already is)."""
    from shipyard.deployments.analysis import apply as run

    _changed(run(context(), name), as_json)


@app.command("status")
def status(name: Name, as_json: JsonFlag = False) -> None:
    """The revision in force, its routes, and the requests each route answered since."""
    from shipyard.deployments.revisions import get_deployment

    ctx = context()
    found = get_deployment(ctx, name)
    live = route_numbers(ctx, found)
    if as_json:
        print_json({**found.to_dict(), "live": live})
        return
    rev = found.current
    out = console()
    out.print(Text.assemble((found.name, "bold"), f"  revision {rev.revision}  {rev.strategy}"
                            + (f"  sticky by {rev.sticky_by}" if rev.sticky_by else "")))
    out.print(f"  since {when(rev.created)} by {rev.actor}: {rev.reason or '-'}")
    rows = [[r.label, r.role, r.version_id, "copy" if r.role == "shadow" else f"{r.weight}%",
             live[i]["requests"], live[i]["p50_ms"], live[i]["p99_ms"]] for i, r in enumerate(rev.routes)]
    out.print(table(None, ["route", "role", "version", "weight", "requests", "p50 ms", "p99 ms"], rows))


@app.command("compare")
def compare(name: Name, as_json: JsonFlag = False) -> None:
    """How the shadow answered the requests the primary answered: agreement (or differences), latency, errors."""
    from shipyard.serving.experiments import compare_shadow

    found = compare_shadow(context(), name)
    if as_json:
        print_json(found.to_dict())
        return
    out = console()
    out.print(Text.assemble((name, "bold"), f"  primary {found.primary}  shadow {found.shadow}  "
                                            f"{found.pairs} requests answered by both"))
    if found.agreement is not None:
        out.print(f"  agreement {found.agreement:.1%} of rows")
    if found.mean_difference is not None:
        out.print(f"  absolute difference: mean {found.mean_difference:.4g}, max {found.max_difference:.4g}")
    ms = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    out.print(table(None, ["", "p50 ms", "p99 ms"], [["primary", ms(found.primary_p50_ms), ms(found.primary_p99_ms)],
                                                     ["shadow", ms(found.shadow_p50_ms), ms(found.shadow_p99_ms)]]))
    out.print(f"  shadow errors: {found.shadow_errors}" + (f" ({'; '.join(found.error_samples)})"
                                                          if found.error_samples else ""))


@app.command("report")
def report(name: Name, as_json: JsonFlag = False) -> None:
    """Per A/B variant: requests, p99 latency and performance on feedback with 95 % intervals, and whether the
    variants differ significantly."""
    from shipyard.serving.experiments import ab_report

    found = ab_report(context(), name)
    if as_json:
        print_json(found.to_dict())
        return
    fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    console().print(table(f"{name}: {found.metric} on feedback",
                          ["variant", "version", "requests", "p99 ms", "labelled", found.metric, "95% interval"],
                          [[v.label, v.version, v.requests, fmt(v.p99_ms), v.labelled, fmt(v.score),
                            "-" if v.low is None else f"{v.low:.4g} .. {v.high:.4g}"] for v in found.variants]))
    console().print(f"  {found.verdict}" + (f" ({found.test})" if found.test else ""))


def route_numbers(ctx: Context, deployment: Deployment) -> list[dict[str, Any]]:
    """Per route: the requests its version answered since the revision took effect, and their latency, from the
    prediction log (only this deployment's requests once the server logs the deployment's name)."""
    import numpy as np

    from shipyard.serving.batches import read_predictions

    rev = deployment.current
    out = []
    for route in rev.routes:
        frame = read_predictions(ctx, route.model, route.version, rev.created / 1000,
                                 columns=["request_id", "latency_ms", "deployment", "deployment_route"])
        if "deployment" in frame.columns:
            frame = frame[frame["deployment"] == deployment.name]
        if "deployment_route" in frame.columns:
            frame = frame[frame["deployment_route"] == route.label]
        latency = frame.drop_duplicates("request_id")["latency_ms"].to_numpy(dtype=float) if len(frame) else np.array([])
        out.append({"label": route.label, "version_id": route.version_id, "requests": int(len(latency)),
                    "rows": int(len(frame)),
                    "p50_ms": round(float(np.percentile(latency, 50)), 3) if len(latency) else None,
                    "p99_ms": round(float(np.percentile(latency, 99)), 3) if len(latency) else None})
    return out


@app.command("history")
def history(name: Name, as_json: JsonFlag = False) -> None:
    """Every revision of the deployment, newest first, with automated decisions and their numbers."""
    from shipyard.deployments.revisions import history as read

    found = read(context(), name)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    rows = []
    for r in found:
        decision = (r.analysis or {}).get("decision")
        rows.append([r.revision, when(r.created), r.actor, r.strategy, _routes(r), r.reason,
                     decision or ("policy recorded" if r.analysis else "")])
    console().print(table(f"history of {name}", ["revision", "when", "by", "strategy", "routes", "reason", "analysis"],
                          rows))


@app.command("list")
def list_deployments(
    include_deleted: Annotated[bool, typer.Option("--all", help="Also deleted deployments.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The deployments with their revision in force."""
    from shipyard.deployments.revisions import list_deployments as find

    found = find(context(), include_deleted=include_deleted)
    if as_json:
        print_json([d.to_dict() for d in found])
        return
    rows = [[d.name, d.revision, d.strategy, _routes(d.current), when(d.updated)] for d in found]
    console().print(table(None, ["deployment", "revision", "strategy", "routes", "changed"], rows))
    if not rows:
        console().print("No deployments yet. Create one with `shipyard deploy create NAME --model credit@champion`.")
