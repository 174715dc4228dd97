"""`shipyard serve --deployment NAME`: routes by weight (sticky by a key), shadows that never touch the answer,
and revisions followed at runtime: no request fails while routes change, and servers converge."""

from __future__ import annotations

import http.client
import json
import math
import threading
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from starlette.testclient import TestClient

import shipyard
from shipyard.context import close_all, open_context
from shipyard.serving.app import create_app
from tests.serving.test_server import running_server

ROW = [{"age": 30, "income": 65000.0}]


@pytest.fixture
def deployed(model_workspace: Path) -> Path:
    """credit/1 and credit/2 registered, gated (no gates declared: both may take routes), credit-api on credit/1."""
    spec = model_workspace / "shipyard.yaml"
    spec.write_text(spec.read_text() + "\ngates:\n  credit: {}\n")
    shipyard.deployments.create("credit-api", "credit/1", workspace=model_workspace)
    return model_workspace


def share(counts: Counter[str], version: str) -> float:
    return counts[version] / sum(counts.values())


def test_a_canary_takes_its_share_and_a_key_always_reaches_the_same_version(deployed: Path) -> None:
    shipyard.deployments.canary("credit-api", "credit/2", percent=30, workspace=deployed)
    n = 2000
    tolerance = 4.5 * math.sqrt(0.3 * 0.7 / n)  # binomial: a false alarm about once in 150,000 runs
    with TestClient(create_app(open_context(deployed), deployment="credit-api")) as client:
        random_split = Counter(client.post("/predict/credit-api", json=ROW).headers["x-model-version"]
                               for _ in range(n))
        assert abs(share(random_split, "credit/2") - 0.3) < tolerance, random_split
        shipyard.deployments.canary("credit-api", "credit/2", percent=30, sticky_by="x-user", workspace=deployed)
        client.app.state.served.follower.refresh()  # type: ignore[attr-defined]  # what the poll thread does
        by_key = {f"user-{i}": client.post("/predict/credit-api", json=ROW, headers={"x-user": f"user-{i}"})
                  .headers["x-model-version"] for i in range(n)}
        assert abs(share(Counter(by_key.values()), "credit/2") - 0.3) < tolerance
        for key in ("user-1", "user-2", "user-3"):  # again and again: the same version
            again = {client.post("/predict/credit-api", json=ROW, headers={"x-user": key}).headers["x-model-version"]
                     for _ in range(20)}
            assert again == {by_key[key]}
        answer = client.post("/v2/models/credit-api/infer", json={
            "inputs": [{"name": "age", "shape": [1], "datatype": "INT64", "data": [30]},
                       {"name": "income", "shape": [1], "datatype": "FP64", "data": [65000.0]}]},
            headers={"x-user": "user-1"})
        assert answer.json()["model_name"] == "credit-api"
        assert f"credit/{answer.json()['model_version']}" == by_key["user-1"]
        assert answer.headers["x-deployment-route"] == ("canary" if by_key["user-1"] == "credit/2" else "primary")


