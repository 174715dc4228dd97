"""`shipyard doctor`: the table and JSON, exit codes 0 / 3 / 1, and bad input refused with the fix."""

from __future__ import annotations

import json

import pytest

from shipyard.context import Context
from tests.cli.helpers import cli, fails
from tests.control.test_doctor import traffic
from tests.monitoring.traffic import loans


def test_a_healthy_deployment_exits_0_with_a_table(served: Context, capsys: pytest.CaptureFixture[str]) -> None:
    traffic(served, loans(600, 1))
    code, out, err = cli(capsys, "doctor", "loans-api")
    assert code == 0, err
    assert "deployment loans-api → loans/1: 600 logged rows, 60 requests (last 3600 s)" in out
    for title in ("Accuracy drop", "Training/serving skew", "Latency spike", "Dependency mismatch"):
        assert title in out
    assert "FAIL" not in out and "what to do" not in out


def test_a_failed_check_exits_3_and_json_has_every_check(served: Context,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    frame = loans(600, 2)
    frame["income"] = frame["income"] * 1000
    traffic(served, frame, feedback=False)
    code, out, err = cli(capsys, "doctor", "loans/1", "--window", "30m", "--json")
    assert code == 3, err
    report = json.loads(out)
    assert report["status"] == "FAIL" and report["target"] == {
        "kind": "model", "name": "loans/1", "model": "loans", "version": 1, "version_id": "loans/1",
        "deployment": None}
    assert report["window"]["kind"] == "time" and report["window"]["size"] == 1800 and report["window"]["rows"] == 600
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == ["accuracy_drop", "training_serving_skew", "latency_spike", "dependency_mismatch"]
    assert checks["training_serving_skew"]["status"] == "FAIL"
    assert checks["training_serving_skew"]["evidence"]["columns"]["income"]["share_outside"] == 1.0
    assert set(checks["latency_spike"]) == {"name", "title", "status", "summary", "looked_at", "findings",
                                            "evidence", "recovery"}
    assert checks["training_serving_skew"]["recovery"].startswith("Make the serving side prepare features")
    code, out, err = cli(capsys, "doctor", "loans-api", "--rows", "100")
    assert code == 3 and "what to do: Make the serving side" in out and "newest 100 rows" in out


def test_no_traffic_warns_and_exits_0(served: Context, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "doctor", "--json")  # the only deployment
    assert code == 0, err
    report = json.loads(out)
    assert report["status"] == "WARN" and report["target"]["deployment"] == "loans-api"
    assert [c["summary"] for c in report["checks"][:3]] == [
        "insufficient data: the window holds no prediction",
        "insufficient data: the window holds no answered prediction",
        "insufficient data: the window holds no request"]


def test_bad_input_is_refused_with_the_fix(served: Context, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(capsys, "doctor", "loans-apu")
    assert "No deployment or model named 'loans-apu'. Did you mean 'loans-api'?" in err
    assert "Deployments: loans-api; models: loans." in err
    assert "No registered model named 'loan'. Did you mean 'loans'?" in fails(capsys, "doctor", "loan/1")
    assert "Model 'loans' has no alias 'champion'" in fails(capsys, "doctor", "loans@champion")
    assert "Invalid --window 'an hour'" in fails(capsys, "doctor", "loans-api", "--window", "an hour")
    assert "expected a duration such as 300, 90s, 5m or 1h" in fails(capsys, "doctor", "loans-api", "--window", "1y")
    assert "Invalid --window '0s'" in fails(capsys, "doctor", "loans-api", "--window", "0s")
    assert "not both" in fails(capsys, "doctor", "loans-api", "--window", "1h", "--rows", "10")
    assert "Invalid rows 0" in fails(capsys, "doctor", "loans-api", "--rows", "0")


def test_without_a_target_and_several_deployments_it_asks(served: Context,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from shipyard.deployments.strategies import create

    create(served, "loans-eu", "loans/1")
    err = fails(capsys, "doctor")
    assert "Name what to examine" in err and "Deployments: loans-api, loans-eu." in err
