"""Declared deployments: the analysis policy of a canary (its steps and limits, from deploy.NAME in
shipyard.yaml), recording an automated decision with the numbers that drove it, and `deploy apply`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from shipyard.context import Context
from shipyard.deployments.records import Revision
from shipyard.deployments.revisions import check_name, get_deployment
from shipyard.errors import ConfigError, ConflictError, NotFoundError, ValidationError

Decision = Literal["advance", "hold", "promote", "rollback"]
DECISIONS: tuple[str, ...] = ("advance", "hold", "promote", "rollback")


@dataclass(frozen=True)
class AnalysisPolicy:
    """How an automated canary advances: through `steps` (percent of the requests), each held for at least
    `duration_seconds` and `min_requests` requests on each route, and judged by the limits (None: not checked)."""

    steps: tuple[int, ...] = (10, 50, 100)
    min_requests: int = 100
    duration_seconds: float = 300.0
    max_error_rate_increase: float | None = 0.01
    max_p99_latency_ratio: float | None = 1.5
    max_prediction_shift: float | None = 0.2
    shift_statistic: Literal["psi", "ks"] = "psi"
    min_feedback_delta: float | None = None
    source: str = "defaults"  # where it was declared: deploy.NAME in shipyard.yaml, or the defaults

    def next_step(self, percent: int) -> int | None:
        """The step after `percent`, or None when the canary is at the last step."""
        return next((step for step in self.steps if step > percent), None)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps": list(self.steps)}


def analysis_policy(ctx: Context, name: str) -> AnalysisPolicy:
    """The policy of deployment `name`: deploy.NAME of shipyard.yaml, else the defaults."""
    from shipyard.policy.deploy import deployment_spec

    spec = deployment_spec(ctx.policy.document(), check_name(name))
    if spec is None:
        return AnalysisPolicy()
    limits = spec.analysis
    return AnalysisPolicy(
        steps=tuple(spec.steps), min_requests=spec.min_requests, duration_seconds=spec.duration,
        max_error_rate_increase=limits.max_error_rate_increase, max_p99_latency_ratio=limits.max_p99_latency_ratio,
        max_prediction_shift=limits.max_prediction_shift, shift_statistic=limits.shift_statistic,
        min_feedback_delta=limits.min_feedback_delta, source=f"deploy.{name} in shipyard.yaml",
    )


@dataclass
class DecisionRecord:
    decision: str
    numbers: dict[str, Any]
    policy: dict[str, Any]
    step: int | None = None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_numbers(numbers: object) -> dict[str, Any]:
    def finite(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if not isinstance(key, str):
                    raise ValidationError(f"Decision numbers need string keys; {path}{key!r} is not one.")
                finite(inner, f"{path}{key}.")
        elif isinstance(value, list | tuple):
            for i, inner in enumerate(value):
                finite(inner, f"{path}{i}.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"Decision number {path.rstrip('.')} is {value}; record finite numbers (or None "
                                  "for one that could not be computed).")
        elif value is not None and not isinstance(value, str | int | float | bool):
            raise ValidationError(f"Decision number {path.rstrip('.')} is a {type(value).__name__}; record numbers, "
                                  "strings or None.")

    if not isinstance(numbers, dict):
        raise ValidationError(f"Decision numbers must be a mapping (route or metric to numbers), got "
                              f"{type(numbers).__name__}.")
    finite(numbers, "")
    return numbers


def record_decision(ctx: Context, name: str, decision: str, numbers: dict[str, Any], *, percent: int | None = None,
                    reasons: list[str] | None = None, revision: int | None = None) -> Revision:
    """Carry out an automated canary decision and record it, with its numbers and the policy it applied, in the
    revision it makes (audited, in the lineage, in `deploy history`): `advance` sets the canary to `percent`
    (default: the policy's next step), `promote` and `rollback` do what they say, and `hold` records a revision
    with the routes unchanged (servers see the same routes under a new number).

    `revision` is the revision the numbers were measured on (default: the one in force now); when another has
    taken its place meanwhile, nothing changes and a ConflictError says so."""
    from shipyard.deployments import strategies
    from shipyard.deployments.revisions import Plan, change

    if decision not in DECISIONS:
        raise ValidationError(f"Unknown decision {decision!r}: use one of {', '.join(DECISIONS)}.", decision=decision)
    numbers = _check_numbers(numbers)
    current = get_deployment(ctx, name)
    judged = revision if revision is not None else current.revision
    if current.strategy != "canary" or current.current.canary is None:
        raise ConflictError(f"Deployment '{name}' runs no canary (strategy {current.strategy}); an analysis decision "
                            "is about a canary.", deployment=name)
    policy = analysis_policy(ctx, name)
    canary = current.current.canary
    record = DecisionRecord(decision, numbers, policy.to_dict(), canary.weight, list(reasons or []))
    why = f"automated analysis: {decision}" + (f" ({'; '.join(reasons)})" if reasons else "")
    if decision == "promote":
        return strategies.promote(ctx, name, reason=why, analysis=record.to_dict(), expect_revision=judged)
    if decision == "rollback":
        return strategies.rollback(ctx, name, reason=why, analysis=record.to_dict(), expect_revision=judged)
    if decision == "advance":
        step = percent if percent is not None else policy.next_step(canary.weight)
        if step is None:
            raise ValidationError(f"The canary of '{name}' is at {canary.weight}%, the last step of {policy.source}; "
                                  "promote it instead of advancing.", deployment=name)
        record.step = step
        return strategies.canary(ctx, name, canary.version_id, step, reason=why + f": {canary.weight}% → {step}%",
                                 analysis=record.to_dict(), expect_revision=judged)

    def hold(conn: Any, live: Any) -> Plan:
        live = strategies.expect(name, live, judged)
        return Plan(live.strategy, live.routes, why, sticky_by=live.current.sticky_by, analysis=record.to_dict())

    return change(ctx, name, "deployment.analysis", hold)


def apply(ctx: Context, name: str) -> Revision:
    """Make deployment `name` what deploy.NAME of shipyard.yaml declares: create it (strategy single), replace
    its primary, start (or re-weight) the canary at the first step with the policy recorded, attach the shadow,
    or start the A/B test. Nothing is written when it already is as declared."""
    from shipyard.deployments import strategies
    from shipyard.policy.deploy import declared_deployments, deployment_spec

    document = ctx.policy.document()
    spec = deployment_spec(document, check_name(name))
    if spec is None:
        declared = declared_deployments(document)
        raise ConfigError(
            f"{document.name} declares no deploy.{name}. Declared deployments: {', '.join(declared) or 'none'}. Add "
            f"e.g.\ndeploy:\n  {name}:\n    model: credit@champion\n    strategy: canary\n    steps: [10, 50, 100]",
            deployment=name,
        )
    try:
        current = get_deployment(ctx, name)
    except NotFoundError:
        current = None
    reason = f"applied deploy.{name} of {document.name}"
    if spec.strategy == "ab":
        variants = {label: (v.model, v.weight) for label, v in spec.variants.items()}
        if current is None:
            raise NotFoundError(f"Deployment '{name}' does not exist, and an A/B test splits an existing "
                                f"deployment's traffic. Create it first (`shipyard deploy create {name} --model "
                                "NAME/VERSION`).", deployment=name)
        return strategies.ab(ctx, name, variants, sticky_by=spec.sticky_by, reason=reason)
    assert spec.model is not None
    if current is None:
        if spec.strategy != "single":
            raise NotFoundError(
                f"Deployment '{name}' does not exist, and a {spec.strategy} runs beside a primary. Create it first "
                f"(`shipyard deploy create {name} --model NAME/VERSION`), or declare strategy: single.",
                deployment=name,
            )
        return strategies.create(ctx, name, spec.model, reason=reason)
    if spec.strategy == "single":
        return strategies.replace(ctx, name, spec.model, reason=reason)
    if spec.strategy == "shadow":
        return strategies.shadow(ctx, name, spec.model, reason=reason)
    policy = analysis_policy(ctx, name)
    step = current.current.canary.weight if current.current.canary is not None else policy.steps[0]
    return strategies.canary(ctx, name, spec.model, step, sticky_by=spec.sticky_by, reason=reason,
                             analysis={"policy": policy.to_dict()} if current.strategy != "canary" else None)
