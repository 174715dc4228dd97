"""`shipyard run`: the standard training pipeline declared in shipyard.yaml."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.text import Text

from shipyard.cli.output import console, err_console, print_json, table
from shipyard.cli.workspace import context

CACHE_STYLE = {"hit": "green", "miss": "yellow", "off": "dim"}


STATUS_STYLE = {"running": "bold cyan", "finished": "green", "failed": "bold red", "skipped": "dim", "waiting": "dim"}


def _steps_table(title: str, reports: dict[str, Any]) -> Any:
    rows = [[name, Text(s.status, style=STATUS_STYLE.get(s.status, "")), Text(s.cache, style=CACHE_STYLE.get(s.cache, "")),
             f"{s.seconds:.2f}s" if s.status in ("finished", "failed") else "", s.reason]
            for name, s in reports.items()]
    return table(title, ["step", "status", "cache", "took", "why"], rows)


def run(
    executor: Annotated[Optional[str], typer.Option("--executor", help="local (default) or dask://HOST:PORT.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step, ignoring the cache.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Run the standard training pipeline: validate → prepare → train/sweep → evaluate → register → gates.
    Exit 0 when promoted (or nothing changed), 3 when a gate blocked the promotion, 1 on an error."""
    import sys

    from shipyard.errors import EXIT_BLOCKED
    from shipyard.pipelines.lifecycle import run_standard
    from shipyard.pipelines.runner import PipelineFailed

    live = None
    if not as_json and sys.stdout.isatty():  # a live view of the steps while they run
        from rich.live import Live

        live = Live(console=console(), refresh_per_second=8, transient=True)
        live.start()
    last: dict[str, Any] = {}

    def show(reports: dict[str, Any]) -> None:
        last.update(reports)
        if live is not None:
            live.update(_steps_table("pipeline", reports))

    try:
        result = run_standard(context(), executor=executor, use_cache=not no_cache, on_change=show)
    except PipelineFailed:
        if live is not None:
            live.stop()
            live = None
        if not as_json and last:  # which steps ran, which failed, which never started
            console().print(_steps_table("pipeline", last))
        raise
    finally:
        if live is not None:
            live.stop()
    outcome = result.value()
    blocked = bool(outcome.get("blocked"))
    if as_json:
        print_json({**result.to_dict(), "outcome": outcome})
        if blocked:
            raise typer.Exit(EXIT_BLOCKED)
        return
    console().print(_steps_table(f"pipeline {result.name} (run {result.run_id[:8]})", result.steps))
    gates = ", ".join(f"{g} {s}" for g, s in outcome["gates"].items()) or "none configured"
    if outcome.get("unchanged"):
        held = (f"it is now {outcome['alias']}" if outcome.get("promoted") else f"it is {outcome['alias']}"
                if outcome["alias"] else "it holds no alias")
        console().print(f"unchanged: already {outcome['version']} (gates: {gates}); {held}. Nothing was registered.")
    else:
        alias = f"; it is now {outcome['alias']}" if outcome["alias"] else "; not promoted"
        console().print(f"Registered {outcome['version']} (gates: {gates}){alias}.")
    if blocked:
        err_console().print(Text.assemble(("Not promoted: ", "bold red"), "; ".join(outcome["blocked"]) + "."))
        raise typer.Exit(EXIT_BLOCKED)


def ci(
    report: Annotated[Optional[str], typer.Option("--report", help="Write the Markdown report here.")] = None,
    executor: Annotated[Optional[str], typer.Option("--executor", help="local (default) or dask://HOST:PORT.")] = None,
    register: Annotated[bool, typer.Option(
        "--register", help="Register the trained model (with its gate results) instead of only gating it.")] = False,
) -> None:
    """Validate the data, train, evaluate and gate the candidate without adding it to the registry (unless
    --register) or promoting it. Exit 0 when it passes, 3 when a gate blocks it, 1 when a step fails."""
    from pathlib import Path

    from shipyard.errors import ShipyardError
    from shipyard.pipelines.ci import failed_to_start, run_ci

    try:
        ctx = context()
    except ShipyardError as exc:  # still a report for the pull request, then the error as usual
        if report:
            Path(report).write_text(failed_to_start(exc).markdown)
        raise
    result = run_ci(ctx, executor=executor, register=register)
    if report:
        Path(report).write_text(result.markdown)
    console().print(result.markdown)
    if not result.ok:
        raise typer.Exit(result.exit_code)
