"""Running a model version's gates (declared in shipyard.yaml under gates.NAME), persisting each result as
evidence linked to the version (with the champion it was compared against and the digest of the gate
policy it was judged by), and waiving a failed gate with a name and a reason."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from shipyard.context import Context
from shipyard.errors import ConfigError, NotFoundError, ValidationError, did_you_mean
from shipyard.models.loading import LoadedModel, fetch_artifact, load_model, load_version
from shipyard.models.records import ModelVersion
from shipyard.models.registry import alias_target, find_version, get_model_version
from shipyard.policy.gates import SPLIT
from shipyard.store.db import now_ms
from shipyard.store.tables import gate_results

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.gates.baseline import BaselineScore
    from shipyard.gates.results import GateResult, Status
    from shipyard.policy.gates import GateSpec

GATES = ("evaluation", "behavioural", "fairness", "infrastructure")


@dataclasses.dataclass(frozen=True)
class StoredGate:
    gate: str
    status: Status
    result: dict[str, Any]
    created: int
    created_by: str
    waived_by: str | None = None
    waiver_reason: str | None = None
    baseline_version: int | None = None  # the champion when the gate ran (None: there was none)
    policy_digest: str | None = None  # SHA-256 of the model's gate policy the result was judged by

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_gates(ctx: Context, ref: str, *, only: list[str] | None = None, split: str | None = None) -> list[GateResult]:
    """Run the configured gates of a version and store their results (all in one transaction). A model
    whose gates.NAME is declared empty has none: nothing runs and nothing is stored.

    `split` is the dataset version that `evaluation.dataset: split` stands for: the standard pipeline passes
    the rows it held out; without it, see `evaluation_dataset`."""
    version = get_model_version(ctx, ref)
    digest = ctx.policy.gates_digest(version.model)
    results, dataset, champion = _evaluate(ctx, version, lambda: load_model(ctx, version.version_id), only, split)
    if results:
        spec = ctx.policy.gates(version.model)
        source = "split" if spec is not None and spec.evaluation is not None and spec.evaluation.dataset == SPLIT \
            else "declared"
        _store(ctx, version, results, dataset, source, champion.version if champion else None, digest)
    return results


def check_candidate(ctx: Context, candidate: ModelVersion, *, split: str | None = None) -> list[GateResult]:
    """Run the configured gates of a model that is not registered (see `logged_version`) against the
    current champion, and store nothing: what the gates would say if it were registered now."""
    results, _, _ = _evaluate(ctx, candidate, lambda: load_version(ctx, candidate), None, split)
    return results


def no_gates_configured(model: str) -> ConfigError:
    """The error of running the gates of a model that shipyard.yaml gives no gates.NAME at all."""
    return ConfigError(
        f"No gates are configured for model '{model}'. Declare them in shipyard.yaml under gates.{model} "
        f"(evaluation, behavioural, fairness, infrastructure), or declare `gates: {{{model}: {{}}}}` to say it "
        "needs none; until then `shipyard models promote` refuses it unless given --no-gates.", model=model,
    )


def _evaluate(ctx: Context, version: ModelVersion, load: Callable[[], LoadedModel], only: list[str] | None,
              split: str | None = None) -> tuple[list[GateResult], str | None, ModelVersion | None]:
    """The results of the configured gates of `version`, the evaluation dataset version and the champion
    they were judged against."""
    from shipyard.policy.gates import check_columns

    spec = ctx.policy.gates(version.model)
    if spec is None:
        raise no_gates_configured(version.model)
    gates = list(spec.configured)
    if only:
        unknown = [g for g in only if g not in gates]
        if unknown:
            raise ValidationError(
                f"Gate '{unknown[0]}' is not configured for '{version.model}'.{did_you_mean(unknown[0], gates)} "
                f"Configured: {', '.join(gates) or 'none'}."
            )
        gates = [g for g in gates if g in only]
    if not gates:
        return [], None, None
    frame = target = dataset = None
    if spec.evaluation is not None:
        from shipyard.data.workspace_files import load as load_frame

        dataset = evaluation_dataset(ctx, version, spec, split)
        frame = load_frame(ctx, dataset)
        check_columns(spec, [str(c) for c in frame.columns], dataset)
        target = spec.evaluation.target
    model = load()
    try:
        champion: ModelVersion | None = get_model_version(ctx, f"{version.model}@champion")
    except NotFoundError:
        champion = None
    results: list[GateResult] = []
    for gate in gates:
        if gate == "infrastructure":
            results.append(_infrastructure(ctx, spec, version, frame, target))
        else:
            assert frame is not None and target is not None
            results.append(_on_data(ctx, gate, spec, version, model, frame, target, champion))
    return results, dataset, champion


def evaluation_dataset(ctx: Context, version: ModelVersion, spec: GateSpec, split: str | None = None) -> str:
    """The dataset version the gates of `version` evaluate on.

    `evaluation.dataset: split` is the standard pipeline's held-out data: `split` when the pipeline passes it;
    else the spec's `data.split.holdout` when the standard pipeline trains this model; else the newest
    NAME-holdout version the pipeline split off the version's training data (NAME@V)."""
    from shipyard.data.versions import get_version as get_dataset_version

    assert spec.evaluation is not None
    if spec.evaluation.dataset != SPLIT:
        return get_dataset_version(ctx, spec.evaluation.dataset).version_id
    if split is not None:
        return get_dataset_version(ctx, split).version_id
    declared = _declared_holdout(ctx, version.model)
    if declared is not None:
        return get_dataset_version(ctx, declared).version_id
    key = f"{spec.path}.evaluation.dataset"
    if not version.dataset_version:
        raise ConfigError(
            f"{key} is 'split' (the default): the rows the standard pipeline held out of the training data, but "
            f"{version.version_id} records no training data. Set {key} to a held-out dataset version, e.g. "
            f"{version.model}-holdout@latest."
        )
    held_out = holdout_of(ctx, version.dataset_version)
    if held_out is None:
        raise ConfigError(
            f"{key} is 'split' (the default): the rows the standard pipeline held out of {version.dataset_version}, "
            f"but nothing was held out of it (no {holdout_name(version.dataset_version)} version derived from it). "
            f"Train with `shipyard run`, or set {key} to a held-out dataset version."
        )
    return held_out


