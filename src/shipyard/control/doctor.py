"""`shipyard doctor`: the failure playbooks (accuracy drop, training/serving skew, latency spike, dependency
mismatch) run as checks against a deployment or a model version, each with its evidence and recovery step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import NotFoundError, ValidationError, did_you_mean

if TYPE_CHECKING:
    from shipyard.context import Context
    from shipyard.models.records import ModelVersion
    from shipyard.monitoring.windows import Window

Status = Literal["PASS", "WARN", "FAIL"]
_RANK = {"PASS": 0, "WARN": 1, "FAIL": 2}
#: The window looked at when none is given: the last hour of the log.
DEFAULT_WINDOW_SECONDS = 3600.0
#: Fewer answered rows than this: drift and distributions are not judged ("insufficient data").
MIN_ROWS = 30
#: A registered score may fall this much (absolute; errors such as rmse: relative) before the check FAILs.
DEFAULT_TOLERANCE = 0.05


@dataclass(frozen=True)
class Playbook:
    """One row of the recovery table (docs/doctor.md): the failure mode, what is checked, what to do."""

    name: str
    title: str
    checked: str
    recovery: str


PLAYBOOKS: dict[str, Playbook] = {p.name: p for p in (
    Playbook("accuracy_drop", "Accuracy drop",
             "integrity of recent inputs against the training dataset's contract; drift against the training "
             "data; accuracy on feedback against the registered metrics",
             "Broken inputs: fix the upstream pipeline that feeds the model. Drift with a fall in accuracy: "
             "retrain on fresh data (a new dataset version, `shipyard run`), and roll back "
             "(`shipyard deploy rollback`) while it trains if an earlier version did better."),
    Playbook("training_serving_skew", "Training/serving skew",
             "serving inputs against the model's signature: columns missing or extra, types, values outside "
             "the ranges and categories seen in training, and the distributions",
             "Make the serving side prepare features as training did (units, encodings, category names) in "
             "the client or feature pipeline; if serving is right, retrain on features prepared the serving "
             "way. Roll back the client release that introduced it."),
    Playbook("latency_spike", "Latency spike",
             "latency per time bucket (p50, p99) in the prediction log against the infrastructure gate's "
             "measurement; rows per request, requests per second, the model's size",
             "A new version is slower: roll back (`shipyard deploy rollback`). Load or batches grew: add "
             "workers or replicas, or cap the rows per request. Re-run the infrastructure gate on the "
             "serving machine to tell the model from the machine."),
    Playbook("dependency_mismatch", "Dependency mismatch",
             "the Python and package versions recorded with the model against this serving environment, "
             "package by package",
             "Rebuild the serving image with the recorded environment (`shipyard deploy export` pins it), "
             "or retrain and register the model in the serving environment."),
)}


@dataclass
class CheckResult:
    """One playbook's verdict: what it looked at, the numbers, one line per finding, and what to do."""

    name: str
    status: Status
    summary: str
    looked_at: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def playbook(self) -> Playbook:
        return PLAYBOOKS[self.name]

    def to_dict(self) -> dict[str, Any]:
        from shipyard.gates.results import plain

        return {"name": self.name, "title": self.playbook.title, "status": self.status, "summary": self.summary,
                "looked_at": self.looked_at, "findings": self.findings, "evidence": plain(self.evidence),
                "recovery": self.playbook.recovery}


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default="PASS")


@dataclass(frozen=True)
class Subject:
    """What the doctor examines: a model version, and the deployment whose traffic it reads (None: all of it)."""

    kind: Literal["deployment", "model"]
    name: str
    version: ModelVersion
    deployment: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "model": self.version.model,
                "version": self.version.version, "version_id": self.version.version_id,
                "deployment": self.deployment}


@dataclass
class Diagnosis:
    subject: Subject
    window: dict[str, Any]
    checks: list[CheckResult]

    @property
    def status(self) -> Status:
        return worst([c.status for c in self.checks])

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.subject.to_dict(), "window": self.window, "status": self.status,
                "checks": [c.to_dict() for c in self.checks]}


def resolve_target(ctx: Context, target: str | None) -> Subject:
    """A deployment name (its primary route's version, through that deployment) or a model reference (NAME/V,
    NAME@ALIAS, models:/...; the whole log of that version). None: the only deployment there is."""
    from shipyard.deployments.revisions import get_deployment, list_deployments
    from shipyard.models.registry import get_model_version, list_models

    if target is None:
        names = [d.name for d in list_deployments(ctx)]
        if len(names) != 1:
            raise ValidationError(
                "Name what to examine: a deployment or a model version, e.g. `shipyard doctor credit-api` or "
                f"`shipyard doctor credit@champion`. Deployments: {', '.join(sorted(names)) or 'none yet'}.")
        target = names[0]
    if "/" in target or "@" in target:
        version = get_model_version(ctx, target)
        return Subject("model", target, version, None)
    deployments = [d.name for d in list_deployments(ctx)]
    if target in deployments:
        deployment = get_deployment(ctx, target)
        route = deployment.current.primary or next(iter(deployment.routes), None)
        if route is None:
            raise NotFoundError(f"Deployment '{target}' routes to no model now; deploy one first "
                                f"(`shipyard deploy create {target} --model NAME/VERSION`).", deployment=target)
        return Subject("deployment", target, get_model_version(ctx, route.version_id), target)
    models = [str(m["name"]) for m in list_models(ctx)]
    if target in models:
        return Subject("model", target, get_model_version(ctx, target), None)
    raise NotFoundError(
        f"No deployment or model named '{target}'.{did_you_mean(target, deployments + models)} "
        f"Deployments: {', '.join(sorted(deployments)) or 'none'}; models: {', '.join(sorted(models)) or 'none'}. "
        "Give a deployment name or a model reference such as credit/3 or credit@champion.", target=target)


def diagnose(ctx: Context, target: str | None = None, *, last: float | None = None, rows: int | None = None,
             until: float | None = None, tolerance: float = DEFAULT_TOLERANCE) -> Diagnosis:
    """Run the four playbooks against `target` over the last `last` seconds (default an hour) or the newest
    `rows` rows of its prediction log. Nothing is stored: the doctor only reads."""
    from shipyard.control.inputs import accuracy_check, feature_view_skew, input_evidence, skew_check
    from shipyard.control.runtime import dependency_check, latency_check
    from shipyard.monitoring.windows import read_window

    if last is not None and rows is not None:
        raise ValidationError("Give one of a window (e.g. 1h) or a number of rows, not both.")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        raise ValidationError(f"Invalid rows {rows!r}: expected a whole number of rows above 0, e.g. 5000.")
    if not 0 <= tolerance < 1:
        raise ValidationError(f"Invalid tolerance {tolerance!r}: expected a fraction in [0, 1), e.g. 0.05.")
    subject = resolve_target(ctx, target)
    if rows is None and last is None:
        last = DEFAULT_WINDOW_SECONDS
    version = subject.version
    window: Window = read_window(ctx, version.model, version.version, deployment=subject.deployment, last=last,
                                 rows=rows, until=until)
    evidence = input_evidence(ctx, version, window)
    checks = [accuracy_check(ctx, version, window, evidence, tolerance),
              feature_view_skew(ctx, version, window, skew_check(version, window, evidence)),
              latency_check(ctx, version, window),
              dependency_check(version)]
    return Diagnosis(subject, window.to_dict(), checks)
