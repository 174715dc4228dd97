"""The trivial baseline of the evaluation gate (`beat_baseline`): fitted on the rows the version trained on,
scored on the evaluation rows; a model that does not beat it fails with both numbers. And `dataset: split`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression

import shipyard
from shipyard.context import open_context
from shipyard.errors import ConfigError, ValidationError
from shipyard.gates.baseline import BaselineScore, beat_check, fit_baseline, score_baseline
from shipyard.gates.gating import run_gates


def test_fit_and_score_the_trivial_baselines() -> None:
    majority = fit_baseline("classification", ["b", "a", "b", None, "a", "c"])
    assert (majority.constant, majority.rows, majority.classes) == ("a", 5, ["a", "b", "c"])  # a tie: the first
    assert majority.shares == pytest.approx([0.4, 0.4, 0.2])
    scored = score_baseline(majority, np.array(["a", "b", "a", "a"], dtype=object))
    assert scored["accuracy"] == 0.75 and scored["roc_auc"] == pytest.approx(0.5)

    mean = fit_baseline("regression", np.array([1.0, 2.0, np.nan, 6.0]))
    assert (mean.constant, mean.rows) == (3.0, 3)
    assert score_baseline(mean, np.array([3.0, 5.0]))["rmse"] == pytest.approx(np.sqrt(2.0))
    with pytest.raises(ValidationError, match="no training rows with a target value"):
        fit_baseline("classification", [None, None])


def test_beat_check_gives_both_numbers() -> None:
    baseline = fit_baseline("classification", [0, 0, 0, 1])
    score = BaselineScore("classification", baseline, {"accuracy": 0.75, "log_loss": 0.56})
    failed = beat_check("accuracy", {"accuracy": 0.75}, score)
    assert failed.status == "FAIL"
    assert failed.message == ("accuracy 0.75 does not beat the trivial baseline's 0.75 (always predicting 0, the "
                              "most frequent class of the 4 training rows): the model is no better than a constant")
    assert beat_check("log_loss", {"log_loss": 0.4}, score).status == "PASS"  # lower is better
    assert beat_check("log_loss", {"accuracy": 0.9}, score).status == "FAIL"  # not computed for the version
    missing = beat_check("accuracy", {"accuracy": 0.9}, BaselineScore("classification", problem="no training data"))
    assert missing.status == "FAIL" and "no training data" in missing.message


def _gates(root: Path, gates: dict[str, Any]) -> None:
    spec = root / "shipyard.yaml"
    spec.write_text(spec.read_text() + "\n" + yaml.safe_dump({"gates": gates}, sort_keys=False))


def _imbalanced(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    return pd.DataFrame({"x": x, "noise": rng.normal(0, 1, n), "y": (x + rng.normal(0, 0.3, n) > 0.6).astype(int)})


def _register(model: Any, frame: pd.DataFrame, target: str, dataset: str | None) -> str:
    features = frame.drop(columns=[target])
    with shipyard.start_run("train") as run:
        if dataset:
            run.log_input(dataset)
        version = run.log_model(model.fit(features, frame[target]), "m", input_example=features.head(20))
    return str(version.version_id)


def test_a_classifier_above_its_threshold_but_no_better_than_the_majority_class_fails(workspace: Path) -> None:
    train, held = _imbalanced(400, 0), _imbalanced(200, 1)
    shipyard.data.add("train", train)
    shipyard.data.add("held", held)
    _gates(workspace, {"m": {"evaluation": {"dataset": "held@1", "target": "y", "beat_baseline": True,
                                            "thresholds": {"accuracy": {"min": 0.5}}}}})
    ctx = open_context()
    guess = _register(DummyClassifier(strategy="stratified", random_state=0), train, "y", "train@1")
    result = run_gates(ctx, guess)[0]
    checks = {c.name: c for c in result.checks}
    assert checks["thresholds.accuracy.min"].status == "PASS"  # what the old starter spec checked
    assert result.status == "FAIL" and checks["beat_baseline.accuracy"].status == "FAIL"
    majority = float((held["y"] == 0).mean())
    message = checks["beat_baseline.accuracy"].message
    assert f"does not beat the trivial baseline's {majority:.4g}" in message
    assert "always predicting 0, the most frequent class of the 400 training rows" in message
    assert result.evidence["baseline"]["metrics"]["accuracy"] == pytest.approx(majority)

    good = _register(LogisticRegression(), train, "y", "train@1")
    checks = {c.name: c for c in run_gates(ctx, good)[0].checks}
    assert checks["beat_baseline.accuracy"].status == "PASS" and "beats the trivial baseline's" in \
        checks["beat_baseline.accuracy"].message


def test_regression_against_the_mean_and_a_listed_metric(workspace: Path) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(0, 1, 300)})
    frame["y"] = 3 * frame["x"] + rng.normal(0, 0.5, 300)
    shipyard.data.add("all", frame)
    shipyard.data.add("held", frame.iloc[240:].reset_index(drop=True))
    _gates(workspace, {"m": {"evaluation": {"dataset": "held@1", "target": "y", "beat_baseline": ["rmse", "r2"]}}})
    ctx = open_context()
    # Trained on the first 240 rows, but registered with all 300: the baseline leaves out the evaluation rows.
    mean = _register(DummyRegressor(), frame.iloc[:240], "y", "all@1")
    result = run_gates(ctx, mean)[0]
    assert [c.status for c in result.checks] == ["FAIL", "FAIL"]
    assert result.evidence["baseline"]["rows"] == 240
    assert result.evidence["baseline"]["constant"] == pytest.approx(frame["y"].iloc[:240].mean())
    fitted = _register(LinearRegression(), frame.iloc[:240], "y", "all@1")
    assert run_gates(ctx, fitted)[0].status == "PASS"


def test_evaluating_on_the_training_data_or_without_it_fails_the_baseline(workspace: Path) -> None:
    frame = _imbalanced(200, 0)
    shipyard.data.add("train", frame)
    _gates(workspace, {"m": {"evaluation": {"dataset": "train@latest", "target": "y", "beat_baseline": True}}})
    ctx = open_context()
    version = _register(LogisticRegression(), frame, "y", "train@1")
    check = run_gates(ctx, version)[0].checks[-1]
    assert check.status == "FAIL" and "every row of its training data train@1 is also in the evaluation data" \
        in check.message
    unknown = _register(LogisticRegression(), frame, "y", None)
    check = run_gates(ctx, unknown)[0].checks[-1]
    assert check.status == "FAIL" and f"{unknown} records no training data" in check.message


def test_split_is_the_default_evaluation_data_and_needs_a_held_out_part(workspace: Path) -> None:
    frame = _imbalanced(200, 0)
    shipyard.data.add("train", frame)
    _gates(workspace, {"m": {"evaluation": {"target": "y", "thresholds": {"accuracy": {"min": 0.5}}}}})
    ctx = open_context()
    version = _register(LogisticRegression(), frame, "y", "train@1")
    with pytest.raises(ConfigError, match=r"gates.m.evaluation.dataset is 'split' \(the default\): the rows the "
                                          r"standard pipeline held out of train@1, but nothing was held out of it"):
        run_gates(ctx, version)
    shipyard.data.add("train-holdout", frame.tail(40), parents=["train@1"])
    assert run_gates(ctx, version)[0].status == "PASS"
    from shipyard.gates.gating import latest_gates

    stored = latest_gates(ctx, version)["evaluation"].result
    assert (stored["dataset"], stored["dataset_source"]) == ("train-holdout@1", "split")


@pytest.mark.parametrize("value, message", [
    (["rmse"], r"gates.m.evaluation.beat_baseline\[0\]: 'rmse' is not a classification metric"),
    (["acuracy"], r"gates.m.evaluation.beat_baseline = \['acuracy'\]: 'acuracy' is not a metric. Did you mean "
                  r"'accuracy'\?"),
    ("log_loss", None),
])
def test_beat_baseline_names_metrics_that_fit_the_task(workspace: Path, value: Any, message: str | None) -> None:
    _gates(workspace, {"m": {"evaluation": {"target": "y", "task": "classification", "beat_baseline": value}}})
    if message is None:
        spec = open_context().policy.gates("m")
        assert spec is not None and spec.evaluation is not None
        assert spec.evaluation.baseline_metrics("classification") == ["log_loss"]
        return
    with pytest.raises(ConfigError, match=message):
        open_context().policy.gates("m")
