"""The standard training pipeline generated from shipyard.yaml:
validate data → prepare → train (or a sweep of trains and a selection) → evaluate → register → gates."""

from __future__ import annotations

import importlib
import itertools
import random
from typing import Any

from shipyard.policy.lifecycle import LifecycleSpec
from shipyard.pipelines.steps import Pipeline, pipeline, step


@step
def validate_data(version: str, schema_file: str | None, workspace: str) -> dict[str, Any]:
    """Check the dataset version against its contract; an error-severity anomaly stops the pipeline."""
    from shipyard.context import open_context
    from shipyard.data.checks import schema_path, validate
    from shipyard.errors import ValidationError

    ctx = open_context(workspace)
    name = version.split("@", 1)[0]
    contract = schema_file or (str(schema_path(ctx, name)) if schema_path(ctx, name).is_file() else None)
    if contract is None:
        return {"version": version, "validated": False, "reason": "no schema contract"}
    report, _ = validate(ctx, version, schema_file=contract)
    if not report.ok:
        problems = "; ".join(a.message for a in report.errors[:5])
        raise ValidationError(f"{version} failed validation, so nothing was trained: {problems}")
    return {"version": version, "validated": True, "warnings": len(report.warnings)}


@step(outputs=3)
def prepare(version: str, checked: dict[str, Any], target: str, drop: list[str], function: str | None,
            test_size: float, random_state: int, stratify: bool, holdout: str | None, workspace: str) -> Any:
    """Split the data version into training and evaluation rows, then apply the feature function and drop.

    Without a declared holdout the rows held out are versioned as NAME-holdout (derived from NAME@V), so the
    gates evaluate on exactly the rows the model never saw. Rows without a target value are left out.
    Returns the training frame, the evaluation frame and what the split did."""
    from sklearn.model_selection import train_test_split

    from shipyard.context import open_context
    from shipyard.data.versions import add_version, get_version
    from shipyard.data.workspace_files import load
    from shipyard.gates.gating import holdout_name

    ctx = open_context(workspace)
    frame = load(ctx, version)
    labelled = frame[frame[target].notna()].reset_index(drop=True)
    if holdout:
        evaluation = get_version(ctx, holdout).version_id
        held = load(ctx, evaluation)
        held = held[held[target].notna()].reset_index(drop=True)
        train_rows = labelled
    else:
        counts = labelled[target].value_counts()
        labels = labelled[target] if stratify and len(counts) <= 20 and counts.min() >= 2 else None
        train_rows, held = (part.reset_index(drop=True) for part in train_test_split(
            labelled, test_size=test_size, random_state=random_state, stratify=labels))
        note = (f"held out of {version} by the standard pipeline: test_size={test_size}, "
                f"random_state={random_state}, stratified={labels is not None}")
        evaluation = add_version(ctx, holdout_name(version), held, message=note, parents=[version]).version.version_id
    split = {"evaluation": evaluation, "training_rows": len(train_rows), "evaluation_rows": len(held),
             "unlabelled_rows": len(frame) - len(labelled)}
    return _features(train_rows, drop, function), _features(held, drop, function), split


def _features(frame: Any, drop: list[str], function: str | None) -> Any:
    frame = frame.drop(columns=[c for c in drop if c in frame.columns])
    return (_function(function)(frame) if function else frame).reset_index(drop=True)


@step
def train(frame: Any, target: str, estimator: str, params: dict[str, Any], features: dict[str, Any]) -> Any:
    """Fit the estimator behind the feature preparation the spec declares (see pipelines/features.py)."""
    from sklearn.pipeline import Pipeline as SkPipeline

    from shipyard.errors import ValidationError
    from shipyard.pipelines.features import non_numeric, preprocessor

    x, y = frame.drop(columns=[target]), frame[target]
    categorical = [c for c in features["categorical"] if c in x.columns]
    datetime = [c for c in features["datetime"] if c in x.columns]
    numeric = [c for c in x.columns if c not in categorical and c not in datetime]
    unplaced = non_numeric(x, numeric)
    if unplaced:
        raise ValidationError(
            f"Column(s) {', '.join(repr(c) for c in unplaced)} hold values that are not numbers; list them under "
            "features.categorical (text), features.datetime (timestamps and dates) or features.drop in shipyard.yaml."
        )
    model = _estimator(estimator)(**params)
    prepared = preprocessor(x, categorical=categorical, datetime=datetime, max_categories=features["max_categories"],
                            impute=features["impute"], scale=features["scale"])
    if prepared is not None:
        model = SkPipeline([("features", prepared), ("model", model)])
    return model.fit(x, y)


@step
def evaluate(model: Any, frame: Any, target: str, metrics: list[str], split: dict[str, Any]) -> dict[str, float]:
    """The evaluation metrics of a model on the evaluation frame, with the number of rows it trained on."""
    from shipyard.gates.evaluation import compute_metrics, infer_task

    x, y = frame.drop(columns=[target]), frame[target].to_numpy()
    task = infer_task(y)
    proba = model.predict_proba(x) if task == "classification" and hasattr(model, "predict_proba") else None
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])] or None
    found = compute_metrics(task, y, model.predict(x), proba, classes=classes)
    return {**{m: float(found[m]) for m in metrics if m in found}, "training_rows": float(split["training_rows"])}


