"""Serving a model trained through feature views: requests carry only the entity keys (and the request time), the
features are read from the online store by their pinned references and joined on before prediction; predictions
equal the model's offline predictions on the point-in-time rows for the same entities and times, the prediction
log keeps the served features, and bad input or an unreachable store is a clear 4xx/503."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from starlette.testclient import TestClient

import shipyard
from shipyard.cli.main import main
from shipyard.context import close_all, open_context
from shipyard.features import get_historical
from shipyard.pipelines.lifecycle import run_standard
from shipyard.serving.app import create_app
from shipyard.serving.batches import read_predictions
from tests.pipelines.test_feature_views import START, _project
from tests.serving.test_server import post, request, running_server
from tests.services import free_port

FEATURES = ["customer_stats:avg_amount", "customer_stats:n_orders", "last_order:amount_per_item",
            "last_order:channel"]
INPUTS = ["avg_amount", "n_orders", "amount_per_item", "channel"]
#: Customers the views know (0-39) and one they do not (1000); a time after every source row, and one past
#: customer_stats' 30-day TTL (its values expired, last_order's still valid).
CUSTOMERS = [3, 17, 1000, 28]
SOON, LATE = START + pd.Timedelta(hours=30), START + pd.Timedelta(days=40)


@pytest.fixture
def trained(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """churn/1 trained through the views, and the views materialised into the online store."""
    project = _project(workspace, monkeypatch)
    assert run_standard(open_context()).value()["version"] == "churn/1"
    assert main(["features", "materialize"]) == 0
    return project


def offline(at: pd.Timestamp) -> tuple[pd.DataFrame, list[Any]]:
    """The point-in-time rows of CUSTOMERS at `at`, and the model's predictions on them."""
    rows = get_historical(pd.DataFrame({"customer_id": CUSTOMERS, "event_timestamp": [at] * len(CUSTOMERS)}),
                          FEATURES)
    return rows, shipyard.models.load("churn/1").predict(rows[INPUTS]).tolist()


def records(at: pd.Timestamp) -> list[dict[str, Any]]:
    return [{"customer_id": c, "event_timestamp": at.isoformat()} for c in CUSTOMERS]


def test_a_real_server_predicts_from_the_keys_as_offline_and_logs_the_served_features(trained: Path) -> None:
    rows, expected = offline(SOON)
    with running_server(trained, "churn/1") as (url, _):
        status, body = post(f"{url}/predict/churn", records(SOON))
        assert status == 200, body
        assert body["predictions"] == expected

        status, body = post(f"{url}/v2/models/churn/infer", {"inputs": [
            {"name": "customer_id", "shape": [4], "datatype": "INT64", "data": CUSTOMERS},
            {"name": "event_timestamp", "shape": [4], "datatype": "BYTES", "data": [SOON.isoformat()] * 4}]})
        assert status == 200, body
        assert body["outputs"][0]["data"] == expected

        status, _, raw = request(f"{url}/v2/models/churn")
        assert status == 200
        metadata = json.loads(raw)
        assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [("customer_id", "INT64")]

        status, body = post(f"{url}/predict/churn", [{"event_timestamp": SOON.isoformat()}])
        assert status == 422 and "no column 'customer_id'" in body["error"]
        assert post(f"{url}/predict/churn", records(SOON))[0] == 200  # still serving
    close_all()

    logged = read_predictions(open_context(), "churn")
    assert len(logged) == 3 * len(CUSTOMERS)  # the refused request is not logged
    first = logged.head(len(CUSTOMERS)).reset_index(drop=True)
    assert first["customer_id"].tolist() == CUSTOMERS
    pd.testing.assert_frame_equal(first[INPUTS[:3]], rows[INPUTS[:3]], check_dtype=False)
    assert first["channel"].astype(object).where(first["channel"].notna(), None).tolist() == \
        rows["channel"].astype(object).where(rows["channel"].notna(), None).tolist()
    assert first["avg_amount__status"].tolist() == ["present", "present", "missing", "present"]


@pytest.fixture
def client(trained: Path) -> TestClient:
    return TestClient(create_app(open_context(trained), ["churn/1"]), raise_server_exceptions=False)


