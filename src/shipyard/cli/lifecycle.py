"""`shipyard run`: the standard training pipeline declared in shipyard.yaml."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.text import Text

from shipyard.cli.output import console, print_json, table
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
    """Run the standard training pipeline: validate → prepare → train/sweep → evaluate → register → gates."""
    import sys

    from shipyard.pipelines.lifecycle import run_standard

    live = None
    if not as_json and sys.stdout.isatty():  # a live view of the steps while they run
        from rich.live import Live

        live = Live(console=console(), refresh_per_second=8, transient=True)
        live.start()

    def show(reports: dict[str, Any]) -> None:
        if live is not None:
            live.update(_steps_table("pipeline", reports))

    try:
        result = run_standard(context(), executor=executor, use_cache=not no_cache, on_change=show)
    finally:
        if live is not None:
            live.stop()
    outcome = result.value()
    if as_json:
        print_json({**result.to_dict(), "outcome": outcome})
        return
    console().print(_steps_table(f"pipeline {result.name} (run {result.run_id[:8]})", result.steps))
    gates = ", ".join(f"{g} {s}" for g, s in outcome["gates"].items()) or "none configured"
    if outcome.get("unchanged"):
        held = f"it is {outcome['alias']}" if outcome["alias"] else "it holds no alias"
        console().print(f"unchanged: already {outcome['version']} (gates: {gates}); {held}. Nothing was registered.")
        return
    alias = f"; it is now {outcome['alias']}" if outcome["alias"] else "; not promoted"
    console().print(f"Registered {outcome['version']} (gates: {gates}){alias}.")


def ci(
    report: Annotated[Optional[str], typer.Option("--report", help="Write the Markdown report here.")] = None,
    executor: Annotated[Optional[str], typer.Option("--executor", help="local (default) or dask://HOST:PORT.")] = None,
) -> None:
    """Validate the data, run the pipeline and the gates; exit 1 when any blocks. Nothing is promoted."""
    from pathlib import Path

    from shipyard.pipelines.ci import run_ci

    result = run_ci(context(), executor=executor)
    if report:
        Path(report).write_text(result.markdown)
    console().print(result.markdown)
    if not result.ok:
        raise typer.Exit(1)
