"""Heartbeats and lost runs: a running run whose process died, or went silent, is reported `lost`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, update

import shipyard
from shipyard.context import Context, open_context
from shipyard.errors import ConfigError
from shipyard.store.db import now_ms
from shipyard.store.tables import runs as runs_table
from shipyard.tracking import liveness, runs
from tests.cli.helpers import cli, cli_json

STARTS_AND_WAITS = """
import sys, shipyard
run = shipyard.start_run("doomed")
run.log_metric("loss", 0.5)
run.flush()
print(run.run_id, flush=True)
sys.stdin.read()  # until the test kills it
"""


def _set(ctx: Context, run_id: str, **values: Any) -> None:
    """Change a run's row behind the services' back, as another host or a crash would leave it."""
    with ctx.store.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(**values))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: no process has this id now
    return proc.pid


def test_a_run_whose_process_was_killed_is_lost(
    backend_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = subprocess.Popen([sys.executable, "-c", STARTS_AND_WAITS], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = (proc.stdout.readline() if proc.stdout else "").strip()
        assert run_id, proc.stderr.read() if proc.stderr else ""
        assert shipyard.get_run(run_id).status == "running"  # alive: its pid exists on this host
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)  # reaped, so its pid is free (a zombie would still answer)

    record = shipyard.get_run(run_id)
    assert record.status == "lost"
    assert (record.host, record.pid, record.metrics) == (socket.gethostname(), proc.pid, {"loss": 0.5})
    listed = cli_json(capsys, "runs", "list")
    assert [(r["run_id"], r["status"]) for r in listed["runs"]] == [(run_id, "lost")]
    code, out, _ = cli(capsys, "runs", "list")
    assert code == 0 and "lost" in out and "running" not in out
    code, out, _ = cli(capsys, "runs", "show", run_id[:8])
    assert code == 0 and "status   lost" in out and f"pid {proc.pid}" in out
    frame = shipyard.search_runs(output="pandas")
    assert list(frame["status"]) == ["lost"]


def test_a_silent_run_from_another_host_is_lost_after_the_grace_period(
    backend_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = open_context()
    silent = runs.create_run(ctx, name="silent").run_id
    quiet = runs.create_run(ctx, name="quiet").run_id
    now = now_ms()
    # Another host: its pid means nothing here, only its heartbeat counts.
    _set(ctx, silent, host="gpu-box-7", pid=_dead_pid(), heartbeat=now - 301_000)
    _set(ctx, quiet, host="gpu-box-7", pid=_dead_pid(), heartbeat=now - 200_000)
    assert shipyard.get_run(silent).status == "lost"
    assert shipyard.get_run(quiet).status == "running"  # within the default 300 s
    assert {r.name: r.status for r in shipyard.search_runs()} == {"silent": "lost", "quiet": "running"}

    monkeypatch.setenv("SHIPYARD_TRACKING_LOST_AFTER_SECONDS", "600")
    assert shipyard.get_run(silent).status == "running"


def test_filters_and_ordering_see_the_status_a_reader_sees(backend_workspace: Path) -> None:
    ctx = open_context()
    with shipyard.start_run("done"):
        pass
    alive = shipyard.start_run("alive")
    lost = runs.create_run(ctx, name="lost").run_id
    crashed = runs.create_run(ctx, name="crashed").run_id
    _set(ctx, lost, heartbeat=now_ms() - 3_600_000)
    _set(ctx, crashed, pid=_dead_pid())  # this host, fresh heartbeat, but the process is gone

    def names(filter: str | None = None, order_by: str | None = None) -> list[str]:
        return [r.name for r in shipyard.search_runs(filter, order_by)]

    assert sorted(names("status = 'running'")) == ["alive"]
    assert sorted(names("status = 'lost'")) == ["crashed", "lost"]
    assert sorted(names("status in ('lost', 'finished')")) == ["crashed", "done", "lost"]
    assert sorted(names("status != 'running'")) == ["crashed", "done", "lost"]
    assert sorted(names("not status = 'lost' and name like '%e%'")) == ["alive", "done"]
    assert names("status = 'finished'") == ["done"]
    ordered = names(order_by="status")  # finished < lost < running
    assert ordered[0] == "done" and set(ordered[1:3]) == {"crashed", "lost"} and ordered[3] == "alive"
    alive.end()


def test_a_live_run_is_running_and_its_heartbeat_advances(workspace: Path) -> None:
    ctx = open_context()
    run = shipyard.start_run("alive")
    record = shipyard.get_run(run.run_id)
    assert record.status == "running"
    assert (record.host, record.pid, record.heartbeat) == (socket.gethostname(), os.getpid(), record.start_time)
    assert run.run_id in liveness.held()
    events = len(shipyard.audit_log(limit=1000))

    liveness.beat_held(now=record.start_time + 45_000)
    assert shipyard.get_run(run.run_id).heartbeat == record.start_time + 45_000
    # A run that went silent (a suspended laptop, an unreachable store) comes back with its next heartbeat.
    _set(ctx, run.run_id, heartbeat=now_ms() - 3_600_000)
    assert shipyard.get_run(run.run_id).status == "lost"
    liveness.beat_held()
    assert shipyard.get_run(run.run_id).status == "running"
    assert len(shipyard.audit_log(limit=1000)) == events  # liveness is not a change of the record

    run.end()
    assert run.run_id not in liveness.held()
    ended = shipyard.get_run(run.run_id).heartbeat
    liveness.beat(ctx, [run.run_id], now=now_ms() + 60_000)  # an ended run's heartbeat stays put
    assert shipyard.get_run(run.run_id).heartbeat == ended


def test_all_open_runs_share_one_heartbeat_statement(workspace: Path) -> None:
    ctx = open_context()
    outer = shipyard.start_run("outer")
    inner = shipyard.start_run("inner", nested=True)
    step = runs.create_run(ctx, name="step")  # opened by the services, as a pipeline does
    liveness.hold(ctx, step.run_id)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE")):
            statements.append(" ".join(statement.split()[:2]).upper())

    event.listen(ctx.store.engine, "before_cursor_execute", record)
    try:
        liveness.beat_held(now=now_ms() + 1000)
    finally:
        event.remove(ctx.store.engine, "before_cursor_execute", record)
    assert statements == ["UPDATE RUNS"]  # one statement for all three, and no audit event
    assert {shipyard.get_run(r).heartbeat for r in (outer.run_id, inner.run_id, step.run_id)} == {
        shipyard.get_run(outer.run_id).heartbeat
    }
    inner.end()
    outer.end()
    liveness.release(step.run_id)


def test_the_background_thread_sends_heartbeats(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_TRACKING_HEARTBEAT_SECONDS", "0.05")
    with shipyard.start_run() as run:
        started = shipyard.get_run(run.run_id).heartbeat or 0
        deadline = time.monotonic() + 30
        while (shipyard.get_run(run.run_id).heartbeat or 0) <= started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (shipyard.get_run(run.run_id).heartbeat or 0) > started


def test_the_grace_period_must_outlast_two_heartbeats(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_TRACKING_HEARTBEAT_SECONDS", "200")
    with pytest.raises(ConfigError) as error:
        open_context()
    assert "tracking.lost_after_seconds = 300" in str(error.value)
    assert "more than twice tracking.heartbeat_seconds (200)" in str(error.value)


def test_runs_from_before_heartbeats_are_never_lost(workspace: Path) -> None:
    ctx = open_context()
    old = runs.create_run(ctx, name="old").run_id
    _set(ctx, old, host=None, pid=None, heartbeat=None)
    assert shipyard.get_run(old).status == "running"
    assert [r.name for r in shipyard.search_runs("status = 'running'")] == ["old"]
    assert json.loads(json.dumps(shipyard.get_run(old).to_dict()))["heartbeat"] is None


def test_a_forked_child_keeps_none_of_its_parents_runs_alive(workspace: Path) -> None:
    with shipyard.start_run() as run:
        assert liveness.held() == [run.run_id]
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what it would heartbeat, and leave without running exit hooks
            os.write(write_end, json.dumps(liveness.held()).encode())
            os._exit(0)
        os.close(write_end)
        seen = json.loads(os.read(read_end, 4096))
        os.close(read_end)
        os.waitpid(pid, 0)
    assert seen == []