@step
def select(candidates: list[Any], scores: list[dict[str, float]], metric: str) -> Any:
    """The best candidate of a sweep by the primary metric (lower is better for losses and errors)."""
    lower = metric in ("log_loss", "rmse", "mae")
    values = [s.get(metric, float("inf") if lower else float("-inf")) for s in scores]
    best = min(range(len(values)), key=values.__getitem__) if lower else max(range(len(values)), key=values.__getitem__)
    return candidates[best]


@step(cache=False)
def register(model: Any, metrics: dict[str, float], example: Any, target: str, name: str, version: str,
             pipeline_tag: str, workspace: str) -> dict[str, Any]:
    """Register the model with its metrics, signature and lineage to the data version."""
    from shipyard.context import open_context
    from shipyard.models.registry import register_model
    from shipyard.pipelines.steps import current_run_id
    from shipyard.store.db import now_ms
    from shipyard.tracking.records import MetricPoint
    from shipyard.tracking.runs import log_metrics

    ctx = open_context(workspace)
    run_id = current_run_id()
    if run_id is not None:  # the metrics of the registered model, on the run that registers it
        stamp = now_ms()
        log_metrics(ctx, run_id, [MetricPoint(k, float(v), 0, stamp) for k, v in metrics.items()])
    registered = register_model(ctx, name, model, input_example=example.drop(columns=[target]).head(20),
                                run_id=run_id, dataset_version=version, metrics=metrics,
                                description=pipeline_tag, reuse_identical=True)
    assert registered is not None
    return {"version": registered.version_id}


@step(cache=False)
def gate_and_promote(registered: dict[str, Any], promote: bool, split: dict[str, Any],
                     workspace: str) -> dict[str, Any]:
    """Run the configured gates (`evaluation.dataset: split` on the rows `prepare` held out); if they pass,
    take challenger (or champion when there is none)."""
    from shipyard.context import open_context
    from shipyard.errors import GateFailed, NotFoundError
    from shipyard.gates.gating import run_gates
    from shipyard.gates.promotion import promote as move
    from shipyard.models.registry import get_model_version

    ctx = open_context(workspace)
    ref = registered["version"]
    name = ref.split("/", 1)[0]
    current = get_model_version(ctx, ref)
    if current.aliases:  # an unchanged model that already serves: nothing to gate or move
        return {"version": ref, "gates": {}, "alias": current.aliases[0], "unchanged": True}
    gated = run_gates(ctx, ref, split=split["evaluation"]) if ctx.policy.gates(name) else []
    results = {r.gate: r.status for r in gated}
    alias = None
    if promote:
        try:
            get_model_version(ctx, f"{name}@champion")
            alias = "challenger"
        except NotFoundError:
            alias = "champion"
        try:
            move(ctx, ref, alias, reason="standard pipeline: gates passed")
        except GateFailed:
            alias = None
    return {"version": ref, "gates": results, "alias": alias}


def _estimator(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _function(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _candidates(spec: LifecycleSpec) -> list[dict[str, Any]]:
    sweep = spec.model.sweep
    if sweep is None:
        return [dict(spec.model.params)]
    names = sorted(sweep.params)
    grid = [dict(zip(names, values, strict=True)) for values in itertools.product(*(sweep.params[n] for n in names))]
    if sweep.method == "random" and len(grid) > sweep.samples:
        grid = random.Random(sweep.random_state).sample(grid, sweep.samples)
    return [{**spec.model.params, **g} for g in grid]


def build_pipeline(spec: LifecycleSpec, *, version: str, workspace: str) -> Pipeline:
    """The standard pipeline for a resolved dataset version (so a new version misses the cache)."""
    data, features, model = spec.data, spec.features, spec.model
    preparation = features.model_dump(include={"categorical", "datetime", "max_categories", "impute", "scale"})
    metrics = list(spec.evaluation.metrics)
    primary = spec.evaluation.primary or metrics[0]

    @pipeline(name=f"train-{model.name}")
    def standard() -> Any:
        checked = validate_data(version, data.schema_file, workspace)
        train_frame, test_frame, split = prepare(version, checked, data.target, features.drop, features.function,
                                                 data.split.test_size, data.split.random_state, data.split.stratify,
                                                 data.split.holdout, workspace)
        candidates = [train(train_frame, data.target, model.estimator, params, preparation)
                      for params in _candidates(spec)]
        scores = [evaluate(c, test_frame, data.target, metrics, split) for c in candidates]
        if len(candidates) == 1:
            best, best_scores = candidates[0], scores[0]
        else:
            best = select(candidates, scores, primary)
            best_scores = evaluate(best, test_frame, data.target, metrics, split)
        registered = register(best, best_scores, train_frame, data.target, model.name, version,
                              f"trained by the standard pipeline on {version}", workspace)
        return gate_and_promote(registered, spec.promote.enabled, split, workspace)

    return standard
