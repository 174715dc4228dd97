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
    url: Annotated[Optional[str], typer.Option(
        "--url", help="Send each event to this OpenLineage collector (POST URL/api/v1/lineage), e.g. Marquez.")] = None,
    api_key: Annotated[Optional[str], typer.Option(
        "--api-key", help="Bearer token for --url (default: the OPENLINEAGE_API_KEY environment variable).")] = None,
) -> None:
    """Export runs and derived datasets as OpenLineage run events (START and COMPLETE/FAIL), to stdout, a
    file (-o) or a collector (--url)."""
    from shipyard.governance.openlineage import export_events, lineage_endpoint, namespace, send_events
    from shipyard.errors import ValidationError

    if format != "openlineage":
        raise ValidationError(f"Unknown export format {format!r}; the supported format is 'openlineage'.")
    if api_key and not url:
        raise ValidationError("--api-key is sent to a collector: give its URL with --url as well.")
    if url:
        lineage_endpoint(url)  # a malformed URL is refused before anything is read or written
    ctx = context()
    events = export_events(ctx)
    import json

    lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in events)
    if output:
        from pathlib import Path

        try:
            Path(output).write_text(lines)
        except OSError as exc:
            raise ValidationError(f"Cannot write the events to {output}: {exc.strerror or exc}. Choose a file in "
                                  "a folder that exists and that you may write to.", path=output) from exc
        console().print(f"Wrote {len(events)} OpenLineage events to {output} (namespace {namespace(ctx)})")
    if url:
        import os

        sent = send_events(events, url, api_key=api_key or os.environ.get("OPENLINEAGE_API_KEY") or None)
        console().print(f"Sent {sent} OpenLineage events to {lineage_endpoint(url)} (namespace {namespace(ctx)})")
    if not output and not url:
        import sys

        sys.stdout.write(lines)
