"""`shipyard models list|show|versions|register|alias set|alias delete|alias history|archive|gate|waive|promote`
and `shipyard review request|approve|reject|list`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.text import Text

from shipyard.cli.output import cell, console, print_json, table, when
from shipyard.cli.workspace import context

app = typer.Typer(help="The model registry: versions, aliases, gates, promotion.", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases such as champion and challenger, with their history.", no_args_is_help=True)
app.add_typer(alias_app, name="alias")
review_app = typer.Typer(help="Reviews of model versions (ethical, security, …).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
STATUS_STYLE = {"PASS": "green", "NO_BASELINE": "cyan", "WAIVED": "yellow", "FAIL": "bold red", "NOT RUN": "dim"}


@app.command("list")
def list_models(as_json: JsonFlag = False) -> None:
    """Registered models with their latest version and aliases."""
    from shipyard.models.registry import list_models as find

    found = find(context())
    if as_json:
        print_json(found)
        return
    rows = [[m["name"], m["versions"], m["latest"], ", ".join(f"{a}→{v}" for a, v in sorted(m["aliases"].items())),
             m["archived"]] for m in found]
    console().print(table(None, ["model", "versions", "latest", "aliases", "archived"], rows))
    if not rows:
        console().print("No models yet. Register one with run.log_model(model, 'name', input_example=df).")


@app.command("versions")
def versions(name: Annotated[str, typer.Argument(help="Model name.")], as_json: JsonFlag = False) -> None:
    """The versions of a model, newest first."""
    from shipyard.models.registry import list_versions

    found = list_versions(context(), name)
    if as_json:
        print_json([v.to_dict() for v in found])
        return
    rows = [[v.version_id, when(v.created), v.created_by, v.flavor, v.status, ", ".join(v.aliases),
             (v.run_id or "-")[:8], v.dataset_version] for v in found]
    console().print(table(None, ["version", "registered", "by", "flavor", "status", "aliases", "run", "data"], rows))


@app.command("show")
def show(ref: Annotated[str, typer.Argument(help="NAME/VERSION, NAME@ALIAS or models:/… .")], as_json: JsonFlag = False) -> None:
    """One version: artifact, signature, environment, metrics, lineage, gates and reviews."""
    from shipyard.gates.gating import latest_gates
    from shipyard.gates.promotion import check_promotion
    from shipyard.models.registry import get_model_version
    from shipyard.models.reviews import list_reviews

    ctx = context()
    v = get_model_version(ctx, ref)
    gates = latest_gates(ctx, v.version_id)
    state = check_promotion(ctx, v.version_id)
    reviews = list_reviews(ctx, v.version_id)
    if as_json:
        print_json({**v.to_dict(), "gates": {g: s.to_dict() for g, s in gates.items()},
                    "promotion": state.to_dict(), "reviews": [r.to_dict() for r in reviews]})
        return
    out = console()
    out.print(Text.assemble((v.version_id, "bold"), f"  {v.flavor} {v.details.get('class', '')}  ({v.status})"))
    out.print(f"  registered  {when(v.created)} by {v.created_by}")
    out.print(f"  aliases     {', '.join(v.aliases) or '-'}")
    out.print(f"  artifact    sha256 {v.artifact_digest} ({v.artifact_size} bytes)")
    out.print(f"  run         {v.run_id or '-'}   data {v.dataset_version or '-'}")
    packages = ", ".join(f"{k} {val}" for k, val in v.environment.get("packages", {}).items())
    out.print(f"  environment python {v.environment.get('python')}  {packages}")
    if v.signature:
        inputs = ", ".join(f"{c['name']}:{c['kind']}" for c in v.signature["inputs"][:12])
        more = len(v.signature["inputs"]) - 12
        out.print(f"  inputs      {inputs}{f' … (+{more})' if more > 0 else ''}")
    if v.metrics:
        out.print(table("metrics (from the run)", ["metric", "value"], [[k, val] for k, val in sorted(v.metrics.items())]))
    if gates:
        shown = {g: ("STALE" if state.gates.get(g) == "STALE" else s.status) for g, s in gates.items()}
        rows = [[g, Text(shown[g], style=STATUS_STYLE.get(shown[g], "yellow")), when(s.created),
                 f"{s.baseline_version and f'{v.model}/{s.baseline_version}' or '-'}",
                 s.waived_by and f"{s.waived_by}: {s.waiver_reason}" or ""] for g, s in gates.items()]
        out.print(table("gates", ["gate", "status", "when", "champion then", "waiver"], rows))
    for r in reviews:
        out.print(f"  review {r.kind}: {r.status} (requested by {r.requested_by}"
                  + (f", decided by {r.decided_by})" if r.decided_by else ")"))
    verdict = "may be promoted" if state.allowed else "may not be promoted: " + "; ".join(state.problems)
    out.print(Text(f"  {verdict}", style="green" if state.allowed else "yellow"))


@app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="Model name.")],
    run: Annotated[str, typer.Option("--run", help="The run that logged the model (log_model(register=False)).")],
    path: Annotated[Optional[str], typer.Option("--path", help="Where in the run it was logged (default models/NAME).")] = None,
    description: Annotated[Optional[str], typer.Option("--description", "-d")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a model that a run logged, reusing its stored artifact."""
    from shipyard.models.registry import register_from_run

    v = register_from_run(context(), name, run, artifact_path=path, description=description)
    if as_json:
        print_json(v.to_dict())
        return
    console().print(f"Registered {v.version_id} ({v.flavor}) from run {v.run_id}")


