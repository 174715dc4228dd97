"""`shipyard watch [--once]`, `shipyard watch status`, `shipyard watch history`: the retraining controller."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from shipyard.cli.output import console, print_json, table
from shipyard.cli.workspace import context

app = typer.Typer(help="The retraining controller: monitors whose alerts start retrain → gate → canary cycles.",
                  invoke_without_command=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.callback()
def watch(
    typer_ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One pass over the deployments, then exit.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between passes (without --once).")] = 60.0,
    as_json: JsonFlag = False,
) -> None:
    """Run the controller: for each deployment with a retrain: policy, run its monitor and, when the alerts the
    policy names fire, retrain, gate, and roll the challenger out as a canary (promoted or rolled back). One
    controller acts at a time (a lease in the store); another waits. Exit 1 when a deployment's pass failed."""
    import time

    from shipyard.control.controller import watch_once
    from shipyard.errors import ValidationError

    if typer_ctx.invoked_subcommand is not None:
        return
    if not 0 < interval <= 86_400:
        raise ValidationError(f"Invalid --interval {interval!r}: seconds above 0 and at most a day, e.g. 60.")
    ctx = context()
    while True:
        outcomes = watch_once(ctx, report=lambda line: console().print(line) if not as_json else None)
        if once:
            if as_json:
                print_json({"acted": outcomes is not None,
                            "deployments": [o.to_dict() for o in outcomes or []]})
            else:
                _print_outcomes(outcomes)
            if outcomes and any(o.error for o in outcomes):
                raise typer.Exit(1)
            return
        time.sleep(interval)


@app.command("status")
def status(as_json: JsonFlag = False) -> None:
    """Per deployment with a retrain: policy: its open cycle, or whether one would start now and why."""
    from shipyard.control.controller import LEASE, due
    from shipyard.control.cycles import open_cycle
    from shipyard.policy.retrain import declared_retraining, retrain_spec
    from shipyard.store import leases

    ctx = context()
    document = ctx.policy.document()
    rows: list[dict[str, Any]] = []
    for name in declared_retraining(document):
        spec = retrain_spec(document, name)
        assert spec is not None
        cycle = open_cycle(ctx, name)
        decision = due(ctx, name, spec) if cycle is None else None
        rows.append({"deployment": name, "monitor": spec.monitor or name,
                     "cycle": cycle.to_dict() if cycle is not None else None,
                     "next": decision.reason if decision is not None else None,
                     "due": decision.start if decision is not None else False})
    held = leases.current(ctx.store, LEASE)
    if as_json:
        print_json({"lease": held.__dict__ if held is not None else None, "deployments": rows})
        return
    console().print(table("Retraining", ["deployment", "monitor", "cycle", "state", "now"], [
        [r["deployment"], r["monitor"], r["cycle"]["id"] if r["cycle"] else "-",
         r["cycle"]["state"] if r["cycle"] else "-", r["next"] or "-"] for r in rows]))


@app.command("history")
def history(
    deployment: Annotated[Optional[str], typer.Argument(help="Only this deployment's cycles.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Retraining cycles, newest first: what started each, the challenger, the state reached and why."""
    from shipyard.control.cycles import cycles
    from shipyard.errors import ValidationError

    if limit < 1:
        raise ValidationError(f"Invalid --limit {limit}: at least 1.")
    found = cycles(context(), deployment, limit=limit)
    if as_json:
        print_json([c.to_dict() for c in found])
        return
    console().print(table("Retraining cycles", ["id", "deployment", "started", "trigger", "champion", "challenger",
                                                "state", "why"], [
        [c.id, c.deployment, c.to_dict()["created"], ", ".join(a["rule"] for a in c.trigger.get("alerts", [])),
         c.champion or "-", c.challenger or "-", c.state, c.reason or ""] for c in found]))


def _print_outcomes(outcomes: Any) -> None:
    if outcomes is None:
        return
    for o in outcomes:
        where = f"cycle {o.cycle.id}: {o.cycle.state}" if o.cycle is not None else "no cycle"
        console().print(f"{o.deployment}: {where}; {o.error or o.decision}")
