"""The input-side playbooks: an accuracy drop (integrity against the data contract, drift, accuracy on feedback)
and training/serving skew (the serving inputs against the model's signature)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.control.doctor import MIN_ROWS, CheckResult, Status, worst
from shipyard.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context
    from shipyard.data.schema import Schema
    from shipyard.models.records import ModelVersion
    from shipyard.models.signature import ColumnSpec
    from shipyard.monitoring.drift import DriftReport
    from shipyard.monitoring.windows import Window

#: A column with at least this share of its values outside what training saw is prepared differently on the
#: serving side (skew); fewer are broken rows (integrity).
SYSTEMATIC_SHARE = 0.1
#: ... and at least this many of them: on a handful of rows one outlier is not a pattern.
SYSTEMATIC_MIN_VALUES = 5
#: Feedback on fewer rows than this: accuracy is shown but not judged.
MIN_LABELLED = 30
#: Scores where higher is better, and errors (compared relatively).
HIGHER_IS_BETTER = ("accuracy", "f1", "precision", "recall", "roc_auc", "r2")
LOWER_IS_BETTER = ("rmse", "mae")
_COMPATIBLE = {("integer", "float"), ("float", "integer"), ("boolean", "integer"), ("string", "category"),
               ("category", "string")}


@dataclass
class ColumnSkew:
    """A signature column against what the window logged."""

    column: str
    expected: str  # the signature's kind
    observed: str | None  # None: not logged
    outside: int = 0  # values outside the training range or categories
    values: int = 0  # non-null values looked at
    examples: list[Any] = field(default_factory=list)
    served: dict[str, Any] = field(default_factory=dict)  # min / median / max of a numeric column
    trained: dict[str, Any] = field(default_factory=dict)  # the signature's range or categories

    @property
    def share(self) -> float:
        return self.outside / self.values if self.values else 0.0

    @property
    def systematic(self) -> bool:
        return self.outside >= SYSTEMATIC_MIN_VALUES and self.share >= SYSTEMATIC_SHARE

    @property
    def compatible(self) -> bool:
        return self.observed is None or self.observed == self.expected or self.expected == "object" or \
            (self.observed, self.expected) in _COMPATIBLE


@dataclass
class InputEvidence:
    """What both input playbooks read once: the logged inputs, their skew against the signature, the contract's
    anomalies and the drift report (None when there was too little to judge, with the reason in `notes`)."""

    inputs: pd.DataFrame
    signature_columns: list[str]
    extra_columns: list[str]
    skew: dict[str, ColumnSkew]
    contract: str | None = None  # where the contract came from
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    drift: DriftReport | None = None
    reference: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def systematic(self) -> list[str]:
        return [c.column for c in self.skew.values() if c.systematic]


def input_evidence(ctx: Context, version: ModelVersion, window: Window) -> InputEvidence:
    from shipyard.models.signature import Signature

    inputs = window.inputs()
    signature = Signature.from_dict(version.signature) if version.signature else None
    wanted = signature.columns if signature else list(inputs.columns)
    specs = signature.inputs if signature else []
    evidence = InputEvidence(inputs, wanted, [c for c in inputs.columns if signature and c not in wanted],
                             {spec.name: _column_skew(spec, inputs) for spec in specs})
    if inputs.empty:
        return evidence
    present = [c for c in wanted if c in inputs.columns]
    evidence.reference = version.dataset_version
    if version.dataset_version is None:
        evidence.notes.append(f"{version.version_id} names no training dataset: no contract and no drift reference")
        return evidence
    _contract(ctx, version.dataset_version, inputs[present], evidence)
    if len(inputs) < MIN_ROWS:
        evidence.notes.append(f"insufficient data for drift: {len(inputs)} answered rows, {MIN_ROWS} needed")
    else:
        evidence.drift = _drift(ctx, version.dataset_version, inputs, present, evidence)
    return evidence


def _column_skew(spec: ColumnSpec, inputs: pd.DataFrame) -> ColumnSkew:
    import numpy as np
    import pandas as pd

    from shipyard.models.signature import column_kind

    if spec.name not in inputs.columns:
        return ColumnSkew(spec.name, spec.kind, None)
    values = inputs[spec.name].infer_objects().dropna()
    found = ColumnSkew(spec.name, spec.kind, column_kind(values.dtype) if len(values) else spec.kind,
                       values=len(values))
    if spec.kind in ("integer", "float") and spec.minimum is not None and spec.maximum is not None:
        found.trained = {"min": spec.minimum, "max": spec.maximum}
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        numbers = numbers[np.isfinite(numbers)]
        if numbers.size:
            outside = numbers[(numbers < spec.minimum) | (numbers > spec.maximum)]
            found.outside, found.values = int(outside.size), int(numbers.size)
            found.examples = [float(v) for v in outside[:3]]
            found.served = {"min": float(numbers.min()), "median": float(np.median(numbers)),
                            "max": float(numbers.max())}
    elif spec.categories is not None:
        found.trained = {"categories": list(spec.categories)}
        known = {str(c) for c in spec.categories}
        unseen = values[~values.astype(str).isin(known)]
        found.outside = len(unseen)
        found.examples = [str(v) for v in unseen.astype(str).value_counts().index[:3]]
    return found


def _contract(ctx: Context, dataset_ref: str, inputs: pd.DataFrame, evidence: InputEvidence) -> None:
    """The window's inputs validated against the training dataset's contract (schemas/NAME.yaml, else one
    inferred from the training version), limited to the columns the model reads."""
    from shipyard.data.checks import schema_path
    from shipyard.data.schema import Schema, SkewRule, infer_schema, load_schema
    from shipyard.data.validation import validate_table
    from shipyard.data.versions import get_version
    from shipyard.data.workspace_files import load_arrow

    version = get_version(ctx, dataset_ref)
    path = schema_path(ctx, version.dataset)
    if path.is_file():
        contract: Schema = load_schema(path.read_text(), source=str(path))
        evidence.contract = f"{path.relative_to(ctx.workspace.root)}"
    elif version.table_digest is not None:
        available = {str(c["name"]) for c in version.table_schema or []}
        columns = [c for c in inputs.columns if c in available]
        contract = infer_schema(load_arrow(ctx, version, columns), version.profile)
        evidence.contract = f"inferred from {version.version_id} (no schemas/{version.dataset}.yaml)"
    else:
        evidence.notes.append(f"{version.version_id} is a set of files: no contract to check the inputs against")
        return
    rules = {name: rule for name, rule in contract.columns.items() if name in inputs.columns}
    # Only the per-value rules: row counts and keys are the training table's, skew is the drift report's.
    limited = Schema(columns=rules, skew=SkewRule(numeric_js_max=None, categorical_linf_max=None),
                     severity=contract.severity)
    report = validate_table(_arrow(inputs[list(rules)]), None, limited)
    evidence.anomalies = [a.to_dict() for a in report.anomalies]


def _arrow(frame: pd.DataFrame) -> Any:
    """The logged inputs as Arrow; a column of mixed types (numbers and text) is kept as text, as a file would."""
    import pandas as pd
    import pyarrow as pa

    arrays = {}
    for name in frame.columns:
        try:
            arrays[str(name)] = pa.array(frame[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[str(name)] = pa.array(frame[name].map(lambda v: None if v is None or v is pd.NA or v != v
                                                         else str(v)), pa.string())
    return pa.table(arrays)


def _drift(ctx: Context, dataset_ref: str, inputs: pd.DataFrame, present: list[str],
           evidence: InputEvidence) -> DriftReport | None:
    from shipyard.data.versions import get_version
    from shipyard.monitoring.drift import default_method, sketch_drift
    from shipyard.monitoring.reference import reference_sketch
    from shipyard.monitoring.sketch import NOT_COMPARED, SMALL_REFERENCE

    available = {str(c["name"]) for c in get_version(ctx, dataset_ref).table_schema or []}
    retyped = [c for c in present if c in evidence.skew and not evidence.skew[c].compatible]
    if retyped:  # no distribution to compare across types: the skew playbook reports them
        evidence.notes.append(f"not compared for drift, their type changed: {', '.join(retyped)}")
    columns = [c for c in present if c in available and c not in retyped]
    if not columns:
        evidence.notes.append(f"drift not judged: {dataset_ref} has none of the model's inputs")
        return None
    sketch = reference_sketch(ctx, dataset_ref, columns=columns)
    methods: dict[str, str] = {}
    if len(inputs) <= SMALL_REFERENCE:  # a small window gets the tests, as monitors judge it
        methods = {c: default_method(sketch.columns[c].kind, min(len(inputs), sketch.columns[c].count))
                   for c in columns if sketch.columns[c].kind not in NOT_COMPARED}
    try:
        # A diagnosis looks at every column at once: Bonferroni keeps its false alarms at 5% for the whole table.
        return sketch_drift(sketch, inputs, columns=columns, methods=methods, correction="bonferroni")
    except ValidationError as exc:  # values the drift engine cannot compare: say so, judge the rest
        evidence.notes.append(f"drift not judged: {exc}")
        return None


# -- the accuracy-drop playbook --------------------------------------------------------------------------------

def accuracy_check(ctx: Context, version: ModelVersion, window: Window, evidence: InputEvidence,
                   tolerance: float) -> CheckResult:
    check = CheckResult("accuracy_drop", "PASS", "")
    check.looked_at = [f"{len(evidence.inputs)} answered rows of {version.version_id} in the window"]
    if window.rows == 0 or evidence.inputs.empty:
        check.status = "WARN"
        check.summary = ("insufficient data: the window holds no prediction" if window.rows == 0 else
                         f"insufficient data: every one of the window's {window.requests} requests failed")
        return check
    statuses: list[Status] = []
    if evidence.contract:
        check.looked_at.append(f"the contract {evidence.contract}")
    statuses.append(_integrity(evidence, check))
    if evidence.drift is not None:
        check.looked_at.append(f"drift against {evidence.reference}")
        statuses.append(_drift_status(evidence, check))
    statuses.append(_accuracy(ctx, version, window, check, tolerance))
    check.findings.extend(evidence.notes)
    if "FAIL" in statuses[-1:] and evidence.systematic:
        check.findings.append(f"the skew in {', '.join(evidence.systematic)} may explain the fall: see "
                              "training/serving skew first")
    if evidence.drift is None or len(evidence.inputs) < MIN_ROWS:
        statuses.append("WARN")
    check.status = worst(statuses)
    failing = [f for f in check.findings if f.startswith(("broken", "accuracy fell"))]
    check.summary = {"PASS": "inputs keep the contract, no drift, accuracy holds",
                     "WARN": next((f for f in check.findings if f.startswith(("drift", "insufficient"))),
                                  check.findings[0] if check.findings else "see the findings"),
                     "FAIL": "; ".join(failing)}[check.status]
    return check


def _integrity(evidence: InputEvidence, check: CheckResult) -> Status:
    broken, explained = [], []
    for anomaly in evidence.anomalies:
        column = anomaly.get("column")
        skew = evidence.skew.get(str(column))
        if anomaly["kind"] in ("out_of_range", "unseen_category") and skew is not None and skew.systematic:
            explained.append(anomaly)  # the whole column moved: the skew playbook's
        elif anomaly["severity"] == "error":
            broken.append(anomaly)
    check.evidence["integrity"] = {"contract": evidence.contract, "anomalies": evidence.anomalies,
                                   "broken": len(broken), "attributed_to_skew": len(explained)}
    for anomaly in broken:
        check.findings.append(f"broken input: {anomaly['message']}")
    for anomaly in explained:
        check.findings.append(f"{anomaly['column']}: {anomaly['message']} (systematic: judged as "
                              "training/serving skew)")
    return "FAIL" if broken else "PASS"


def _drift_status(evidence: InputEvidence, check: CheckResult) -> Status:
    assert evidence.drift is not None
    report = evidence.drift
    check.evidence["drift"] = {"reference": evidence.reference, "checked": report.checked,
                               "drifted_columns": report.drifted_columns,
                               "columns": {c.column: {"method": c.method, "score": c.score, "threshold": c.threshold,
                                                      "drifted": c.drifted} for c in report.columns}}
    unexplained = [c for c in report.drifted_columns if c not in evidence.systematic]
    for name in unexplained:
        column = report.column(name)
        score = "-" if column.score is None else f"{column.score:.3g}"
        when = f"{'p < ' if column.is_test else '≥ '}{column.threshold:g}"
        check.findings.append(f"drift in {name}: {column.method} {score} ({when}) against {evidence.reference}")
    return "WARN" if unexplained else "PASS"


def _accuracy(ctx: Context, version: ModelVersion, window: Window, check: CheckResult, tolerance: float) -> Status:
    from shipyard.monitoring.performance import performance
    from shipyard.serving.feedback import labelled

    joined = labelled(ctx, window.frame, version.model)
    task = version.details.get("task")
    result = performance(joined, task if task in ("classification", "regression") else None,
                         classes=version.details.get("classes"))
    observed = {name: m.value for name, m in result.metrics.items() if m.value is not None}
    section: dict[str, Any] = {"labelled": result.labelled, "observed": observed,
                               "registered": dict(version.metrics), "tolerance": tolerance, "compared": {}}
    check.evidence["performance"] = section
    if result.labelled == 0:
        check.findings.append("no feedback on the window's rows: accuracy not measured")
        return "PASS"
    check.looked_at.append(f"feedback on {result.labelled} rows")
    if result.labelled < MIN_LABELLED:
        check.findings.append(f"insufficient feedback: {result.labelled} labelled rows, {MIN_LABELLED} needed to "
                              "judge accuracy")
        return "WARN"
    compared = [n for n in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER) if n in observed and n in version.metrics]
    if not compared:
        check.findings.append(f"{version.version_id} has no registered metric to compare with (it has "
                              f"{', '.join(version.metrics) or 'none'}; measured {', '.join(observed)})")
        return "PASS"
    status: Status = "PASS"
    for name in compared:
        registered, now = float(version.metrics[name]), float(observed[name])
        fall = registered - now if name in HIGHER_IS_BETTER else (now - registered) / abs(registered or 1.0)
        section["compared"][name] = {"registered": registered, "observed": now, "fall": fall}
        if fall > tolerance:
            status = "FAIL"
            check.findings.append(f"accuracy fell: {name} {now:.3f} on {result.labelled} labelled rows against "
                                  f"{registered:.3f} registered (tolerance {tolerance:g})")
    return status


# -- the training/serving skew playbook ------------------------------------------------------------------------

def skew_check(version: ModelVersion, window: Window, evidence: InputEvidence) -> CheckResult:
    check = CheckResult("training_serving_skew", "PASS", "")
    check.looked_at = [f"the signature of {version.version_id} ({len(evidence.signature_columns)} inputs)",
                       f"{len(evidence.inputs)} answered rows in the window"]
    if window.rows == 0 or evidence.inputs.empty:
        check.status, check.summary = "WARN", "insufficient data: the window holds no answered prediction"
        return check
    if not evidence.skew:
        check.status, check.summary = "WARN", "no signature to compare the inputs with"
        check.findings = [f"{version.version_id} was registered without a signature: the inputs are not compared "
                          "with what training saw"]
        return check
    statuses: list[Status] = []
    missing = [c.column for c in evidence.skew.values() if c.observed is None]
    if missing:
        statuses.append("FAIL")
        check.findings.append(f"missing from the serving inputs: {', '.join(missing)}")
    if evidence.extra_columns:
        statuses.append("WARN")
        check.findings.append(f"sent but not in the signature (dropped before predicting): "
                              f"{', '.join(evidence.extra_columns)}")
    for column in evidence.skew.values():
        if not column.compatible:
            statuses.append("FAIL")
            check.findings.append(f"{column.column} arrives as {column.observed}; the model was trained on "
                                  f"{column.expected}")
        elif column.systematic:
            statuses.append("FAIL")
            check.findings.append(_outside(column))
    drifted = evidence.drift.drifted_columns if evidence.drift is not None else []
    if evidence.drift is not None:
        check.looked_at.append(f"distributions against {evidence.reference}")
    elif len(evidence.inputs) < MIN_ROWS:
        statuses.append("WARN")
        check.findings.append(f"insufficient data for distributions: {len(evidence.inputs)} answered rows, "
                              f"{MIN_ROWS} needed")
    check.evidence = {
        "missing": missing, "extra": evidence.extra_columns,
        "columns": {c.column: {"expected": c.expected, "observed": c.observed, "outside": c.outside,
                               "values": c.values, "share_outside": round(c.share, 4), "examples": c.examples,
                               "trained": c.trained, "served": c.served, "drifted": c.column in drifted}
                    for c in evidence.skew.values()},
    }
    check.status = worst(statuses)
    check.summary = {"PASS": "serving inputs match the signature's columns, types, ranges and categories",
                     "WARN": "; ".join(check.findings) or "see the findings",
                     "FAIL": "; ".join(f for f in check.findings if not f.startswith("sent"))}[check.status]
    return check


def _outside(column: ColumnSkew) -> str:
    shown = ", ".join(f"{v:.4g}" if isinstance(v, float) else repr(v) for v in column.examples)
    if "categories" in column.trained:
        return (f"{column.column}: {column.share:.0%} of values are categories training never saw (e.g. {shown}); "
                f"it saw {', '.join(map(str, column.trained['categories']))}")
    served = column.served
    return (f"{column.column}: {column.share:.0%} of values outside the training range "
            f"{column.trained['min']:.4g}..{column.trained['max']:.4g} (served median {served['median']:.4g}, "
            f"range {served['min']:.4g}..{served['max']:.4g})")


def feature_view_skew(ctx: Context, version: ModelVersion, window: Window, check: CheckResult) -> CheckResult:
    """For a model trained through feature views: the served feature values of the window against an offline
    recomputation (`features skew`), FAIL when any differ."""
    from shipyard.errors import ShipyardError
    from shipyard.serving.skew import feature_skew

    recorded = version.details.get("features") if isinstance(version.details, dict) else None
    if not recorded or window.rows == 0:
        return check
    views = sorted({ref.partition(":")[0].partition("@")[0] for ref in recorded.get("features") or []})
    found: dict[str, Any] = {}
    for view in views:
        try:
            report = feature_skew(ctx, view, model=version.version_id, since=window.since,
                                  limit=int(window.size) if window.kind == "count" else None)
        except ShipyardError as exc:
            found[view] = {"error": exc.message}
            continue
        found[view] = report.to_dict()
        check.looked_at.append(f"{report.rows} served rows of feature view {view} against get_historical")
        for feature in report.features:
            if feature.differing:
                e = feature.examples[0]
                check.findings.append(
                    f"{feature.feature}: {feature.differing} of {feature.compared} served values differ from the "
                    f"offline recomputation (e.g. {e['key']} at {e['at']}: served {e['served']!r}, offline "
                    f"{e['offline']!r}); see `shipyard features skew {view}`")
    check.evidence["feature_views"] = found
    if any(v.get("differing") for v in found.values()):
        check.status = "FAIL"
        check.summary = "; ".join(f for f in check.findings if "served values differ" in f)
    return check
