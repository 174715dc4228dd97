"""Performance on feedback: metrics equal sklearn's, Wilson and bootstrap intervals, labels coerced or reported as
mismatched, and the drift detectors find a planted change in the error rate after it and not before."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn import metrics

from shipyard.errors import ValidationError
from shipyard.monitoring.performance import MIN_ROWS, detect_drift, error_stream, performance, wilson


def joined(prediction: Any, feedback: Any, probabilities: Any = None, seconds: Any = None) -> pd.DataFrame:
    """A frame shaped like joined_feedback's: one row per request, a second apart unless `seconds` says."""
    n = len(prediction)
    start = pd.Timestamp("2026-11-01", tz="UTC")
    offsets = np.arange(n) if seconds is None else np.asarray(seconds)
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "row": 0,
                          "timestamp": start + pd.to_timedelta(offsets, unit="s"), "version": 1, "route": "infer",
                          "latency_ms": 1.0, "prediction": prediction, "feedback": feedback})
    if probabilities is not None:
        frame["probabilities"] = list(np.asarray(probabilities, dtype=float))
    return frame.assign(feedback_at=frame["timestamp"] + pd.Timedelta(hours=1))


def binary_data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    score = np.clip(0.35 * truth + 0.65 * rng.random(n), 0, 1).round(2)  # rounded: ties in the scores
    return truth, (score > 0.5).astype(np.int64), score


def test_binary_metrics_equal_sklearn() -> None:
    truth, predicted, score = binary_data()
    report = performance(joined(predicted, truth, np.column_stack([1 - score, score])))
    assert (report.task, report.task_inferred, report.positive, report.labelled) == ("classification", True, 1, 3000)
    assert "task inferred: classification" in report.notes[0]
    expected = {"accuracy": metrics.accuracy_score(truth, predicted), "roc_auc": metrics.roc_auc_score(truth, score),
                "precision": metrics.precision_score(truth, predicted),
                "recall": metrics.recall_score(truth, predicted), "f1": metrics.f1_score(truth, predicted)}
    assert set(report.metrics) == set(expected)
    for name, value in expected.items():
        assert report[name].value == pytest.approx(value, abs=1e-12), name
    json.dumps(report.to_dict())  # plain JSON

    # rows whose request did not ask for probabilities: AUC over the others
    frame = joined(predicted, truth, np.column_stack([1 - score, score]))
    frame.loc[:99, "probabilities"] = None
    report = performance(frame)
    assert "roc_auc over the 2900 of 3000 rows that have probabilities" in report.notes
    assert report["roc_auc"].value == pytest.approx(metrics.roc_auc_score(truth[100:], score[100:]), abs=1e-12)

    # the other class as the positive one, and probabilities in the model's class order
    labels = np.where(truth == 1, "yes", "no")
    said = np.where(predicted == 1, "yes", "no")
    report = performance(joined(said, labels, np.column_stack([score, 1 - score])), "classification",
                         classes=["yes", "no"], positive="no")
    assert report.positive == "no" and report.classes == ["yes", "no"]
    assert report["precision"].value == pytest.approx(metrics.precision_score(labels, said, pos_label="no"),
                                                      abs=1e-12)
    assert report["recall"].value == pytest.approx(metrics.recall_score(labels, said, pos_label="no"), abs=1e-12)
    assert report["roc_auc"].value == pytest.approx(metrics.roc_auc_score(labels == "no", 1 - score), abs=1e-12)
    with pytest.raises(ValidationError, match="positive class 'maybe' is not one of the classes 'yes', 'no'"):
        performance(joined(said, labels), classes=["yes", "no"], positive="maybe")


