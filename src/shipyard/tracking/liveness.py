"""Run liveness: the heartbeat this process sends for the runs it holds open, and the rule that reports
a running run whose process is gone as `lost` (derived when read; the stored status stays `running`)."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, and_, case, or_, select, update

from shipyard.store.db import now_ms
from shipyard.store.tables import runs

if TYPE_CHECKING:
    from shipyard.context import Context

HOST = socket.gethostname()
LOST = "lost"
# The background thread wakes at least this often, so buffered metric points are committed on time
# (tracking.flush_interval_seconds) even when heartbeats are rare; and at most this often.
_WAKE_MAX, _WAKE_MIN = 1.0, 0.05
_CHUNK = 500  # ids per IN (...), well under every driver's parameter limit


# -- the rule ----------------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host. An uncertain answer counts as alive:
    a run is only called lost on evidence."""
    if pid <= 0 or sys.platform == "win32":  # 0 and -n address process groups; Windows' os.kill terminates
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: the process exists but belongs to another user
        return True
    return True


def is_lost(status: str, host: str | None, pid: int | None, heartbeat: int | None, *,
            now: int, lost_after_seconds: float) -> bool:
    """A running run is lost when its heartbeat is older than the grace period, or when it was started
    on this host by a process that no longer exists. Runs from before heartbeats (no host, pid or
    heartbeat recorded) are never called lost."""
    if status != "running":
        return False
    if heartbeat is not None and heartbeat < now - lost_after_seconds * 1000:
        return True
    return host == HOST and pid is not None and not pid_alive(pid)


def status_column(conn: Connection, *, now: int, lost_after_seconds: float) -> ColumnElement[Any]:
    """The status a reader sees, as a SQL expression over runs: `lost` where is_lost() holds, else the
    stored status. The stale-heartbeat half is compared in the database; whether a process of this
    host is alive is asked of the operating system, for the few running runs of this host whose
    heartbeat is still recent."""
    cutoff = now - lost_after_seconds * 1000
    local = conn.execute(
        select(runs.c.run_id, runs.c.pid).where(
            runs.c.status == "running", runs.c.host == HOST, runs.c.pid.is_not(None),
            or_(runs.c.heartbeat.is_(None), runs.c.heartbeat >= cutoff),
        )
    )
    dead = [run_id for run_id, pid in local if not pid_alive(pid)]
    gone: ColumnElement[bool] = runs.c.heartbeat < cutoff
    if dead:
        gone = or_(gone, *(runs.c.run_id.in_(dead[i : i + _CHUNK]) for i in range(0, len(dead), _CHUNK)))
    return case((and_(runs.c.status == "running", gone), LOST), else_=runs.c.status)


# -- the heartbeat -----------------------------------------------------------------------------------


def beat(ctx: Context, run_ids: Sequence[str], *, now: int | None = None) -> None:
    """Set the heartbeat of those of `run_ids` that are still running to `now`, in one UPDATE.

    Written in its own short transaction without an audit event: a heartbeat says the owning process
    is alive and changes nothing about the run's record, while auditing it would add an event per
    run every few seconds and bury the changes the trail exists to show."""
    if not run_ids:
        return
    now = now_ms() if now is None else now
    with ctx.store.unaudited() as conn:
        for i in range(0, len(run_ids), _CHUNK):
            conn.execute(
                update(runs)
                .where(runs.c.run_id.in_(list(run_ids[i : i + _CHUNK])), runs.c.status == "running")
                .values(heartbeat=now)
            )


@dataclass
class _Held:
    ctx: Context
    tick: Callable[[], None] | None
    due: float  # time.monotonic() of its next heartbeat


# Process-wide by nature: the runs this process owns and keeps alive, whichever thread or task opened them.
_held: dict[str, _Held] = {}
_lock = threading.Lock()
_thread: threading.Thread | None = None
_failing = False  # the last heartbeat failed; reported once per streak, not every interval


def _after_fork_in_child() -> None:
    """A forked child owns none of its parent's runs, and must not inherit a lock that the parent's
    heartbeat thread happened to hold at the fork (no thread would ever release it)."""
    global _lock, _thread, _failing
    _lock = threading.Lock()
    _thread, _failing = None, False
    _held.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def hold(ctx: Context, run_id: str, tick: Callable[[], None] | None = None) -> None:
    """Keep `run_id` alive from this process until release(). `tick` (committing buffered metric
    points, say) is called each time the background thread wakes; it must not raise."""
    global _thread
    interval = ctx.workspace.settings.tracking.heartbeat_seconds
    with _lock:
        _held[run_id] = _Held(ctx, tick, time.monotonic() + interval)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="shipyard-heartbeat", daemon=True)
            _thread.start()


def release(run_id: str) -> None:
    with _lock:
        _held.pop(run_id, None)


def held() -> list[str]:
    """The ids of the runs this process keeps alive."""
    with _lock:
        return list(_held)


def forget_all() -> None:
    """Stop keeping any run alive (tests: a failed test must not leave runs for the next)."""
    with _lock:
        _held.clear()


def beat_held(*, now: int | None = None, only_due: bool = False) -> None:
    """One heartbeat for every run this process holds: one UPDATE per store. With only_due, only
    stores where some run's heartbeat interval has passed. Raises the first store error, after
    trying every store."""
    wall = time.monotonic()
    with _lock:
        groups: dict[int, list[tuple[str, _Held]]] = {}
        for run_id, h in _held.items():
            groups.setdefault(id(h.ctx.store), []).append((run_id, h))
    error: Exception | None = None
    for members in groups.values():
        if only_due and all(h.due > wall for _, h in members):
            continue
        ctx = members[0][1].ctx
        try:
            beat(ctx, [run_id for run_id, _ in members], now=now)
        except Exception as exc:  # noqa: BLE001 - the other stores still get theirs
            error = error or exc
            continue
        due = wall + ctx.workspace.settings.tracking.heartbeat_seconds
        with _lock:
            for _, h in members:
                h.due = due
    if error is not None:
        raise error


def _loop() -> None:
    global _thread, _failing
    while True:
        with _lock:
            mine = list(_held.values())
            if not mine:
                _thread = None
                return
        for h in mine:
            if h.tick is not None:
                try:
                    h.tick()
                except Exception:  # noqa: BLE001, S110 - a tick records its own errors; the heartbeat goes on
                    pass
        try:
            beat_held(only_due=True)
            _failing = False
        except Exception as exc:  # noqa: BLE001 - retried at the next interval
            if not _failing:
                grace = mine[0].ctx.workspace.settings.tracking.lost_after_seconds
                print(f"shipyard: could not send the heartbeat of {len(mine)} open run(s): {exc} "
                      f"They will be listed as lost after {grace:g} s unless a later heartbeat gets through.",
                      file=sys.stderr)
            _failing = True
        settings = [h.ctx.workspace.settings.tracking for h in mine]
        wake = min(min(s.flush_interval_seconds, s.heartbeat_seconds) for s in settings)
        time.sleep(min(max(wake, _WAKE_MIN), _WAKE_MAX))
