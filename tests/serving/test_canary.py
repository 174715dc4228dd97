"""Automated canary analysis: a good version is advanced step by step and promoted; a version that does worse on
feedback is rolled back; each decision is recorded with the numbers that drove it. Traffic is sent between the
analysis' looks (its `sleep`), so nothing depends on timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

import shipyard
from shipyard.context import open_context
from shipyard.serving.app import create_app
from shipyard.serving.canary import judge, prediction_shift, run_canary
from shipyard.serving.feedback import FeedbackItem, record_feedback

POLICY = """
deploy:
  credit-api:
    model: credit/1
    strategy: canary
    steps: [20, 50, 100]
    min_requests: 30
    duration: 1
    analysis:
      max_error_rate_increase: 0.05
      max_p99_latency_ratio: 100
      max_prediction_shift: {shift}
      min_feedback_delta: -0.1
"""


@pytest.fixture
def canary_workspace(model_workspace: Path) -> Path:
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tests.serving.conftest import training_frame

    x, y = training_frame()
    with shipyard.start_run("worse") as run:  # credit/3: always "no", right about half the time
        run.log_model(DummyClassifier(strategy="constant", constant="no").fit(x, y), "credit",
                      input_example=x.head(), signature_frame=x)
    with shipyard.start_run("as good") as run:  # credit/4: credit/1 trained again, as good as it
        run.log_model(make_pipeline(StandardScaler(), LogisticRegression(C=1.0)).fit(x, y), "credit",
                      input_example=x.head(), signature_frame=x)
    spec = model_workspace / "shipyard.yaml"
    spec.write_text(spec.read_text() + "\ngates:\n  credit: {}\n")  # no gates declared: every version may route
    shipyard.deployments.create("credit-api", "credit/1", workspace=model_workspace)
    return model_workspace


class Traffic:
    """What the analysis' sleep does here: a round of requests through the app, feedback for them, the log
    written, and the clock moved past the step's duration."""

    def __init__(self, client: TestClient, workspace: Path) -> None:
        self.client, self.workspace, self.now, self.rounds = client, workspace, 0.0, 0
        self.rng = np.random.default_rng(3)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        served = self.client.app.state.served  # type: ignore[attr-defined]
        served.follower.refresh()  # what the server's poll thread does every half second
        rows = pd.DataFrame({"age": self.rng.integers(18, 80, 200), "income": self.rng.normal(50_000, 12_000, 200)})
        truth: list[FeedbackItem] = []
        for row in rows.to_dict("records"):
            answer = self.client.post("/predict/credit-api", json=[row])
            assert answer.status_code == 200
            truth.append(FeedbackItem(answer.headers["x-request-id"], "yes" if row["income"] > 50_000 else "no"))
        record_feedback(open_context(self.workspace), "credit", truth)
        self.client.app.state.runtime.log.flush(60)  # type: ignore[attr-defined]
        self.now += max(seconds, 2.0)
        self.rounds += 1
        assert self.rounds < 20, "the analysis never decided"


def drive(workspace: Path, model: str, shift: str) -> tuple[Any, list[str], Traffic]:
    spec = workspace / "shipyard.yaml"
    spec.write_text(spec.read_text() + POLICY.format(shift=shift))
    ctx = open_context(workspace)
    with TestClient(create_app(ctx, deployment="credit-api")) as client:
        traffic = Traffic(client, workspace)
        said: list[str] = []
        final = run_canary(ctx, "credit-api", model, poll_seconds=1, report=said.append, clock=traffic.clock,
                           sleep=traffic.sleep)
    return final, said, traffic


def test_a_good_canary_is_advanced_and_promoted(canary_workspace: Path) -> None:
    final, said, _ = drive(canary_workspace, "credit/4", shift="0.5")
    assert [r.version_id for r in final.routes] == ["credit/4"] and final.strategy == "single", (said, final)
    history = shipyard.deployments.history("credit-api", workspace=canary_workspace)
    decided = [r.analysis for r in sorted(history, key=lambda r: r.revision) if r.analysis]
    assert [d["decision"] for d in decided] == ["advance", "promote"]
    for decision in decided:  # the numbers behind each decision are kept with it
        numbers = decision["numbers"]
        assert numbers["canary"]["requests"] >= 30 and numbers["primary"]["requests"] >= 30
        assert numbers["canary"]["version"] == "credit/4" and "feedback_score" in numbers["canary"]
        assert "prediction_shift" in numbers
    assert [d["step"] for d in decided] == [50, 50]  # advanced to 50 %, then promoted from 50 %
    assert said[-1].startswith("promote: within every limit")


def test_a_canary_worse_on_feedback_is_rolled_back(canary_workspace: Path) -> None:
    final, said, _ = drive(canary_workspace, "credit/3", shift="null")  # the shift alone would not stop it
    assert [r.version_id for r in final.routes] == ["credit/1"]
    assert final.analysis["decision"] == "rollback"
    numbers = final.analysis["numbers"]
    assert numbers["canary"]["feedback_score"] < numbers["primary"]["feedback_score"] - 0.1
    assert any("on feedback the canary scores" in reason for reason in final.analysis["reasons"])
    assert said[-1].startswith("rollback:")


def test_judge_rolls_back_on_errors_and_waits_for_evidence() -> None:
    from shipyard.deployments.analysis import AnalysisPolicy

    policy = AnalysisPolicy(min_requests=50, duration_seconds=60, max_error_rate_increase=0.05)
    calm = pd.Series(["yes", "no"] * 50)
    numbers = {"primary": {"requests": 100, "failed": 0, "error_rate": 0.0, "p99_ms": 5.0, "_predictions": calm},
               "canary": {"requests": 100, "failed": 9, "error_rate": 0.09, "p99_ms": 5.0, "_predictions": calm}}
    verdict = judge(policy, numbers, elapsed=120)
    assert verdict.decision == "rollback" and "error rate 0.090" in verdict.reasons[0]
    numbers["canary"].update(failed=2, error_rate=0.2, requests=10)  # 2 of at least 50 is within 0.05 yet
    assert judge(policy, numbers, elapsed=120).decision == "wait"
    numbers["canary"].update(failed=9, error_rate=0.9)  # 9 of at least 50: over the limit whatever comes next
    assert judge(policy, numbers, elapsed=120).decision == "rollback"
    numbers["canary"].update(failed=0, error_rate=0.0, requests=10, _predictions=pd.Series(["no"] * 10))
    assert judge(policy, numbers, elapsed=120).decision == "wait"  # a shift over 10 requests is not judged
    numbers["canary"]["_predictions"] = calm
    assert judge(policy, numbers, elapsed=120).decision == "wait"  # too few canary requests yet
    numbers["canary"]["requests"] = 100
    assert judge(policy, numbers, elapsed=30).decision == "wait"  # the step has not lasted long enough
    assert judge(policy, numbers, elapsed=60).decision == "advance"


def test_prediction_shift_is_zero_for_the_same_distribution_and_grows_with_the_change() -> None:
    rng = np.random.default_rng(0)
    base = pd.Series(rng.normal(0, 1, 5000))
    assert prediction_shift(base, pd.Series(rng.normal(0, 1, 5000))) < 0.02
    assert prediction_shift(base, pd.Series(rng.normal(1, 1, 5000))) > 0.5
    assert prediction_shift(base, pd.Series(rng.normal(1, 1, 5000)), "ks") > 0.3
    labels = pd.Series(["yes", "no"] * 500)
    assert prediction_shift(labels, pd.Series(["no"] * 1000)) > 1.0
