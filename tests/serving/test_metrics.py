"""/metrics: prometheus-client's own parser reads it; names follow its conventions; requests, latency,
batches, model loads (failed ones too) and the prediction log are all there."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from shipyard.context import open_context
from shipyard.serving.app import create_app

ROWS = [{"age": 30, "income": 65000.0}, {"age": 52, "income": 31000.5}]


def families(client: TestClient) -> dict[str, object]:
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def value(fams: dict[str, object], sample: str, **labels: str) -> float:
    matches = [s.value for f in fams.values() for s in f.samples  # type: ignore[attr-defined]
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert matches, (sample, labels)
    return sum(matches)


def test_requests_latency_batches_and_loads_are_counted(model_workspace: Path) -> None:
    app = create_app(open_context(model_workspace), ["credit@staging", "credit/9"])
    with TestClient(app, raise_server_exceptions=False) as client:
        for _ in range(3):
            assert client.post("/predict/credit", json=ROWS).status_code == 200
        assert client.post("/predict/credit", json=[{"age": "old", "income": 1}]).status_code == 422
        assert client.post("/invocations", json={"instances": ROWS}).status_code == 200
        assert client.get("/v2/models/nope").status_code == 404
        fams = families(client)

    assert all(name.startswith("shipyard_") for name in fams)
    assert fams["shipyard_requests"].type == "counter"  # type: ignore[attr-defined]
    ok = {"model": "credit", "version": "2"}
    assert value(fams, "shipyard_requests_total", route="predict", code="200", **ok) == 3
    assert value(fams, "shipyard_requests_total", route="predict", code="422", **ok) == 1
    assert value(fams, "shipyard_requests_total", route="invocations", code="200", **ok) == 1
    assert value(fams, "shipyard_requests_total", route="model_metadata", code="404") == 1
    assert value(fams, "shipyard_request_duration_seconds_count", route="predict", **ok) == 4
    assert value(fams, "shipyard_request_duration_seconds_bucket", route="predict", le="+Inf", **ok) == 4
    # four answered calls to the model, 2 rows each (the bad request fails inside the call and is not observed)
    assert value(fams, "shipyard_batch_requests_sum", **ok) == 4
    assert value(fams, "shipyard_batch_rows_sum", **ok) == 8
    assert value(fams, "shipyard_model_duration_seconds_count", **ok) == 4
    assert value(fams, "shipyard_model_load_duration_seconds", **ok) > 0
    assert value(fams, "shipyard_model_loaded", **ok) == 1
    assert value(fams, "shipyard_model_load_failed", ref="credit/9") == 1
    assert value(fams, "shipyard_requests_in_flight") == 1  # the scrape itself
    assert value(fams, "shipyard_prediction_log_queue_depth") >= 0
    assert "shipyard_prediction_log_lag_seconds" in fams


def test_each_app_has_its_own_metrics(model_workspace: Path) -> None:
    ctx = open_context(model_workspace)
    first, second = create_app(ctx, ["credit/1"]), create_app(ctx, ["credit/1"])
    with TestClient(first) as one, TestClient(second) as two:
        assert one.post("/predict/credit", json=ROWS).status_code == 200
        assert value(families(one), "shipyard_requests_total", route="predict") == 1
        assert not [s for f in families(two).values() for s in f.samples  # type: ignore[attr-defined]
                    if s.name == "shipyard_requests_total" and s.labels.get("route") == "predict"]
