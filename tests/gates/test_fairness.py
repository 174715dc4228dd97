"""Fairness numbers equal fairlearn's, on a sensitive attribute binned from the breast-cancer data; the gate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn import metrics as flm

from shipyard.gates.fairness import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    fairness_gate,
    group_metrics,
)
from shipyard.gates.results import format_number
from shipyard.policy.gates import GateSpec, load_gate_spec
from tests.gates.test_evaluation import classifier, split


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True labels, predictions of a real model, and texture tertiles as the sensitive attribute."""
    _, X_test, _, y_test = split("breast_cancer")
    groups = pd.qcut(X_test["mean texture"], 3, labels=["low", "mid", "high"]).astype(str).to_numpy()
    return y_test.to_numpy(), classifier("breast_cancer").predict(X_test), groups


def fairlearn_frame(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    return flm.MetricFrame(
        metrics={"selection_rate": flm.selection_rate, "tpr": flm.true_positive_rate,
                 "fpr": flm.false_positive_rate, "count": flm.count},
        y_true=y_true, y_pred=y_pred, sensitive_features=groups,
    ).by_group


def assert_same_as_fairlearn(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, positive: object) -> None:
    ours = group_metrics(y_true, y_pred, groups, positive)
    # fairlearn's rates count label 1 as positive: give it the labels as 0/1 of the positive class.
    t, p = (y_true == positive).astype(int), (y_pred == positive).astype(int)
    theirs = fairlearn_frame(t, p, groups)
    assert set(ours) == set(theirs.index)
    for group, row in theirs.iterrows():
        for name in ("selection_rate", "tpr", "fpr"):
            assert ours[group][name] == pytest.approx(row[name], abs=1e-12), (group, name)
        assert ours[group]["count"] == row["count"]
        assert ours[group]["accuracy"] == pytest.approx(float(np.mean(t[groups == group] == p[groups == group])))
    for ours_fn, theirs_fn in ((demographic_parity_difference, flm.demographic_parity_difference),
                               (demographic_parity_ratio, flm.demographic_parity_ratio),
                               (equalized_odds_difference, flm.equalized_odds_difference)):
        assert ours_fn(y_true, y_pred, groups, positive) == pytest.approx(
            theirs_fn(t, p, sensitive_features=groups), abs=1e-12), ours_fn.__name__


def test_numbers_equal_fairlearn() -> None:
    y_true, y_pred, groups = data()
    assert_same_as_fairlearn(y_true, y_pred, groups, 1)
    assert demographic_parity_difference(y_true, y_pred, groups) == pytest.approx(
        flm.demographic_parity_difference(y_true, y_pred, sensitive_features=groups), abs=1e-12)


def test_numbers_equal_fairlearn_for_another_positive_label_and_text_labels() -> None:
    y_true, y_pred, groups = data()
    assert_same_as_fairlearn(y_true, y_pred, groups, 0)
    names = np.array(["malignant", "benign"])
    assert_same_as_fairlearn(names[y_true], names[y_pred], groups, "benign")


def test_a_group_without_positives_has_tpr_zero_as_in_fairlearn() -> None:
    y_true, y_pred, _ = data()
    groups = np.where((y_true == 0) & (np.arange(len(y_true)) % 2 == 0), "negatives-only", "rest")
    assert group_metrics(y_true, y_pred, groups, 1)["negatives-only"]["tpr"] == 0.0
    assert_same_as_fairlearn(y_true, y_pred, groups, 1)


def spec_of(fairness: dict[str, object]) -> GateSpec:
    return load_gate_spec({"evaluation": {"dataset": "cancer@1", "target": "target"}, "fairness": fairness},
                          source="shipyard.yaml", model="cancer")


def test_gate_passes_and_fails_with_the_numbers() -> None:
    y_true, y_pred, groups = data()
    dpd = flm.demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
    dpr = flm.demographic_parity_ratio(y_true, y_pred, sensitive_features=groups)
    eod = flm.equalized_odds_difference(y_true, y_pred, sensitive_features=groups)
    loose = spec_of({"sensitive": "texture", "positive_label": 1,
                     "demographic_parity_difference": {"max": 1}, "demographic_parity_ratio": {"min": 0.1},
                     "equalized_odds_difference": {"max": 1}})
    result = fairness_gate(loose, y_true, y_pred, groups)
    assert result.status == "PASS", result.summary()
    assert result.metrics["demographic_parity_difference"] == pytest.approx(dpd, abs=1e-12)
    assert result.metrics["demographic_parity_ratio"] == pytest.approx(dpr, abs=1e-12)
    assert result.metrics["equalized_odds_difference"] == pytest.approx(eod, abs=1e-12)
    assert set(result.metrics["by_group"]) == {"low", "mid", "high"}
    json.dumps(result.to_dict(), allow_nan=False)

    tight = spec_of({"sensitive": "texture", "demographic_parity_difference": {"max": 0.1},
                     "demographic_parity_ratio": {"min": 0.8}, "equalized_odds_difference": {"max": 0.05}})
    failed = fairness_gate(tight, y_true, y_pred, groups)
    assert failed.status == "FAIL"
    assert [c.name for c in failed.failures] == [
        "demographic_parity_difference.max", "demographic_parity_ratio.min", "equalized_odds_difference.max"]
    rates = result.metrics["by_group"]
    high = max(rates, key=lambda g: rates[g]["selection_rate"])
    low = min(rates, key=lambda g: rates[g]["selection_rate"])
    assert failed.failures[0].message == (
        f"demographic_parity_difference {format_number(dpd)} > maximum 0.1 (selection rate "
        f"{format_number(rates[high]['selection_rate'])} for group '{high}' vs "
        f"{format_number(rates[low]['selection_rate'])} for group '{low}')")
    assert failed.failures[1].message.startswith(f"demographic_parity_ratio {format_number(dpr)} < minimum 0.8")
    assert failed.failures[2].message.startswith(f"equalized_odds_difference {format_number(eod)} > maximum 0.05")


def test_gate_reports_bad_input_as_a_failure() -> None:
    y_true, y_pred, groups = data()
    result = fairness_gate(spec_of({"sensitive": "texture", "positive_label": 7}), y_true, y_pred, groups)
    assert result.status == "FAIL"
    assert result.checks[0].message == (
        "positive_label 7 is not among the labels [0, 1]. Set positive_label to one of them.")
    no_positive = fairness_gate(spec_of({"sensitive": "texture", "demographic_parity_ratio": {"min": 0.8}}),
                                y_true, np.zeros_like(y_pred), groups)
    assert no_positive.checks[0].message == "demographic_parity_ratio is undefined: no group has a positive prediction"
    single = fairness_gate(spec_of({"sensitive": "texture"}), y_true, y_pred, np.full(len(y_true), "all"))
    assert single.status == "FAIL" and "holds the single group 'all'" in single.checks[0].message
