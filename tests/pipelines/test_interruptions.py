"""A pipeline's runs are owned by its driver: heartbeated while it runs, and never left `running` when
it is interrupted (Ctrl-C) or its store or executor fails."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.errors import BackendError
from shipyard.pipelines import runner
from shipyard.pipelines.executors import LocalExecutor, StepOutcome, StepTask
from shipyard.pipelines.steps import current_run_id, step
from shipyard.tracking import liveness, runs

# What the steps below wait for and report; reset by each test.
EVENTS: dict[str, threading.Event] = {}
SEEN: dict[str, Any] = {}


@step(cache=False)
def interrupted(x: int) -> int:
    assert EVENTS["slow started"].wait(30)  # the other branch is running when Ctrl-C arrives
    raise KeyboardInterrupt


@step(cache=False)
def slow(x: int) -> int:
    EVENTS["slow started"].set()
    EVENTS["a run was marked failed"].wait(30)  # still running while the driver handles the interrupt
    return x


@step(cache=False)
def combine(a: int, b: int) -> int:
    return a + b


@shipyard.pipeline
def stoppable(x: int = 1):
    return combine(interrupted(x), slow(x))


@step(cache=False)
def observed(x: int) -> int:
    SEEN["held"] = set(liveness.held())
    SEEN["run"] = current_run_id()
    return x + 1


@shipyard.pipeline
def two_steps(x: int = 1):
    return observed(observed(x))


def _by_name() -> dict[str, Any]:
    return {r.name: r for r in shipyard.search_runs(experiment="pipelines")}


def test_ctrl_c_marks_the_pipeline_and_its_open_steps_failed(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    EVENTS.update({"slow started": threading.Event(), "a run was marked failed": threading.Event()})
    finish_run = runs.finish_run

    def finishing(*args: Any, **kwargs: Any) -> None:
        finish_run(*args, **kwargs)
        if args[2] == "failed":
            EVENTS["a run was marked failed"].set()

    monkeypatch.setattr(runs, "finish_run", finishing)
    with pytest.raises(KeyboardInterrupt):
        stoppable.run()
    found = _by_name()
    assert set(found) == {"stoppable", "interrupted", "slow"}  # combine never started
    for name in ("stoppable", "interrupted", "slow"):
        assert found[name].status == "failed", name
        assert "Pipeline 'stoppable' was interrupted (KeyboardInterrupt)" in (found[name].error or "")
    assert shipyard.search_runs("status = 'running' or status = 'lost'") == []
    assert liveness.held() == []


class _BrokenExecutor:
    """The local executor, except that the scheduler is lost before the second step is submitted."""

    name = "local"

    def __init__(self) -> None:
        self.inner = LocalExecutor()
        self.submitted = 0

    def submit(self, task: StepTask) -> Future[StepOutcome]:
        self.submitted += 1
        if self.submitted == 2:
            raise BackendError("Lost the scheduler at tcp://10.0.0.9:8786 (connection reset).")
        return self.inner.submit(task)

    def close(self) -> None:
        self.inner.close()


def test_a_backend_error_marks_the_pipeline_and_its_open_steps_failed(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "make_executor", lambda spec: _BrokenExecutor())
    with pytest.raises(BackendError, match="Lost the scheduler"):
        two_steps.run()
    found = {(r.name, r.status, r.tags.get("shipyard.cache")) for r in shipyard.search_runs(experiment="pipelines")}
    assert found == {("two_steps", "failed", None), ("observed", "finished", "off"), ("observed_2", "failed", "off")}
    for record in shipyard.search_runs("status = 'failed'", experiment="pipelines"):
        assert "stopped before this run finished: BackendError: Lost the scheduler" in (record.error or "")
    assert liveness.held() == []


def test_the_driver_keeps_its_runs_alive_while_the_steps_run(workspace: Path) -> None:
    SEEN.clear()
    result = two_steps.run()
    assert SEEN["run"] == result.steps["observed_2"].run_id
    assert SEEN["held"] == {result.run_id, SEEN["run"]}  # the pipeline's run and the running step's
    for run_id in (result.run_id, SEEN["run"]):
        record = shipyard.get_run(run_id)
        assert (record.status, record.host, record.pid) == ("finished", liveness.HOST, os.getpid())
    assert liveness.held() == []