def test_a_shadow_never_changes_the_answer_and_is_logged_under_the_same_request(deployed: Path) -> None:
    ctx = open_context(deployed)
    alone = create_app(ctx, ["credit/1"], log_predictions=False)
    rows = [{"age": a, "income": i} for a, i in ((30, 65000.0), (52, 31000.5), (41, 50500.0))]
    with TestClient(alone) as client:
        expected = [client.post("/predict/credit", json=[r]).json()["predictions"] for r in rows]
    shipyard.deployments.shadow("credit-api", "credit/2", workspace=deployed)
    app = create_app(ctx, deployment="credit-api")
    shadow_model = app.state.served.get("credit", "2")

    with TestClient(app) as client:
        answers = [client.post("/predict/credit-api", json=[r], headers={"x-request-id": f"q{i}"})
                   for i, r in enumerate(rows)]
        assert [a.json()["predictions"] for a in answers] == expected
        assert {a.headers["x-model-version"] for a in answers} == {"credit/1"}

        def broken(frame: Any) -> Any:
            raise RuntimeError("the shadow is broken")

        client.portal.call(app.state.runtime.finish_shadows, 30.0)  # the copies so far have run (they run after
        shadow_model.prepare = broken  # the answer); now a failing shadow: the answer is still the primary's
        failed = client.post("/predict/credit-api", json=[rows[0]], headers={"x-request-id": "q-broken"})
        assert failed.status_code == 200 and failed.json()["predictions"] == expected[0]
    # the app's shutdown waited for the shadows and wrote the log
    logged = shipyard.serving.predictions("credit", workspace=deployed)
    pairs = sorted(zip(logged["request_id"], logged["deployment_route"], logged["version"], strict=True))
    assert pairs == sorted([(f"q{i}", "primary", 1) for i in range(3)] + [(f"q{i}", "shadow", 2) for i in range(3)]
                           + [("q-broken", "primary", 1), ("q-broken", "shadow", 2)])
    assert set(logged["deployment"]) == {"credit-api"}
    failed = logged[logged["error"].notna()]  # the broken shadow's failure is logged, not answered
    assert list(zip(failed["request_id"], failed["deployment_route"], strict=True)) == [("q-broken", "shadow")]
    assert "the shadow is broken" in failed["error"].iloc[0]


def poll_revision(url: str, revision: int) -> int:
    """Requests until one is answered under `revision`; how many it took (bounded)."""
    parsed = urlparse(url)
    for attempt in range(1, 301):
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        connection.request("POST", "/predict/credit-api", json.dumps(ROW), {"content-type": "application/json"})
        response = connection.getresponse()
        response.read()
        connection.close()
        if int(response.getheader("x-deployment-revision")) == revision:
            return attempt
        threading.Event().wait(0.02)
    raise AssertionError(f"{url} never served revision {revision}")


def test_routes_change_under_load_without_a_failed_request_and_two_servers_converge(deployed: Path) -> None:
    answers: list[tuple[int, int, str]] = []  # (status, revision, version) of every request
    lock = threading.Lock()
    done = threading.Event()
    with running_server(deployed, "--deployment", "credit-api", "--workers", "2") as (first, _), \
            running_server(deployed, "--deployment", "credit-api") as (second, _):

        def load(url: str) -> None:
            parsed = urlparse(url)
            connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
            for _ in range(20_000):  # bounded; the changes below end it much sooner
                if done.is_set():
                    break
                connection.request("POST", "/predict/credit-api", json.dumps(ROW),
                                   {"content-type": "application/json"})
                response = connection.getresponse()
                response.read()
                with lock:
                    answers.append((response.status, int(response.getheader("x-deployment-revision") or -1),
                                    response.getheader("x-model-version") or ""))
            connection.close()

        clients = [threading.Thread(target=load, args=(url,)) for url in (first, first, second)]
        for client in clients:
            client.start()
        changes = [
            lambda: shipyard.deployments.shadow("credit-api", "credit/2", workspace=deployed),
            lambda: shipyard.deployments.unshadow("credit-api", workspace=deployed),
            lambda: shipyard.deployments.canary("credit-api", "credit/2", percent=20, workspace=deployed),
            lambda: shipyard.deployments.canary("credit-api", "credit/2", percent=50, workspace=deployed),
            lambda: shipyard.deployments.promote("credit-api", workspace=deployed),
            lambda: shipyard.deployments.rollback("credit-api", workspace=deployed),
        ]
        try:
            for change in changes:
                revision = change().revision
                for url in (first, second):  # both servers converge on it
                    poll_revision(url, revision)
        finally:
            done.set()
            for client in clients:
                client.join(60)
    close_all()
    allowed = {r.revision: {f"{route.model}/{route.version}" for route in r.routes if route.answers}
               for r in shipyard.deployments.history("credit-api", workspace=deployed)}
    assert len(answers) > 100
    assert [a for a in answers if a[0] != 200] == []
    assert [a for a in answers if a[2] not in allowed.get(a[1], set())] == []
    assert {a[1] for a in answers} >= set(allowed) - {1}  # every revision after the first was served
