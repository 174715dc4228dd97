"""Behavioural checks on real models: cases, invariance, directional expectations, slices, a failing model."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from shipyard.gates.behavioural import behavioural_gate
from shipyard.gates.results import GateResult
from shipyard.policy.gates import load_gate_spec
from tests.gates.test_evaluation import classifier, split

FEATURES = tuple(split("breast_cancer")[1].columns)


@cache
def frame() -> tuple[pd.DataFrame, pd.Series]:
    """The breast-cancer test rows plus two columns no sound model should use: a clinic code and a site name."""
    _, X_test, _, y_test = split("breast_cancer")
    X = X_test.copy()
    X["clinic"] = np.arange(len(X)) % 7  # deterministic, unrelated to the diagnosis
    X["site"] = np.where(np.arange(len(X)) % 2 == 0, "north", "south")
    return X, y_test


def sound() -> tuple[Any, Any]:
    model = classifier("breast_cancer")
    return (lambda df: model.predict(df[list(FEATURES)])), (lambda df: model.predict_proba(df[list(FEATURES)]))


def leaky() -> tuple[Any, Any]:
    """A model that also reads the clinic code: predictions flip for clinic 0."""
    predict, proba = sound()

    def leaky_predict(df: pd.DataFrame) -> np.ndarray:
        labels = predict(df)
        return np.where(df["clinic"].to_numpy() == 0, 1 - labels, labels)

    return leaky_predict, proba


def gate(behavioural: dict[str, Any], predict: Any, predict_proba: Any, **kwargs: Any) -> GateResult:
    spec = load_gate_spec({"evaluation": {"dataset": "cancer@1", "target": "target", "positive_label": 1},
                           "behavioural": behavioural}, source="shipyard.yaml", model="cancer")
    X, y = frame()
    return behavioural_gate(spec, predict, predict_proba, X, y, **kwargs)


def test_cases_pass_and_fail_with_the_prediction() -> None:
    X, _ = frame()
    predict, proba = sound()
    row = X.iloc[0]
    expected = int(predict(X.iloc[[0]])[0])
    cases = [
        {"input": {name: float(row[name]) for name in FEATURES}, "expected": expected},
        {"input": {name: float(row[name]) for name in FEATURES}, "expected": 1 - expected},
        {"input": {"worst radius": 40.0, "worst area": 4000.0, "worst concave points": 0.3}, "expected": 0},
    ]
    result = gate({"cases": cases}, predict, proba)
    assert [c.status for c in result.checks] == ["PASS", "FAIL", "PASS"]
    assert result.status == "FAIL"
    assert result.checks[1].message.startswith(f"cases[1]: predicted {expected}, expected {1 - expected} for {{")
    assert result.checks[2].details["filled_columns"] == len(X.columns) - 3  # the rest come from medians/modes


def test_invariance_passes_for_a_sound_model_and_fails_for_one_that_reads_the_column() -> None:
    checks = {"invariance": [
        {"column": "clinic", "set": 3},
        {"column": "site", "set": "west", "output": "proba"},
    ]}
    result = gate(checks, *sound())
    assert result.status == "PASS", result.summary()
    assert result.checks[0].message == (
        "invariance[0] clinic: setting clinic to 3 changed no predicted label in 171 rows")
    failing = gate(checks, *leaky())
    assert failing.status == "FAIL"
    check = failing.checks[0]
    rows_in_clinic_0 = int((frame()[0]["clinic"] == 0).sum())
    assert check.details["changed_count"] == rows_in_clinic_0 and check.details["rows"] == 171
    example = frame()[0].index[0].item()  # the first row is in clinic 0
    assert check.details["example_row"] == example
    assert check.message.startswith(
        f"invariance[0] clinic: setting clinic to 3 changed the predicted label of {rows_in_clinic_0} of 171 rows "
        f"({rows_in_clinic_0 / 171:.1%}; allowed 0.0%); e.g. row {example!r}: ")
    assert failing.checks[1].status == "PASS"  # the leak is in the labels, not in P(positive)


def test_invariance_tolerance_and_allowed_fraction() -> None:
    X, _ = frame()
    nudge = {"column": "mean texture", "add": 0.5, "output": "proba"}
    strict = gate({"invariance": [nudge]}, *sound())
    assert strict.status == "FAIL" and "by more than" not in strict.checks[0].message
    tolerant = gate({"invariance": [{**nudge, "tolerance": 0.05}]}, *sound())
    assert tolerant.status == "PASS", tolerant.summary()
    share = gate({"invariance": [{**nudge, "max_changed_fraction": 1.0}]}, *sound())
    assert share.status == "PASS"


def test_directional_reports_both_means_and_wrong_way_rows() -> None:
    bigger = {"column": "worst area", "multiply": 1.5}  # larger tumours look more malignant (label 0)
    ok = gate({"directional": [{**bigger, "direction": "decrease"}]}, *sound())
    assert ok.status == "PASS", ok.summary()
    details = ok.checks[0].details
    assert details["mean_after"] < details["mean_before"] and details["output"] == "proba"
    wrong = gate({"directional": [{**bigger, "direction": "increase"}]}, *sound())
    assert wrong.status == "FAIL"
    d = wrong.checks[0].details
    assert wrong.checks[0].message.startswith(
        f"directional[0] worst area: multiplying worst area by 1.5 moved the mean P(1) from "
        f"{d['mean_before']:.4g} to {d['mean_after']:.4g}: it decreased, expected to increase; ")
    assert f"({d['wrong_fraction']:.1%}) moved the other way" in wrong.checks[0].message
    labels = gate({"directional": [{**bigger, "direction": "decrease", "output": "label"}]}, *sound())
    assert labels.status == "PASS" and "share predicted 1" in labels.checks[0].message
    capped = {"directional": [{**bigger, "direction": "decrease", "max_wrong_fraction": 0.1}]}
    assert gate(capped, *sound()).checks[0].details["wrong_count"] == 0
    predict, proba = sound()

    def contrary(df: pd.DataFrame) -> np.ndarray:  # clinic 0 gets the opposite of the sound model's answer
        p = proba(df)
        return np.where((df["clinic"].to_numpy() == 0)[:, None], p[:, ::-1], p)

    mixed = gate(capped, predict, contrary)
    check = mixed.checks[0]
    assert check.details["mean_after"] < check.details["mean_before"]  # the mean still moves as expected ...
    assert check.status == "FAIL"  # ... but clinic 0's rows, 14.6%, move the other way
    assert check.details["wrong_count"] == int((frame()[0]["clinic"] == 0).sum())
    assert check.message.endswith("moved the other way (allowed 10.0%)")


def test_directional_on_a_regression_model() -> None:
    X_train, X_test, y_train, y_test = split("diabetes")
    model = LinearRegression().fit(X_train, y_train)
    spec = load_gate_spec({
        "evaluation": {"dataset": "diabetes@1", "target": "target", "task": "regression"},
        "behavioural": {"directional": [{"column": "bmi", "add": 0.05, "direction": "increase"},
                                        {"column": "bmi", "add": 0.05, "direction": "decrease"}],
                        "cases": [{"input": X_test.iloc[0].to_dict(), "expected": 150, "tolerance": 500}]},
    }, source="shipyard.yaml", model="diabetes")
    result = behavioural_gate(spec, model.predict, None, X_test, y_test)
    assert [c.name for c in result.checks] == ["cases[0]", "directional[0] bmi", "directional[1] bmi"]
    assert [c.status for c in result.checks] == ["PASS", "PASS", "FAIL"]
    assert result.checks[1].details["wrong_count"] == 0  # a linear model moves every row the same way
    assert result.checks[2].details["wrong_count"] == len(X_test)
    assert "the mean prediction from" in result.checks[2].message and "it increased, expected to decrease" in (
        result.checks[2].message)


def test_slices() -> None:
    X, y = frame()
    slices = [
        {"name": "small", "where": {"mean radius": {"max": 12}}, "metric": "accuracy", "min": 0.9},
        {"name": "north", "where": {"site": {"equals": "north"}, "clinic": {"in": [1, 2, 3]}}, "metric": "f1",
         "min": 0.9},
        {"name": "strict", "where": {"mean radius": {"min": 14}}, "metric": "accuracy", "min": 0.999},
        {"name": "empty", "where": {"mean radius": {"min": 1000}}, "metric": "accuracy", "min": 0.5},
        {"name": "tiny", "where": {"mean radius": {"max": 10}}, "metric": "roc_auc", "min": 0.5},
        {"where": {"mean radius": {"min": 14}}, "metric": "log_loss", "max": 0.5},
    ]
    result = gate({"slices": slices}, *sound())
    assert [c.status for c in result.checks] == ["PASS", "PASS", "FAIL", "FAIL", "FAIL", "PASS"], result.summary()
    predict, _ = sound()
    strict_rows = (X["mean radius"] >= 14).to_numpy()
    accuracy = float(np.mean(predict(X)[strict_rows] == y.to_numpy()[strict_rows]))
    assert result.checks[2].message == (
        f"slices[2] strict: accuracy {accuracy:.4g} < minimum 0.999 on the {strict_rows.sum()} rows where "
        "mean radius >= 14")
    assert result.checks[3].message == (
        "slices[3] empty: no row of 171 matches mean radius >= 1000; check the where: conditions")
    assert "roc_auc is undefined on the" in result.checks[4].message
    assert result.metrics["slices.small.rows"] == int((X["mean radius"] <= 12).sum())
    assert result.metrics["slices.strict.accuracy"] == pytest.approx(accuracy)
    no_proba = gate({"slices": [slices[4]]}, sound()[0], None)
    assert "roc_auc needs predicted probabilities, and the model has none" in no_proba.checks[0].message


def test_a_predict_that_raises_fails_the_gate_without_raising() -> None:
    def broken(df: pd.DataFrame) -> np.ndarray:
        raise ValueError("could not convert string to float: 'north'")

    result = gate({"invariance": [{"column": "clinic", "set": 3}]}, broken, None)
    assert result.status == "FAIL"
    assert result.checks[0].message == (
        "predict raised ValueError on the evaluation data: could not convert string to float: 'north'")
    predict, proba = sound()

    def fragile(df: pd.DataFrame) -> np.ndarray:
        if (df["clinic"] == 99).all():
            raise RuntimeError("unknown clinic 99")
        return predict(df)

    partial = gate({"invariance": [{"column": "clinic", "set": 99}, {"column": "clinic", "set": 2}],
                    "directional": [{"column": "site", "multiply": 2, "direction": "increase"}]}, fragile, proba)
    assert [c.status for c in partial.checks] == ["FAIL", "PASS", "FAIL"]
    assert "predict raised RuntimeError on the data after setting clinic to 99: unknown clinic 99" in (
        partial.checks[0].message)
    assert re.search(r"column 'site' holds \w+ values; add and multiply need numbers", partial.checks[2].message)


def test_proba_output_of_a_model_without_probabilities_fails_clearly() -> None:
    predict, _ = sound()
    result = gate({"invariance": [{"column": "clinic", "set": 3, "output": "proba"}]}, predict, None)
    assert result.status == "FAIL"
    assert "output: proba needs predicted probabilities, and the model has no predict_proba" in (
        result.checks[0].message)
