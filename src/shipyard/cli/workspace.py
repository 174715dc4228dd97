"""`shipyard init` and `shipyard config show`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from shipyard.cli.output import console, print_json, state, table

if TYPE_CHECKING:
    from shipyard.context import Context


def context() -> Context:
    """The service context for the workspace chosen by the global options."""
    from shipyard.context import open_context

    return open_context(state.workspace, state.overrides)


def init(
    path: Annotated[Optional[str], typer.Argument(help="Folder to turn into a workspace (default: -C or here).")] = None,
    from_data: Annotated[Optional[str], typer.Option("--from", help="A table file to start a lifecycle spec from.")] = None,
    target: Annotated[Optional[str], typer.Option("--target", help="The column to predict (with --from).")] = None,
    estimator: Annotated[Optional[str], typer.Option(
        "--estimator", help="The model's estimator (with --from), e.g. sklearn.ensemble.RandomForestClassifier.",
    )] = None,
    params: Annotated[Optional[list[str]], typer.Option(
        "--param", help="NAME=VALUE (repeatable, with --from): an estimator parameter, e.g. max_iter=500.")] = None,
    ci: Annotated[Optional[str], typer.Option("--ci", help="Write a CI workflow: github.")] = None,
) -> None:
    """Create a workspace: shipyard.yaml and the .shipyard/ folder (store, artifacts, logs)."""
    from pathlib import Path

    from shipyard.config import SPEC_FILE, init_workspace
    from shipyard.context import open_context
    from shipyard.errors import ValidationError

    # Every option is checked, and the data file read and decided, before anything is written.
    if (from_data or target) and not (from_data and target):
        raise ValidationError("--from and --target go together, e.g. "
                              "`shipyard init --from credit.csv --target default`.")
    if (estimator or params) and not from_data:
        raise ValidationError("--estimator and --param choose the starter spec's model: use them with --from and "
                              "--target.")
    if ci is not None and ci != "github":
        raise ValidationError(f"Unknown CI system {ci!r}; supported: github.")
    plan = None
    if from_data and target:
        from shipyard.pipelines.starter import check_no_lifecycle, plan_starter

        check_no_lifecycle(Path(path or state.workspace or ".") / SPEC_FILE)
        plan = plan_starter(Path(from_data), target, estimator=estimator, params=params or [])

    root = init_workspace(path or state.workspace or ".")
    ctx = open_context(root, state.overrides)  # creates the store and applies migrations
    console().print(f"Initialised Shipyard workspace in {root}")
    console().print(f"  settings: {root / SPEC_FILE}")
    console().print(f"  store:    {ctx.workspace.store_url}")
    console().print(f"  blobs:    {ctx.workspace.artifacts_url}")
    if plan is not None:
        from shipyard.pipelines.starter import write_starter

        version = write_starter(ctx, plan)
        rows = [[d.column, d.kind, d.reason] for d in plan.decisions]
        console().print(table(f"{plan.source.name}: {plan.rows} rows, target '{plan.target}' "
                              f"({plan.describe_task()})", ["column", "kind", "decision"], rows))
        console().print(f"Versioned {from_data} as {version}; wrote a {plan.task} spec for model '{plan.name}' "
                        f"({plan.estimator}) to {SPEC_FILE}. Train it with `shipyard run`.")
    if ci is not None:
        from shipyard.pipelines.ci import WORKFLOW

        workflow = root / ".github" / "workflows" / "shipyard.yml"
        workflow.parent.mkdir(parents=True, exist_ok=True)
        workflow.write_text(WORKFLOW)
        console().print(f"Wrote {workflow}: `shipyard ci` runs on every pull request.")


def config_show(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show the resolved settings and where each value came from."""
    from shipyard.config import load_workspace

    ws = load_workspace(state.workspace, state.overrides)
    data = ws.settings.model_dump()
    rows = []
    for section, values in data.items():
        for name, value in values.items():
            key = f"{section}.{name}"
            rows.append([key, value, ws.sources.get(key, "default")])
    if as_json:
        print_json({"root": str(ws.root), "settings": data, "sources": dict(ws.sources)})
        return
    console().print(table(f"Settings of {ws.root}", ["key", "value", "from"], rows))


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    config = typer.Typer(help="Workspace settings.", no_args_is_help=True)
    config.command("show")(config_show)
    app.add_typer(config, name="config")
