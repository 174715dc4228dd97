"""`shipyard audit log|head|verify`."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.text import Text

from shipyard.cli.output import console, print_json, table, when
from shipyard.cli.workspace import context

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@app.command("log")
def log(
    kind: Annotated[Optional[str], typer.Option("--kind", help="Object kind, e.g. run.")] = None,
    object_id: Annotated[Optional[str], typer.Option("--object", help="Object id.")] = None,
    actor: Annotated[Optional[str], typer.Option("--actor", help="Who acted.")] = None,
    action: Annotated[Optional[str], typer.Option("--action", help="e.g. run.create.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List audit events, newest first."""
    from shipyard.governance.audit import audit_log

    events = audit_log(context(), object_kind=kind, object_id=object_id, actor=actor, action=action, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    rows = [
        [e.seq, when(e.time), e.actor, e.action, f"{e.object_kind}:{e.object_id}", json.dumps(e.payload)[:80]]
        for e in events
    ]
    console().print(table(None, ["seq", "time", "actor", "action", "object", "payload"], rows))


@app.command("head")
def head(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Print the newest event's sequence number and hash.

    Keep this value outside the database (a ticket, a log, a signed note): `shipyard audit verify
    --expect SEQ:HASH` then detects a rewrite of the chain up to that event, which plain verify cannot."""
    from shipyard.governance.audit import audit_head

    current = audit_head(context())
    if as_json:
        print_json(current.to_dict())
        return
    console().print(f"Audit head: event {current.seq}, hash {current.hash}")
    console().print("Keep this value outside the database (a ticket, a log, a signed note); check it later with:")
    console().print(f"  shipyard audit verify --expect {current}")


@app.command("verify")
def verify(
    expect: Annotated[
        Optional[str],
        typer.Option(
            "--expect",
            metavar="SEQ:HASH",
            help="A head printed earlier by `shipyard audit head` (SEQ:HASH, or the bare HASH): "
            "the chain must still contain that event unchanged.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Walk the hash chain; exit 1 and name the first broken event if it was tampered with."""
    from shipyard.governance.audit import describe, verify_audit

    report = verify_audit(context(), expect=expect)
    if as_json:
        print_json(report.to_dict())
    else:
        style = "green" if report.ok else "bold red"
        console().print(Text(describe(report), style=style))
    if not report.ok:
        raise typer.Exit(1)
