"""The prediction log: batches with one store row each, on SQLite and PostgreSQL; sampling; and every way a
request could be lost, forced: a full queue, a failing store write, close() running out of time, a process
killed with requests spilled, and one killed between a batch and its progress mark."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from shipyard.context import Context, open_context
from shipyard.errors import NotFoundError, ValidationError
from shipyard.serving.batches import build_batches
from shipyard.serving.predlog import Prediction, PredictionLog, read_predictions, sampled
from shipyard.store.gc import collect_garbage, referenced_digests
from shipyard.store.tables import prediction_batches
from tests.serving.conftest import training_frame

FRAME = pd.DataFrame({"age": [30, 52, 41], "income": [65000.0, 31000.5, 48000.0]})


def prediction(i: int, *, rows: int = 1, version: int = 1, proba: bool = False, when: float | None = None,
               model: str = "credit") -> Prediction:
    inputs = FRAME.iloc[: rows].reset_index(drop=True)
    outputs = np.array(["yes", "no", "yes"][:rows], dtype=object)
    probabilities = np.tile([[0.25, 0.75]], (rows, 1)) if proba else None
    return Prediction(f"req-{i}", when if when is not None else 1_700_000_000.0 + i, model, version, "infer",
                      inputs, outputs, probabilities, 2.5)


def wait_for(log: PredictionLog, condition: Callable[[], bool]) -> None:
    """Wait until the writer has made `condition` true; the timeout only guards against a hang."""
    with log.progress:
        assert log.progress.wait_for(condition, timeout=120), "the writer never got there"


def batch_rows(ctx: Context) -> list[Any]:
    with ctx.store.read() as conn:
        return list(conn.execute(select(prediction_batches).order_by(prediction_batches.c.id)))


@pytest.fixture
def registered(backend_workspace: Path) -> Iterator[Context]:
    """credit/1 and credit/2 registered, on each metadata backend."""
    import shipyard
    from sklearn.linear_model import LogisticRegression

    x, y = training_frame()
    for c in (1.0, 0.1):
        shipyard.models.register("credit", LogisticRegression(C=c).fit(x, y), input_example=x.head())
    yield open_context(backend_workspace)


@pytest.fixture
def sqlite_registered(workspace: Path) -> Context:
    """credit/1 on SQLite, with a short busy timeout so a locked database fails a write quickly."""
    import shipyard
    from sklearn.linear_model import LogisticRegression

    x, y = training_frame()
    shipyard.models.register("credit", LogisticRegression().fit(x, y), input_example=x.head())
    return open_context(workspace, {"store.busy_timeout_ms": "200"})


class StoreLock:
    """Another connection holding the SQLite store's write lock: every write of the log fails meanwhile."""

    def __init__(self, ctx: Context) -> None:
        from sqlalchemy.engine import make_url

        database = make_url(ctx.workspace.store_url).database
        assert database and Path(database).is_file()
        self.conn = sqlite3.connect(database, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def test_requests_are_written_as_one_blob_and_one_row_per_version_and_read_back_typed(registered: Context) -> None:
    log = PredictionLog(registered, flush_seconds=3600)
    for i in range(6):
        log.record(prediction(i, rows=1 + i % 3, version=1 + i % 2, proba=i % 3 == 0))
    assert log.depth == 6 and log.written == 0 and batch_rows(registered) == []
    log.start()
    assert log.flush(timeout=120)
    assert log.depth == 0 and log.written == 6 and log.lag_seconds == 0
    log.close()

    rows = batch_rows(registered)
    assert [(r.model, r.version, r.requests, r.rows) for r in rows] == [("credit", 1, 3, 6), ("credit", 2, 3, 6)]
    assert rows[0].first_timestamp == 1_700_000_000_000 and rows[0].last_timestamp == 1_700_000_004_000
    frame = read_predictions(registered, "credit")
    assert list(frame.columns) == ["request_id", "row", "timestamp", "version", "route", "latency_ms", "age",
                                   "income", "prediction", "probabilities"]
    assert len(frame) == 12 and frame["age"].dtype == np.int64 and frame["income"].dtype == np.float64
    first = frame[frame["request_id"] == "req-0"]
    assert first["row"].tolist() == [0] and first["prediction"].tolist() == ["yes"]
    assert first["probabilities"].iloc[0].tolist() == [0.25, 0.75]
    assert str(first["timestamp"].iloc[0]) == "2023-11-14 22:13:20+00:00"
    three = frame[frame["request_id"] == "req-2"]
    assert three["row"].tolist() == [0, 1, 2] and three["age"].tolist() == [30, 52, 41]
    assert three["probabilities"].isna().all()  # req-2 did not ask for probabilities
    assert read_predictions(registered, "credit", version=2)["request_id"].unique().tolist() == ["req-1", "req-3",
                                                                                               "req-5"]
    assert read_predictions(registered, "credit", since=1_700_000_004.0)["request_id"].unique().tolist() == [
        "req-4", "req-5"]


def test_prediction_blobs_count_as_referenced_for_garbage_collection(registered: Context) -> None:
    log = PredictionLog(registered)
    log.record(prediction(1))
    log.close()
    [row] = batch_rows(registered)
    assert row.digest in referenced_digests(registered.store)
    report = collect_garbage(registered.store, registered.blobs, "tester", grace_seconds=0)
    assert row.digest not in report.removed
    assert read_predictions(registered, "credit")["request_id"].tolist() == ["req-1"]


def test_a_flush_writes_at_most_batch_rows_rows_per_blob(sqlite_registered: Context) -> None:
    log = PredictionLog(sqlite_registered, batch_rows=4, flush_seconds=3600)
    for i in range(10):
        log.record(prediction(i))
    log.close()
    assert [r.rows for r in batch_rows(sqlite_registered)] == [4, 4, 2]


def test_sampling_is_decided_by_the_request_id(sqlite_registered: Context) -> None:
    ids = [f"id-{i}" for i in range(400)]
    log = PredictionLog(sqlite_registered, sample_rate=0.25, flush_seconds=3600)
    for i, request_id in enumerate(ids):
        log.record(Prediction(request_id, 1_700_000_000.0 + i, "credit", 1, "predict", FRAME.head(1),
                              np.array(["yes"]), None, 1.0))
    log.close()
    logged = set(read_predictions(sqlite_registered, "credit")["request_id"])
    assert logged == {i for i in ids if sampled(i, 0.25)}
    assert 60 < len(logged) < 140  # about a quarter of these 400 fixed ids
    assert all(sampled(i, 1.0) for i in ids)


def test_a_full_queue_spills_to_disk_and_the_writer_drains_it(sqlite_registered: Context, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    log = PredictionLog(sqlite_registered, max_queue=2, flush_seconds=3600, spill_dir=spill)
    for i in range(7):
        log.record(prediction(i, when=time.time() - 60))
    assert log.depth == 7 and log.lag_seconds >= 60
    assert len(list(spill.glob("*.spill"))) == 1  # five requests wait on disk
    log.start()
    assert log.flush(timeout=120)
    assert log.depth == 0 and log.written == 7
    assert list(spill.glob("*.spill*")) == []
    log.close()
    frame = read_predictions(sqlite_registered, "credit")
    assert sorted(frame["request_id"]) == sorted(f"req-{i}" for i in range(7))


def test_a_failed_store_write_is_retried_and_lands_once(sqlite_registered: Context) -> None:
    log = PredictionLog(sqlite_registered, flush_seconds=3600)
    entries = [prediction(i) for i in range(3)]
    [batch] = build_batches(entries)
    lock = StoreLock(sqlite_registered)
    try:
        for entry in entries:
            log.record(entry)
        log.start()
        log.flush(timeout=0)  # wake the writer now
        wait_for(log, lambda: log.failures >= 1)
        assert "locked" in (log.last_error or "")
        assert log.depth == 3 and log.written == 0
        # The blob went first; no row names it yet, and the requests are still held.
        assert sqlite_registered.blobs.exists(hashlib.sha256(batch.data).hexdigest())
    finally:
        lock.release()
    assert log.flush(timeout=120)
    log.close()
    [row] = batch_rows(sqlite_registered)
    assert row.digest == hashlib.sha256(batch.data).hexdigest() and row.requests == 3
    assert read_predictions(sqlite_registered, "credit")["request_id"].tolist() == ["req-0", "req-1", "req-2"]


def test_close_that_runs_out_of_time_spills_the_rest_for_the_next_start(sqlite_registered: Context,
                                                                        tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    lock = StoreLock(sqlite_registered)
    try:
        log = PredictionLog(sqlite_registered, max_queue=3, flush_seconds=3600, spill_dir=spill)
        for i in range(5):
            log.record(prediction(i))
        log.start()
        log.close(timeout=0)
        assert log.written == 0
        log.close()  # idempotent
        log.record(prediction(5))  # after close: spilled too
    finally:
        lock.release()
    assert batch_rows(sqlite_registered) == []
    assert list(spill.glob("*.spill"))
    after = PredictionLog(sqlite_registered, spill_dir=spill)
    after.start()
    assert after.depth == 6
    after.close()
    assert after.written == 6 and list(spill.glob("*.spill*")) == []
    frame = read_predictions(sqlite_registered, "credit")
    assert sorted(frame["request_id"]) == [f"req-{i}" for i in range(6)]


def test_a_live_process_spill_file_is_not_taken_over(sqlite_registered: Context, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    owner = PredictionLog(sqlite_registered, max_queue=0, flush_seconds=3600, spill_dir=spill)
    owner.record(prediction(1))
    other = PredictionLog(sqlite_registered, spill_dir=spill)
    other.start()
    assert other.depth == 0
    other.close()
    owner.close()
    assert read_predictions(sqlite_registered, "credit")["request_id"].tolist() == ["req-1"]


KILLED = """
import os, signal, sys, time
import numpy as np, pandas as pd
from shipyard.context import open_context
from shipyard.serving.predlog import Prediction, PredictionLog
from shipyard.serving import spill as spill_module

ctx = open_context(sys.argv[1])
mode = sys.argv[3]
log = PredictionLog(ctx, max_queue=0, batch_rows=2, flush_seconds=3600, spill_dir=sys.argv[2])
frame = pd.DataFrame({"age": [30], "income": [65000.0]})
for i in range(5):
    log.record(Prediction(f"req-{i}", 1_700_000_000.0 + i, "credit", 1, "infer", frame, np.array(["yes"]), None, 1.0))
if mode == "after-commit":
    # Die right after the second chunk's batch committed, before the file says it is written.
    mark = spill_module.SpillFile.mark
    calls = []
    def dying_mark(self, *, done, intent):
        calls.append(intent)
        if intent is None and len(calls) == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        mark(self, done=done, intent=intent)
    spill_module.SpillFile.mark = dying_mark
    log.start()
    log.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def run_killed(root: Path, spill: Path, mode: str) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED, str(root), str(spill), mode], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_a_killed_process_leaves_spill_files_that_the_next_start_writes(sqlite_registered: Context,
                                                                         tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    run_killed(sqlite_registered.workspace.root, spill, "before-flush")
    [left] = spill.glob("*.spill")
    with open(left, "ab") as handle:  # a record torn by the kill mid-append
        handle.write(b"\x00\x00\x10\x00\x12\x34")
    log = PredictionLog(sqlite_registered, spill_dir=spill)
    log.start()
    assert log.depth == 5
    log.close()
    assert list(spill.glob("*.spill*")) == []
    assert read_predictions(sqlite_registered, "credit")["request_id"].tolist() == [f"req-{i}" for i in range(5)]


def test_a_process_killed_between_a_batch_and_its_mark_does_not_write_it_twice(sqlite_registered: Context,
                                                                              tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    run_killed(sqlite_registered.workspace.root, spill, "after-commit")
    assert [r.requests for r in batch_rows(sqlite_registered)] == [2, 2]  # the second chunk is stored...
    log = PredictionLog(sqlite_registered, batch_rows=1000, spill_dir=spill)
    log.start()
    assert log.depth == 3  # ...but the file does not say so: it is written again, exactly as before
    log.close()
    assert [r.requests for r in batch_rows(sqlite_registered)] == [2, 2, 1]
    assert read_predictions(sqlite_registered, "credit")["request_id"].tolist() == [f"req-{i}" for i in range(5)]


def test_a_spill_folder_that_cannot_be_written_keeps_requests_in_memory(sqlite_registered: Context,
                                                                        tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    log = PredictionLog(sqlite_registered, max_queue=1, flush_seconds=3600, spill_dir=blocked / "spill")
    for i in range(3):
        log.record(prediction(i))
    assert log.depth == 3
    log.start()
    assert log.flush(timeout=120)
    log.close()
    assert sorted(read_predictions(sqlite_registered, "credit")["request_id"]) == ["req-0", "req-1", "req-2"]


def test_record_never_raises_and_odd_requests_are_still_logged(sqlite_registered: Context) -> None:
    log = PredictionLog(sqlite_registered, flush_seconds=3600)
    log.record(None)  # type: ignore[arg-type]
    assert log.depth == 0
    named = pd.DataFrame({"prediction": [1.5], "row": ["x"], "age": [30]})
    log.record(Prediction("reserved", 1_700_000_000.0, "credit", 1, "invocations", named, np.array(["yes"]), None, 1.0))
    log.record(Prediction("short", 1_700_000_001.0, "credit", 1, "infer", FRAME.head(2), np.array(["yes"]), None, 1.0))
    mixed = pd.DataFrame({"prediction": ["text"], "row": ["y"], "age": ["thirty"]})
    log.record(Prediction("mixed", 1_700_000_002.0, "credit", 1, "predict", mixed, np.array([1]), None, 1.0))
    log.close()
    frame = read_predictions(sqlite_registered, "credit")
    assert frame["request_id"].tolist() == ["reserved", "short", "short", "mixed"]
    assert frame["input:prediction"].iloc[0] == "1.5" and frame["input:row"].iloc[3] == "y"
    assert frame["age"].tolist() == ["30", "30", "52", "thirty"]  # numbers mixed with text are kept as text
    assert frame["prediction"].iloc[1:3].isna().all()  # one prediction for two rows: the rows are kept


def test_a_request_that_cannot_be_stored_is_set_aside_and_the_others_are_written(sqlite_registered: Context,
                                                                                tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    log = PredictionLog(sqlite_registered, flush_seconds=3600, spill_dir=spill)
    twice = pd.DataFrame([[30, 31]], columns=["age", "age"])
    log.record(Prediction("twice", 1_700_000_000.0, "credit", 1, "infer", twice, np.array(["yes"]), None, 1.0))
    log.record(prediction(1))
    log.record(Prediction("when?", "soon", "credit", 1, "infer", FRAME.head(1), np.array(["yes"]), None, 1.0))  # type: ignore[arg-type]
    assert log.depth == 2  # a malformed Prediction is refused (and logged) by record() itself
    log.close()
    assert log.depth == 0
    assert read_predictions(sqlite_registered, "credit")["request_id"].tolist() == ["req-1"]
    [kept] = (spill / "rejected").glob("*.spill")
    assert kept.stat().st_size > 0


def test_record_is_cheap_and_leaves_the_disk_alone_while_the_queue_has_room(sqlite_registered: Context,
                                                                            tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    log = PredictionLog(sqlite_registered, max_queue=1000, flush_seconds=3600, spill_dir=spill)
    entries = [prediction(i) for i in range(1000)]
    for entry in entries:
        log.record(entry)
    assert not spill.exists() and log.depth == 1000
    log.close()
    assert log.written == 1000


@pytest.mark.parametrize(("options", "fragment"), [
    ({"sample_rate": 0}, "sample_rate 0"), ({"sample_rate": 1.5}, "1.5"), ({"sample_rate": "all"}, "'all'"),
    ({"max_queue": -1}, "max_queue -1"), ({"batch_rows": 0}, "batch_rows 0"), ({"batch_rows": 2.5}, "2.5"),
    ({"flush_seconds": 0}, "flush_seconds 0"), ({"flush_seconds": float("inf")}, "inf"), ({"flush_seconds": True}, "True"),
])
def test_bad_options_are_refused_naming_the_value(sqlite_registered: Context, options: dict[str, Any],
                                                  fragment: str) -> None:
    with pytest.raises(ValidationError, match="expected") as caught:
        PredictionLog(sqlite_registered, **options)
    assert fragment in str(caught.value)


def test_reading_names_bad_arguments(sqlite_registered: Context) -> None:
    with pytest.raises(NotFoundError, match="Did you mean 'credit'"):
        read_predictions(sqlite_registered, "credt")
    with pytest.raises(ValidationError, match="'yesterday'"):
        read_predictions(sqlite_registered, "credit", since="yesterday")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="version 0"):
        read_predictions(sqlite_registered, "credit", version=0)
    empty = read_predictions(sqlite_registered, "credit")
    assert empty.empty and "request_id" in empty.columns


def test_lag_reports_the_oldest_unwritten_request(sqlite_registered: Context) -> None:
    log = PredictionLog(sqlite_registered, flush_seconds=3600)
    assert log.lag_seconds == 0
    log.record(prediction(1, when=time.time() - 120))
    assert log.lag_seconds >= 120
    log.close()
    assert log.lag_seconds == 0 and log.depth == 0


def test_recording_from_many_threads_loses_nothing(sqlite_registered: Context, tmp_path: Path) -> None:
    log = PredictionLog(sqlite_registered, max_queue=50, batch_rows=64, flush_seconds=3600, spill_dir=tmp_path / "s")
    log.start()

    def send(worker: int) -> None:
        for i in range(100):
            log.record(prediction(worker * 1000 + i))

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    frame = read_predictions(sqlite_registered, "credit")
    assert len(frame) == 400 and frame["request_id"].is_unique
    with sqlite_registered.store.read() as conn:
        assert conn.execute(select(func.sum(prediction_batches.c.requests))).scalar() == 400

