"""What a deployment's experiments show, from the prediction log and the feedback: how a shadow compares with
the primary it copies (`deploy compare`), and how A/B variants perform (`deploy report`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context


@dataclass
class Comparison:
    deployment: str
    primary: str
    shadow: str
    pairs: int  # requests answered by both
    kind: str  # classification | regression
    agreement: float | None = None  # share of rows where both predicted the same (classification)
    mean_difference: float | None = None  # regression: mean and largest absolute difference
    max_difference: float | None = None
    primary_p50_ms: float | None = None
    shadow_p50_ms: float | None = None
    primary_p99_ms: float | None = None
    shadow_p99_ms: float | None = None
    shadow_errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_shadow(ctx: Context, name: str) -> Comparison:
    """The primary's and the shadow's answers to the same requests, over the revisions that had the shadow."""
    import pandas as pd

    from shipyard.deployments.revisions import get_deployment, history
    from shipyard.errors import ConflictError
    from shipyard.serving.batches import read_predictions

    revisions = [r for r in sorted(history(ctx, name), key=lambda r: r.revision)
                 if any(route.role == "shadow" for route in r.routes)]
    if not revisions:
        get_deployment(ctx, name, deleted_ok=True)  # an unknown name says so
        raise ConflictError(f"Deployment '{name}' never had a shadow; attach one with `shipyard deploy shadow "
                            f"{name} --model MODEL/V`.", deployment=name)
    latest = revisions[-1]
    shadow = next(r for r in latest.routes if r.role == "shadow")
    primary = next(r for r in latest.routes if r.role == "primary")
    frames = []
    for route in (primary, shadow):
        frame = read_predictions(ctx, route.model, route.version, revisions[0].created / 1000.0)
        if len(frame) and "deployment" in frame:
            frames.append(frame[(frame["deployment"] == name)
                                & (frame["deployment_route"] == ("shadow" if route is shadow else "primary"))])
    logged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    comparison = Comparison(name, primary.version_id, shadow.version_id, 0, "classification")
    if logged.empty:
        return comparison
    failed = logged["error"].notna() if "error" in logged else pd.Series(False, index=logged.index)
    shadows = logged[logged["deployment_route"] == "shadow"]
    comparison.shadow_errors = int(shadows.loc[failed[shadows.index], "request_id"].nunique())
    if "error" in shadows:
        comparison.error_samples = sorted(set(shadows["error"].dropna().astype(str)))[:5]
    ok = logged[~failed]
    first = ok[ok["deployment_route"] == "primary"][["request_id", "row", "prediction", "latency_ms"]]
    second = ok[ok["deployment_route"] == "shadow"][["request_id", "row", "prediction", "latency_ms"]]
    both = first.merge(second, on=["request_id", "row"], suffixes=("_primary", "_shadow"))
    comparison.pairs = int(both["request_id"].nunique())
    for label, part in (("primary", first), ("shadow", second)):
        latency = part.drop_duplicates("request_id")["latency_ms"]
        if len(latency):
            setattr(comparison, f"{label}_p50_ms", float(latency.quantile(0.5)))
            setattr(comparison, f"{label}_p99_ms", float(latency.quantile(0.99)))
    if both.empty:
        return comparison
    a, b = both["prediction_primary"], both["prediction_shadow"]
    if pd.api.types.is_float_dtype(a) and pd.api.types.is_float_dtype(b):
        difference = (a.astype(float) - b.astype(float)).abs()
        comparison.kind, comparison.mean_difference = "regression", float(difference.mean())
        comparison.max_difference = float(difference.max())
    else:
        comparison.agreement = float((a.astype(str).to_numpy() == b.astype(str).to_numpy()).mean())
    return comparison


@dataclass
class VariantResult:
    label: str
    version: str
    requests: int
    p99_ms: float | None
    labelled: int  # rows with feedback
    score: float | None  # accuracy (classification) or mean absolute error (regression)
    low: float | None  # 95 % interval of the score
    high: float | None


@dataclass
class Report:
    deployment: str
    metric: str  # accuracy | mean_absolute_error
    variants: list[VariantResult]
    test: str | None = None  # the significance test used
    p_value: float | None = None
    verdict: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ab_report(ctx: Context, name: str) -> Report:
    """Per variant of the A/B test in force (or the last one): requests, p99 latency, and performance on the
    feedback received, with 95 % intervals and a test of whether the variants differ."""
    import numpy as np

    from shipyard.deployments.revisions import history
    from shipyard.errors import ConflictError
    from shipyard.serving.batches import read_predictions
    from shipyard.serving.feedback import joined_feedback

    tests = [r for r in sorted(history(ctx, name), key=lambda r: r.revision) if r.strategy == "ab"]
    if not tests:
        raise ConflictError(f"Deployment '{name}' never ran an A/B test; start one with `shipyard deploy ab {name} "
                            "--variant a=MODEL/V:50 --variant b=MODEL/V:50`.", deployment=name)
    latest = tests[-1]
    since = min(r.created for r in tests if [x.version_id for x in r.routes] == [x.version_id for x in latest.routes])
    results, samples, metric = [], [], "accuracy"
    for route in latest.routes:
        logged = _of(read_predictions(ctx, route.model, route.version, since / 1000.0), name, route.label)
        labelled = _of(joined_feedback(ctx, route.model, route.version), name, route.label)
        if len(labelled):
            import pandas as pd

            labelled = labelled[labelled["timestamp"] >= pd.Timestamp(since, unit="ms", tz="UTC")]
        latency = logged.drop_duplicates("request_id")["latency_ms"] if len(logged) else None
        values: Any = None
        if len(labelled):
            predicted, truth = labelled["prediction"], labelled["feedback"]
            if _numeric(predicted) and _numeric(truth) and predicted.nunique() > 20:
                metric = "mean_absolute_error"
                values = (predicted.astype(float) - truth.astype(float)).abs().to_numpy()
            else:
                values = (predicted.astype(str).to_numpy() == truth.astype(str).to_numpy()).astype(float)
        samples.append(values)
        score = low = high = None
        if values is not None and len(values):
            score = float(np.mean(values))
            low, high = _interval(values, metric)
        results.append(VariantResult(route.label, route.version_id, int(logged["request_id"].nunique())
                                     if len(logged) else 0, float(latency.quantile(0.99)) if latency is not None
                                     and len(latency) else None, 0 if values is None else len(values), score, low, high))
    report = Report(name, metric, results)
    usable = [s for s in samples if s is not None and len(s) >= 2]
    if len(usable) == len(samples) >= 2:
        report.test, report.p_value = _significance(usable, metric)
        better = max(results, key=lambda r: (r.score or 0.0) if metric == "accuracy" else -(r.score or 0.0))
        report.verdict = (f"variant {better.label} ({better.version}) differs significantly (p = "
                          f"{report.p_value:.3g})" if report.p_value < 0.05 else
                          f"no significant difference yet (p = {report.p_value:.3g}); keep collecting feedback")
    else:
        report.verdict = "not enough feedback on every variant to compare them"
    return report


def _interval(values: Any, metric: str) -> tuple[float, float]:
    import numpy as np

    n = len(values)
    if metric == "accuracy":  # Wilson score interval
        p, z = float(np.mean(values)), 1.959964
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return centre - half, centre + half
    from scipy import stats

    mean, error = float(np.mean(values)), float(stats.sem(values)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1)) * error if n > 1 else 0.0
    return mean - half, mean + half


def _significance(samples: list[Any], metric: str) -> tuple[str, float]:
    import numpy as np
    from scipy import stats

    if metric == "accuracy":  # a contingency table of right and wrong per variant
        table = np.array([[s.sum(), len(s) - s.sum()] for s in samples])
        if (table.sum(axis=0) == 0).any():
            return "chi-square", 1.0
        return "chi-square", float(stats.chi2_contingency(table)[1])
    if len(samples) == 2:
        return "Welch t-test", float(stats.ttest_ind(samples[0], samples[1], equal_var=False).pvalue)
    return "one-way ANOVA", float(stats.f_oneway(*samples).pvalue)


def _of(frame: pd.DataFrame, deployment: str, label: str) -> pd.DataFrame:
    if not len(frame) or "deployment" not in frame:
        return frame.iloc[0:0]
    chosen = frame[(frame["deployment"] == deployment) & (frame["deployment_route"] == label)]
    return chosen[chosen["error"].isna()] if "error" in chosen else chosen


def _numeric(series: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))
