"""Metrics against scikit-learn's, value and champion thresholds, gate results, and the infrastructure gate."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from shipyard.gates.evaluation import compute_metrics, evaluate_gate, infer_task
from shipyard.gates.latency import MIN_BATCH_RUNS, MIN_SINGLE_ROW_RUNS, infrastructure_gate, machine_load, measure
from shipyard.gates.results import Check, GateResult, combine, format_number
from shipyard.policy.gates import GateSpec, load_gate_spec


@cache
def split(name: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """A fixed train/test split of a dataset bundled with scikit-learn."""
    loader = {"breast_cancer": load_breast_cancer, "wine": load_wine, "diabetes": load_diabetes}[name]
    X, y = loader(return_X_y=True, as_frame=True)
    stratify = None if name == "diabetes" else y
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=stratify)
    return X_train, X_test, y_train, y_test


@cache
def classifier(name: str, columns: tuple[str, ...] | None = None) -> Pipeline:
    """Scaled logistic regression on `columns` (default: all features)."""
    X_train, _, y_train, _ = split(name)
    X = X_train[list(columns)] if columns else X_train
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y_train)


def spec_of(data: dict[str, Any]) -> GateSpec:
    return load_gate_spec(data, source="shipyard.yaml", model="cancer")


# ---- compute_metrics ----------------------------------------------------------------------------------

def test_binary_metrics_equal_scikit_learns() -> None:
    _, X_test, _, y_test = split("breast_cancer")
    model = classifier("breast_cancer")
    pred, proba = model.predict(X_test), model.predict_proba(X_test)
    got = compute_metrics("classification", y_test, pred, proba)
    assert got == pytest.approx({
        "accuracy": skm.accuracy_score(y_test, pred), "precision": skm.precision_score(y_test, pred),
        "recall": skm.recall_score(y_test, pred), "f1": skm.f1_score(y_test, pred),
        "roc_auc": skm.roc_auc_score(y_test, proba[:, 1]), "log_loss": skm.log_loss(y_test, proba),
    }, abs=1e-12)
    assert compute_metrics("classification", y_test, pred, proba[:, 1]) == pytest.approx(got, abs=1e-12)
    malignant = compute_metrics("classification", y_test, pred, proba, positive_label=0)
    assert malignant["precision"] == pytest.approx(skm.precision_score(y_test, pred, pos_label=0), abs=1e-12)
    assert malignant["recall"] == pytest.approx(skm.recall_score(y_test, pred, pos_label=0), abs=1e-12)
    assert malignant["roc_auc"] == pytest.approx(got["roc_auc"], abs=1e-12)  # P(0) ranks rows in reverse
    without = compute_metrics("classification", y_test, pred)
    assert set(without) == {"accuracy", "precision", "recall", "f1"}


def test_multiclass_metrics_are_weighted_and_one_vs_rest() -> None:
    _, X_test, _, y_test = split("wine")
    model = classifier("wine")
    pred, proba = model.predict(X_test), model.predict_proba(X_test)
    got = compute_metrics("classification", y_test, pred, proba)
    assert got == pytest.approx({
        "accuracy": skm.accuracy_score(y_test, pred),
        "precision": skm.precision_score(y_test, pred, average="weighted"),
        "recall": skm.recall_score(y_test, pred, average="weighted"),
        "f1": skm.f1_score(y_test, pred, average="weighted"),
        "roc_auc": skm.roc_auc_score(y_test, proba, multi_class="ovr", average="weighted"),
        "log_loss": skm.log_loss(y_test, proba),
    }, abs=1e-12)
    # Columns in another order are matched through `classes`.
    reordered = compute_metrics("classification", y_test, pred, proba[:, [2, 0, 1]], classes=[2, 0, 1])
    assert reordered == pytest.approx(got, abs=1e-12)


def test_regression_metrics() -> None:
    X_train, X_test, y_train, y_test = split("diabetes")
    pred = LinearRegression().fit(X_train, y_train).predict(X_test)
    got = compute_metrics("regression", y_test, pred)
    assert got == pytest.approx({
        "rmse": skm.mean_squared_error(y_test, pred) ** 0.5, "mae": skm.mean_absolute_error(y_test, pred),
        "r2": skm.r2_score(y_test, pred),
    }, abs=1e-9)


def test_infer_task() -> None:
    assert [infer_task(split(name)[3]) for name in ("breast_cancer", "wine", "diabetes")] == [
        "classification", "classification", "regression"]
    assert infer_task(np.array(["yes", "no"])) == "classification"
    assert infer_task(np.array([0.5, 1.5])) == "regression"


# ---- evaluate_gate ------------------------------------------------------------------------------------

GATES = {
    "evaluation": {
        "dataset": "cancer-holdout@latest", "target": "target", "task": "classification",
        "thresholds": {"roc_auc": {"min": 0.95}, "log_loss": {"max": 0.3}},
        "against_champion": {"roc_auc": {"max_drop": 0.01}, "log_loss": {"max_rise": 0.05, "relative": True}},
    }
}
#: A deliberately worse model: one weak feature instead of thirty.
WEAK = ("mean smoothness",)


def metrics_of(columns: tuple[str, ...] | None = None) -> dict[str, float]:
    _, X_test, _, y_test = split("breast_cancer")
    model = classifier("breast_cancer", columns)
    X = X_test[list(columns)] if columns else X_test
    return compute_metrics("classification", y_test, model.predict(X), model.predict_proba(X))


def test_good_model_passes_against_itself_and_a_weaker_champion() -> None:
    good, weak = metrics_of(), metrics_of(WEAK)
    result = evaluate_gate(spec_of(GATES), good, weak)
    assert result.status == "PASS", result.summary()
    assert [c.name for c in result.checks] == [
        "thresholds.roc_auc.min", "thresholds.log_loss.max", "against_champion.roc_auc.max_drop",
        "against_champion.log_loss.max_rise"]
    assert result.checks[0].message == f"roc_auc {format_number(good['roc_auc'])} >= minimum 0.95"
    assert "no worse than the champion" in result.checks[2].message
    assert evaluate_gate(spec_of(GATES), good, good).status == "PASS"
    assert result.metrics == good


def test_worse_model_fails_with_the_numbers() -> None:
    good, weak = metrics_of(), metrics_of(WEAK)
    result = evaluate_gate(spec_of(GATES), weak, good)
    assert result.status == "FAIL"
    messages = {c.name: c.message for c in result.failures}
    assert messages["thresholds.roc_auc.min"] == f"roc_auc {format_number(weak['roc_auc'])} < minimum 0.95"
    assert messages["thresholds.log_loss.max"] == f"log_loss {format_number(weak['log_loss'])} > maximum 0.3"
    drop = good["roc_auc"] - weak["roc_auc"]
    assert messages["against_champion.roc_auc.max_drop"] == (
        f"roc_auc {format_number(weak['roc_auc'])} fell {format_number(drop)} from the champion's "
        f"{format_number(good['roc_auc'])}: more than the allowed drop of 0.01")
    rise = (weak["log_loss"] - good["log_loss"]) / good["log_loss"]
    assert f"rose {rise:.1%} from the champion's" in messages["against_champion.log_loss.max_rise"]
    assert "allowed rise of 5.0%" in messages["against_champion.log_loss.max_rise"]
    check = next(c for c in result.checks if c.name == "against_champion.log_loss.max_rise")
    assert check.details["change"] == pytest.approx(rise)


def test_small_changes_within_the_limits_pass() -> None:
    spec = spec_of(GATES)
    champion = {"roc_auc": 0.98, "log_loss": 0.20}
    ok = evaluate_gate(spec, {"roc_auc": 0.97, "log_loss": 0.21}, champion)  # a 0.01 drop; a 5% rise
    assert ok.status == "PASS", ok.summary()
    bad = evaluate_gate(spec, {"roc_auc": 0.969, "log_loss": 0.2102}, champion)
    assert [c.name for c in bad.failures] == ["against_champion.roc_auc.max_drop", "against_champion.log_loss.max_rise"]


def test_no_champion_is_no_baseline_unless_something_failed() -> None:
    result = evaluate_gate(spec_of(GATES), metrics_of(), None)
    assert result.status == "NO_BASELINE"
    baseline = [c for c in result.checks if c.status == "NO_BASELINE"]
    assert [c.name for c in baseline] == ["against_champion.roc_auc.max_drop", "against_champion.log_loss.max_rise"]
    assert baseline[0].message == (
        "roc_auc: there is no champion to compare with; the allowed drop of 0.01 was not checked")
    assert evaluate_gate(spec_of(GATES), metrics_of(WEAK), None).status == "FAIL"
    lacking = evaluate_gate(spec_of(GATES), metrics_of(), {"accuracy": 0.9})
    assert lacking.status == "NO_BASELINE" and "the champion has no roc_auc metric" in lacking.checks[2].message


def test_a_metric_that_was_not_computed_fails() -> None:
    _, X_test, _, y_test = split("breast_cancer")
    labels_only = compute_metrics("classification", y_test, classifier("breast_cancer").predict(X_test))
    result = evaluate_gate(spec_of(GATES), labels_only, None)
    assert result.status == "FAIL"
    assert result.checks[0].message.startswith(
        "roc_auc was not computed for this version (it needs predicted probabilities")


def test_regression_thresholds() -> None:
    X_train, X_test, y_train, y_test = split("diabetes")
    got = compute_metrics("regression", y_test, LinearRegression().fit(X_train, y_train).predict(X_test))
    spec = load_gate_spec({"evaluation": {"dataset": "diabetes@1", "target": "target", "thresholds": {
        "rmse": {"max": 50}, "r2": {"min": 0.3}}}}, source="shipyard.yaml", model="diabetes")
    assert spec.task == "regression"
    result = evaluate_gate(spec, got, None)
    assert result.status == "FAIL"
    assert result.failures[0].message == f"rmse {format_number(got['rmse'])} > maximum 50"
    assert result.checks[1].status == "PASS"


# ---- results ------------------------------------------------------------------------------------------

def test_combine_rule() -> None:
    def check(status: Any) -> Check:
        return Check(name="c", status=status, message="m")

    assert combine([]) == "PASS"
    assert combine([check("PASS"), check("PASS")]) == "PASS"
    assert combine([check("PASS"), check("NO_BASELINE")]) == "NO_BASELINE"
    assert combine([check("NO_BASELINE"), check("FAIL")]) == "FAIL"
    assert combine([check("FAIL"), check("PASS")]) == "FAIL"


def test_result_round_trips_through_plain_json() -> None:
    result = evaluate_gate(spec_of(GATES), metrics_of(WEAK), metrics_of())
    result.metrics["weird"] = {np.int64(1): np.float64("nan"), "array": np.array([1.5, np.inf])}
    text = json.dumps(result.to_dict(), allow_nan=False)
    back = GateResult.from_dict(json.loads(text))
    assert back.status == "FAIL" and back.checks[0].message == result.checks[0].message
    assert back.metrics["weird"] == {"1": None, "array": [1.5, None]}
    assert result.summary().startswith("evaluation gate FAIL (0 of 4 checks passed): roc_auc ")


# ---- infrastructure -----------------------------------------------------------------------------------

def test_measure_and_infrastructure_budgets() -> None:
    _, X_test, _, _ = split("breast_cancer")
    model = classifier("breast_cancer")
    measured = measure(model.predict, X_test, single_row_runs=20, batch_runs=2, max_seconds=5)
    assert measured["single_row_runs"] == 20 and measured["batch_runs"] == 2
    assert 0 < measured["latency_p50_ms"] <= measured["latency_p99_ms"]
    assert measured["throughput_rows_per_s"] > 0
    measured["peak_memory_mb"] = 300.0
    generous = spec_of({"infrastructure": {"latency_p50_ms": 10_000, "latency_p99_ms": 10_000,
                                           "throughput_rows_per_s": 1, "peak_memory_mb": 1024}})
    assert infrastructure_gate(generous, measured, []).status == "PASS"
    tight = spec_of({"infrastructure": {"latency_p99_ms": 1e-6, "throughput_rows_per_s": 1e12, "peak_memory_mb": 100}})
    result = infrastructure_gate(tight, measured, [
        {"package": "scikit-learn", "recorded": "1.4.2", "running": "1.5.0"},
        {"package": "xgboost", "recorded": "2.0.3", "running": None},
    ])
    messages = [c.message for c in result.failures]
    assert result.status == "FAIL" and len(messages) == 5
    assert messages[0] == (f"latency_p99_ms {format_number(measured['latency_p99_ms'])} ms > budget 1e-06 ms "
                           f"(load average {format_number(measured['load_average_1m'])} on "
                           f"{measured['cpu_count']} CPUs while measuring)")
    assert messages[2] == "peak_memory_mb 300 MB > budget 100 MB"
    assert messages[3].startswith("scikit-learn 1.4.2 was recorded with the model but 1.5.0 is running")
    assert "xgboost 2.0.3 was recorded with the model but it is not installed" in messages[4]
    unmeasured = infrastructure_gate(generous, {}, [])
    assert unmeasured.status == "FAIL" and "latency_p50_ms was not measured" in unmeasured.checks[0].message


def test_measure_warms_up_and_times_enough_calls_whatever_the_time_limit() -> None:
    calls: list[int] = []  # the number of rows of every call, in order

    def predict(frame: pd.DataFrame) -> np.ndarray:
        calls.append(len(frame))
        return np.zeros(len(frame))

    frame = pd.DataFrame({"x": np.arange(50.0)})
    measured = measure(predict, frame, warmup_runs=7, max_seconds=0)  # every deadline has passed at once
    assert calls[:8] == [50] + [1] * 7  # untimed: one batch and seven single rows
    assert measured["warmup_runs"] == 7
    assert measured["single_row_runs"] == MIN_SINGLE_ROW_RUNS == calls[8:].count(1)
    assert measured["batch_runs"] == MIN_BATCH_RUNS == calls[8:].count(50)
    assert len(calls) == 8 + MIN_SINGLE_ROW_RUNS + MIN_BATCH_RUNS
    assert measured["single_row_threads"] == 1
    assert measured["cpu_count"] >= 1 and measured["load_average_1m"] >= 0  # what it was measured under
    assert set(machine_load()) == {"load_average_1m", "load_average_5m", "load_average_15m", "cpu_count"}