def holdout_name(dataset_version: str) -> str:
    """The dataset the standard pipeline versions the held-out rows of NAME@V in: NAME-holdout."""
    return f"{dataset_version.split('@', 1)[0]}-holdout"


def holdout_of(ctx: Context, dataset_version: str) -> str | None:
    """The newest NAME-holdout version derived from NAME@V (the split's held-out rows), or None."""
    from shipyard.store.lineage import Node, neighbours

    prefix = holdout_name(dataset_version) + "@"
    with ctx.store.read() as conn:
        children = neighbours(conn, Node("dataset_version", dataset_version), upstream=False)
    found = [node.id for node, relation in children
             if relation == "derived" and node.kind == "dataset_version" and node.id.startswith(prefix)]
    return max(found, key=lambda ref: int(ref.rsplit("@", 1)[1]), default=None)


def _declared_holdout(ctx: Context, model: str) -> str | None:
    """data.split.holdout of the lifecycle spec, when its model is `model`."""
    declared = ctx.policy.document().data
    if not isinstance(declared.get("model"), dict) or declared["model"].get("name") != model:
        return None  # the standard pipeline does not train this model
    return ctx.policy.lifecycle().data.split.holdout


def _training_targets(ctx: Context, version: ModelVersion, frame: pd.DataFrame, target: str) -> tuple[Any, str | None]:
    """The targets of the rows the version trained on: its training data without the rows that are also in the
    evaluation data (exactly the training part when the evaluation data was split off it). (None, why) if unknown."""
    import pandas as pd

    from shipyard.data.workspace_files import load as load_frame

    if not version.dataset_version:
        return None, (f"{version.version_id} records no training data; register it with its dataset "
                      "(run.log_input, or dataset=) so that the baseline can be fitted on it")
    training = load_frame(ctx, version.dataset_version)
    if target not in training.columns:
        return None, f"its training data {version.dataset_version} has no column '{target}'"
    common = [c for c in training.columns if c in frame.columns]
    seen = pd.util.hash_pandas_object(frame[common], index=False)
    kept = training.loc[~pd.util.hash_pandas_object(training[common], index=False).isin(seen).to_numpy(), target]
    if kept.notna().sum() == 0:
        return None, (f"every row of its training data {version.dataset_version} is also in the evaluation data, "
                      "so the evaluation is not on held-out rows; evaluate on rows the model did not train on "
                      "(evaluation.dataset: split, or a held-out dataset version)")
    return kept.to_numpy(), None


def _predictions(model: LoadedModel, features: pd.DataFrame) -> tuple[Any, Any]:
    return model.predict(features), model.predict_proba(features)