def test_multiclass_macro_metrics_and_one_vs_rest_auc_equal_sklearn() -> None:
    rng = np.random.default_rng(1)
    truth = rng.choice(["ant", "bee", "cat", "dog"], 2000)
    probabilities = rng.dirichlet(np.ones(4), 2000)
    probabilities[np.arange(2000), np.searchsorted(["ant", "bee", "cat", "dog"], truth)] += 0.4
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    predicted = np.array(["ant", "bee", "cat", "dog"])[probabilities.argmax(axis=1)]
    report = performance(joined(predicted, truth, probabilities))
    assert report.task == "classification" and report.positive is None
    for name, scorer in (("precision", metrics.precision_score), ("recall", metrics.recall_score),
                         ("f1", metrics.f1_score)):
        assert report[name].value == pytest.approx(scorer(truth, predicted, average="macro"), abs=1e-12), name
    assert report["roc_auc"].value == pytest.approx(
        metrics.roc_auc_score(truth, probabilities, multi_class="ovr", average="macro"), abs=1e-12)
    assert report["roc_auc"].low < report["roc_auc"].value < report["roc_auc"].high  # type: ignore[operator]

    # a class the model knows but no label has: AUC is skipped, the rest stands
    known = truth != "dog"
    report = performance(joined(predicted[known], truth[known], probabilities[known]),
                         classes=["ant", "bee", "cat", "dog"])
    assert "roc_auc" not in report.metrics and "roc_auc skipped: class 'dog' is missing from the labels" in report.notes
    assert report["f1"].value == pytest.approx(metrics.f1_score(truth[known], predicted[known], average="macro"),
                                               abs=1e-12)
    # a prediction outside the model's two classes: macro metrics over what was seen, AUC of both classes
    two = np.column_stack([1 - probabilities[:, 0], probabilities[:, 0]])
    binary_truth = np.where(truth == "ant", "ant", "bee")
    said = np.where(predicted == "ant", "ant", np.where(predicted == "dog", "dog", "bee"))
    report = performance(joined(said, binary_truth, two[:, ::-1]), classes=["ant", "bee"])
    assert "values outside the model's classes: 'dog'" in report.notes and report.positive is None
    assert report["f1"].value == pytest.approx(metrics.f1_score(binary_truth, said, average="macro"), abs=1e-12)
    assert report["roc_auc"].value == pytest.approx(metrics.roc_auc_score(binary_truth == "ant", two[:, 1]),
                                                    abs=1e-12)
    # probabilities that do not fit the classes
    report = performance(joined(predicted, truth, probabilities[:, :3]))
    assert "roc_auc" not in report.metrics and any("3] columns where the classes are" in n for n in report.notes)


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(50, 10, 1500)
    predicted = truth + rng.normal(0, 4, 1500)
    report = performance(joined(predicted, truth))
    assert (report.task, report.task_inferred) == ("regression", True)
    assert report["rmse"].value == pytest.approx(metrics.root_mean_squared_error(truth, predicted), abs=1e-12)
    assert report["mae"].value == pytest.approx(metrics.mean_absolute_error(truth, predicted), abs=1e-12)
    assert report["r2"].value == pytest.approx(metrics.r2_score(truth, predicted), abs=1e-12)
    assert all(m.method == "bootstrap" and m.low < m.value < m.high for m in report.metrics.values())  # type: ignore[operator]

    flat = performance(joined(predicted[:50], np.full(50, 7.5)), "regression")
    assert flat["r2"].value is None and flat["r2"].note == "undefined: every label is the same value"
    assert flat["mae"].value == pytest.approx(np.mean(np.abs(predicted[:50] - 7.5)), abs=1e-12)


def test_wilson_interval_equals_the_reference_formula() -> None:
    truth, predicted, _ = binary_data(700, seed=3)
    right = int((truth == predicted).sum())
    for confidence in (0.95, 0.8):
        z = norm.ppf(1 - (1 - confidence) / 2)
        n = 700
        centre = (right + z**2 / 2) / (n + z**2)
        half = z * math.sqrt(n) / (n + z**2) * math.sqrt(right / n * (1 - right / n) + z**2 / (4 * n))
        report = performance(joined(predicted, truth), confidence=confidence)
        assert report["accuracy"].method == "wilson"
        assert (report["accuracy"].low, report["accuracy"].high) == pytest.approx((centre - half, centre + half),
                                                                                  abs=1e-12)
    assert wilson(1.0, 20, 0.95)[1] == pytest.approx(1.0) and wilson(1.0, 20, 0.95)[0] < 1  # never past 0..1


