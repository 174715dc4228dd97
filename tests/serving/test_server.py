"""A real `shipyard serve` process (uvicorn on a free loopback port), spoken to over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]


def request(url: str, body: bytes | None = None, kind: str = "application/json") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, headers={"content-type": kind} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def post(url: str, payload: Any) -> tuple[int, Any]:
    status, _, raw = request(url, json.dumps(payload).encode())
    return status, json.loads(raw)


def wait_ready(process: subprocess.Popen[str], url: str) -> None:
    for _ in range(600):  # until ready; a bounded count of polls, not a time budget
        if process.poll() is not None:
            pytest.fail(f"shipyard serve exited {process.returncode}: {process.stdout.read()}")  # type: ignore[union-attr]
        try:
            if request(f"{url}/v2/health/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail("shipyard serve never became ready")


@contextmanager
def running_server(workspace: Path, *args: str, env: dict[str, str] | None = None
                   ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`shipyard serve ARGS` on a free loopback port, ready; terminated (SIGTERM) afterwards. The repository is
    on the server's import path, so models whose classes live in tests/ load there."""
    from shipyard.context import close_all

    close_all()
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "shipyard"), "serve", *args, "--port", str(port)],
        cwd=workspace, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=60)


@pytest.fixture
def server(model_workspace: Path) -> Iterator[str]:
    with running_server(model_workspace, "credit/1", "credit@staging", "--max-body-bytes", "5000") as (url, _):
        yield url


ROWS = [{"age": 30, "income": 65000.0}, {"age": 52, "income": 31000.5}]
OIP = {"id": "q1", "inputs": [{"name": "age", "shape": [2, 1], "datatype": "INT64", "data": [[30], [52]]},
                              {"name": "income", "shape": [2], "datatype": "FP32", "data": [65000, 31000.5]}],
       "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}


def test_every_endpoint_over_http(server: str) -> None:
    for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/credit", "/v2/models/credit/ready",
                 "/v2/models/credit/versions/2", "/v2/models/credit/versions/2/ready", "/ping", "/health",
                 "/version"):
        status, headers, _ = request(server + path)
        assert status == 200, path
        assert {k.lower() for k in headers} >= {"x-request-id"}
    assert json.loads(request(f"{server}/v2/models/credit")[2])["versions"] == ["1", "2"]
    for path in ("/v2/models/credit/infer", "/v2/models/credit/versions/2/infer"):
        status, out = post(server + path, OIP)
        assert status == 200 and out["id"] == "q1" and out["outputs"][0]["data"] == ["yes", "no"]
        assert out["outputs"][1]["shape"] == [2, 2]
    assert post(f"{server}/predict/credit", ROWS) == (200, {"model_name": "credit", "model_version": "1",
                                                            "predictions": ["yes", "no"]})
    csv = request(f"{server}/invocations", b"age,income\n30,65000\n52,31000.5\n", "text/csv")
    assert (csv[0], json.loads(csv[2])) == (200, {"predictions": ["yes", "no"]})  # the name's default version
    status, out = post(f"{server}/invocations", {"dataframe_split": {"columns": ["age", "income"],
                                                                     "data": [[30, 65000.0]]}})
    assert (status, out) == (200, {"predictions": ["yes"]})


def test_malformed_input_never_a_5xx_and_the_server_stays_ready(server: str) -> None:
    cases: list[tuple[str, bytes, str]] = [
        ("/v2/models/credit/infer", b"{nope", "application/json"),
        ("/v2/models/credit/infer", b'{"inputs": [{"name": "age", "shape": [9], "datatype": "INT64", "data": [1]}]}',
         "application/json"),
        ("/v2/models/credit/infer", b'{"inputs": [{"name": "age", "shape": [1], "datatype": "INT64", "data": [1]}]}',
         "application/json"),
        ("/v2/models/credit/infer", b"x", "text/plain"),
        ("/v2/models/missing/infer", b"{}", "application/json"),
        ("/invocations", b'{"instances": 3}', "application/json"),
        ("/invocations", b"\x00\xff", "text/csv"),
        ("/predict/credit", b'[{"age": "old", "income": 1}]', "application/json"),
        ("/predict/credit", b'[{"age": null, "income": 1}]', "application/json"),
        ("/predict/credit", json.dumps(ROWS * 200).encode(), "application/json"),
        ("/predict/credit", b"\"\\ud800\"", "application/json"),
    ]
    for path, body, kind in cases:
        status, headers, raw = request(server + path, body, kind)
        assert 400 <= status < 500, (path, body[:40], status, raw)
        assert json.loads(raw)["error"]
    assert request(f"{server}/v2/health/ready")[0] == 200
    assert post(f"{server}/predict/credit", ROWS)[0] == 200