def _on_data(ctx: Context, gate: Any, spec: GateSpec, version: ModelVersion, model: LoadedModel,
             frame: pd.DataFrame, target: str, champion: ModelVersion | None) -> GateResult:
    from shipyard.gates.behavioural import behavioural_gate
    from shipyard.gates.evaluation import compute_metrics, evaluate_gate, infer_task, prediction_evidence
    from shipyard.gates.fairness import fairness_gate
    from shipyard.gates.results import Check, GateResult

    features, truth = frame.drop(columns=[target]), frame[target].to_numpy()
    recorded = version.details.get("task")
    task = spec.task or (recorded if recorded in ("classification", "regression") else None) or infer_task(truth)
    classes = version.details.get("classes") or version.flavor_meta.get("classes")
    try:
        predicted, proba = _predictions(model, features)
    except Exception as exc:  # noqa: BLE001 - a model that fails to predict fails its gate
        check = Check(name="predict", status="FAIL", message=f"the model's predict raised {type(exc).__name__}: {exc}")
        return GateResult.from_checks(gate, [check], {})
    if gate == "evaluation":
        metrics = compute_metrics(task, truth, predicted, proba, spec.positive_label, classes=classes)
        baseline = None
        if spec.evaluation is not None and spec.evaluation.beat_baseline:
            baseline = _baseline(ctx, version, frame, target, truth, task, spec, classes)
        result = evaluate_gate(spec, metrics, _champion_metrics(ctx, version, champion, features, truth, task, spec,
                                                                classes), baseline)
        result.evidence.update(prediction_evidence(task, truth, predicted))
        return result
    if gate == "behavioural":
        return behavioural_gate(spec, model.predict, model.predict_proba, features, truth, task=task, classes=classes)
    if gate == "fairness":
        assert spec.fairness is not None
        return fairness_gate(spec, truth, predicted, frame[spec.fairness.sensitive].to_numpy())
    raise AssertionError(gate)


def _baseline(ctx: Context, version: ModelVersion, frame: pd.DataFrame, target: str, truth: Any, task: Any,
              spec: GateSpec, classes: Any) -> BaselineScore:
    """The trivial baseline fitted on the version's training rows and scored on the evaluation rows."""
    from shipyard.gates.baseline import BaselineScore, fit_baseline, score_baseline

    targets, problem = _training_targets(ctx, version, frame, target)
    if targets is None:
        return BaselineScore(task, problem=problem)
    try:
        baseline = fit_baseline(task, targets)
        scored = score_baseline(baseline, truth, positive_label=spec.positive_label, classes=classes)
    except ValidationError as exc:
        return BaselineScore(task, problem=str(exc))
    return BaselineScore(task, baseline, scored)


def _champion_metrics(ctx: Context, version: ModelVersion, champion: ModelVersion | None, features: pd.DataFrame,
                      truth: Any, task: Any, spec: GateSpec, classes: Any) -> dict[str, float] | None:
    """The champion's metrics on the same evaluation data, or None when there is none."""
    from shipyard.gates.evaluation import compute_metrics

    if champion is None or champion.version == version.version:
        return None
    model = load_model(ctx, champion.version_id)
    predicted, proba = _predictions(model, features)
    champion_classes = champion.details.get("classes") or champion.flavor_meta.get("classes") or classes
    return compute_metrics(task, truth, predicted, proba, spec.positive_label, classes=champion_classes)


def _infrastructure(ctx: Context, spec: GateSpec, version: ModelVersion, frame: pd.DataFrame | None,
                    target: str | None) -> GateResult:
    """Load the model from its artifact alone in a fresh interpreter and measure it there."""
    from shipyard.gates.latency import infrastructure_gate
    from shipyard.gates.results import Check, GateResult

    with tempfile.TemporaryDirectory(prefix="shipyard-probe-") as tmp:
        folder = Path(tmp)
        artifact = fetch_artifact(ctx, version, folder)
        sample = _probe_sample(version, frame, target)
        sample.to_parquet(folder / "sample.parquet")
        request = {"flavor": version.flavor, "flavor_meta": version.flavor_meta, "artifact": str(artifact),
                   "sample": str(folder / "sample.parquet"), "signature": version.signature,
                   "environment": version.environment, "max_seconds": 10}
        (folder / "request.json").write_text(json.dumps(request))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        proc = subprocess.run([sys.executable, "-m", "shipyard.gates.probe", str(folder / "request.json")],
                              capture_output=True, text=True, timeout=300, cwd=tmp, env=env)
    try:
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        measured = {"error": (proc.stderr.strip().splitlines() or ["the probe printed nothing"])[-1]}
    if "error" in measured:
        check = Check(name="load", status="FAIL",
                      message=f"the model could not be loaded and run in a clean process: {measured['error']}")
        return GateResult.from_checks("infrastructure", [check], {})
    diff = measured.pop("environment_diff", [])
    result = infrastructure_gate(spec, measured, diff)
    loaded = Check(name="load", status="PASS", observed=measured.get("load_seconds"),
                   message=f"loaded from its artifact alone in a clean process in {measured.get('load_seconds')} s")
    return GateResult.from_checks("infrastructure", [loaded, *result.checks], result.metrics)


