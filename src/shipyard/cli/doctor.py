"""`shipyard doctor`: the failure playbooks run as checks against a deployment or a model version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from shipyard.cli.output import console, print_json, table
from shipyard.cli.workspace import context

if TYPE_CHECKING:
    from shipyard.control.doctor import Diagnosis

#: A check FAILed: the same code as `monitor run` with a breached rule.
EXIT_FAILED = 3


def doctor(
    target: Annotated[Optional[str], typer.Argument(
        help="A deployment (its primary route's version, through it) or a model reference (credit/3, "
             "credit@champion: the whole log of that version). Default: the only deployment.")] = None,
    window: Annotated[Optional[str], typer.Option(
        "--window", help="The span of the prediction log looked at: 90s, 30m, 1h (default 1h).")] = None,
    rows: Annotated[Optional[int], typer.Option("--rows", help="Look at the newest N rows of the log instead.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Run the failure playbooks as checks: accuracy drop (input integrity, drift, accuracy on feedback),
    training/serving skew, latency spike, dependency mismatch; each PASS, WARN or FAIL with its evidence and
    the recovery step. Exit code 3 when a check FAILs."""
    from shipyard.control.doctor import diagnose
    from shipyard.errors import ValidationError
    from shipyard.policy.deploy import duration_seconds

    if window is not None and rows is not None:
        raise ValidationError(f"Give one of --window ({window}) or --rows ({rows}), not both.")
    last = duration_seconds(window, "--window") if window is not None else None
    if last is not None and last <= 0:
        raise ValidationError(f"Invalid --window {window!r}: expected a duration above 0, e.g. 1h.", value=window)
    diagnosis = diagnose(context(), target, last=last, rows=rows)
    if as_json:
        print_json(diagnosis.to_dict())
    else:
        _print(diagnosis)
    if diagnosis.failed:
        raise typer.Exit(EXIT_FAILED)


def _print(diagnosis: Diagnosis) -> None:
    subject, window = diagnosis.subject, diagnosis.window
    through = f"deployment {subject.deployment} → " if subject.deployment else ""
    span = f"last {window['size']:g} s" if window["kind"] == "time" else f"newest {window['size']} rows"
    title = (f"{through}{subject.version.version_id}: {window['rows']} logged rows, {window['requests']} requests "
             f"({span})")
    rows = [[c.playbook.title, c.status, c.summary] for c in diagnosis.checks]
    out = console()
    out.print(table(title, ["check", "status", "summary"], rows))
    for check in diagnosis.checks:
        out.print(f"\n{check.status} {check.playbook.title}", markup=False)
        out.print("  looked at: " + "; ".join(check.looked_at), markup=False)
        for finding in check.findings:
            out.print(f"  - {finding}", markup=False)
        if check.status != "PASS":
            out.print(f"  what to do: {check.playbook.recovery}", markup=False)
