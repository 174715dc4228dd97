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
from shipyard.features.online import materialize_frame, online_store
from shipyard.serving.app import create_app
from tests.pipelines.test_feature_views import START
from tests.serving.test_enrichment import CUSTOMERS, SOON, records, trained  # noqa: F401  (fixture)

PLANTED = 17  # the customer whose source row changes after materialisation


def serve(project: Path, times: int = 2) -> None:
    """Send `times` requests of CUSTOMERS at SOON (with the request time), then flush the log."""
    with TestClient(create_app(open_context(project), ["churn/1"]), raise_server_exceptions=False) as client:
        for _ in range(times):
            assert client.post("/predict/churn", json=records(SOON)).status_code == 200
    close_all()


def write_online(project: Path, rows: list[dict[str, object]]) -> None:
    """Write last_order@1 rows straight into the online store, as a writer bypassing `materialize` would."""
    with online_store(open_context(project)) as store:
        materialize_frame(store, "last_order", 1, ["customer_id"], pd.DataFrame(rows), timestamp="event_ts")
    close_all()


def plant(project: Path) -> None:
    """Change customer PLANTED's order in the view's source behind the online store's back."""
    orders = pd.read_parquet(project / "orders.parquet")
    orders.loc[orders["customer_id"] == PLANTED, "amount"] += 100.0
    orders.to_parquet(project / "orders.parquet")


def test_no_skew_when_the_online_store_holds_the_source(trained: Path,  # noqa: F811
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    serve(trained)
    with TestClient(create_app(open_context(trained), ["churn/1"])) as client:  # no request time: read now
        assert client.post("/predict/churn", json=[{"customer_id": c} for c in CUSTOMERS]).status_code == 200
    close_all()
    report = shipyard.serving.feature_skew("last_order")
    assert report.models == ["churn/1"] and report.rows == 3 * len(CUSTOMERS)
    assert [f.feature for f in report.features] == ["last_order@1:amount_per_item", "last_order@1:channel"]
    for found in report.features:
        assert (found.compared, found.matches, found.differing) == (12, 12, 0)
    capsys.readouterr()
    assert main(["features", "skew", "customer_stats", "--model", "churn/1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["differing"] == 0 and [f["compared"] for f in out["features"]] == [12, 12]
    assert main(["features", "skew", "last_order", "--since", "1h", "--limit", "4"]) == 0
    assert "Every served value matches" in capsys.readouterr().out
    check = diagnose(open_context(trained), "churn/1").check("training_serving_skew")
    assert check.status != "FAIL"
    assert check.evidence["feature_views"]["last_order"]["differing"] == 0


def test_planted_skew_is_reported_with_examples(trained: Path,  # noqa: F811
                                                capsys: pytest.CaptureFixture[str]) -> None:
    plant(trained)
    serve(trained)
    report = shipyard.serving.feature_skew("last_order", limit=4)  # the newest request only
    assert report.rows == len(CUSTOMERS)
    per_item, channel = report.features
    assert (per_item.compared, per_item.matches, per_item.mismatches) == (4, 3, 1)
    assert (per_item.served_null, per_item.offline_null) == (0, 0)
    example = per_item.examples[0]
    assert example["key"] == {"customer_id": PLANTED} and example["at"] == SOON.isoformat()
    assert example["offline"] > example["served"]
    assert channel.differing == 0
    assert shipyard.serving.feature_skew("customer_stats").differing == 0  # the other view is untouched

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
    serve(trained, times=1)
    assert main(["features", "skew", "last_order", "--since", "2099-01-01"]) != 0
    assert "in that span" in capsys.readouterr().err


def test_values_written_to_the_online_store_behind_the_view_are_reported(trained: Path) -> None:  # noqa: F811
    newer = START - pd.Timedelta(days=1)  # after the load's watermark, before the requests
    write_online(trained, [{"customer_id": 28, "event_ts": newer, "amount_per_item": -1.0, "channel": "web"},
                           {"customer_id": 1000, "event_ts": newer, "amount_per_item": 5.0, "channel": "app"}])
    serve(trained, times=1)
    per_item, channel = shipyard.serving.feature_skew("last_order", model="churn/1").features
    assert (per_item.compared, per_item.matches, per_item.mismatches, per_item.offline_null) == (4, 2, 1, 1)
    assert {(e["key"]["customer_id"], e["kind"], e["served"]) for e in per_item.examples} == \
        {(28, "mismatch", -1.0), (1000, "offline_null", 5.0)}
    assert (channel.mismatches, channel.offline_null) == (1, 1)  # 28's channel is "store" in the source
    assert {(e["key"]["customer_id"], e["served"], e["offline"]) for e in channel.examples} == \
        {(1000, "app", None), (28, "web", "store")}


def test_served_nulls_where_offline_has_a_value_are_counted(trained: Path) -> None:  # noqa: F811
    serve(trained, times=1)
    orders = pd.read_parquet(trained / "orders.parquet")  # customer 1000 gets an order the store never saw
    extra = orders.head(1).assign(customer_id=1000)
    pd.concat([orders, extra], ignore_index=True).to_parquet(trained / "orders.parquet")
    per_item = shipyard.serving.feature_skew("last_order").features[0]
    assert (per_item.served_null, per_item.offline_null, per_item.mismatches) == (1, 0, 0)
    assert per_item.examples[0]["served"] is None and per_item.examples[0]["key"] == {"customer_id": 1000}
