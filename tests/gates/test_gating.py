"""Gates, waivers, reviews, promotion and the readiness checklist, on data bundled with scikit-learn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import shipyard
from shipyard.context import open_context
from shipyard.errors import ConfigError, ConflictError, GateFailed, NotFoundError, ValidationError
from shipyard.gates import gating, promotion
from shipyard.models import reviews

GATES = """
gates:
  cancer:
    evaluation:
      dataset: holdout@latest
      target: target
      thresholds:
        roc_auc: {min: 0.95}
      against_champion:
        roc_auc: {max_drop: 0.01}
    behavioural:
      invariance:
        - {column: clinic, set: "x", tolerance: 0.0}
      slices:
        - {name: large, where: {mean radius: {min: 15}}, metric: accuracy, min: 0.8}
    fairness:
      sensitive: group
      demographic_parity_difference: {max: 0.9}
    infrastructure:
      peak_memory_mb: 4000
governance:
  cancer:
    intended_use: Research triage only.
    reviews: [ethical]
"""


@pytest.fixture
def setup(workspace: Path) -> dict[str, object]:
    frame = load_breast_cancer(as_frame=True).frame
    frame["group"] = np.where(frame["mean radius"] > 14, "large", "small")
    frame["clinic"] = np.where(np.arange(len(frame)) % 2 == 0, "x", "y")
    train, test = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["target"])
    shipyard.data.add("holdout", test.reset_index(drop=True))
    (workspace / "shipyard.yaml").write_text((workspace / "shipyard.yaml").read_text() + GATES)
    features = [c for c in frame.columns if c not in ("target", "group", "clinic")]
    return {"x": train[features], "y": train["target"], "test": test, "features": features}


def _good(setup):  # type: ignore[no-untyped-def]
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(setup["x"], setup["y"])


def _stored(ref: str) -> dict[str, gating.StoredGate]:
    return gating.latest_gates(open_context(), shipyard.models.get(ref).version_id)


def test_first_model_no_baseline_then_a_worse_model_fails_with_numbers(setup) -> None:  # type: ignore[no-untyped-def]
    ctx = open_context()
    good = _good(setup)
    shipyard.models.register("cancer", good, input_example=setup["x"].head())
    results = {r.gate: r for r in gating.run_gates(ctx, "cancer/1")}
    assert [r for r in results] == ["evaluation", "behavioural", "fairness", "infrastructure"]
    assert results["evaluation"].status == "NO_BASELINE"  # no champion yet; thresholds still checked
    assert results["evaluation"].metrics["roc_auc"] > 0.95
    assert {r.status for g, r in results.items() if g != "evaluation"} == {"PASS"}
    with pytest.raises(GateFailed, match="required ethical review is not requested"):
        promotion.promote(ctx, "cancer/1")
    reviews.request_review(ctx, "cancer/1", "ethical", notes="please check the group gap")
    with pytest.raises(ConflictError, match="cannot also decide it"):
        reviews.decide_review(ctx, "cancer/1", "ethical", approve=True)
    decided = reviews.decide_review(ctx.acting_as("ethics-board"), "cancer/1", "ethical", approve=True)
    assert (decided.status, decided.decided_by) == ("approved", "ethics-board")
    assert promotion.promote(ctx, "cancer/1").to_version == 1

    worse = DecisionTreeClassifier(max_depth=1, random_state=0).fit(setup["x"], setup["y"])
    shipyard.models.register("cancer", worse, input_example=setup["x"].head())
    results = {r.gate: r for r in gating.run_gates(ctx, "cancer/2", only=["evaluation"])}
    evaluation = results["evaluation"]
    assert evaluation.status == "FAIL"
    messages = " ".join(c.message for c in evaluation.checks)
    assert "roc_auc" in messages and "< minimum 0.95" in messages and "from the champion's" in messages
    with pytest.raises(GateFailed) as refused:
        promotion.promote(ctx, "cancer/2")
    assert "gate 'evaluation' FAILED" in str(refused.value) and "roc_auc" in str(refused.value)
    assert "gate 'fairness' has not run" in str(refused.value)
    assert shipyard.models.get("models:/cancer@champion").version == 1  # unchanged

    with pytest.raises(ValidationError, match="needs a reason"):
        gating.waive_gate(ctx, "cancer/2", "evaluation", reason="ok")
    waived = gating.waive_gate(ctx, "cancer/2", "evaluation", reason="a stump is wanted for the shadow test")
    assert (waived.status, waived.waived_by) == ("WAIVED", "tester")
    assert waived.result["status"] == "FAIL"  # the failed numbers are kept with the waiver
    with pytest.raises(NotFoundError, match="Did you mean 'fairness'"):
        gating.waive_gate(ctx, "cancer/2", "fairnes", reason="a typo in the gate name")
    actions = [e.action for e in shipyard.audit_log(object_id="cancer/2", newest_first=False)]
    assert actions[:2] == ["model.gate", "model.gate_waive"]


def test_fairness_gate_matches_fairlearn(setup) -> None:  # type: ignore[no-untyped-def]
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    good = _good(setup)
    shipyard.models.register("cancer", good, input_example=setup["x"].head())
    [result] = gating.run_gates(open_context(), "cancer/1", only=["fairness"])
    test = setup["test"]
    predicted = good.predict(test[setup["features"]])
    assert result.metrics["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(test["target"], predicted, sensitive_features=test["group"]), abs=1e-12)
    assert result.metrics["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(test["target"], predicted, sensitive_features=test["group"]), abs=1e-12)
    stored = _stored("cancer/1")["fairness"]
    assert stored.result["metrics"]["by_group"].keys() == {"large", "small"}


def test_behavioural_gate_catches_a_model_that_uses_an_invariant_column(setup) -> None:  # type: ignore[no-untyped-def]
    frame = setup["x"].assign(clinic=np.where(np.arange(len(setup["x"])) % 2 == 0, 1.0, 0.0))

    class Leaky:
        """Predicts from a column that must not matter."""

        def predict(self, df: pd.DataFrame) -> np.ndarray:
            return (df["clinic"].astype(str) == "y").astype(int).to_numpy()

    shipyard.models.register("cancer", Leaky(), input_example=frame.head().assign(clinic=["x", "y", "x", "y", "x"]))
    [result] = gating.run_gates(open_context(), "cancer/1", only=["behavioural"])
    assert result.status == "FAIL"
    invariance = next(c for c in result.checks if c.name.startswith("invariance"))
    assert invariance.status == "FAIL" and "clinic" in invariance.name


def test_infrastructure_gate_reports_environment_mismatches_and_budgets(setup, workspace: Path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from shipyard.store.tables import model_versions

    shipyard.models.register("cancer", _good(setup), input_example=setup["x"].head())
    ctx = open_context()
    env = shipyard.models.get("cancer/1").environment
    env["packages"]["scikit-learn"] = "0.0.1"
    with ctx.store.engine.begin() as conn:  # as if it had been trained elsewhere
        conn.execute(update(model_versions).values(environment=json.dumps(env)))
    spec = (workspace / "shipyard.yaml").read_text().replace(  # a budget no model meets
        "peak_memory_mb: 4000", "peak_memory_mb: 4000\n      latency_p99_ms: 0.000001")
    (workspace / "shipyard.yaml").write_text(spec)
    [result] = gating.run_gates(ctx, "cancer/1", only=["infrastructure"])
    assert result.status == "FAIL"
    by_name = {c.name: c for c in result.checks}
    assert by_name["load"].status == "PASS"
    assert by_name["environment.scikit-learn"].status == "FAIL"
    assert "0.0.1" in by_name["environment.scikit-learn"].message
    assert by_name["latency_p99_ms"].status == "FAIL"
    assert result.metrics["throughput_rows_per_s"] > 0 and result.metrics["peak_memory_mb"] > 10
    assert result.metrics["single_row_runs"] >= 100 and result.metrics["cpu_count"] >= 1
    assert "load_average_1m" in result.metrics and "while measuring" in by_name["latency_p99_ms"].message


@pytest.mark.parametrize(
    "edit, message",
    [
        (("sensitive: group", "sensitive: groop"), "gates.cancer.fairness.sensitive: column 'groop' is not in dataset 'holdout@1'. Did you mean 'group'"),
        (("roc_auc: {min: 0.95}", "roc_aux: {min: 0.95}"), "roc_aux"),
        (("target: target", "targt: target"), "targt"),
        (("dataset: holdout@latest", "dataset: holdot@latest"), "No dataset named 'holdot'"),
    ],
)
def test_gate_config_errors_name_the_problem(setup, workspace: Path, edit: tuple[str, str], message: str) -> None:  # type: ignore[no-untyped-def]
    shipyard.models.register("cancer", _good(setup), input_example=setup["x"].head())
    spec = workspace / "shipyard.yaml"
    spec.write_text(spec.read_text().replace(*edit))
    with pytest.raises((ConfigError, NotFoundError), match=message):
        gating.run_gates(open_context(), "cancer/1")
    assert _stored("cancer/1") == {}  # nothing stored for a run that could not start


def test_no_gates_configured(workspace: Path) -> None:
    shipyard.models.register("plain", LogisticRegression().fit([[0.0], [1.0]], [0, 1]),
                             input_example=pd.DataFrame({"x": [0.0, 1.0]}))
    with pytest.raises(ConfigError, match="No gates are configured for model 'plain'"):
        gating.run_gates(open_context(), "plain/1")
    with pytest.raises(GateFailed, match="no gates are configured for 'plain'.*promote with --no-gates"):
        promotion.promote(open_context(), "plain/1")  # no gates is not a pass: it takes a decision
    assert promotion.promote(open_context(), "plain/1", no_gates=True).to_version == 1
    spec = workspace / "shipyard.yaml"
    spec.write_text(spec.read_text() + "gates:\n  plain: {}\n")  # the policy says it needs none
    assert gating.run_gates(open_context(), "plain/1") == []
    assert promotion.promote(open_context(), "plain/1", "challenger").to_version == 1
    assert [m.reason for m in shipyard.models.alias_history("plain")] == [
        "promoted without gates (--no-gates)", "promoted: gates.plain declares no gates"]


def test_readiness_checklist_from_evidence(setup, workspace: Path) -> None:  # type: ignore[no-untyped-def]
    from shipyard.governance.readiness import evaluate

    ctx = open_context()
    shipyard.data.add("train", setup["x"].assign(target=setup["y"]))
    shipyard.data.infer_schema("train@1")
    shipyard.data.validate("train@1")
    with shipyard.start_run() as run:
        run.log_input("train@1")
        run.log_metric("accuracy", 0.96)
        run.log_model(_good(setup), "cancer", input_example=setup["x"].head())
    report = {i.name: i for i in evaluate(ctx, "cancer/1").items}
    assert report["data"].status == "PASS" and "train@1 validated" in " ".join(report["data"].evidence)
    assert report["code"].status == "FAIL"  # the test folder is not a git checkout
    assert report["model"].status == "FAIL" and any("has not run" in m for m in report["model"].missing)
    assert report["pipeline"].status == "FAIL"  # trained in a hand-written run, not by a pipeline
    assert report["deployment"].status == "FAIL" and "no deployment serves cancer/1" in report["deployment"].missing[0]
    assert report["monitoring"].status == "FAIL" and "no monitor watches cancer/1" in report["monitoring"].missing[0]
    assert report["governance"].status == "FAIL"
    assert any("no model card" in m for m in report["governance"].missing)
    assert any("ethical review" in m for m in report["governance"].missing)
    gating.run_gates(ctx, "cancer/1")
    report = {i.name: i for i in evaluate(ctx, "cancer/1").items}
    assert report["model"].status == "PASS"
