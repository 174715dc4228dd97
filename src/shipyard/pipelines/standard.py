"""The standard training pipeline generated from shipyard.yaml:
validate data → prepare → train (or a sweep of trains and a selection) → evaluate → register → gates."""

from __future__ import annotations

import importlib
import itertools
import random
from typing import Any

from shipyard.policy.lifecycle import LifecycleSpec
from shipyard.pipelines.materialize import Stored
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


@step(outputs=2)
def prepare(version: str, checked: dict[str, Any], target: str, drop: list[str], function: str | None,
            test_size: float, random_state: int, stratify: bool, holdout: str | None, workspace: str) -> Any:
    """Load the data version, apply the feature function, split into train and test frames."""
    from sklearn.model_selection import train_test_split

    from shipyard.context import open_context
    from shipyard.data.workspace_files import load

    ctx = open_context(workspace)
    frame = load(ctx, version).drop(columns=drop)
    if function:
        frame = _function(function)(frame)
    if holdout:
        test = load(ctx, holdout).drop(columns=[c for c in drop if c in load(ctx, holdout).columns])
        if function:
            test = _function(function)(test)
        return frame.reset_index(drop=True), test.reset_index(drop=True)
    labels = frame[target] if stratify and frame[target].nunique() <= 20 else None
    train, test = train_test_split(frame, test_size=test_size, random_state=random_state, stratify=labels)
    return train.reset_index(drop=True), test.reset_index(drop=True)


@step
def train(frame: Any, target: str, estimator: str, params: dict[str, Any], categorical: list[str],
          scale: bool) -> Any:
    """Fit the estimator (behind one-hot encoding and scaling when asked) on the training frame."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline as SkPipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x, y = frame.drop(columns=[target]), frame[target]
    model = _estimator(estimator)(**params)
    numeric = [c for c in x.columns if c not in categorical]
    transformers: list[Any] = []
    if categorical:
        transformers.append(("categorical", OneHotEncoder(handle_unknown="ignore"), categorical))
    if scale and numeric:
        transformers.append(("numeric", StandardScaler(), numeric))
    if transformers:
        model = SkPipeline([("features", ColumnTransformer(transformers, remainder="passthrough")), ("model", model)])
    return model.fit(x, y)


@step
def evaluate(model: Any, frame: Any, target: str, metrics: list[str]) -> dict[str, float]:
    """The evaluation metrics of a model on the test frame."""
    from shipyard.gates.evaluation import compute_metrics, infer_task
    from shipyard.models.flavors import flavor_for

    x, y = frame.drop(columns=[target]), frame[target].to_numpy()
    task = infer_task(y)
    flavor = flavor_for(model)  # the loaded model predicts through its flavor (a LightGBM Booster's own gives scores)
    proba = flavor.predict_proba(model, x) if task == "classification" else None
    classes = flavor.describe(model).get("classes")
    found = compute_metrics(task, y, flavor.predict(model, x), proba, classes=classes)
    return {m: float(found[m]) for m in metrics if m in found}


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
             pipeline_tag: str, workspace: str) -> dict[str, Any]:
    """Register the artifact the train step stored, as it is, with its metrics, a signature inferred from
    the whole training frame and lineage to the data version. When a version of the model already has
    that artifact (an unchanged re-run), nothing is registered: the result says which version it is."""
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
                                     metrics=metrics, description=pipeline_tag)
    ref = registration.version.version_id
    if not registration.created:
        return {"version": ref, "unchanged": True, "message": f"unchanged: already {ref}"}
    if run_id is not None:  # the metrics of the registered model, on the run that registers it
        stamp = now_ms()
        log_metrics(ctx, run_id, [MetricPoint(k, float(v), 0, stamp) for k, v in metrics.items()])
    return {"version": ref}


@step(cache=False)
def gate_and_promote(registered: dict[str, Any], promote: bool, workspace: str) -> dict[str, Any]:
    """Run the configured gates; if they pass, take challenger (or champion when there is none). When
    promotion is refused, the outcome says why under `blocked`.

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
        current_evidence = not any(status in ("STALE", "NOT RUN") for status in check_promotion(ctx, ref).gates.values())
        if current.aliases or current.status == "archived" or (stored and current_evidence):
            kept: dict[str, Any] = {"version": ref, "gates": stored,
                                    "alias": current.aliases[0] if current.aliases else None, **unchanged}
            if promote and not current.aliases:  # gated before and refused then: still refused, say why
                state = check_promotion(ctx, ref)
                if not state.allowed:
                    kept["blocked"] = state.problems
            return kept
        # never gated, or judged by a gate policy that has changed since: gated as a new version would be
    results = {r.gate: r.status for r in run_gates(ctx, ref)} if ctx.policy.gates(name) is not None else {}
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
                   workspace: str) -> dict[str, Any]:
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
    register_model(ctx, name, model, input_example=example.drop(columns=[target]).head(20), run_id=run_id,
                   register=False)
    candidate = logged_version(ctx, name, run_id, metrics=metrics, dataset_version=version)
    results = check_candidate(ctx, candidate) if ctx.policy.gates(name) is not None else []
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


def build_pipeline(spec: LifecycleSpec, *, version: str, workspace: str, candidate: bool = False) -> Pipeline:
    """The standard pipeline for a resolved dataset version (so a new version misses the cache). With
    `candidate` it ends by gating the trained model without registering it (CI)."""
    data, features, model = spec.data, spec.features, spec.model
    metrics = list(spec.evaluation.metrics)
    primary = spec.evaluation.primary or metrics[0]

    @pipeline(name=f"train-{model.name}")
    def standard() -> Any:
        checked = validate_data(version, data.schema_file, workspace)
        train_frame, test_frame = prepare(version, checked, data.target, features.drop, features.function,
                                          data.split.test_size, data.split.random_state, data.split.stratify,
                                          data.split.holdout, workspace)
        candidates = [train(train_frame, data.target, model.estimator, params, features.categorical, features.scale)
                      for params in _candidates(spec)]
        scores = [evaluate(c, test_frame, data.target, metrics) for c in candidates]
        if len(candidates) == 1:
            best, best_scores = candidates[0], scores[0]
        else:
            best = select(candidates, scores, primary)
            best_scores = evaluate(best, test_frame, data.target, metrics)
        if candidate:
            return gate_candidate(best, best_scores, train_frame, data.target, model.name, version, workspace)
        registered = register(best, best_scores, train_frame, data.target, model.name, version,
                              f"trained by the standard pipeline on {version}", workspace)
        return gate_and_promote(registered, spec.promote.enabled, workspace)

    return standard
