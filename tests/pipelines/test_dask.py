"""The Dask executor against a real cluster: a `dask scheduler` and two `dask worker` processes on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import free_port, unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    try:
        from distributed import Client
    except ModuleNotFoundError:
        unavailable("dask.distributed is not installed; install the test extras")
    dask = Path(sys.executable).with_name("dask")
    port = free_port()
    address = f"127.0.0.1:{port}"
    # The workers import shipyard from this checkout (not whatever copy is installed) and the test flows.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
           "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0", "--no-show"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    for _ in range(2):
        procs.append(subprocess.Popen([str(dask), "worker", f"tcp://{address}", "--nthreads", "1",
                                       "--host", "127.0.0.1", "--dashboard-address", ":0", "--no-nanny"],
                                      env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=30)
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    unavailable(f"the Dask cluster at {address} did not start")
                time.sleep(0.5)
        yield f"dask://{address}"
    finally:
        # Workers first: a worker whose scheduler went away first waits to reconnect before it exits.
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_pipeline_and_sweep_on_the_cluster(workspace: Path, cluster: str) -> None:
    import shipyard
    from tests.pipelines import dask_flow

    result = dask_flow.train.run(executor=cluster)
    assert result.status == "finished" and result.value()["accuracy"] > 0.85
    assert result.value()["pid"] != os.getpid()  # it ran on a worker
    parent = shipyard.get_run(result.run_id)
    assert parent.tags["shipyard.executor"] == cluster
    step_runs = [shipyard.get_run(s.run_id) for s in result.steps.values()]
    assert all(not r.tags["shipyard.worker"].endswith(f":{os.getpid()}") for r in step_runs)
    assert {r.pid for r in step_runs} == {os.getpid()}  # the driver owns (and heartbeats) every step's run

    sweep = dask_flow.sweep.run(executor=cluster)
    scores = sweep.value()
    assert len(scores) == 3 and len({s["pid"] for s in scores}) >= 1
    assert sweep.steps["load"].cache == "hit"  # same data as the first pipeline: not recomputed
    assert [sweep.steps[n].cache for n in ("fit", "fit_2", "fit_3")].count("miss") == 2  # c=1.0 was cached

    again = dask_flow.sweep.run(executor=cluster)
    assert {s.cache for s in again.steps.values()} == {"hit"}


def test_worker_failures_come_back_with_the_step_and_traceback(workspace: Path, cluster: str) -> None:
    from shipyard.pipelines.runner import PipelineFailed
    from tests.pipelines import dask_flow

    with pytest.raises(PipelineFailed) as failure:
        dask_flow.broken.run(executor=cluster)
    assert failure.value.step == "explode"
    assert "RuntimeError: worker-side failure on 50 rows" in str(failure.value)
    assert "in explode" in (failure.value.original_traceback or "")  # the worker-side frame
