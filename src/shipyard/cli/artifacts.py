"""`shipyard artifacts get|gc`."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.output import console, print_json
from shipyard.cli.workspace import context

app = typer.Typer(help="Artifacts in the content-addressed blob store.", no_args_is_help=True)


@app.command("get")
def get(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    path: Annotated[str, typer.Argument(help="Artifact path within the run.")],
    dest: Annotated[str, typer.Argument(help="File or folder to write to.")] = ".",
) -> None:
    """Copy a run's artifact out of the store, verifying its digest."""
    from shipyard.tracking.artifacts import download_artifact

    console().print(f"Wrote {download_artifact(context(), run_id, path, dest)}")


@app.command("gc")
def gc(
    grace: Annotated[float, typer.Option("--grace", help="Keep unreferenced blobs younger than this many seconds.")] = 3600.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be removed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete blobs that no run references any more (and abandoned partial writes)."""
    from shipyard.errors import ValidationError
    from shipyard.store.gc import collect_garbage

    if grace < 0:
        raise ValidationError(f"--grace must be zero or more seconds, got {grace}.")
    ctx = context()
    report = collect_garbage(ctx.store, ctx.blobs, ctx.actor, grace_seconds=grace, dry_run=dry_run)
    if as_json:
        print_json({"kept": report.kept, "removed": report.removed, "freed_bytes": report.freed_bytes,
                    "temp_removed": report.temp_removed, "dry_run": dry_run})
        return
    verb = "Would remove" if dry_run else "Removed"
    console().print(
        f"{verb} {len(report.removed)} blobs ({report.freed_bytes} bytes) and {report.temp_removed} "
        f"partial writes; kept {report.kept}."
    )
