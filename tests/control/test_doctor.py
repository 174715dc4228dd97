"""The doctor: each test plants one failure mode in a served loan model and checks that its playbook, and only
its playbook, FAILs; a healthy deployment PASSes every check."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.context import Context, open_context
from shipyard.control.doctor import PLAYBOOKS, Diagnosis, diagnose
from shipyard.errors import NotFoundError, ValidationError
from tests.monitoring.traffic import FEATURES, loans, log_traffic, send_feedback, train

ROOT = Path(__file__).resolve().parents[2]


def record_gate(ctx: Context, version_id: str, p50_ms: float = 1.0, p99_ms: float = 2.0) -> None:
    """An infrastructure gate result as the gate stores it, measured fast (the gate's own tests time it)."""
    from shipyard.gates.results import Check, GateResult
    from shipyard.store.db import now_ms
    from shipyard.store.tables import gate_results

    result = GateResult.from_checks("infrastructure", [Check(name="load", status="PASS", message="loaded")],
                                    {"latency_p50_ms": p50_ms, "latency_p99_ms": p99_ms, "batch_rows": 1000,
                                     "throughput_rows_per_s": 50_000.0})
    with ctx.store.mutation(ctx.actor, "model.gate", "model_version", version_id, {"gates": {"infrastructure": "PASS"}}
                            ) as conn:
        conn.execute(gate_results.insert(), {
            "version_id": version_id, "gate": "infrastructure", "status": "PASS",
            "result": json.dumps(result.to_dict()), "baseline_version": None, "policy_digest": None,
            "created": now_ms(), "created_by": ctx.actor})


def register_accuracy(ctx: Context, version_id: str) -> float:
    """Record the model's accuracy on rows it never saw as its registered metric (train() logs none)."""
    from sqlalchemy import update

    from shipyard.models.loading import load_model
    from shipyard.store.tables import model_versions

    holdout = loans(2000, 99)
    accuracy = float(np.mean(load_model(ctx, version_id).predict(holdout[FEATURES]) == holdout["approved"]))
    model, version = version_id.split("/")
    with ctx.store.engine.begin() as conn:
        conn.execute(update(model_versions).where(model_versions.c.model == model,
                                                  model_versions.c.version == int(version))
                     .values(metrics=json.dumps({"accuracy": accuracy})))
    return accuracy


def deploy(workspace: Path) -> Context:
    """loans/1 on loans@1 (gates: none declared), deployed as loans-api."""
    from shipyard.deployments.strategies import create

    train(workspace)
    (workspace / "shipyard.yaml").write_text((workspace / "shipyard.yaml").read_text() + "gates:\n  loans: {}\n")
    ctx = open_context()
    create(ctx, "loans-api", "loans/1")
    return ctx


def traffic(ctx: Context, frame: pd.DataFrame, *, feedback: bool = True, **kwargs: Any) -> list[str]:
    ids = log_traffic(ctx, frame, deployment="loans-api", **kwargs)
    if feedback:
        send_feedback(ctx, ids, frame["approved"])
    return ids


def log_broken(ctx: Context, logged: pd.DataFrame, clean: pd.DataFrame) -> list[str]:
    """Requests of 10 rows whose logged inputs are `logged` while the answers are the model's on `clean`: inputs
    that reached the log broken (a client that bypassed the signature's checks, a logging hook upstream)."""
    from shipyard.models.loading import load_model
    from shipyard.serving.batches import build_batches, store_batch
    from shipyard.serving.predlog import Prediction

    model = load_model(ctx, "loans/1")
    predicted, probabilities = model.predict(clean[FEATURES]), model.predict_proba(clean[FEATURES])
    start, entries = time.time() - len(logged) // 10, []
    for i in range(len(logged) // 10):
        rows = slice(i * 10, (i + 1) * 10)
        entries.append(Prediction(f"r{i}", start + i, "loans", 1, "infer", logged.iloc[rows].reset_index(drop=True),
                                  predicted[rows], probabilities[rows], 2.0, deployment="loans-api",
                                  deployment_route="primary"))
    for batch in build_batches(entries):
        store_batch(ctx, batch)
    return [e.request_id for e in entries]


def statuses(diagnosis: Diagnosis) -> dict[str, str]:
    return {c.name: c.status for c in diagnosis.checks}


def test_a_healthy_deployment_passes_every_check(served: Context) -> None:
    traffic(served, loans(600, 1))
    diagnosis = diagnose(served, "loans-api")
    assert statuses(diagnosis) == dict.fromkeys(PLAYBOOKS, "PASS"), diagnosis.to_dict()
    assert diagnosis.subject.version.version_id == "loans/1" and diagnosis.window["rows"] == 600
    accuracy = diagnosis.check("accuracy_drop").evidence["performance"]
    assert accuracy["labelled"] == 600 and accuracy["compared"]["accuracy"]["fall"] < 0.05
    latency = diagnosis.check("latency_spike").evidence
    assert latency["observed"]["requests"] == 60 and latency["observed"]["rows_per_request_mean"] == 10
    assert latency["gate"]["latency_p99_ms"] == 2.0 and latency["buckets"]
    assert all(c.playbook.recovery for c in diagnosis.checks)


def test_a_column_scaled_on_the_serving_side_is_skew_and_only_skew(served: Context) -> None:
    frame = loans(600, 2)
    frame["income"] = frame["income"] * 1000  # the client sends income in another unit
    traffic(served, frame, feedback=False)
    diagnosis = diagnose(served, "loans-api")
    assert statuses(diagnosis) == {"accuracy_drop": "PASS", "training_serving_skew": "FAIL",
                                   "latency_spike": "PASS", "dependency_mismatch": "PASS"}, diagnosis.to_dict()
    skew = diagnosis.check("training_serving_skew")
    income = skew.evidence["columns"]["income"]
    assert income["share_outside"] == 1.0 and income["drifted"] and income["served"]["median"] > 1e7
    assert "income: 100% of values outside the training range" in skew.summary
    assert not skew.evidence["columns"]["age"]["outside"]
    # the contract's range breach and the drift are the skew's, said so rather than counted twice
    accuracy = diagnosis.check("accuracy_drop")
    assert any("systematic" in f for f in accuracy.findings)
    assert accuracy.evidence["integrity"]["broken"] == 0


def test_a_renamed_category_is_skew(served: Context) -> None:
    frame = loans(600, 3)
    frame["region"] = frame["region"].replace({"north": "North"})
    traffic(served, frame, feedback=False)
    diagnosis = diagnose(served, "loans-api")
    assert statuses(diagnosis)["training_serving_skew"] == "FAIL"
    assert statuses(diagnosis)["accuracy_drop"] == "PASS", diagnosis.check("accuracy_drop").findings
    region = diagnosis.check("training_serving_skew").evidence["columns"]["region"]
    assert region["examples"] == ["North"] and 0.3 < region["share_outside"] < 0.5


def test_missing_extra_and_retyped_columns_are_skew(served: Context) -> None:
    clean = loans(300, 15)
    logged = clean[["income", "age"]].assign(age=clean["age"].map(lambda a: f"{a} years"), channel="web")
    log_broken(served, logged, clean)  # region lost, channel added, age sent as text
    skew = diagnose(served, "loans-api").check("training_serving_skew")
    assert skew.status == "FAIL"
    assert skew.evidence["missing"] == ["region"] and skew.evidence["extra"] == ["channel"]
    assert skew.evidence["columns"]["age"]["observed"] == "string"
    assert "missing from the serving inputs: region" in skew.summary
    assert "age arrives as string; the model was trained on integer" in skew.summary


def test_nulls_and_impossible_values_in_the_inputs_break_integrity_and_only_that(served: Context) -> None:
    clean = loans(600, 4)
    frame = clean.copy()
    frame.loc[frame.index[:30], "income"] = np.nan  # an upstream join lost 5% of the incomes
    frame.loc[frame.index[30:33], "age"] = -1  # and a default of -1 leaked through
    send_feedback(served, log_broken(served, frame[FEATURES], clean), clean["approved"])
    diagnosis = diagnose(served, "loans-api")
    assert statuses(diagnosis) == {"accuracy_drop": "FAIL", "training_serving_skew": "PASS",
                                   "latency_spike": "PASS", "dependency_mismatch": "PASS"}, diagnosis.to_dict()
    check = diagnosis.check("accuracy_drop")
    kinds = {(a["kind"], a["column"]) for a in check.evidence["integrity"]["anomalies"]}
    assert kinds == {("excess_nulls", "income"), ("out_of_range", "age")}
    assert "30 null values" in check.summary and "3 values below the minimum" in check.summary
    assert check.evidence["integrity"]["contract"].startswith("inferred from loans@1")


def test_a_slow_model_is_a_latency_spike_and_only_that(served: Context) -> None:
    traffic(served, loans(600, 5), latency_ms=400.0)
    diagnosis = diagnose(served, "loans-api")
    assert statuses(diagnosis) == {"accuracy_drop": "PASS", "training_serving_skew": "PASS",
                                   "latency_spike": "FAIL", "dependency_mismatch": "PASS"}, diagnosis.to_dict()
    latency = diagnosis.check("latency_spike")
    assert latency.evidence["observed"]["p99_ms"] > 400 and latency.evidence["limit_ms"] == 3 * 2.0 + 25
    assert "against the gate's 2 ms" in latency.summary
    assert any("rows on average" in f for f in latency.findings)


def test_the_real_infrastructure_gate_is_the_baseline(workspace: Path) -> None:
    from shipyard.deployments.strategies import create
    from shipyard.gates.gating import run_gates

    train(workspace)
    gates = "gates:\n  loans:\n    evaluation: {dataset: loans@1, target: approved}\n" \
            "    infrastructure: {latency_p99_ms: 10000}\n"
    (workspace / "shipyard.yaml").write_text((workspace / "shipyard.yaml").read_text() + gates)
    ctx = open_context()
    results = {r.gate: r for r in run_gates(ctx, "loans/1")}
    infrastructure = results["infrastructure"]
    assert [r.status for r in results.values()] == ["PASS", "PASS"], [r.summary() for r in results.values()]
    create(ctx, "loans-api", "loans/1")
    traffic(ctx, loans(300, 16), feedback=False, latency_ms=2000.0)  # far beyond any model this small
    latency = diagnose(ctx, "loans-api").check("latency_spike")
    measured = infrastructure.metrics["latency_p99_ms"]
    assert latency.status == "FAIL" and latency.evidence["gate"]["latency_p99_ms"] == measured
    assert latency.evidence["limit_ms"] == pytest.approx(3 * measured + 25)


def test_a_spike_within_the_window_shows_without_a_gate_result(workspace: Path) -> None:
    ctx = deploy(workspace)
    start = time.time() - 300
    log_traffic(ctx, loans(1000, 6), deployment="loans-api", start=start, prefix="a")
    log_traffic(ctx, loans(300, 7), deployment="loans-api", start=start + 100, prefix="b", latency_ms=500.0)
    latency = diagnose(ctx, "loans-api").check("latency_spike")
    assert latency.status == "FAIL"
    assert any(f.startswith("no infrastructure gate result for loans/1") for f in latency.findings)
    assert latency.evidence["gate"] is None and len(latency.evidence["buckets"]) > 2


def test_another_minor_version_of_a_needed_package_fails_a_patch_warns(served: Context,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.control import runtime

    traffic(served, loans(600, 8))
    installed = runtime.installed_version

    def shifted(package: str) -> str | None:
        if package == "scikit-learn":
            return "0.99.0"
        if package == "numpy":
            major, minor, *rest = str(installed("numpy")).split(".")
            return f"{major}.{minor}.999"
        return installed(package)

    monkeypatch.setattr(runtime, "installed_version", shifted)
    diagnosis = diagnose(served, "loans-api")
    assert statuses(diagnosis) == {"accuracy_drop": "PASS", "training_serving_skew": "PASS",
                                   "latency_spike": "PASS", "dependency_mismatch": "FAIL"}, diagnosis.to_dict()
    rows = {r["package"]: r for r in diagnosis.check("dependency_mismatch").evidence["packages"]}
    assert rows["scikit-learn"]["status"] == "FAIL" and rows["scikit-learn"]["running"] == "0.99.0"
    assert rows["numpy"]["status"] == "WARN" and rows["python"]["status"] == "PASS"
    assert diagnosis.check("dependency_mismatch").summary == "another major or minor version of scikit-learn runs here"


def test_a_patch_difference_and_a_missing_optional_package_only_warn(served: Context) -> None:
    from sqlalchemy import update

    from shipyard.control.runtime import dependency_check
    from shipyard.models.registry import get_model_version
    from shipyard.store.tables import model_versions

    environment = get_model_version(served, "loans/1").environment
    major, minor, _ = environment["packages"]["scipy"].split(".")[:3]
    environment["packages"]["scipy"] = f"{major}.{minor}.999"
    environment["packages"]["not-a-real-package"] = "1.0.0"
    with served.store.engine.begin() as conn:  # as if it had been trained elsewhere
        conn.execute(update(model_versions).values(environment=json.dumps(environment)))
    check = dependency_check(get_model_version(served, "loans/1"))
    assert check.status == "WARN"
    assert {r["package"]: r["status"] for r in check.evidence["packages"] if r["status"] != "PASS"} == {
        "scipy": "WARN", "not-a-real-package": "WARN"}
    assert "not-a-real-package 1.0.0 was recorded (optional) but it is not installed here" in check.findings


def test_no_traffic_is_insufficient_data_never_a_pass(served: Context) -> None:
    diagnosis = diagnose(served, "loans-api")
    assert statuses(diagnosis) == {"accuracy_drop": "WARN", "training_serving_skew": "WARN",
                                   "latency_spike": "WARN", "dependency_mismatch": "PASS"}
    assert all(c.summary.startswith("insufficient data") for c in diagnosis.checks[:3])


def test_only_failed_requests_are_insufficient_data(served: Context) -> None:
    traffic(served, loans(50, 17), feedback=False, errors=5)  # every request of the window failed
    diagnosis = diagnose(served, "loans-api")
    assert diagnosis.check("accuracy_drop").summary == ("insufficient data: every one of the window's 5 requests "
                                                        "failed")
    assert statuses(diagnosis)["training_serving_skew"] == "WARN"
    assert diagnosis.check("latency_spike").evidence["observed"]["errors"] == 5


def test_few_rows_warn_and_still_judge_integrity(served: Context) -> None:
    clean = loans(10, 9)
    frame = clean.copy()
    frame.loc[frame.index[:2], "income"] = np.nan
    log_broken(served, frame[FEATURES], clean)
    diagnosis = diagnose(served, "loans-api")
    assert statuses(diagnosis)["accuracy_drop"] == "FAIL"
    assert statuses(diagnosis)["training_serving_skew"] == "WARN"
    assert any("insufficient data for drift" in f for f in diagnosis.check("accuracy_drop").findings)


def test_drift_alone_warns_the_accuracy_check(served: Context) -> None:
    traffic(served, loans(600, 18, shift=0.5))  # richer applicants (within the contract), the same link to the outcome
    diagnosis = diagnose(served, "loans-api")
    check = diagnosis.check("accuracy_drop")
    assert statuses(diagnosis) == {"accuracy_drop": "WARN", "training_serving_skew": "PASS",
                                   "latency_spike": "PASS", "dependency_mismatch": "PASS"}, diagnosis.to_dict()
    assert check.summary.startswith("drift in income: ks ") and check.evidence["drift"]["drifted_columns"] == ["income"]


def test_a_fall_in_accuracy_on_feedback_fails_the_accuracy_check(served: Context) -> None:
    frame = loans(600, 10, flip=0.4)  # the same inputs, a new link to the outcome
    traffic(served, frame)
    check = diagnose(served, "loans-api").check("accuracy_drop")
    assert check.status == "FAIL" and check.summary.startswith("accuracy fell: accuracy 0.")
    assert check.evidence["performance"]["compared"]["accuracy"]["fall"] > 0.2


def test_a_model_reference_reads_the_whole_log_of_the_version(served: Context) -> None:
    traffic(served, loans(300, 11))
    log_traffic(served, loans(300, 12), prefix="direct")  # served without the deployment
    by_model = diagnose(served, "loans/1")
    assert by_model.subject.kind == "model" and by_model.subject.deployment is None
    assert by_model.window["rows"] == 600
    assert diagnose(served, "loans-api").window["rows"] == 300
    assert diagnose(served, "loans").subject.version.version_id == "loans/1"  # a bare model name: its latest
    assert diagnose(served).subject.deployment == "loans-api"  # the only deployment
    assert diagnose(served, "loans-api", rows=50).window["rows"] == 50


def test_the_window_decides_which_traffic_is_looked_at(served: Context) -> None:
    traffic(served, loans(300, 13), start=time.time() - 2 * 3600)  # two hours ago
    assert diagnose(served, "loans-api").check("latency_spike").summary.startswith("insufficient data")
    wider = diagnose(served, "loans-api", last=3 * 3600)
    assert wider.window["rows"] == 300 and wider.check("latency_spike").status == "PASS"


def test_a_model_without_training_data_or_signature_says_what_it_cannot_judge(served: Context) -> None:
    from sqlalchemy import update

    from shipyard.store.tables import model_versions

    traffic(served, loans(300, 14))
    with served.store.engine.begin() as conn:  # as if registered from a bare model, with no lineage
        conn.execute(update(model_versions).values(dataset_version=None, signature=None))
    diagnosis = diagnose(served, "loans-api")
    accuracy, skew = diagnosis.check("accuracy_drop"), diagnosis.check("training_serving_skew")
    assert accuracy.status == "WARN" and accuracy.summary == ("loans/1 names no training dataset: no contract and no "
                                                              "drift reference")
    assert accuracy.evidence["performance"]["compared"]["accuracy"]["fall"] < 0.05  # feedback is still judged
    assert skew.status == "WARN" and skew.summary == "no signature to compare the inputs with"


def test_bad_targets_and_windows_are_refused_with_the_fix(served: Context) -> None:
    with pytest.raises(NotFoundError, match="No deployment or model named 'loans-apj'. Did you mean 'loans-api'"):
        diagnose(served, "loans-apj")
    with pytest.raises(NotFoundError, match="No registered model named 'laons'"):
        diagnose(served, "laons/1")
    with pytest.raises(ValidationError, match="not both"):
        diagnose(served, "loans-api", last=60, rows=10)
    with pytest.raises(ValidationError, match="Invalid rows 0"):
        diagnose(served, "loans-api", rows=0)


def test_every_playbook_is_in_the_docs_table() -> None:
    text = (ROOT / "docs" / "doctor.md").read_text()
    for playbook in PLAYBOOKS.values():
        assert f"| {playbook.title} | {playbook.checked} | {playbook.recovery} |" in text