def test_bootstrap_interval_contains_the_value_and_is_deterministic() -> None:
    truth, predicted, score = binary_data(2500, seed=4)
    frame = joined(predicted, truth, np.column_stack([1 - score, score]))
    first, again = performance(frame), performance(frame)
    other = performance(frame, seed=7)
    for name in ("precision", "recall", "f1", "roc_auc"):
        metric = first[name]
        assert metric.method == "bootstrap" and metric.low < metric.value < metric.high, name  # type: ignore[operator]
        assert (again[name].low, again[name].high) == (metric.low, metric.high)
        assert (other[name].low, other[name].high) != (metric.low, metric.high)
    wide = performance(frame, confidence=0.99)["f1"]
    assert wide.low < first["f1"].low and wide.high > first["f1"].high  # type: ignore[operator]


def test_no_labelled_rows_is_insufficient_data() -> None:
    empty = joined(np.array([], dtype=np.int64), np.array([], dtype=object))
    for frame in (empty, joined([0, 1, 1], [None, np.nan, None])):
        report = performance(frame)
        assert report.metrics == {} and report.labelled == 0
        assert "insufficient data: no labelled rows with a prediction" in report.notes
    assert performance(joined([0, 1, 1], [None, np.nan, None])).missing_labels == 3


def test_few_rows_give_metrics_without_bootstrap_intervals() -> None:
    report = performance(joined([0, 1, 1, 0, 1, 1], [0, 1, 0, 0, 1, 1]), "classification")
    assert report.labelled == 6 < MIN_ROWS
    assert report["accuracy"].value == pytest.approx(5 / 6) and report["accuracy"].method == "wilson"
    assert report["f1"].value == pytest.approx(metrics.f1_score([0, 1, 0, 0, 1, 1], [0, 1, 1, 0, 1, 1]))
    assert (report["f1"].low, report["f1"].high, report["f1"].method) == (None, None, None)
    assert any(n.startswith("confidence intervals omitted: 6 labelled rows, 10 needed") for n in report.notes)


def test_labels_of_another_type_are_a_mismatch_and_counted_unusable() -> None:
    predicted = np.array([0, 1, 1, 0, 1] * 4)
    words = ["no", "yes", "yes", "no", "no"] * 4
    report = performance(joined(predicted, words))
    assert (report.labelled, report.unusable) == (0, 20)
    assert report.label_mismatch == {"rows": 20, "example": "no", "expected": "number (like the predictions: int64, "
                                                                               "e.g. 0)"}
    assert "label-type mismatch: 20 label(s) cannot be compared with the predictions, e.g. 'no'" in report.notes[1]
    assert "insufficient data" in report.note  # type: ignore[operator]

    # some good, some not: the good ones are judged, the others counted
    mixed = [0, "yes", 1, [1], 0] * 4
    report = performance(joined(predicted, mixed), "classification")
    assert (report.labelled, report.unusable) == (12, 8) and report.label_mismatch["example"] == "yes"  # type: ignore[index]
    assert report["accuracy"].value == pytest.approx(8 / 12)

    floats = np.linspace(0, 1, 30)
    report = performance(joined(floats, ["high"] * 15 + ["0.5"] * 15), "regression")
    assert (report.labelled, report.unusable, report.label_mismatch["example"]) == (15, 15, "high")  # type: ignore[index]
    assert report["mae"].value == pytest.approx(np.mean(np.abs(floats[15:] - 0.5)), abs=1e-12)