def _probe_sample(version: ModelVersion, frame: pd.DataFrame | None, target: str | None) -> pd.DataFrame:
    if frame is not None:
        features = frame.drop(columns=[target]) if target in frame.columns else frame
        return features.head(1000).reset_index(drop=True)
    raise ConfigError(
        f"The infrastructure gate of '{version.model}' needs input rows to measure latency: declare "
        f"gates.{version.model}.evaluation with a dataset."
    )


def _store(ctx: Context, version: ModelVersion, results: list[GateResult], dataset: str | None, source: str,
           baseline: int | None, digest: str) -> None:
    now = now_ms()
    payload = {"gates": {r.gate: r.status for r in results}, "dataset": dataset, "baseline_version": baseline,
               "policy_digest": digest}
    # dataset_source: "split" (rows the standard pipeline held out of the training data) or "declared".
    held = {"dataset": dataset, "dataset_source": source if dataset else None}
    with ctx.store.mutation(ctx.actor, "model.gate", "model_version", version.version_id, payload) as conn:
        for result in results:
            conn.execute(gate_results.insert(), {
                "version_id": version.version_id, "gate": result.gate, "status": result.status,
                "result": json.dumps({**result.to_dict(), **held}, allow_nan=False),
                "baseline_version": baseline, "policy_digest": digest, "created": now, "created_by": ctx.actor,
            })


def latest_gates(ctx: Context, version_id: str) -> dict[str, StoredGate]:
    """The newest stored result of each gate of a version."""
    with ctx.store.read() as conn:
        return stored_gates(conn, version_id)


def stored_gates(conn: Connection, version_id: str) -> dict[str, StoredGate]:
    """latest_gates on the caller's connection, so a check and a change can share one transaction."""
    newest = (
        select(gate_results.c.gate, func.max(gate_results.c.id).label("id"))
        .where(gate_results.c.version_id == version_id).group_by(gate_results.c.gate).subquery()
    )
    rows = conn.execute(select(gate_results).join(newest, gate_results.c.id == newest.c.id)).all()
    return {r.gate: StoredGate(r.gate, r.status, json.loads(r.result), r.created, r.created_by, r.waived_by,
                               r.waiver_reason, r.baseline_version, r.policy_digest) for r in rows}


def waive_gate(ctx: Context, ref: str, gate: str, *, reason: str) -> StoredGate:
    """Record that a named person accepts a failed gate, with the reason; the failed result is kept.

    The result waived is the one stored when the waiver commits (checked in the same transaction)."""
    version = get_model_version(ctx, ref)
    if not isinstance(reason, str) or len(reason.strip()) < 5:
        raise ValidationError("A waiver needs a reason of a few words (--reason \"…\"): it is kept as evidence.",
                              field="reason")
    payload: dict[str, Any] = {"gate": gate, "reason": reason}
    with ctx.store.mutation(ctx.actor, "model.gate_waive", "model_version", version.version_id, payload) as conn:
        find_version(conn, version.version_id)
        current = stored_gates(conn, version.version_id)
        if gate not in current:
            known = sorted(set(current) | set(ctx.policy.configured_gates(version.model)))
            raise NotFoundError(
                f"{version.version_id} has no result for gate '{gate}' to waive.{did_you_mean(gate, known)} "
                f"Results: {', '.join(sorted(current)) or 'none; run `shipyard models gate` first'}.", gate=gate,
            )
        failed = current[gate]
        if failed.status in ("PASS", "WAIVED"):
            raise ValidationError(f"Gate '{gate}' of {version.version_id} is {failed.status}; there is nothing to waive.",
                                  gate=gate, status=failed.status)
        payload["was"] = failed.status
        conn.execute(gate_results.insert(), {
            "version_id": version.version_id, "gate": gate, "status": "WAIVED",
            "result": json.dumps(failed.result), "waived_by": ctx.actor, "waiver_reason": reason,
            "baseline_version": failed.baseline_version, "policy_digest": failed.policy_digest,
            "created": now_ms(), "created_by": ctx.actor,
        })
        return stored_gates(conn, version.version_id)[gate]


def champion_version(conn: Connection, model: str) -> int | None:
    return alias_target(conn, model, "champion")
