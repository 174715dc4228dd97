"""Automated canary analysis: judge a deployment's canary against its primary from what the servers logged,
then advance it a step, promote it, or roll it back, recording every decision with the numbers behind it.

The numbers come from the prediction log of the revision being judged (requests answered through the
deployment since that revision began): requests and failed requests per route, p99 latency, the shift of
the canary's predictions from the primary's (PSI over the primary's classes or deciles, or the KS
statistic), and, where feedback has arrived, each route's accuracy (classifiers) or negative mean absolute
error (regressors). The limits are the deployment's analysis policy (deploy.NAME in shipyard.yaml)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context
    from shipyard.deployments.analysis import AnalysisPolicy
    from shipyard.deployments.records import Revision


@dataclass
class Verdict:
    decision: str  # advance | promote | rollback | wait (not enough evidence yet: nothing is recorded)
    numbers: dict[str, Any]
    reasons: list[str] = field(default_factory=list)


def route_numbers(ctx: Context, revision: Revision) -> dict[str, Any]:
    """Per route label (primary, canary), what the deployment's servers logged during `revision`."""
    from shipyard.serving.batches import read_predictions
    from shipyard.serving.feedback import joined_feedback

    since = revision.created / 1000.0
    numbers: dict[str, Any] = {}
    for route in revision.routes:
        if not route.answers:
            continue
        frame = read_predictions(ctx, route.model, route.version, since)
        frame = _ours(frame, revision.deployment, route.label)
        requests = int(frame["request_id"].nunique()) if len(frame) else 0
        failed = int(frame.loc[frame["error"].notna(), "request_id"].nunique()) if "error" in frame and len(frame) else 0
        answered = frame[frame["error"].isna()] if "error" in frame else frame
        entry: dict[str, Any] = {
            "version": route.version_id, "requests": requests, "failed": failed,
            "error_rate": failed / requests if requests else 0.0,
            "p99_ms": float(answered.drop_duplicates("request_id")["latency_ms"].quantile(0.99)) if len(answered) else 0.0,
        }
        labelled = _ours(joined_feedback(ctx, route.model, route.version), revision.deployment, route.label)
        labelled = labelled[labelled["timestamp"] >= _utc(since)] if len(labelled) else labelled
        if len(labelled):
            entry["feedback_rows"] = int(len(labelled))
            entry["feedback_score"] = _score(labelled["prediction"], labelled["feedback"])
        numbers[route.label] = entry
        numbers[route.label]["_predictions"] = answered["prediction"] if len(answered) else None
    return numbers


def judge(policy: AnalysisPolicy, numbers: dict[str, Any], elapsed: float) -> Verdict:
    """The decision the numbers call for under `policy` (a copy of the numbers without raw predictions)."""
    primary, canary = numbers.get("primary"), numbers.get("canary")
    shown: dict[str, Any] = {label: {k: v for k, v in n.items() if not k.startswith("_")}
                             for label, n in numbers.items()}
    if primary is None or canary is None:
        return Verdict("wait", shown, ["no canary in force"])
    reasons: list[str] = []
    enough = min(canary["requests"], primary["requests"]) >= policy.min_requests
    if canary["requests"] and primary["requests"] and policy.max_error_rate_increase is not None:
        # Before the step has its requests, failures roll back only when they settle it: the canary's rate
        # counted over the requests still to come, all answered, would exceed the limit anyway.
        floor = canary["failed"] / max(canary["requests"], policy.min_requests)
        rate = canary["error_rate"] if enough else floor
        if rate - primary["error_rate"] > policy.max_error_rate_increase:
            reasons.append(f"error rate {canary['error_rate']:.3f} vs {primary['error_rate']:.3f} (more than "
                           f"{policy.max_error_rate_increase} higher)")
    if enough:  # the distributions are judged on a step's full sample, never on its first few requests
        if policy.max_p99_latency_ratio is not None and primary["p99_ms"] > 0 and canary["p99_ms"] > 0:
            ratio = canary["p99_ms"] / primary["p99_ms"]
            shown["p99_ratio"] = ratio
            if ratio > policy.max_p99_latency_ratio:
                reasons.append(f"p99 latency {canary['p99_ms']:.1f} ms is {ratio:.2f}x the primary's "
                               f"(limit {policy.max_p99_latency_ratio}x)")
        if policy.max_prediction_shift is not None and canary["_predictions"] is not None \
                and primary["_predictions"] is not None:
            shift = prediction_shift(primary["_predictions"], canary["_predictions"], policy.shift_statistic)
            shown["prediction_shift"] = shift
            if shift > policy.max_prediction_shift:
                reasons.append(f"prediction shift {policy.shift_statistic} {shift:.3f} over "
                               f"{policy.max_prediction_shift}")
        if policy.min_feedback_delta is not None and "feedback_score" in canary and "feedback_score" in primary:
            delta = canary["feedback_score"] - primary["feedback_score"]
            shown["feedback_delta"] = delta
            if delta < policy.min_feedback_delta:
                reasons.append(f"on feedback the canary scores {canary['feedback_score']:.3f} against the primary's "
                               f"{primary['feedback_score']:.3f} (at least {policy.min_feedback_delta:+} asked)")
    if reasons:
        return Verdict("rollback", shown, reasons)
    if not enough or elapsed < policy.duration_seconds:
        return Verdict("wait", shown, [f"{canary['requests']} canary and {primary['requests']} primary requests "
                                       f"in {elapsed:.0f} s; a step needs {policy.min_requests} each and "
                                       f"{policy.duration_seconds:.0f} s"])
    return Verdict("advance", shown, ["within every limit"])


