"""The `shipyard` entry point: global options, error handling, and the command groups."""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, Any, Optional

import typer
from rich.text import Text
from typer.core import TyperGroup

from shipyard.cli.output import err_console, state
from shipyard.errors import ShipyardError


class ShipyardGroup(TyperGroup):
    """Turns a ShipyardError from any command into one message on stderr and its exit status: 3 when a
    gate or a review blocked a promotion (GateFailed), else 1. The traceback only with --debug."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ShipyardError as exc:
            if state.debug:
                traceback.print_exc()
                # A pipeline step's own traceback, from the thread or worker where the step ran.
                original = getattr(exc, "original_traceback", None)
                if original:
                    sys.stderr.write(f"\nThe step's traceback:\n{original.rstrip()}\n\n")
            err_console().print(Text.assemble(("Error: ", "bold red"), str(exc)))
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=ShipyardGroup,
    name="shipyard",
    help="Shipyard: carry a model from raw data to a monitored production service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from shipyard import __version__

        typer.echo(f"shipyard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    workspace: Annotated[
        Optional[str], typer.Option("--workspace", "-C", help="Use the workspace in this folder.")
    ] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="Override a setting, e.g. --set store.url=sqlite:///x.db (repeatable)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    state.debug = debug
    state.workspace = workspace
    state.overrides = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ShipyardError(f"--set {item!r} must look like KEY=VALUE, e.g. --set store.url=sqlite:///x.db.")
        state.overrides[key.strip()] = value


def _register() -> None:
    from shipyard.cli import artifacts, audit, data, lifecycle, lineage, models, pipelines, runs, workspace

    workspace.register(app)
    app.add_typer(data.app, name="data")
    app.add_typer(models.app, name="models")
    app.add_typer(models.review_app, name="review")
    app.add_typer(pipelines.app, name="pipeline")
    app.command("readiness")(models.readiness)
    app.command("run")(lifecycle.run)
    app.command("ci")(lifecycle.ci)
    app.add_typer(lineage.app, name="lineage")
    app.add_typer(runs.app, name="runs")
    app.add_typer(audit.app, name="audit")
    app.add_typer(artifacts.app, name="artifacts")


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status: 0 done, 1 an error, 2 a usage error, 3 blocked by a gate
    (see EXIT_* in shipyard.errors)."""
    args = sys.argv[1:] if argv is None else argv
    state.debug = "--debug" in args
    try:
        app(args=args, prog_name="shipyard")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
