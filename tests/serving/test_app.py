"""The serving app in process (starlette's TestClient): every route, and bad input of every kind."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from shipyard.context import open_context
from shipyard.serving.app import create_app

ROWS = [{"age": 30, "income": 65000.0}, {"age": 52, "income": 31000.5}]


def client(root: Path, refs: list[str], **options: Any) -> TestClient:
    return TestClient(create_app(open_context(root), refs, **options), raise_server_exceptions=False)


@pytest.fixture
def app(model_workspace: Path) -> TestClient:
    return client(model_workspace, ["credit@staging"])


def columns_request(**extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "age", "shape": [2], "datatype": "INT64", "data": [30, 52]},
                       {"name": "income", "shape": [2], "datatype": "FP64", "data": [65000.0, 31000.5]}], **extra}


def test_server_and_model_metadata(app: TestClient) -> None:
    assert app.get("/v2").json()["name"] == "shipyard"
    assert app.get("/v2/health/live").json() == {"live": True}
    assert app.get("/v2/health/ready").status_code == 200
    meta = app.get("/v2/models/credit").json()
    assert meta["name"] == "credit" and meta["versions"] == ["2"] and meta["platform"] == "sklearn_skops"
    assert meta["inputs"] == [{"name": "age", "datatype": "INT64", "shape": [-1]},
                              {"name": "income", "datatype": "FP64", "shape": [-1]}]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert meta["outputs"][0]["datatype"] == "BYTES"
    assert app.get("/v2/models/credit/versions/2").json() == meta
    assert app.get("/v2/models/credit/ready").json() == {"name": "credit", "ready": True}
    assert app.get("/v2/models/credit/versions/2/ready").status_code == 200


def test_infer_by_column_tensors_echoes_id_and_answers_every_output(app: TestClient) -> None:
    out = app.post("/v2/models/credit/infer", json=columns_request(id="r-1", parameters={"a": 1})).json()
    assert out["id"] == "r-1" and "parameters" not in out  # the request's parameters are not the response's
    assert out["model_name"] == "credit" and out["model_version"] == "2"
    predict, proba = out["outputs"]  # none asked for: every output
    assert predict == {"name": "predict", "shape": [2], "datatype": "BYTES", "data": ["yes", "no"]}
    assert proba["name"] == "predict_proba" and proba["shape"] == [2, 2]


def test_infer_by_one_2d_tensor_flat_or_nested_and_both_outputs(app: TestClient) -> None:
    for data in ([30, 65000, 52, 31000], [[30, 65000], [52, 31000]]):
        body = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": data}],
                "outputs": [{"name": "predict_proba"}, {"name": "predict"}]}
        response = app.post("/v2/models/credit/versions/2/infer", json=body)
        assert response.status_code == 200, response.text
        proba, predict = response.json()["outputs"]
        assert proba["name"] == "predict_proba" and proba["shape"] == [2, 2] and proba["datatype"] == "FP64"
        assert predict["data"] == ["yes", "no"]


@pytest.mark.parametrize(("body", "status", "names"), [
    ({"inputs": [{"name": "age", "shape": [2], "datatype": "INT64", "data": [30, 52]}]}, 422, "income"),
    ({"inputs": [{"name": "age", "shape": [3], "datatype": "INT64", "data": [30, 52]},
                 {"name": "income", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]}, 400, "age"),
    ({"inputs": [{"name": "age", "shape": [2], "datatype": "INT64", "data": [30, "old"]},
                 {"name": "income", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]}, 400, "age"),
    ({"inputs": [{"name": "age", "shape": [2], "datatype": "INT8", "data": [30, 300]},
                 {"name": "income", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]}, 400, "INT8"),
    ({"inputs": [{"name": "age", "shape": [2], "datatype": "INT64", "data": [30, None]},
                 {"name": "income", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]}, 422, "age"),
    ({"inputs": [{"name": "age", "shape": [2], "datatype": "FP64", "data": [30.5, 40]},
                 {"name": "income", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]}, 422, "age"),
    ({"inputs": [{"name": "age", "shape": [2], "datatype": "INT64", "data": [1, 2]},
                 {"name": "income", "shape": [1], "datatype": "FP64", "data": [1.0]}]}, 400, "income=1"),
    ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}, 400, "age, income"),
    ({"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2]}]}, 400, "2-D"),
    ({"inputs": [{"name": "age", "shape": [1], "datatype": "STRING", "data": [1]}]}, 400, "BYTES"),
    ({"inputs": []}, 400, "inputs"),
    ([1, 2], 400, "inputs"),
    ({**columns_request(), "outputs": [{"name": "logits"}]}, 400, "logits"),
])
def test_bad_oip_requests_are_4xx_naming_what_is_wrong(app: TestClient, body: Any, status: int, names: str) -> None:
    response = app.post("/v2/models/credit/infer", json=body)
    assert response.status_code == status, response.text
    assert names in response.json()["error"]
    assert app.get("/v2/health/ready").status_code == 200


def test_unknown_models_malformed_json_content_type_and_size(model_workspace: Path) -> None:
    app = client(model_workspace, ["credit/1"], max_body_bytes=2000)
    assert app.get("/v2/models/nope").status_code == 404
    assert "credit" in app.get("/v2/models/nope").json()["error"]
    assert app.get("/v2/models/credit/versions/7").status_code == 404
    assert app.post("/v2/models/nope/infer", json=columns_request()).status_code == 404
    assert app.post("/predict/nope", json=ROWS).status_code == 404
    bad = app.post("/v2/models/credit/infer", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
    wrong = app.post("/v2/models/credit/infer", content=b"age=1", headers={"content-type": "text/plain"})
    assert wrong.status_code == 415
    big = app.post("/predict/credit", json=ROWS * 100)
    assert big.status_code == 413 and "2000" in big.json()["error"]
    assert app.get("/no/such/route").status_code == 404 and "error" in app.get("/no/such/route").json()
    deep = client(model_workspace, ["credit/1"]).post("/predict/credit", content=b"[" * 100_000 + b"]" * 100_000,
                                                      headers={"content-type": "application/json"})
    assert deep.status_code == 400 and "nested" in deep.json()["error"]


def test_binary_extension_and_compressed_bodies_are_refused_by_name(app: TestClient) -> None:
    header = json.dumps(columns_request()).encode()
    binary = app.post("/v2/models/credit/infer", content=header + b"\x00" * 16,
                      headers={"inference-header-content-length": str(len(header))})
    assert binary.status_code == 400 and "binary tensor data extension" in binary.json()["error"]
    gzipped = app.post("/v2/models/credit/infer", content=b"\x1f\x8b", headers={"content-encoding": "gzip"})
    assert gzipped.status_code == 415 and "'gzip'" in gzipped.json()["error"]


def test_request_id_is_echoed_or_generated(app: TestClient) -> None:
    assert app.get("/v2", headers={"x-request-id": "abc"}).headers["x-request-id"] == "abc"
    first, second = app.get("/ping").headers["x-request-id"], app.get("/ping").headers["x-request-id"]
    assert first and second and first != second
    assert app.post("/predict/credit", content=b"[", headers={"x-request-id": "e1"}).headers["x-request-id"] == "e1"


@pytest.mark.parametrize("body", [
    {"dataframe_split": {"columns": ["age", "income"], "data": [[30, 65000.0], [52, 31000.5]]}},
    {"dataframe_records": ROWS},
    {"instances": ROWS},
    {"instances": [[30, 65000.0], [52, 31000.5]]},
    {"inputs": {"age": [30, 52], "income": [65000.0, 31000.5]}},
    {"inputs": ROWS},
])
def test_mlflow_invocations_json_formats(app: TestClient, body: dict[str, Any]) -> None:
    response = app.post("/invocations", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": ["yes", "no"]}


def test_mlflow_invocations_csv_and_health(app: TestClient) -> None:
    csv = b"age,income\n30,65000\n52,31000.5\n"
    response = app.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert response.json() == {"predictions": ["yes", "no"]}
    assert app.get("/ping").status_code == 200 and app.get("/health").status_code == 200
    import shipyard

    assert app.get("/version").text == shipyard.__version__


@pytest.mark.parametrize(("content", "kind", "status"), [
    (b"{}", "application/json", 400),
    (b'{"dataframe_records": [{"age": 1}]}', "application/json", 422),
    (b'{"dataframe_split": {"columns": ["age", "income"], "data": [[1, 2, 3]]}}', "application/json", 400),
    (b'{"instances": [{"age": "x", "income": 1.0}]}', "application/json", 422),
    (b"\xff\xfe", "text/csv", 400),
    (b"age,income\n1,2", "application/xml", 415),
    (b"[oops", "application/json", 400),
    (b'{"dataframe_split": {"columns": [{"a": 1}, "b"], "data": [[1, 2]]}}', "application/json", 400),
    (b'{"dataframe_split": {"columns": ["age", "income"], "data": []}}', "application/json", 400),
    (b'{"dataframe_records": []}', "application/json", 400),
    (b"age,income\n1,2,3\n", "text/csv", 400),  # a field too many: never read as an index plus shifted values
    (b"age,income\n1\n", "text/csv", 400),
    (b"age,income,age\n1,2,3\n", "text/csv", 400),
    (b"age,income\n", "text/csv", 400),
    (b'age,income\n"1,2\n', "text/csv", 400),
])
def test_bad_invocations_are_4xx(app: TestClient, content: bytes, kind: str, status: int) -> None:
    response = app.post("/invocations", content=content, headers={"content-type": kind})
    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_bad_input_messages_name_what_is_wrong(app: TestClient) -> None:
    cases = [
        (b"age,income\n1,2,3\n", "CSV row 1 has 3 fields but the header has 2"),
        (b"age,income,age\n1,2,3\n", "names 'age' more than once"),
        (b"age,income\n", "at least one row"),
    ]
    for content, says in cases:
        assert says in app.post("/invocations", content=content, headers={"content-type": "text/csv"}).json()["error"]
    empty = app.post("/invocations", json={"dataframe_split": {"columns": ["age", "income"], "data": []}})
    assert "no rows" in empty.json()["error"]
    columns = app.post("/invocations", json={"dataframe_split": {"columns": [1, 2], "data": [[1, 2]]}})
    assert "'columns' [1, 2]" in columns.json()["error"]


def test_an_unsigned_value_too_large_for_the_model_is_refused_not_wrapped(app: TestClient) -> None:
    body = {"inputs": [{"name": "age", "shape": [1], "datatype": "UINT64", "data": [18446744073709551615]},
                       {"name": "income", "shape": [1], "datatype": "FP64", "data": [50000.0]}]}
    response = app.post("/v2/models/credit/infer", json=body)
    assert response.status_code == 422 and "18446744073709551615" in response.json()["error"]


def test_an_over_long_request_id_is_refused(app: TestClient) -> None:
    response = app.post("/predict/credit", json=ROWS, headers={"x-request-id": "r" * 251})
    assert response.status_code == 400 and "at most 250" in response.json()["error"]
    assert app.post("/predict/credit", json=ROWS, headers={"x-request-id": "r" * 250}).status_code == 200


def test_predict_records(app: TestClient) -> None:
    out = app.post("/predict/credit", json=ROWS).json()
    assert out == {"model_name": "credit", "model_version": "2", "predictions": ["yes", "no"]}
    assert app.post("/predict/credit", json={"age": 1}).status_code == 400
    missing = app.post("/predict/credit", json=[{"age": 1}])
    assert missing.status_code == 422 and "'income'" in missing.json()["error"]


def test_a_model_that_fails_to_load_is_reported_and_the_others_serve(model_workspace: Path) -> None:
    app = client(model_workspace, ["credit/1", "credit/2", "credit@nosuch"])
    ready = app.get("/v2/health/ready")
    assert ready.status_code == 503 and "credit@nosuch" in ready.json()["failures"]
    assert app.get("/ping").status_code == 503
    assert app.get("/v2/models/credit").json()["versions"] == ["1", "2"]  # the first ref of a name is its default
    assert app.post("/v2/models/credit/infer", json=columns_request()).json()["model_version"] == "1"
    assert app.post("/v2/models/credit/versions/2/infer", json=columns_request()).status_code == 200


def test_invocations_needs_exactly_one_model(model_workspace: Path) -> None:
    import shipyard
    from sklearn.dummy import DummyClassifier

    from tests.serving.conftest import training_frame

    x, y = training_frame()
    shipyard.models.register("other", DummyClassifier().fit(x, y), input_example=x.head())
    app = client(model_workspace, ["credit/1", "other/1"])
    response = app.post("/invocations", json={"dataframe_records": ROWS})
    assert response.status_code == 400 and "credit, other" in response.json()["error"]
    assert app.post("/predict/other", json=ROWS).status_code == 200


def test_predictions_run_off_the_event_loop(model_workspace: Path) -> None:
    """While one prediction is held inside the model, the server still answers other requests."""
    app_ = create_app(open_context(model_workspace), ["credit/1"])
    model = app_.state.served.get("credit")
    entered, release = threading.Event(), threading.Event()
    original = model.prepare  # the server's first step with a request's rows, on its prediction thread

    def held(frame):  # type: ignore[no-untyped-def]
        entered.set()
        assert release.wait(30)
        return original(frame)

    model.prepare = held  # type: ignore[method-assign]
    results: list[int] = []
    with TestClient(app_) as http:
        worker = threading.Thread(target=lambda: results.append(http.post("/predict/credit", json=ROWS).status_code))
        worker.start()
        assert entered.wait(30)
        assert http.get("/v2/health/live").status_code == 200  # answered while predict is still held
        release.set()
        worker.join(30)
    assert results == [200]


def test_a_server_bug_is_a_500_with_the_request_id(model_workspace: Path) -> None:
    app_ = create_app(open_context(model_workspace), ["credit/1"])
    model = app_.state.served.get("credit")

    def broken(frame):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    model.prepare = broken  # type: ignore[method-assign]
    http = TestClient(app_, raise_server_exceptions=False)
    response = http.post("/predict/credit", json=ROWS, headers={"x-request-id": "bug-1"})
    assert response.status_code == 500 and "boom" in json.loads(response.text)["error"]
    assert response.headers["x-request-id"] == "bug-1"
