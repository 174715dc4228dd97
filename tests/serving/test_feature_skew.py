"""`shipyard features skew`: the feature values a model was served (from its prediction log) against an offline
recomputation for the same keys and request times; clean when the online store holds what the source says,
exactly the planted rows when it does not; and the doctor's skew playbook says the same."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

import shipyard
from shipyard.cli.main import main
from shipyard.context import close_all, open_context
from shipyard.control.doctor import diagnose
from shipyard.serving.app import create_app
from tests.serving.test_enrichment import CUSTOMERS, SOON, records, trained  # noqa: F401  (fixture)

PLANTED = 17  # the customer whose source row changes after materialisation


def serve(project: Path, times: int = 2) -> None:
    """Send `times` requests of CUSTOMERS at SOON (with the request time) and one without it, then flush the log."""
    with TestClient(create_app(open_context(project), ["churn/1"]), raise_server_exceptions=False) as client:
        for _ in range(times):
            assert client.post("/predict/churn", json=records(SOON)).status_code == 200
    close_all()


def plant(project: Path) -> None:
    """Change customer PLANTED's order in the view's source behind the online store's back."""
    orders = pd.read_parquet(project / "orders.parquet")
    orders.loc[orders["customer_id"] == PLANTED, "amount"] += 100.0
    orders.to_parquet(project / "orders.parquet")


def test_no_skew_when_the_online_store_holds_the_source(trained: Path,  # noqa: F811
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    serve(trained)
    report = shipyard.features.skew("last_order")
    assert report.models == ["churn/1"] and report.rows == 2 * len(CUSTOMERS)
    assert [f.feature for f in report.features] == ["last_order@1:amount_per_item", "last_order@1:channel"]
    for found in report.features:
        assert (found.compared, found.matches, found.differing) == (8, 8, 0)
    capsys.readouterr()
    assert main(["features", "skew", "customer_stats", "--model", "churn/1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["differing"] == 0 and [f["compared"] for f in out["features"]] == [8, 8]
    check = diagnose(open_context(trained), "churn/1").check("training_serving_skew")
    assert check.status != "FAIL"
    assert check.evidence["feature_views"]["last_order"]["differing"] == 0


def test_planted_skew_is_reported_with_examples(trained: Path,  # noqa: F811
                                                capsys: pytest.CaptureFixture[str]) -> None:
    plant(trained)
    serve(trained)
    report = shipyard.features.skew("last_order", limit=4)  # the newest request only
    assert report.rows == len(CUSTOMERS)
    per_item, channel = report.features
    assert (per_item.compared, per_item.matches, per_item.mismatches) == (4, 3, 1)
    assert (per_item.served_null, per_item.offline_null) == (0, 0)
    example = per_item.examples[0]
    assert example["key"] == {"customer_id": PLANTED} and example["at"] == SOON.isoformat()
    assert example["offline"] > example["served"]
    assert channel.differing == 0
    assert shipyard.features.skew("customer_stats").differing == 0  # the other view is untouched

    capsys.readouterr()
    assert main(["features", "skew", "last_order"]) == 3
    out = capsys.readouterr().out
    assert f"{{'customer_id': {PLANTED}}}" in out and "2 served value(s) differ" in out

    diagnosis = diagnose(open_context(trained), "churn/1")
    check = diagnosis.check("training_serving_skew")
    assert check.status == "FAIL"
    assert any("last_order@1:amount_per_item" in f and "2 of 8" in f for f in check.findings)
    assert main(["doctor", "churn/1"]) == 3


def test_no_logged_predictions_and_a_model_not_reading_the_view_are_clear(trained: Path,  # noqa: F811
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "skew", "last_order"]) != 0
    assert "No logged predictions of churn/1 (trained through feature view 'last_order')" in capsys.readouterr().err
    assert main(["features", "skew", "last_ordr"]) != 0
    assert "Did you mean 'last_order'?" in capsys.readouterr().err
