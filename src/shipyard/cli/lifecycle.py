"""`shipyard run`: the standard training pipeline declared in shipyard.yaml."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.text import Text

from shipyard.cli.output import console, print_json, table
from shipyard.cli.workspace import context

CACHE_STYLE = {"hit": "green", "miss": "yellow", "off": "dim"}


def run(
    executor: Annotated[Optional[str], typer.Option("--executor", help="local (default) or dask://HOST:PORT.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step, ignoring the cache.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Run the standard training pipeline: validate → prepare → train/sweep → evaluate → register → gates."""
    from shipyard.pipelines.lifecycle import run_standard

    result = run_standard(context(), executor=executor, use_cache=not no_cache)
    outcome = result.value()
    if as_json:
        print_json({**result.to_dict(), "outcome": outcome})
        return
    rows = [[name, s.status, Text(s.cache, style=CACHE_STYLE.get(s.cache, "")), f"{s.seconds:.2f}s", s.reason]
            for name, s in result.steps.items()]
    console().print(table(f"pipeline {result.name} (run {result.run_id[:8]})", ["step", "status", "cache", "took", "why"], rows))
    if outcome.get("unchanged"):
        console().print(f"Nothing changed: {outcome['version']} is already {outcome['alias']}.")
        return
    gates = ", ".join(f"{g} {s}" for g, s in outcome["gates"].items()) or "none configured"
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
