"""Micro-batching: requests queued while a call runs go out together, each gets its own rows back, a bad
request fails alone, and answers are the same with batching on and off (in process and over HTTP)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.serving.batching import Answer, Batcher, BatchPolicy
from tests.serving.test_server import post, request, running_server


class HeldModel:
    """Doubles each value; the first call waits until released, so others queue up behind it."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.calls:
            self.entered.set()
            assert self.release.wait(30)
        self.calls.append(len(frame))
        if (frame["x"] < 0).any():
            raise ValueError("negative x")
        return frame["x"].to_numpy() * 2


def frame(*values: int) -> pd.DataFrame:
    return pd.DataFrame({"x": list(values)})


def run_while_held(model: HeldModel, policy: BatchPolicy, first: pd.DataFrame, *later: pd.DataFrame) -> list[Any]:
    """Submit `first`, wait until the model is inside its call, submit the rest, then let it go."""

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(lambda f: f, lambda name, f: model(f), pool, policy)
            head = asyncio.ensure_future(batcher.submit(first))
            await asyncio.get_running_loop().run_in_executor(None, model.entered.wait, 30)
            rest = [asyncio.ensure_future(batcher.submit(f)) for f in later]
            await asyncio.sleep(0)  # every later request is queued before the held call returns
            model.release.set()
            answers = await asyncio.gather(head, *rest, return_exceptions=True)
            return [a.values["predict"] if isinstance(a, Answer) else a for a in answers]

    return asyncio.run(scenario())


def test_requests_queued_behind_a_call_go_out_as_one_batch() -> None:
    model = HeldModel()
    results = run_while_held(model, BatchPolicy(max_rows=64), frame(1), frame(2, 3), frame(4), frame(5, 6, 7))
    assert model.calls == [1, 6]  # the first alone, then the three queued behind it together
    assert [list(r) for r in results] == [[2], [4, 6], [8], [10, 12, 14]]


def test_a_batch_stops_at_max_rows_and_keeps_order() -> None:
    model = HeldModel()
    results = run_while_held(model, BatchPolicy(max_rows=3), frame(1), frame(2, 3), frame(4), frame(5, 6, 7), frame(8))
    assert model.calls == [1, 3, 3, 1]
    assert [list(r) for r in results] == [[2], [4, 6], [8], [10, 12, 14], [16]]


def test_batching_off_calls_the_model_once_per_request() -> None:
    model = HeldModel()
    model.release.set()
    results = run_while_held(model, BatchPolicy(max_rows=0), frame(1), frame(2, 3), frame(4))
    assert model.calls == [1, 2, 1]
    assert [list(r) for r in results] == [[2], [4, 6], [8]]


def test_a_bad_request_fails_alone() -> None:
    model = HeldModel()
    results = run_while_held(model, BatchPolicy(max_rows=64), frame(1), frame(2), frame(-1), frame(3))
    assert [list(r) for r in (results[0], results[1], results[3])] == [[2], [4], [6]]
    assert isinstance(results[2], ValueError)
    assert model.calls == [1, 3, 1, 1, 1]  # the failed batch of three, then each of its requests alone


def test_requests_with_other_columns_are_not_combined() -> None:
    model = HeldModel()
    other = pd.DataFrame({"x": [5], "y": [1.0]})
    results = run_while_held(model, BatchPolicy(max_rows=64), frame(1), frame(2), other, frame(3))
    assert model.calls == [1, 1, 1, 1]  # [2] alone (the next has a column more), then [5, y], then [3]
    assert [list(r) for r in results] == [[2], [4], [10], [6]]


# -- over HTTP: the same answers with batching on and off ---------------------------------------------------

@pytest.fixture
def two_servers(model_workspace: Path) -> Iterator[tuple[str, str]]:
    with running_server(model_workspace, "credit/1", "--max-batch-rows", "256", "--max-batch-wait-ms", "20") as (
            batched, _), running_server(model_workspace, "credit/1", "--max-batch-rows", "0") as (unbatched, _):
        yield batched, unbatched


def oip(rows: list[tuple[int, float]]) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [len(rows), 2], "datatype": "FP64", "data": [list(r) for r in rows]}],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}


def test_batching_on_and_off_answer_the_same_over_http(two_servers: tuple[str, str]) -> None:
    rng = np.random.default_rng(7)
    bodies = [oip([(int(rng.integers(18, 80)), float(rng.normal(50_000, 12_000))) for _ in range(int(n))])
              for n in rng.integers(1, 6, 48)]

    def answers(url: str) -> list[Any]:
        with ThreadPoolExecutor(8) as pool:  # eight clients at once, so the batching server combines them
            return list(pool.map(lambda b: post(f"{url}/v2/models/credit/infer", b), bodies))

    batched, unbatched = answers(two_servers[0]), answers(two_servers[1])
    assert all(status == 200 for status, _ in batched + unbatched)
    for (_, one), (_, other) in zip(batched, unbatched, strict=True):
        labels, probabilities = one["outputs"]
        assert labels == other["outputs"][0]
        assert probabilities["shape"] == other["outputs"][1]["shape"]
        # a matrix product over a different number of rows may round the last bit differently
        np.testing.assert_allclose(probabilities["data"], other["outputs"][1]["data"], rtol=1e-12, atol=0)
    rows = sum(len(b["inputs"][0]["data"]) for b in bodies)
    for url, label in ((two_servers[0], "batched"), (two_servers[1], "unbatched")):
        samples = metric_samples(url)
        requests = sum(v for n, labels, v in samples
                       if n == "shipyard_batch_requests_sum")
        batch_rows = sum(v for n, labels, v in samples
                         if n == "shipyard_batch_rows_sum")
        assert (requests, batch_rows) == (len(bodies), rows), label
    unbatched_calls = [v for n, labels, v in metric_samples(two_servers[1])
                       if n == "shipyard_batch_requests_count"]
    assert unbatched_calls == [len(bodies)]
    # eight clients at once and a 20 ms wait: the batching server combined requests into fewer calls
    batched_calls = [v for n, labels, v in metric_samples(two_servers[0]) if n == "shipyard_batch_requests_count"]
    assert batched_calls and batched_calls[0] < len(bodies)


def metric_samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    status, _, raw = request(f"{url}/metrics")
    assert status == 200
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(raw.decode())
            for s in family.samples]