def test_expired_and_unknown_entities_are_nulls_as_offline(client: TestClient) -> None:
    rows, expected = offline(LATE)
    assert rows["avg_amount"].isna().all() and rows["amount_per_item"].notna().sum() == 3
    response = client.post("/predict/churn", json=records(LATE))
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected


def test_the_mlflow_route_enriches_too(client: TestClient) -> None:
    _, expected = offline(SOON)
    response = client.post("/invocations", json={"dataframe_records": records(SOON)})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected


def test_a_request_without_a_time_is_read_now(client: TestClient) -> None:
    now = pd.Timestamp.now(tz="UTC")  # every view row is months older: no TTL edge between now and the request
    _, expected = offline(now)
    response = client.post("/predict/churn", json=[{"customer_id": c} for c in CUSTOMERS])
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected


@pytest.mark.parametrize("rows, status, message", [
    ([{"customer": 3}], 422, "The request has no column 'customer_id': model 'churn' reads its features from the "
                             "online store by the entity key(s) customer_id. Send 'customer_id' with each row"),
    ([{"customer_id": "three"}], 422, "keyed by customer_id holding"),
    ([{"customer_id": 3, "avg_amount": 1.0}], 422, "The request gives column(s) 'avg_amount', which model 'churn' "
                                                   "reads from the online store"),
    ([{"customer_id": 3}, {"customer_id": None}], 422, "Column 'customer_id' has an empty entity key at row 1"),
    ([{"customer_id": 3, "event_timestamp": "yesterday"}], 422,
     "Column 'event_timestamp' is each row's request time (the features are read as they are then), but it holds a "
     "value that is not a time"),
    ([{"customer_id": 3, "event_timestamp": 1772323200}], 422, "but it holds numbers such as 1772323200. Send ISO "
                                                               "8601 times"),
])
def test_bad_input_is_refused_and_the_server_keeps_serving(client: TestClient, rows: list[dict[str, Any]],
                                                          status: int, message: str) -> None:
    response = client.post("/predict/churn", json=rows)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert client.post("/predict/churn", json=records(SOON)).status_code == 200


def test_an_unreachable_online_store_is_a_503(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_ONLINE_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    monkeypatch.setenv("SHIPYARD_ONLINE_NAMESPACE", "enrichment")
    close_all()
    client = TestClient(create_app(open_context(trained), ["churn/1"]), raise_server_exceptions=False)
    response = client.post("/predict/churn", json=records(SOON))
    assert response.status_code == 503
    assert response.json()["error"].startswith("The online feature store cannot be read, so the request cannot be "
                                               "enriched:")


def test_a_view_version_not_in_the_online_store_is_a_503(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(workspace, monkeypatch)
    run_standard(open_context())  # trained, never materialised
    client = TestClient(create_app(open_context(project), ["churn/1"]), raise_server_exceptions=False)
    response = client.post("/predict/churn", json=records(SOON))
    assert response.status_code == 503
    error = response.json()["error"]
    assert "does not hold the features this model was trained on" in error and "materialise it first" in error


def test_label_columns_the_model_takes_directly_are_sent_with_the_keys(workspace: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(workspace, monkeypatch)
    spec = project / "shipyard.yaml"
    # the label data's note is a feature: the client sends it with the keys
    spec.write_text(spec.read_text().replace("drop: [note]", "categorical: [note]"))
    run_standard(open_context())
    assert main(["features", "materialize"]) == 0
    client = TestClient(create_app(open_context(project), ["churn/1"]), raise_server_exceptions=False)
    inputs = client.get("/v2/models/churn").json()["inputs"]
    assert [(i["name"], i["datatype"]) for i in inputs] == [("customer_id", "INT64"), ("note", "BYTES")]

    rows = get_historical(pd.DataFrame({"customer_id": CUSTOMERS, "event_timestamp": [SOON] * len(CUSTOMERS),
                                        "note": "x"}), FEATURES)
    expected = shipyard.models.load("churn/1").predict(rows[[*INPUTS, "note"]]).tolist()
    response = client.post("/predict/churn", json=[{**r, "note": "x"} for r in records(SOON)])
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected
    response = client.post("/predict/churn", json=records(SOON))
    assert response.status_code == 422 and "'note'" in response.json()["error"]
