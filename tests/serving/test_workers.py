"""`shipyard serve --workers N`: forked workers on one socket, sharing the models the supervisor loaded; metrics
summed across them; a dead worker replaced; SIGTERM finishes the requests in flight."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from tests.serving.held_model import HOLD, register, wait_for
from tests.serving.test_batching import metric_samples
from tests.serving.test_server import post, request, running_server

ROWS = [{"age": 30, "income": 65000.0}, {"age": 52, "income": 31000.5}]


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        found += [int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def pss_kib(pid: int) -> int:
    """Proportional set size of a process and its children: shared pages count once in all."""
    own = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
               if line.startswith("Pss:"))
    return own + sum(pss_kib(child) for child in children(pid))


def fresh_connection_post(url: str, path: str, payload: Any) -> int:
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        connection.request("POST", path, json.dumps(payload), {"content-type": "application/json"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_workers_answer_and_metrics_add_up_across_them(model_workspace: Path, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with running_server(model_workspace, "credit/1", "--workers", "2",
                        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}) as (url, process):
        assert len(children(process.pid)) == 2
        statuses = [fresh_connection_post(url, "/predict/credit", ROWS) for _ in range(60)]
        assert statuses == [200] * 60
        writers = {f.stem.rsplit("_", 1)[1] for f in metrics_dir.glob("counter_*.db")}
        assert len(writers) >= 2, "every request went to one worker; nothing here shows the sum across them"
        for _ in range(6):  # whichever worker answers the scrape reports the sum of both
            counted = sum(v for n, labels, v in metric_samples(url)
                          if n == "shipyard_requests_total" and labels.get("route") == "predict")
            assert counted == 60


def test_a_worker_that_dies_is_replaced(model_workspace: Path) -> None:
    with running_server(model_workspace, "credit/1", "--workers", "2") as (url, process):
        before = children(process.pid)
        os.kill(before[0], signal.SIGKILL)
        for _ in range(3000):  # polls, bounded
            now = children(process.pid)
            if len(now) == 2 and before[0] not in now:
                break
            time.sleep(0.01)
        else:
            pytest.fail(f"no worker replaced {before[0]}: {children(process.pid)}")
        assert request(f"{url}/v2/health/ready")[0] == 200
        assert all(fresh_connection_post(url, "/predict/credit", ROWS) == 200 for _ in range(10))
    assert process.returncode == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_finishes_the_request_in_flight(workspace: Path, tmp_path: Path, workers: str) -> None:
    register(tmp_path)
    with running_server(workspace, "held/1", "--workers", workers) as (url, process):
        answer: list[tuple[int, Any]] = []
        held = threading.Thread(target=lambda: answer.append(post(f"{url}/predict/held", [{"x": HOLD}])))
        held.start()
        wait_for("entered-*", tmp_path)  # the request is inside the model now
        process.send_signal(signal.SIGTERM)
        time.sleep(0.2)  # not a synchronisation: the request is held until the release file exists
        assert process.poll() is None  # still finishing the held request
        (tmp_path / "release").touch()
        held.join(60)
        assert process.wait(60) == 0
    assert answer == [(200, {"model_name": "held", "model_version": "1", "predictions": [HOLD * 2.0]})]


def test_four_workers_share_one_copy_of_a_large_model(workspace: Path) -> None:
    """A model of a couple of hundred megabytes: four workers forked from the supervisor that loaded it take far
    less than four copies (the ratio is measured and reported in the benchmarks; here only that it is shared)."""
    import shipyard
    from sklearn.ensemble import ExtraTreesClassifier

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(50_000, 8)), columns=[f"f{i}" for i in range(8)])
    y = (x["f0"] + rng.normal(size=len(x)) > 0).astype(int)
    with shipyard.start_run("trees") as run:
        run.log_model(ExtraTreesClassifier(n_estimators=20, random_state=0).fit(x, y), "trees",
                      signature_frame=x.head(100))
    row = [dict.fromkeys(x.columns, 0.5)]
    sizes = {}
    for workers in ("1", "4"):
        with running_server(workspace, "trees/1", "--workers", workers) as (url, process):
            assert all(fresh_connection_post(url, "/predict/trees", row) == 200 for _ in range(40))
            sizes[workers] = pss_kib(process.pid)
    assert sizes["4"] < 2 * sizes["1"], sizes  # four unshared copies would be more than four times one
