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
    once: Annotated[bool, typer.Option("--once", help="One pass over the deployments, then follow the canaries it "
                                                      "started or found to their end, then exit.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between passes (without --once).")] = 60.0,
    poll_seconds: Annotated[float, typer.Option("--poll-seconds", help="Seconds between looks at a canary in "
                                                                       "progress.")] = 5.0,
    as_json: JsonFlag = False,
) -> None:
    """Run the controller: for each deployment with a retrain: policy, run its monitor and, when the alerts the
    policy names fire, retrain, gate, and roll the challenger out as a canary (promoted or rolled back). Each
    deployment is acted on by one controller at a time (a lease in the store); others leave it to that one.
    Exit 1 when a deployment's pass failed."""
    import time

    from shipyard.control.controller import release_all, watch_once
    from shipyard.errors import ValidationError
    from shipyard.store.leases import holder_id

    if typer_ctx.invoked_subcommand is not None:
        return
    for option, value, example in (("--interval", interval, 60), ("--poll-seconds", poll_seconds, 5)):
        if not 0 < value <= 86_400:
            raise ValidationError(f"Invalid {option} {value!r}: seconds above 0 and at most a day, e.g. {example}.")
    ctx = context()
    me = holder_id()

    def say(line: str) -> None:
        if not as_json:
            console().print(line)

    try:
        outcomes = {o.deployment: o for o in watch_once(ctx, holder=me, report=say, release=once)}
        while True:
            in_canary = sorted(n for n, o in outcomes.items() if o.cycle is not None and o.cycle.state == "canary")
            if once and not in_canary:
                break
            time.sleep(min(interval, poll_seconds) if in_canary else interval)
            for later in watch_once(ctx, holder=me, report=say, release=once, only=in_canary if once else None):
                earlier = outcomes.get(later.deployment)
                if earlier is not None and later.decision.startswith("resuming"):  # keep why the cycle started
                    later.decision = earlier.decision
                outcomes[later.deployment] = later
    finally:
        if not once:
            release_all(ctx, me)
    if as_json:
        print_json({"deployments": [o.to_dict() for o in outcomes.values()]})
    else:
        _print_outcomes(list(outcomes.values()))
    if any(o.error for o in outcomes.values()):
        raise typer.Exit(1)


@app.command("status")
def status(as_json: JsonFlag = False) -> None:
    """Per deployment with a retrain: policy: its open cycle, or whether one would start now and why."""
    from shipyard.control.controller import due, lease_name
    from shipyard.control.cycles import open_cycle
    from shipyard.policy.retrain import declared_retraining, retrain_spec
    from shipyard.store import leases
    from shipyard.store.db import now_ms

    ctx = context()
    document = ctx.policy.document()
    rows: list[dict[str, Any]] = []
    for name in declared_retraining(document):
        spec = retrain_spec(document, name)
        assert spec is not None
        cycle = open_cycle(ctx, name)
        decision = due(ctx, name, spec) if cycle is None else None
        held = leases.current(ctx.store, lease_name(name))
        rows.append({"deployment": name, "monitor": spec.monitor or name,
                     "controller": held.holder if held is not None and held.expires > now_ms() else None,
                     "cycle": cycle.to_dict() if cycle is not None else None,
                     "next": decision.reason if decision is not None else None,
                     "due": decision.start if decision is not None else False})
    if as_json:
        print_json({"deployments": rows})
        return
    console().print(table("Retraining", ["deployment", "monitor", "controller", "cycle", "state", "now"], [
        [r["deployment"], r["monitor"], r["controller"] or "-", r["cycle"]["id"] if r["cycle"] else "-",
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
    for o in outcomes:
        where = f"cycle {o.cycle.id}: {o.cycle.state}" if o.cycle is not None else "no cycle"
        console().print(f"{o.deployment}: {where}; {o.error or o.decision}")
