"""Tracking service and Python API, run against each metadata backend (SQLite, PostgreSQL)."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path

import pytest

import shipyard
from shipyard.context import open_context
from shipyard.errors import ConflictError, IntegrityError, NotFoundError, ValidationError


def test_run_records_everything_it_is_given(backend_workspace: Path) -> None:
    with shipyard.start_run("train-rf", tags={"team": "risk"}, experiment="credit") as run:
        run.log_params({"model": "rf", "n_estimators": 200})
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1))
        run.log_metrics({"auc": 0.91, "accuracy": 0.88})
        run.set_tag("stage", "baseline")
    record = shipyard.get_run(run.run_id)
    assert record.name == "train-rf" and record.experiment == "credit"
    assert record.status == "finished" and record.end_time >= record.start_time
    assert record.user == "tester"
    assert record.params == {"model": "rf", "n_estimators": "200"}
    assert record.metrics == {"loss": 0.2, "auc": 0.91, "accuracy": 0.88}
    assert record.tags == {"team": "risk", "stage": "baseline"}
    assert [p.step for p in shipyard.get_metric_history(run.run_id, "loss")] == [0, 1, 2, 3, 4]
    assert record.environment["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "numpy" in record.environment["packages"]
    assert record.wall_seconds is not None and record.wall_seconds >= 0
    assert record.cpu_seconds is not None and record.cpu_seconds >= 0
    assert record.peak_memory_bytes is not None and record.peak_memory_bytes > 10 * 2**20


def test_latest_value_follows_the_highest_step(backend_workspace: Path) -> None:
    with shipyard.start_run() as run:
        run.log_metric("acc", 0.9, step=10)
        run.log_metric("acc", 0.5, step=3)  # a late point for an earlier step
        run.flush()
        run.log_batch(metrics=[("acc", 0.7, 7), ("acc", 0.95, 11)])
    assert shipyard.get_run(run.run_id).metrics["acc"] == 0.95
    assert [p.step for p in shipyard.get_metric_history(run.run_id, "acc")] == [3, 7, 10, 11]


def test_metric_history_downsampling_keeps_ends(backend_workspace: Path) -> None:
    with shipyard.start_run() as run:
        run.log_batch(metrics=[("loss", float(i), i) for i in range(1000)])
    points = shipyard.get_metric_history(run.run_id, "loss", max_points=10)
    steps = [p.step for p in points]
    assert len(points) <= 10 and steps[0] == 0 and steps[-1] == 999 and steps == sorted(steps)
    with pytest.raises(ValidationError, match="max_points"):
        shipyard.get_metric_history(run.run_id, "loss", max_points=1)
    with pytest.raises(NotFoundError, match="Did you mean 'loss'"):
        shipyard.get_metric_history(run.run_id, "los")


def test_params_never_change_and_a_bad_batch_writes_nothing(backend_workspace: Path) -> None:
    with shipyard.start_run() as run:
        run.log_param("lr", 0.1)
        run.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(ConflictError, match="Param 'lr' .* is already '0.1'"):
            run.log_params({"depth": 3, "lr": 0.2})
        with pytest.raises(ConflictError):
            run.log_batch(metrics=[("m", 1.0, 0)], params={"lr": "0.3"}, tags={"t": "x"})
    record = shipyard.get_run(run.run_id)
    assert record.params == {"lr": "0.1"}  # 'depth' was not half-written
    assert record.metrics == {} and record.tags == {}


@pytest.mark.parametrize(
    "value, message",
    [
        (float("nan"), "non-finite"),
        (math.inf, "non-finite"),
        (-math.inf, "non-finite"),
        ("0.9", "must be a real number"),
        (None, "must be a real number"),
        (True, "must be a real number"),
        ([1.0], "must be a real number"),
    ],
)
def test_bad_metric_values_are_refused(workspace: Path, value: object, message: str) -> None:
    with shipyard.start_run() as run:
        with pytest.raises(ValidationError, match=message):
            run.log_metric("auc", value)
        with pytest.raises(ValidationError, match=message):
            run.log_metrics({"ok": 1.0, "auc": value})  # validated as a whole: 'ok' is not logged
        with pytest.raises(ValidationError, match=message):
            run.log_batch(metrics=[("ok", 1.0, 0), ("auc", value, 1)])
    assert shipyard.get_run(run.run_id).metrics == {}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r: r.log_param("k" * 251, 1), "the limit is 250"),
        (lambda r: r.log_metric("m" * 300, 1.0), "the limit is 250"),
        (lambda r: r.set_tag("t", "v" * 9000), "the limit is 8000"),
        (lambda r: r.log_param("p", "v" * 7000), "the limit is 6000"),
        (lambda r: r.log_metric("bad key!", 1.0), "not allowed"),
        (lambda r: r.log_metric("", 1.0), "must not be empty"),
        (lambda r: r.log_metric("m", 1.0, step=1.5), "must be an integer"),
        (lambda r: r.log_metric("m", 1.0, timestamp=-1), "non-negative"),
        (lambda r: r.log_batch(metrics=[("m", 1.0)]), "must be a tuple"),
        (lambda r: r.log_artifact(b"x"), "needs a name"),
        (lambda r: r.log_artifact(b"x", name="../escape"), "must be relative"),
    ],
)
def test_bad_keys_and_values_name_the_problem(workspace: Path, call, message: str) -> None:  # type: ignore[no-untyped-def]
    with shipyard.start_run() as run:
        with pytest.raises(ValidationError, match=message):
            call(run)
    record = shipyard.get_run(run.run_id)
    assert (record.params, record.metrics, record.tags, record.artifacts) == ({}, {}, {}, [])


def test_exception_marks_the_run_failed_and_keeps_its_points(backend_workspace: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with shipyard.start_run("crashy") as run:
            run.log_metric("progress", 0.5)
            1 / 0  # noqa: B018
    record = shipyard.get_run(run.run_id)
    assert record.status == "failed"
    assert "ZeroDivisionError" in (record.error or "") and "Traceback" in (record.error or "")
    assert record.metrics == {"progress": 0.5}
    with pytest.raises(ConflictError, match="has ended"):
        run.log_metric("late", 1.0)


def test_nested_runs(workspace: Path) -> None:
    with shipyard.start_run("parent") as parent:
        with pytest.raises(ConflictError, match="nested=True"):
            shipyard.start_run("oops")
        with shipyard.start_run("child", nested=True) as child:
            shipyard.log_metric("x", 1.0)  # module-level calls go to the innermost run
        shipyard.log_metric("y", 2.0)
    assert shipyard.get_run(child.run_id).parent_id == parent.run_id
    assert shipyard.get_run(child.run_id).metrics == {"x": 1.0}
    assert shipyard.get_run(parent.run_id).metrics == {"y": 2.0}
    with pytest.raises(ConflictError, match="No active run"):
        shipyard.log_metric("z", 1.0)


EXIT_SCRIPT = """
import sys, shipyard
run = shipyard.start_run("no-context-manager")
for i in range(1234):
    run.log_metric("loss", 1.0 / (i + 1))
