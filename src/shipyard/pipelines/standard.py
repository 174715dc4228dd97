"""The standard training pipeline generated from shipyard.yaml:
validate data → (join feature views) → prepare → train (or a sweep of trains and a selection) → evaluate →
register → gates."""

from __future__ import annotations

import importlib
import itertools
import random
from typing import TYPE_CHECKING, Any

from shipyard.policy.lifecycle import LifecycleSpec
from shipyard.pipelines.materialize import Stored
from shipyard.pipelines.steps import Pipeline, pipeline, step
from shipyard.pipelines.training_sets import join_features

if TYPE_CHECKING:
    from shipyard.pipelines.training_sets import ViewPlan


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
    from shipyard.models.flavors import flavor_for

    x, y = frame.drop(columns=[target]), frame[target].to_numpy()
    task = infer_task(y)
    flavor = flavor_for(model)  # the loaded model predicts through its flavor (a LightGBM Booster's own gives scores)
    proba = flavor.predict_proba(model, x) if task == "classification" else None
    classes = flavor.describe(model).get("classes")
    found = compute_metrics(task, y, flavor.predict(model, x), proba, classes=classes)
    return {**{m: float(found[m]) for m in metrics if m in found}, "training_rows": float(split["training_rows"])}


@step
def select(candidates: list[Stored], scores: list[dict[str, float]], metric: str) -> Stored:
    """The best candidate of a sweep by the primary metric (lower is better for losses and errors),
    passed on as the artifact its train step stored."""
    lower = metric in ("log_loss", "rmse", "mae")
    values = [s.get(metric, float("inf") if lower else float("-inf")) for s in scores]
    best = min(range(len(values)), key=values.__getitem__) if lower else max(range(len(values)), key=values.__getitem__)
    return candidates[best]


@step(cache=False)
def register(model: Stored, metrics: dict[str, float], example: Any, target: str, name: str, version: str,
             pipeline_tag: str, workspace: str, feature_views: dict[str, Any] | None = None) -> dict[str, Any]:
    """Register the artifact the train step stored, as it is, with its metrics, a signature inferred from
    the whole training frame and lineage to the data version. When a version of the model already has
    that artifact (an unchanged re-run), nothing is registered: the result says which version it is.
    `feature_views` (the feature views it trained with) is kept as the version's `details["features"]`."""
    from shipyard.context import open_context
    from shipyard.models.records import Artifact
    from shipyard.models.registry import register_artifact, store_artifact
    from shipyard.pipelines.materialize import load_value
    from shipyard.pipelines.steps import current_run_id
    from shipyard.store.db import now_ms
    from shipyard.tracking.records import MetricPoint
    from shipyard.tracking.runs import log_metrics

    ctx = open_context(workspace)
    run_id = current_run_id()
    if run_id is not None:  # the data it was trained on is the input of the run that registers it
        from shipyard.store.lineage import Node, record_edge

        record_edge(ctx.store, ctx.actor, Node("dataset_version", version), Node("run", run_id), "input")
    native = load_value(ctx.blobs, model)
    if model.kind.startswith("model:"):
        artifact = Artifact(model.kind.split(":", 1)[1], model.digest, model.size, model.meta or {})
    else:  # a model of a library the step outputs do not recognise (pickled): saved once, by its flavor
        artifact = store_artifact(ctx, native)
    features = example.drop(columns=[target])
    registration = register_artifact(ctx, name, native, artifact, input_example=features.head(20),
                                     signature_frame=features, run_id=run_id, dataset_version=version,
                                     metrics=metrics, description=pipeline_tag,
                                     details={"features": feature_views} if feature_views else None)
    ref = registration.version.version_id
    if not registration.created:
        return {"version": ref, "unchanged": True, "message": f"unchanged: already {ref}"}
    if run_id is not None:  # the metrics of the registered model, on the run that registers it
        stamp = now_ms()
        log_metrics(ctx, run_id, [MetricPoint(k, float(v), 0, stamp) for k, v in metrics.items()])
    return {"version": ref}