def run_canary(ctx: Context, name: str, model: str, *, poll_seconds: float = 5.0, timeout: float | None = None,
               sticky_by: str | None = None, report: Callable[[str], None] = print,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Revision:
    """Start `model` as the canary of `name` at the policy's first step and drive it to promotion or rollback.
    Returns the final revision; a timeout rolls it back (a canary never stays half-deployed unattended)."""
    from shipyard.deployments.analysis import analysis_policy

    policy = analysis_policy(ctx, name)
    revision = start_canary(ctx, name, model, policy, sticky_by=sticky_by, report=report)
    began = step_began = clock()
    while True:
        timed_out = timeout is not None and clock() - began > timeout
        revision, decision = canary_step(ctx, name, policy, revision, clock() - step_began, report=report,
                                         timed_out=f"no decision within {timeout:.0f} s" if timed_out else None)
        if decision in ("promote", "rollback"):
            return revision
        if decision == "wait":
            sleep(poll_seconds)
        else:
            step_began = clock()


def start_canary(ctx: Context, name: str, model: str, policy: AnalysisPolicy, *, sticky_by: str | None = None,
                 report: Callable[[str], None] = print) -> Revision:
    """`model` as the canary of `name` at the policy's first step (the revision in force when it is that
    already, so a restarted caller does not start it twice)."""
    from shipyard.deployments.revisions import get_deployment
    from shipyard.deployments.strategies import canary as start

    current = get_deployment(ctx, name).current
    route = current.canary
    if route is not None and route.version_id == model:
        return current
    revision = start(ctx, name, model, policy.steps[0], sticky_by=sticky_by,
                     reason=f"automated canary: step {policy.steps[0]}%")
    report(f"Canary {model} at {policy.steps[0]}% (revision {revision.revision}); policy from {policy.source}.")
    return revision


def canary_step(ctx: Context, name: str, policy: AnalysisPolicy, revision: Revision, elapsed: float, *,
                report: Callable[[str], None] = print, timed_out: str | None = None) -> tuple[Revision, str]:
    """One look at the canary of `revision`, `elapsed` seconds into its step: the decision (wait, advance,
    promote or rollback) and the revision in force after it. A decision is recorded in the revision it makes;
    `timed_out` (why waiting is over) turns a wait into a rollback."""
    from shipyard.deployments.analysis import record_decision
    from shipyard.deployments.revisions import get_deployment

    numbers = route_numbers(ctx, revision)
    verdict = judge(policy, numbers, elapsed)
    if verdict.decision == "wait" and timed_out is not None:
        verdict = Verdict("rollback", verdict.numbers, [f"{timed_out}: " + "; ".join(verdict.reasons)])
    if verdict.decision == "wait":
        return revision, "wait"
    weight = next(r.weight for r in revision.routes if r.role == "canary")
    decision = verdict.decision
    if decision == "advance" and policy.next_step(weight) in (None, 100):
        decision = "promote"
    revision = record_decision(ctx, name, decision, verdict.numbers, reasons=verdict.reasons,
                               revision=revision.revision)
    report(f"{decision}: {'; '.join(verdict.reasons)} -> revision {revision.revision} "
           f"({', '.join(f'{r.label} {r.version_id} {r.weight}%' for r in revision.routes if r.answers)})")
    if decision == "advance":
        revision = get_deployment(ctx, name).current
    return revision, decision


def prediction_shift(primary: pd.Series, canary: pd.Series, statistic: str = "psi") -> float:
    """How far the canary's predictions moved from the primary's: the population stability index over the
    primary's classes (or its deciles, for numbers), or the two-sample KS statistic."""
    import numpy as np
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(primary) and pd.api.types.is_numeric_dtype(canary) \
        and primary.nunique() > 20
    if statistic == "ks" and numeric:
        from scipy.stats import ks_2samp

        return float(ks_2samp(primary.to_numpy(float), canary.to_numpy(float)).statistic)
    if numeric:
        edges = np.unique(np.quantile(primary.to_numpy(float), np.linspace(0, 1, 11)))
        expected = np.histogram(np.clip(primary, edges[0], edges[-1]), edges)[0]
        actual = np.histogram(np.clip(canary, edges[0], edges[-1]), edges)[0]
    else:
        categories = sorted(set(primary.astype(str)) | set(canary.astype(str)))
        expected = primary.astype(str).value_counts().reindex(categories, fill_value=0).to_numpy()
        actual = canary.astype(str).value_counts().reindex(categories, fill_value=0).to_numpy()
    e = np.maximum(expected / max(expected.sum(), 1), 1e-4)
    a = np.maximum(actual / max(actual.sum(), 1), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def _ours(frame: pd.DataFrame, deployment: str, label: str) -> pd.DataFrame:
    if not len(frame) or "deployment" not in frame:
        return frame.iloc[0:0]
    return frame[(frame["deployment"] == deployment) & (frame["deployment_route"] == label)]


def _utc(seconds: float) -> pd.Timestamp:
    import pandas as pd

    return pd.Timestamp(seconds, unit="s", tz="UTC")


def _score(predicted: pd.Series, truth: pd.Series) -> float:
    """Accuracy for labels, negative mean absolute error for numbers (higher is better either way)."""
    import pandas as pd

    if pd.api.types.is_float_dtype(predicted) and pd.api.types.is_numeric_dtype(truth):
        return -float((predicted.astype(float) - truth.astype(float)).abs().mean())
    same = predicted.astype(str).to_numpy() == truth.astype(str).to_numpy()
    return float(same.mean()) if len(same) else math.nan