def test_numeric_looking_strings_are_coerced_and_null_labels_skipped() -> None:
    truth, predicted, _ = binary_data(400, seed=5)
    labels: list[Any] = [str(t) for t in truth]
    labels[:3] = [None, np.nan, None]
    report = performance(joined(predicted, labels))
    assert (report.labelled, report.missing_labels, report.unusable, report.label_mismatch) == (397, 3, 0, None)
    assert report["f1"].value == pytest.approx(metrics.f1_score(truth[3:], predicted[3:]), abs=1e-12)

    # string predictions take numbers as their text; booleans take "true"/"false" and 0/1
    report = performance(joined(["1", "0", "1"] * 4, [1, 0, 0] * 4))
    assert report.labelled == 12 and report["accuracy"].value == pytest.approx(2 / 3)
    report = performance(joined([True, False, True] * 4, ["true", 0, "FALSE"] * 4))
    assert (report.labelled, report.unusable) == (12, 0) and report["accuracy"].value == pytest.approx(2 / 3)
    # rows without a prediction (failed requests) are counted, not judged
    report = performance(joined([1, None, 0, 1] * 3, [1, 1, 1, 1] * 3), "classification")
    assert (report.labelled, report.no_prediction) == (9, 3)


def test_bad_arguments_are_errors() -> None:
    frame = joined([0, 1], [0, 1])
    with pytest.raises(ValidationError, match="Unknown task 'clasification'; use classification, regression"):
        performance(frame, "clasification")
    with pytest.raises(ValidationError, match="confidence 95 must be between 0 and 1"):
        performance(frame, confidence=95)
    with pytest.raises(ValidationError, match="no 'feedback' column"):
        performance(frame.drop(columns="feedback"))
    with pytest.raises(ValidationError, match="needs 'timestamp' and 'request_id' columns"):
        error_stream(frame.drop(columns="timestamp"), "classification")