@step(cache=False)
def gate_and_promote(registered: dict[str, Any], promote: bool, split: dict[str, Any],
                     workspace: str) -> dict[str, Any]:
    """Run the configured gates (`evaluation.dataset: split` on the rows `prepare` held out); if they pass,
    take challenger (or champion when there is none). When promotion is refused, the outcome says why
    under `blocked`.

    A version registered before (an unchanged re-run) is neither gated nor moved again when it was
    gated or holds an alias already: the outcome reports its stored gate results and aliases."""
    from shipyard.context import open_context
    from shipyard.errors import GateFailed, NotFoundError
    from shipyard.gates.gating import latest_gates, run_gates
    from shipyard.gates.promotion import promote as move
    from shipyard.models.registry import get_model_version

    ctx = open_context(workspace)
    ref = registered["version"]
    name = ref.split("/", 1)[0]
    current = get_model_version(ctx, ref)
    unchanged = {"unchanged": True} if registered.get("unchanged") else {}
    if unchanged:
        from shipyard.gates.promotion import check_promotion

        stored = {g: s.status for g, s in latest_gates(ctx, ref).items()}
        state = check_promotion(ctx, ref)
        current_evidence = not any(status in ("STALE", "NOT RUN") for status in state.gates.values())
        if current.aliases or current.status == "archived" or (stored and current_evidence):
            kept: dict[str, Any] = {"version": ref, "gates": stored,
                                    "alias": current.aliases[0] if current.aliases else None, **unchanged}
            if promote and not current.aliases and not state.allowed:  # refused before, and still: say why
                kept["blocked"] = state.problems
            return kept
        # never gated, or judged by a gate policy that has changed since: gated as a new version would be
    gated = run_gates(ctx, ref, split=split["evaluation"]) if ctx.policy.gates(name) is not None else []
    results = {r.gate: r.status for r in gated}
    alias = None
    blocked: list[str] = []
    if promote:
        try:
            get_model_version(ctx, f"{name}@champion")
            alias = "challenger"
        except NotFoundError:
            alias = "champion"
        try:
            move(ctx, ref, alias, reason="standard pipeline: " + ("gates passed" if results else
                                                                  f"gates.{name} declares no gates"))
        except GateFailed as exc:
            alias, blocked = None, list(exc.fields.get("problems") or [exc.message])
    outcome: dict[str, Any] = {"version": ref, "gates": results, "alias": alias, **unchanged}
    if unchanged and alias is not None:
        outcome["promoted"] = True
    if blocked:
        outcome["blocked"] = blocked
    return outcome


@step(cache=False)
def gate_candidate(model: Any, metrics: dict[str, float], example: Any, target: str, name: str, version: str,
                   split: dict[str, Any], workspace: str) -> dict[str, Any]:
    """Package the model into this step's run (not the registry) and run the configured gates on it
    against the current champion, storing no result: CI's check of a candidate."""
    from shipyard.context import open_context
    from shipyard.errors import ValidationError
    from shipyard.gates.gating import check_candidate
    from shipyard.models.loading import logged_version
    from shipyard.models.registry import register_model
    from shipyard.pipelines.steps import current_run_id
    from shipyard.store.db import now_ms
    from shipyard.tracking.records import MetricPoint
    from shipyard.tracking.runs import log_metrics

    ctx = open_context(workspace)
    run_id = current_run_id()
    if run_id is None:
        raise ValidationError("gate_candidate runs as a step of a pipeline: it keeps the candidate with its run.")
    stamp = now_ms()
    log_metrics(ctx, run_id, [MetricPoint(k, float(v), 0, stamp) for k, v in metrics.items()])
    features = example.drop(columns=[target])
    register_model(ctx, name, model, input_example=features.head(20), signature_frame=features, run_id=run_id,
                   register=False)
    candidate = logged_version(ctx, name, run_id, metrics=metrics, dataset_version=version)
    results = check_candidate(ctx, candidate, split=split["evaluation"]) if ctx.policy.gates(name) is not None else []
    failed = {r.gate: [c.message for c in r.checks if c.status == "FAIL"] for r in results if r.status == "FAIL"}
    return {"version": None, "model": name, "candidate_run": run_id, "artifact_digest": candidate.artifact_digest,
            "metrics": dict(metrics), "gates": {r.gate: r.status for r in results}, "failed_checks": failed,
            "alias": None}


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


def build_pipeline(spec: LifecycleSpec, *, version: str, workspace: str, candidate: bool = False,
                   views: ViewPlan | None = None) -> Pipeline:
    """The standard pipeline for a resolved dataset version (so a new version misses the cache). With
    `candidate` it ends by gating the trained model without registering it (CI). With `views` (the resolved
    features.views) the dataset version is the label data, and the model trains on the training set joined
    from it."""
    data, features, model = spec.data, spec.features, spec.model
    preparation = features.model_dump(include={"categorical", "datetime", "max_categories", "impute", "scale"})
    metrics = list(spec.evaluation.metrics)
    primary = spec.evaluation.primary or metrics[0]

    @pipeline(name=f"train-{model.name}")
    def standard() -> Any:
        checked = validate_data(version, data.schema_file, workspace)
        training: Any = version
        if views is not None:
            training = join_features(version, checked, views.features, views.views, views.timestamp,
                                     views.training_set, workspace)
        train_frame, test_frame, split = prepare(training, checked, data.target, features.drop, features.function,
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
        if candidate:
            return gate_candidate(best, best_scores, train_frame, data.target, model.name, training, split, workspace)
        trained_on = version if views is None else f"{version} joined with {', '.join(views.views)}"
        registered = register(best, best_scores, train_frame, data.target, model.name, training,
                              f"trained by the standard pipeline on {trained_on}", workspace,
                              views.record() if views is not None else None)
        return gate_and_promote(registered, spec.promote.enabled, split, workspace)

    return standard
