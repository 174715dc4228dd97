"""The prediction log and feedback through real servers: every answered request is logged exactly once (a
soak with malformed requests mixed in, a graceful shutdown under load, several workers), feedback comes back
by request id, and a second server on the same workspace serves the same models."""

from __future__ import annotations

import http.client
import json
import random
import signal
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from starlette.testclient import TestClient

import shipyard
from shipyard.context import close_all, open_context
from shipyard.serving.app import create_app
from tests.serving.test_server import request, running_server
from tests.services import MotoServer, postgres_schema

ROWS = [{"age": 30, "income": 65000.0}, {"age": 52, "income": 31000.5}]


def valid_request(rng: random.Random) -> tuple[str, str, bytes]:
    rows = [{"age": rng.randint(18, 80), "income": round(rng.gauss(50_000, 12_000), 2)}
            for _ in range(rng.randint(1, 4))]
    kind = rng.choice(["infer", "invocations", "predict"])
    if kind == "infer":
        body: Any = {"inputs": [{"name": "age", "shape": [len(rows)], "datatype": "INT64",
                                 "data": [r["age"] for r in rows]},
                                {"name": "income", "shape": [len(rows)], "datatype": "FP64",
                                 "data": [r["income"] for r in rows]}]}
        return "/v2/models/credit/infer", "application/json", json.dumps(body).encode()
    if kind == "invocations":
        return "/invocations", "application/json", json.dumps({"dataframe_records": rows}).encode()
    return "/predict/credit", "application/json", json.dumps(rows).encode()


MALFORMED: list[tuple[str, str, bytes]] = [
    ("/v2/models/credit/infer", "application/json", b"{nope"),
    ("/v2/models/credit/infer", "application/json",
     b'{"inputs": [{"name": "age", "shape": [3], "datatype": "INT64", "data": [1]}]}'),
    ("/v2/models/credit/infer", "text/plain", b"age=3"),
    ("/v2/models/nobody/infer", "application/json", b"{}"),
    ("/invocations", "application/json", b'{"instances": 3}'),
    ("/invocations", "text/csv", b"\x00\xff"),
    ("/predict/credit", "application/json", b'[{"age": "old", "income": 1}]'),
    ("/predict/credit", "application/json", b'[{"age": null, "income": 1}]'),
    ("/predict/credit", "application/json", b'{"age": 1}'),
    ("/v2/models/credit/feedback", "application/json", b'{"request_id": 7}'),
]


@dataclass
class Tally:
    answered: set[str] = field(default_factory=set)  # ids of valid requests answered 200
    refused: int = 0  # malformed requests answered 4xx
    wrong: list[str] = field(default_factory=list)  # anything else: a 5xx, a 2xx for bad input, a lost answer
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(url: str, tally: Tally, seed: int, count: int, malformed_share: float,
           terminating: threading.Event | None = None) -> None:
    """`count` requests on one keep-alive connection (reconnecting when the server closes it); once the server
    is `terminating`, the first request that gets no answer ends the client."""
    rng = random.Random(seed)
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    for _ in range(count):
        bad = rng.random() < malformed_share
        path, kind, body = rng.choice(MALFORMED) if bad else valid_request(rng)
        request_id = uuid.uuid4().hex
        try:
            connection.request("POST", path, body, {"content-type": kind, "x-request-id": request_id})
            response = connection.getresponse()
            answer = response.read()
        except (ConnectionError, http.client.HTTPException, OSError):
            connection.close()
            if terminating is not None and terminating.is_set():
                break  # the server is shutting down: this request was never answered
            with tally.lock:
                tally.wrong.append(f"{path}: no answer")
            connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
            continue
        with tally.lock:
            if response.getheader("x-request-id") != request_id:
                tally.wrong.append(f"{path}: request id {response.getheader('x-request-id')}")
            elif bad and 400 <= response.status < 500 and json.loads(answer)["error"]:
                tally.refused += 1
            elif not bad and response.status == 200:
                tally.answered.add(request_id)
            else:
                tally.wrong.append(f"{path} {'bad' if bad else 'valid'}: {response.status} {answer[:200]!r}")
        if response.getheader("connection") == "close":
            connection.close()
    connection.close()