print(run.run_id, flush=True)
{ending}
"""


@pytest.mark.parametrize(
    "ending, status, code",
    [("pass", "finished", 0), ("raise RuntimeError('boom')", "failed", 1), ("sys.exit(3)", "finished", 3)],
    ids=["normal-exit", "uncaught-exception", "sys-exit"],
)
def test_no_point_is_lost_at_interpreter_exit(workspace: Path, ending: str, status: str, code: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT.format(ending=ending)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == code, proc.stderr
    run_id = proc.stdout.strip()
    record = shipyard.get_run(run_id)
    assert record.status == status
    assert len(shipyard.get_metric_history(run_id, "loss")) == 1234
    if status == "failed":
        assert "RuntimeError: boom" in (record.error or "")


def test_git_commit_and_dirty_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.tracking import environment

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "train.py").write_text("print('v1')\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    shipyard.init_workspace(repo)
    monkeypatch.chdir(repo)
    environment._git_cache.clear()
    with shipyard.start_run() as clean:
        pass
    (repo / "train.py").write_text("print('v2')\n")
    environment._git_cache.clear()
    with shipyard.start_run() as dirty:
        pass
    assert (shipyard.get_run(clean.run_id).git_commit, shipyard.get_run(clean.run_id).git_dirty) == (head, False)
    assert (shipyard.get_run(dirty.run_id).git_commit, shipyard.get_run(dirty.run_id).git_dirty) == (head, True)


def test_artifacts_round_trip_and_tampering_is_caught(backend_workspace: Path, tmp_path: Path) -> None:
    source = tmp_path / "report.txt"
    source.write_text("precision 0.9\n")
    with shipyard.start_run() as run:
        run.log_artifact(source)
        run.log_artifact(b"\x00\x01binary", name="model/weights.bin")
        run.log_artifact(io.BytesIO(b"streamed"), name="stream.txt")
    record = shipyard.get_run(run.run_id)
    assert [a.path for a in record.artifacts] == ["model/weights.bin", "report.txt", "stream.txt"]
    out = shipyard.download_artifact(run.run_id, "report.txt", tmp_path / "out")
    assert out == tmp_path / "out" / "report.txt" or out.is_file()
    assert out.read_text() == "precision 0.9\n"
    ctx = open_context()
    weights = next(a for a in record.artifacts if a.path == "model/weights.bin")
    blob = Path(ctx.blobs._path(weights.digest))
    blob.write_bytes(b"\x00\x01binarY")
    with pytest.raises(IntegrityError, match=weights.digest):
        shipyard.download_artifact(run.run_id, "model/weights.bin", tmp_path / "w.bin")
    assert not (tmp_path / "w.bin").exists()
    with pytest.raises(NotFoundError, match="Did you mean 'report.txt'"):
        shipyard.download_artifact(run.run_id, "reprot.txt", tmp_path)
    # a path ending in a slash is a folder to put it in, made if it is not there yet
    into = shipyard.download_artifact(run.run_id, "stream.txt", f"{tmp_path}/new/")
    assert into == tmp_path / "new" / "stream.txt" and into.read_text() == "streamed"


def test_unknown_and_prefixed_run_ids(backend_workspace: Path) -> None:
    with shipyard.start_run() as run:
        pass
    assert shipyard.get_run(run.run_id[:8]).run_id == run.run_id
    typo = run.run_id[:-1] + ("0" if run.run_id[-1] != "0" else "1")
    with pytest.raises(NotFoundError, match=f"Did you mean '{run.run_id}'"):
        shipyard.get_run(typo)
    with pytest.raises(NotFoundError, match="No run with id 'zzzz'"):
        shipyard.get_run("zzzz")


def test_deleted_runs_take_no_writes_and_can_be_restored(backend_workspace: Path) -> None:
    run = shipyard.start_run("to-delete")
    run.log_metric("m", 1.0)
    run.flush()
    shipyard.delete_run(run.run_id)
    assert shipyard.search_runs() == []
    with pytest.raises(ConflictError, match="is deleted"):
        run.log_param("p", 1)
    from shipyard.tracking.runs import restore_run

    restore_run(open_context(), run.run_id)
    run.end()
    assert [r.run_id for r in shipyard.search_runs()] == [run.run_id]
    shipyard.delete_run(run.run_id, purge=True)
    with pytest.raises(NotFoundError):
        shipyard.get_run(run.run_id)
    assert shipyard.verify_audit().ok
    actions = [e.action for e in shipyard.audit_log(object_id=run.run_id, newest_first=False)]
    assert actions == ["run.create", "run.log_metrics", "run.delete", "run.restore", "run.finish", "run.purge"]


def test_outside_a_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(shipyard.WorkspaceNotFoundError, match="shipyard init"):
        shipyard.start_run()


def test_points_are_committed_between_calls(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("SHIPYARD_TRACKING_FLUSH_INTERVAL_SECONDS", "0.1")
    with shipyard.start_run() as run:
        run.log_metric("heartbeat", 1.0)
        run.flush()
        run.log_metric("heartbeat", 2.0)  # logged right after a flush: it waits in the buffer
        deadline = time.monotonic() + 30
        stored: list[object] = []
        while time.monotonic() < deadline and len(stored) < 2:
            time.sleep(0.05)
            try:
                stored = shipyard.get_metric_history(run.run_id, "heartbeat")
            except shipyard.NotFoundError:
                stored = []
        assert [p.value for p in stored] == [1.0, 2.0]  # committed while the run is still open
        assert run.background_error is None
