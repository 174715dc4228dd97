"""`shipyard lineage show|export`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.tree import Tree as RichTree

from shipyard.cli.output import console, print_json
from shipyard.cli.workspace import context

app = typer.Typer(help="The lineage graph of datasets and runs.", no_args_is_help=True)


@app.command("show")
def show(
    obj: Annotated[str, typer.Argument(help="A dataset version (credit@3; credit for the latest), a model version "
                                            "(credit/2, credit@champion) or a run (an id, a prefix, run:ID).")],
    downstream: Annotated[bool, typer.Option("--downstream", help="What it fed, instead of where it came from.")] = False,
    upstream: Annotated[bool, typer.Option("--upstream", help="Where it came from (the default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the lineage tree of an object, upstream (default) or downstream."""
    from shipyard.governance.lineage import resolve_node, walk
    from shipyard.store.lineage import Tree

    if upstream and downstream:
        from shipyard.errors import ValidationError

        raise ValidationError("Choose one of --upstream and --downstream.")
    ctx = context()
    tree = walk(ctx, resolve_node(ctx, obj), upstream=not downstream)
    if as_json:
        print_json(tree.to_dict())
        return

    def label(t: Tree) -> str:
        return f"{t.node.kind} {t.node.id}" + (f"  ({t.relation})" if t.relation else "")

    def build(t: Tree, into: RichTree) -> None:
        for child in t.children:
            build(child, into.add(label(child)))

    root = RichTree(label(tree) + ("  ← upstream" if not downstream else "  → downstream"))
    build(tree, root)
    console().print(root)
    if not tree.children:
        console().print("No lineage recorded for it yet.")


@app.command("export")
def export(
    format: Annotated[str, typer.Option("--format", help="Only 'openlineage' for now.")] = "openlineage",
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="File to write (JSON lines); default stdout.")] = None,
) -> None:
    """Export runs and derived datasets as OpenLineage run events (START and COMPLETE/FAIL)."""
    from shipyard.governance.openlineage import export_events
    from shipyard.errors import ValidationError

    if format != "openlineage":
        raise ValidationError(f"Unknown export format {format!r}; the supported format is 'openlineage'.")
    events = export_events(context())
    import json

    lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in events)
    if output:
        from pathlib import Path

        Path(output).write_text(lines)
        console().print(f"Wrote {len(events)} OpenLineage events to {output}")
    else:
        import sys

        sys.stdout.write(lines)