# -- drift ----------------------------------------------------------------------------------------------
def planted(seed: int) -> np.ndarray:
    """5 % errors for 2,000 rows, then 40 %."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.random(2000) < 0.05, rng.random(2000) < 0.40].astype(np.int64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_planted_change_in_the_error_rate_is_detected_after_it(seed: int) -> None:
    found = {d.detector: d for d in detect_drift(planted(seed))}
    assert list(found) == ["page_hinkley", "adwin", "ddm"]
    for detection in found.values():
        assert detection.detected and 2000 <= detection.index < 2400, detection  # type: ignore[operator]


def test_a_stream_without_change_gives_no_detection() -> None:
    """ADWIN stays quiet on every steady stream here; DDM alarms on about one in five (see DEFAULT_PARAMS), so
    besides pinning down seeds where it stays quiet, its count over twenty streams is bounded."""
    alarms = {"adwin": 0, "ddm": 0}
    for seed in range(100, 120):
        steady = (np.random.default_rng(seed).random(4000) < 0.05).astype(np.int64)
        found = {d.detector: d for d in detect_drift(steady, detectors=("adwin", "ddm"))}
        for name, detection in found.items():
            alarms[name] += detection.detected
        if seed in (101, 103, 105):
            assert not found["adwin"].detected and not found["ddm"].detected
            assert found["ddm"].index is None and found["ddm"].count == 0
    assert alarms["adwin"] == 0 and alarms["ddm"] < 10


def test_the_stream_is_ordered_by_time_and_named_by_request() -> None:
    errors = planted(3)
    shuffle = np.random.default_rng(0).permutation(len(errors))
    seconds = np.arange(len(errors))[shuffle]
    ids = [f"req-{s}" for s in seconds]
    [ordered] = detect_drift(errors, detectors=["adwin"])
    [found] = detect_drift(errors[shuffle], detectors=["adwin"], timestamps=pd.Timestamp("2026-11-01", tz="UTC")
                           + pd.to_timedelta(seconds, unit="s"), request_ids=ids)
    assert found.index == ordered.index and found.request_id == f"req-{ordered.index}"
    assert found.timestamp == pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(seconds=ordered.index)
    assert found.to_dict()["timestamp"].startswith("2026-11-01T")


def test_error_stream_from_joined_rows_and_regression_skips_ddm() -> None:
    truth = np.array([1, 0, 1, 1])
    stream = error_stream(joined([1, 1, 0, 1], [str(t) for t in truth], seconds=[3, 0, 2, 1]), "classification")
    assert stream.columns.tolist() == ["timestamp", "request_id", "error"]
    assert stream["request_id"].tolist() == ["r1", "r3", "r2", "r0"] and stream["error"].tolist() == [1, 0, 1, 0]

    rng = np.random.default_rng(4)
    truth = rng.normal(0, 1, 4000)
    noise = np.r_[rng.normal(0, 1, 2000), rng.normal(0, 4, 2000)]  # the model gets worse at row 2,000
    stream = error_stream(joined(truth + noise, truth), "regression")
    assert stream["error"].to_numpy() == pytest.approx(np.abs(noise))
    found = {d.detector: d for d in detect_drift(stream["error"], timestamps=stream["timestamp"],
                                                 request_ids=stream["request_id"])}
    for name in ("page_hinkley", "adwin"):
        assert 2000 <= found[name].index < 2400 and found[name].request_id == f"r{found[name].index}"  # type: ignore[operator]
    assert not found["ddm"].detected and found["ddm"].note.startswith("skipped: DDM needs a 0/1 stream")  # type: ignore[union-attr]


def test_detector_names_and_parameters_are_checked() -> None:
    with pytest.raises(ValidationError, match="Unknown drift detector 'kswim'; the detectors are page_hinkley, "
                                              "adwin, ddm"):
        detect_drift([0, 1], detectors=["kswim"])
    with pytest.raises(ValidationError, match="Unknown drift detector 'eddm'"):
        detect_drift([0, 1], params={"eddm": {}})
    with pytest.raises(ValidationError, match="adwin has no parameter 'delt'; its parameters are delta, clock"):
        detect_drift([0, 1], params={"adwin": {"delt": 0.1}})
    with pytest.raises(ValidationError, match="Bad parameters .* for page_hinkley: Invalid 'mode'"):
        detect_drift([0, 1], params={"page_hinkley": {"mode": "sideways"}})
    with pytest.raises(ValidationError, match="request_ids has 1 values for 2 errors"):
        detect_drift([0, 1], request_ids=["a"])
    with pytest.raises(ValidationError, match=r"errors\[1\] is nan; drop the rows without a usable label"):
        detect_drift([0, float("nan")])
    # a parameter given is used: a tiny threshold makes Page-Hinkley fire on a steady stream
    steady = (np.random.default_rng(5).random(500) < 0.05).astype(float)
    [touchy] = detect_drift(steady, detectors=["page_hinkley"], params={"page_hinkley": {"threshold": 0.5}})
    assert touchy.detected and touchy.count > 1


def test_performance_of_logged_predictions_with_feedback(workspace: Path) -> None:
    """End to end: predictions logged by the server, feedback recorded by request id, joined and judged."""
    import shipyard
    from shipyard.context import open_context
    from shipyard.serving.feedback import FeedbackItem, joined_feedback, record_feedback
    from shipyard.serving.predlog import Prediction, PredictionLog
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(6)
    x = pd.DataFrame({"age": rng.integers(20, 70, 200), "income": rng.normal(5e4, 1e4, 200)})
    y = (x["age"] > 45).astype(int)
    shipyard.models.register("credit", LogisticRegression().fit(x, y), input_example=x.head())
    ctx = open_context(workspace)
    log = PredictionLog(ctx, flush_seconds=3600)
    truth = rng.integers(0, 2, 40)
    score = np.clip(0.4 * truth + 0.6 * rng.random(40), 0, 1)
    for i in range(40):
        log.record(Prediction(f"q{i}", 1_700_000_000.0 + i, "credit", 1, "infer", x.iloc[[i]],
                              np.array([int(score[i] > 0.5)]), np.array([[1 - score[i], score[i]]]), 1.0))
    log.close()
    record_feedback(ctx, "credit", [FeedbackItem(f"q{i}", str(truth[i])) for i in range(40)])
    report = performance(joined_feedback(ctx, "credit"), classes=[0, 1])
    assert (report.task, report.labelled, report.unusable) == ("classification", 40, 0)
    assert report["roc_auc"].value == pytest.approx(metrics.roc_auc_score(truth, score), abs=1e-12)
    assert report["accuracy"].value == pytest.approx(np.mean(truth == (score > 0.5)), abs=1e-12)
