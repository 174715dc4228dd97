"""`deploy compare` (a shadow beside its primary) and `deploy report` (A/B variants on feedback), from what a
deployment's server logged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

import shipyard
from shipyard.context import open_context
from shipyard.serving.app import create_app
from shipyard.serving.experiments import ab_report, compare_shadow
from shipyard.serving.feedback import FeedbackItem, record_feedback
from tests.serving.test_canary import canary_workspace  # noqa: F401 - the fixture

WORKSPACE = "canary_workspace"


def traffic(workspace: Path, n: int, seed: int = 0, feedback: bool = False) -> None:
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame({"age": rng.integers(18, 80, n), "income": rng.normal(50_000, 12_000, n)})
    truth = []
    with TestClient(create_app(open_context(workspace), deployment="credit-api")) as client:
        for i, row in enumerate(rows.to_dict("records")):
            answer = client.post("/predict/credit-api", json=[row], headers={"x-customer": f"c{seed}-{i}"})
            assert answer.status_code == 200
            truth.append(FeedbackItem(answer.headers["x-request-id"], "yes" if row["income"] > 50_000 else "no"))
    if feedback:
        record_feedback(open_context(workspace), "credit", truth)


@pytest.mark.usefixtures(WORKSPACE)
def test_compare_sets_the_shadow_beside_the_primary(canary_workspace: Path) -> None:  # noqa: F811
    shipyard.deployments.shadow("credit-api", "credit/3", workspace=canary_workspace)  # always "no"
    traffic(canary_workspace, 60)
    found = compare_shadow(open_context(canary_workspace), "credit-api")
    assert (found.primary, found.shadow, found.pairs, found.kind) == ("credit/1", "credit/3", 60, "classification")
    logged = shipyard.serving.predictions("credit", 1, workspace=canary_workspace)
    expected = float((logged["prediction"] == "no").mean())  # where the primary said what the shadow always says
    assert found.agreement == pytest.approx(expected)
    assert found.shadow_errors == 0 and found.primary_p99_ms is not None and found.shadow_p99_ms is not None
    cli = subprocess.run([str(Path(sys.executable).with_name("shipyard")), "deploy", "compare", "credit-api",
                          "--json"], cwd=canary_workspace, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and json.loads(cli.stdout)["pairs"] == 60


@pytest.mark.usefixtures(WORKSPACE)
def test_report_finds_the_better_variant_on_feedback(canary_workspace: Path) -> None:  # noqa: F811
    shipyard.deployments.ab("credit-api", {"a": ("credit/1", 50), "b": ("credit/3", 50)}, sticky_by="x-customer",
                            workspace=canary_workspace)
    ctx = open_context(canary_workspace)
    early = ab_report(ctx, "credit-api")
    assert early.p_value is None and "not enough feedback" in early.verdict
    traffic(canary_workspace, 400, feedback=True)
    report = ab_report(ctx, "credit-api")
    by_label = {v.label: v for v in report.variants}
    assert report.metric == "accuracy" and report.test == "chi-square"
    assert by_label["a"].requests + by_label["b"].requests == 400
    assert by_label["a"].score > 0.9 > 0.7 > by_label["b"].score  # the constant "no" is right about half the time
    for variant in report.variants:
        assert variant.low < variant.score < variant.high
    assert report.p_value < 0.001 and report.verdict.startswith("variant a (credit/1) differs significantly")


def test_compare_and_report_refuse_what_never_ran(canary_workspace: Path) -> None:  # noqa: F811
    from shipyard.errors import ConflictError, NotFoundError

    ctx = open_context(canary_workspace)
    with pytest.raises(ConflictError, match="never had a shadow"):
        compare_shadow(ctx, "credit-api")
    with pytest.raises(ConflictError, match="never ran an A/B test"):
        ab_report(ctx, "credit-api")
    with pytest.raises(NotFoundError):
        compare_shadow(ctx, "nope")