def run_clients(n: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not any(t.is_alive() for t in threads)


def logged_ids(workspace: Path) -> list[str]:
    close_all()
    frame = shipyard.serving.predictions("credit", workspace=workspace)
    return list(frame.drop_duplicates(["request_id"])["request_id"]) if len(frame) else []


def test_soak_with_malformed_requests_logs_exactly_the_answered_ones(model_workspace: Path) -> None:
    """3,000 requests from four clients at once, one in ten malformed, over two workers: no valid request fails,
    every malformed one is a 4xx, the server is still ready, and after a graceful stop the prediction log holds
    exactly the answered requests, once each. A count, not a span of time, so a slow machine sends as many."""
    tally = Tally()
    with running_server(model_workspace, "credit/1", "--workers", "2") as (url, process):
        run_clients(4, lambda i: client(url, tally, seed=i, count=750, malformed_share=0.1))
        assert request(f"{url}/v2/health/ready")[0] == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(120) == 0
    assert tally.wrong == []
    assert tally.refused > 100 and len(tally.answered) > 1000
    ids = logged_ids(model_workspace)
    assert len(ids) == len(set(ids))
    assert set(ids) == tally.answered


def test_graceful_shutdown_under_load_loses_no_logged_prediction(model_workspace: Path) -> None:
    """Four clients keep sending until the server is gone; SIGTERM lands in the middle of their traffic."""
    tally = Tally()
    terminating = threading.Event()
    with running_server(model_workspace, "credit/1", "--workers", "2") as (url, process):

        def stop_when_busy() -> None:
            while len(tally.answered) < 500:
                threading.Event().wait(0.01)
            terminating.set()
            process.send_signal(signal.SIGTERM)

        stopper = threading.Thread(target=stop_when_busy)
        stopper.start()
        run_clients(4, lambda i: client(url, tally, seed=10 + i, count=100_000, malformed_share=0.0,
                                        terminating=terminating))
        stopper.join(120)
        assert process.wait(120) == 0
    assert terminating.is_set() and len(tally.answered) >= 500
    assert tally.wrong == []
    ids = logged_ids(model_workspace)
    assert len(ids) == len(set(ids)) and set(ids) == tally.answered


def test_feedback_over_http_matches_logged_requests_and_keeps_unknown_ones(model_workspace: Path) -> None:
    ctx = open_context(model_workspace)
    with TestClient(create_app(ctx, ["credit@staging"])) as http_client:
        answered = http_client.post("/predict/credit", json=ROWS, headers={"x-request-id": "loan-17"})
        assert answered.status_code == 200 and answered.headers["x-request-id"] == "loan-17"
        one = http_client.post("/v2/models/credit/feedback", json={"request_id": "loan-17", "value": "yes"})
        assert one.json() == {"model_name": "credit", "recorded": 1}
        many = http_client.post("/v2/models/credit/feedback", json={"feedback": [
            {"request_id": "loan-17", "row": 1, "value": "no"}, {"request_id": "never-seen", "value": "no"}]})
        assert many.json()["recorded"] == 2
        for body, status in (({"request_id": "x"}, 400), ({"feedback": "yes"}, 400), ([1, 2], 400),
                             ({"request_id": "", "value": 1}, 400)):
            refused = http_client.post("/v2/models/credit/feedback", json=body)
            assert refused.status_code == status and refused.json()["error"], body
        assert http_client.post("/v2/models/nobody/feedback",
                                json={"request_id": "a", "value": 1}).status_code == 404
        bad_json = http_client.post("/v2/models/credit/feedback", content=b"{",
                                    headers={"content-type": "application/json"})
        assert bad_json.status_code == 400
    # leaving the client ran the app's shutdown, which wrote the prediction log
    report = shipyard.serving.feedback_report("credit", workspace=model_workspace)
    assert (report.matched, report.unmatched, report.unmatched_request_ids) == (2, 1, ["never-seen"])
    joined = shipyard.serving.predictions("credit", with_feedback=True, workspace=model_workspace)
    assert sorted(zip(joined["row"], joined["feedback"], strict=True)) == [(0, "yes"), (1, "no")]
    assert shipyard.serving.record_feedback("credit", "later", "yes", workspace=model_workspace) == 1
    assert shipyard.serving.feedback_report("credit", workspace=model_workspace).unmatched == 2


def test_a_second_server_on_the_same_workspace_serves_the_same_models(model_workspace: Path) -> None:
    body = json.dumps(ROWS).encode()
    with running_server(model_workspace, "credit@staging") as (first, one), \
            running_server(model_workspace, "credit@staging", "--workers", "2") as (second, two):
        answers = [request(f"{url}/predict/credit", body) for url in (first, second)]
        assert [a[0] for a in answers] == [200, 200]
        assert json.loads(answers[0][2]) == json.loads(answers[1][2])
        assert json.loads(request(f"{first}/v2/models/credit")[2]) == json.loads(request(f"{second}/v2/models/credit")[2])
        for process in (one, two):
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0
    assert len(logged_ids(model_workspace)) == 2  # both servers wrote to the one log


def test_workers_write_the_log_to_s3_and_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  moto: MotoServer) -> None:
    """The stores a shared deployment uses: each forked worker opens its own S3 client and connections (the
    supervisor's, made while loading the models, refuse to work after a fork)."""
    from sklearn.linear_model import LogisticRegression

    from tests.serving.conftest import training_frame

    root = shipyard.init_workspace(tmp_path / "ws")
    monkeypatch.chdir(root)
    with postgres_schema() as store_url:
        stores = {"SHIPYARD_STORE_URL": store_url, "SHIPYARD_ARTIFACTS_URL": f"s3://{moto.new_bucket()}/artifacts",
                  "SHIPYARD_ARTIFACTS_ENDPOINT_URL": moto.endpoint}
        for key, value in stores.items():
            monkeypatch.setenv(key, value)
        x, y = training_frame()
        shipyard.models.register("credit", LogisticRegression().fit(x, y), input_example=x.head())
        tally = Tally()
        with running_server(root, "credit/1", "--workers", "2", env=stores) as (url, process):
            run_clients(2, lambda i: client(url, tally, seed=i, count=40, malformed_share=0.0))
            process.send_signal(signal.SIGTERM)
            assert process.wait(120) == 0
        assert tally.wrong == [] and len(tally.answered) == 80
        assert set(logged_ids(root)) == tally.answered


def test_shutdown_with_the_store_locked_spills_within_the_grace_period(model_workspace: Path) -> None:
    """The store refuses every write (another process holds SQLite's write lock): SIGTERM still ends the server
    after the grace period, the unwritten requests go to a spill file, and the next server writes them."""
    import sqlite3

    lock = sqlite3.connect(model_workspace / ".shipyard" / "shipyard.db", timeout=60)
    with running_server(model_workspace, "credit/1", "--graceful-seconds", "1") as (url, process):
        lock.execute("BEGIN EXCLUSIVE")
        try:
            answered = [request(f"{url}/predict/credit", json.dumps(ROWS).encode())[1]["x-request-id"]
                        for _ in range(3)]
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0  # one second for requests, one for the log: not the lock's minute
            spilled = list((model_workspace / ".shipyard" / "spill" / "predictions").glob("*"))
            assert spilled, "nothing spilled"
        finally:
            lock.rollback()
            lock.close()
    with running_server(model_workspace, "credit/1") as (_, second):  # its log takes over the spill file
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    assert sorted(logged_ids(model_workspace)) == sorted(answered)