@alias_app.command("set")
def alias_set(
    ref: Annotated[str, typer.Argument(help="NAME/VERSION the alias should point at.")],
    alias: Annotated[str, typer.Argument(help="The alias, e.g. staging. champion/challenger: use promote.")],
    reason: Annotated[Optional[str], typer.Option("--reason", help="Kept in the alias history.")] = None,
) -> None:
    """Point an alias at a version (serving aliases move only through `models promote`)."""
    from shipyard.models.registry import set_alias

    move = set_alias(context(), ref, alias, reason=reason)
    before = f"{move.model}/{move.from_version}" if move.from_version else "nothing"
    console().print(f"{move.model}@{alias}: {before} → {move.model}/{move.to_version}")


@alias_app.command("delete")
def alias_delete(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="The alias to remove.")],
    reason: Annotated[Optional[str], typer.Option("--reason")] = None,
) -> None:
    """Remove an alias (kept in the history)."""
    from shipyard.models.registry import delete_alias

    move = delete_alias(context(), name, alias, reason=reason)
    console().print(f"Removed {name}@{alias} (was {name}/{move.from_version})")


@alias_app.command("history")
def alias_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[Optional[str], typer.Argument(help="Only this alias.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every move of a model's aliases: who, when, from which version to which, and why."""
    from shipyard.models.registry import alias_moves

    moves = alias_moves(context(), name, alias)
    if as_json:
        print_json([m.to_dict() for m in moves])
        return
    rows = [[when(m.time), f"{m.model}@{m.alias}", m.from_version or "-", m.to_version or "(removed)", m.actor,
             m.reason or ""] for m in moves]
    console().print(table(None, ["when", "alias", "from", "to", "by", "reason"], rows))


@app.command("archive")
def archive(ref: Annotated[str, typer.Argument(help="NAME/VERSION.")]) -> None:
    """Archive a version (refused while an alias points at it)."""
    from shipyard.models.registry import archive_version

    v = archive_version(context(), ref)
    console().print(f"Archived {v.version_id}")


@app.command("gate")
def gate(
    ref: Annotated[str, typer.Argument(help="NAME/VERSION to check.")],
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Run only this gate (repeatable).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the gates configured in shipyard.yaml (gates.NAME) and keep the results; exit 3 on a FAIL."""
    from shipyard.errors import EXIT_BLOCKED
    from shipyard.gates.gating import run_gates

    results = run_gates(context(), ref, only=only)
    if as_json:
        print_json([r.to_dict() for r in results])
    elif not results:
        name = ref.split("/", 1)[0].split("@", 1)[0]
        console().print(f"gates.{name} in shipyard.yaml declares no gates: nothing to run, nothing blocks promotion.")
    else:
        rows = []
        for r in results:
            for c in r.checks:
                rows.append([r.gate, Text(c.status, style=STATUS_STYLE.get(c.status, "")), c.name, c.message])
        console().print(table(f"gates of {ref}", ["gate", "status", "check", "result"], rows))
        for r in results:
            console().print(Text(f"{r.gate}: {r.status}", style=STATUS_STYLE.get(r.status, "")))
    if any(r.status == "FAIL" for r in results):
        raise typer.Exit(EXIT_BLOCKED)


@app.command("waive")
def waive(
    ref: Annotated[str, typer.Argument(help="NAME/VERSION.")],
    gate_name: Annotated[str, typer.Option("--gate", help="The failed gate to waive.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is acceptable; kept as evidence.")],
) -> None:
    """Accept a failed gate, as yourself (SHIPYARD_USER), with a reason."""
    from shipyard.gates.gating import waive_gate

    stored = waive_gate(context(), ref, gate_name, reason=reason)
    console().print(f"Waived gate '{stored.gate}' of {ref} as {stored.waived_by}: {stored.waiver_reason}")


@app.command("promote")
def promote(
    ref: Annotated[str, typer.Argument(help="NAME/VERSION to promote.")],
    alias: Annotated[str, typer.Option("--alias", help="The serving alias.")] = "champion",
    reason: Annotated[Optional[str], typer.Option("--reason")] = None,
    no_gates: Annotated[bool, typer.Option(
        "--no-gates", help="Promote a model that has no gates configured (never skips configured gates).")] = False,
) -> None:
    """Move a serving alias to the version if every configured gate passed or was waived; exit 3 when
    refused. A model without gates.NAME in shipyard.yaml needs --no-gates (or `gates: {NAME: {}}`)."""
    from shipyard.gates.promotion import promote as move

    m = move(context(), ref, alias, reason=reason, no_gates=no_gates)
    before = f"{m.model}/{m.from_version}" if m.from_version else "nothing"
    console().print(f"Promoted {m.model}/{m.to_version} to {alias} (was {before}).")


@app.command("card")
def card(
    ref: Annotated[str, typer.Argument(help="NAME/VERSION.")],
    out: Annotated[Optional[str], typer.Option("--out", help="Folder for the files (default cards/NAME/VERSION).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Generate the model card (JSON, Markdown, HTML) from the registry's evidence."""
    from pathlib import Path

    from shipyard.governance.cards import write_card

    paths = write_card(context(), ref, Path(out) if out else None)
    if as_json:
        print_json({kind: str(path) for kind, path in paths.items()})
        return
    for kind, path in paths.items():
        console().print(f"{kind:<9} {path}")


def _review(ref: str, kind: str, notes: str | None, decision: bool | None) -> None:
    from shipyard.models.reviews import decide_review, request_review

    ctx = context()
    r = request_review(ctx, ref, kind, notes=notes) if decision is None else decide_review(ctx, ref, kind, approve=decision, notes=notes)
    console().print(f"{r.kind} review of {r.version_id}: {r.status}" + (f" by {r.decided_by}" if r.decided_by else ""))


KindOption = Annotated[str, typer.Option("--kind", help="e.g. ethical, security.")]
NotesOption = Annotated[Optional[str], typer.Option("--notes", help="Notes kept with the review.")]
REVIEW_STYLE = {"requested": "yellow", "approved": "green", "rejected": "bold red"}


@review_app.command("request")
def review_request(ref: Annotated[str, typer.Argument(help="NAME/VERSION.")], kind: KindOption,
                   notes: NotesOption = None) -> None:
    """Ask for a review of a version."""
    _review(ref, kind, notes, None)


@review_app.command("approve")
def review_approve(ref: Annotated[str, typer.Argument(help="NAME/VERSION.")], kind: KindOption,
                   notes: NotesOption = None) -> None:
    """Approve a requested review (not by its requester)."""
    _review(ref, kind, notes, True)


@review_app.command("reject")
def review_reject(ref: Annotated[str, typer.Argument(help="NAME/VERSION.")], kind: KindOption,
                  notes: NotesOption = None) -> None:
    """Reject a requested review."""
    _review(ref, kind, notes, False)


@review_app.command("list")
def review_list(
    ref: Annotated[Optional[str], typer.Argument(help="A model (all its versions) or NAME/VERSION; default: every model.")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="Only reviews waiting for a decision.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Reviews in the order they were requested, with who asked, who decided and their notes."""
    from shipyard.models.reviews import list_reviews

    found = list_reviews(context(), ref, pending=pending)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    rows = [[r.version_id, r.kind, Text(r.status, style=REVIEW_STYLE.get(r.status, "")), r.requested_by,
             when(r.requested), r.decided_by, r.notes or ""] for r in found]
    out = console()
    out.print(table(None, ["version", "kind", "status", "requested by", "requested", "decided by", "notes"], rows))
    if not rows:
        what = "pending reviews" if pending else "reviews"
        out.print(f"No {what}{f' of {ref}' if ref else ''}. Ask for one with "
                  "`shipyard review request NAME/VERSION --kind ethical`.")
    elif any(r.status == "requested" for r in found):
        out.print("Decide one, as someone other than its requester, with "
                  "`shipyard review approve NAME/VERSION --kind KIND` (or reject).")


__all__ = ["app", "cell", "review_app"]


def readiness(
    ref: Annotated[str, typer.Argument(help="NAME/VERSION.")],
    html_out: Annotated[Optional[str], typer.Option("--html", help="Also write an HTML report here.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Also exit 1 when an item is NOT YET.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The production-readiness checklist of a version, computed from evidence in the store; exit 1 when
    an item is FAIL (with --strict, also when one is NOT YET)."""
    from pathlib import Path

    from shipyard.errors import EXIT_ERROR
    from shipyard.governance.readiness import evaluate, render_html

    report = evaluate(context(), ref)
    if html_out:
        Path(html_out).write_text(render_html(report))
    failing = [f"{i.name} {i.status}" for i in report.items if i.status == "FAIL" or (strict and i.status != "PASS")]
    if as_json:
        print_json(report.to_dict())
    else:
        rows = [[i.name, Text(i.status, style={"PASS": "green", "FAIL": "bold red"}.get(i.status, "dim")),
                 "; ".join(i.evidence), "; ".join(i.missing)] for i in report.items]
        console().print(table(f"readiness of {report.version_id}", ["item", "status", "evidence", "missing"], rows))
        if html_out:
            console().print(f"HTML report: {Path(html_out).resolve()}")
        if failing:
            console().print(Text(f"Not ready: {', '.join(failing)}.", style="bold red"))
    if failing:
        raise typer.Exit(EXIT_ERROR)
