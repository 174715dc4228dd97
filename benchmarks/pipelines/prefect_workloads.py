"""Prefect side of the pipeline benchmark.

Run with ``benchmarks/.venv-peers/bin/python`` (see ``setup_peers.sh``).
Prefect runs locally in its ephemeral mode: ``PREFECT_API_URL`` is unset, so
the first client call starts a temporary Prefect server (a uvicorn
subprocess on 127.0.0.1, SQLite database under ``PREFECT_HOME``, which is a
folder inside ``--workdir``). Analytics are off
(``PREFECT_SERVER_ANALYTICS_ENABLED=false``, ``DO_NOT_TRACK=1``) and the log
level is ``WARNING``; nothing leaves the machine. The result is printed as
one ``BENCH_RESULT {json}`` line on stdout.

Workload ``run``: for each round and each shape (``chain``: task i takes the
previous output and returns x + 1; ``fanin``: n independent tasks ``inc(i)``
and a final ``total`` of their outputs), one ``@flow`` per variant:

- ``direct``: the flow calls the ``@task``s directly (each call runs the task
  in the flow's thread and returns its value);
- ``submit``: the flow calls ``task.submit(...)`` on the default
  ``ThreadPoolTaskRunner``, passes the futures downstream and waits for the
  last result.

The clock covers the flow call; the time spent inside the flow function
(its task calls only, without the flow run's own start and end) is kept
too. Prefect records task-run states through
events that its server processes in the background, so after each flow the
worker also measures how long it takes until the server lists every task
run of that flow as ``Completed`` ("recorded"), and before each flow it
waits until the server process is idle again, so that no flow pays for the
previous one's backlog. Interpreter start-up, the import of Prefect, the
start of the temporary server and a first two-task flow (``warmup``) are
timed on their own, before any timed flow.
"""

from __future__ import annotations

import time

STARTED_AT = time.time()

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import _shared
from _shared import (
    WARMUP_X,
    emit,
    expected_value,
    floor,
    median,
    overhead_per_step,
    parse_args,
    step_count,
)

ARGS = parse_args()
# Defaults for a run outside the driver (the driver sets the same values).
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_HOME", str(Path(ARGS.workdir) / "prefect-home"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

_t = time.perf_counter()
import prefect
from prefect import flow, task

IMPORT_SECONDS = time.perf_counter() - _t

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

VARIANTS = ("direct", "submit")
#: How long to wait for the server to list every task run of a flow (then the check fails).
RECORD_TIMEOUT_S = 60.0
#: Idle: the server process used less than this share of one CPU over QUIET_WINDOW_S, twice in a row.
QUIET_CPU_SHARE = 0.05
QUIET_WINDOW_S = 0.25
QUIET_TIMEOUT_S = 20.0
POLL_S = 0.1

inc = task(_shared.inc)
total = task(_shared.total)


#: Seconds spent inside the body of the last flow that ran (its task calls, not the flow's own start and end).
BODY: dict[str, float] = {}


def make_flows(n: int) -> dict[tuple[str, str], Any]:
    @flow(name="chain-direct")
    def chain_direct():
        t0 = time.perf_counter()
        x = 0
        for _ in range(n):
            x = inc(x)
        BODY["seconds"] = time.perf_counter() - t0
        return x

    @flow(name="chain-submit")
    def chain_submit():
        t0 = time.perf_counter()
        x = 0
        for _ in range(n):
            x = inc.submit(x)
        value = x.result()
        BODY["seconds"] = time.perf_counter() - t0
        return value

    @flow(name="fanin-direct")
    def fanin_direct():
        t0 = time.perf_counter()
        value = total([inc(i) for i in range(n)])
        BODY["seconds"] = time.perf_counter() - t0
        return value

    @flow(name="fanin-submit")
    def fanin_submit():
        t0 = time.perf_counter()
        futures = [inc.submit(i) for i in range(n)]
        value = total.submit(futures).result()
        BODY["seconds"] = time.perf_counter() - t0
        return value

    return {("chain", "direct"): chain_direct, ("chain", "submit"): chain_submit,
            ("fanin", "direct"): fanin_direct, ("fanin", "submit"): fanin_submit}


@flow(name="warmup")
def warmup():
    t0 = time.perf_counter()
    value = total([inc(WARMUP_X)])
    BODY["seconds"] = time.perf_counter() - t0
    return value


# --------------------------------------------------------------------------- the temporary server


def server_pid() -> int | None:
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:
        return None
    for instance in list(SubprocessASGIServer._instances.values()):
        proc = getattr(instance, "server_process", None)
        if proc is not None and proc.poll() is None:
            return proc.pid
    return None


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def wait_quiet() -> float:
    """Wait until the server process is idle; returns the seconds waited."""
    t0 = time.perf_counter()
    pid = server_pid()
    if pid is None or _cpu_seconds(pid) is None:
        time.sleep(2.0)
        return time.perf_counter() - t0
    calm = 0
    while calm < 2 and time.perf_counter() - t0 < QUIET_TIMEOUT_S:
        before = _cpu_seconds(pid)
        time.sleep(QUIET_WINDOW_S)
        after = _cpu_seconds(pid)
        if before is None or after is None:
            break
        calm = calm + 1 if (after - before) < QUIET_CPU_SHARE * QUIET_WINDOW_S else 0
    return time.perf_counter() - t0


def wait_recorded(client: Any, flow_run_id: Any, expected: int) -> tuple[int, float]:
    """Seconds until the server lists `expected` completed task runs for the flow run."""
    t0 = time.perf_counter()
    done = 0
    flt = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    while True:
        runs = []
        offset = 0
        while True:  # the API returns at most 200 rows per call
            page = client.read_task_runs(flow_run_filter=flt, limit=200, offset=offset)
            runs.extend(page)
            if len(page) < 200:
                break
            offset += 200
        done = sum(1 for r in runs if r.state is not None and r.state.is_completed())
        if done >= expected or time.perf_counter() - t0 > RECORD_TIMEOUT_S:
            return done, time.perf_counter() - t0
        time.sleep(POLL_S)


def timed_flow(client: Any, fn: Any, shape: str, n: int) -> dict[str, Any]:
    quiet = wait_quiet()
    BODY.clear()
    t0 = time.perf_counter()
    state = fn(return_state=True)
    seconds = time.perf_counter() - t0
    body = BODY.get("seconds")
    recorded, record_s = wait_recorded(client, state.state_details.flow_run_id, step_count(shape, n))
    value = state.result() if state.is_completed() else None
    ok = state.is_completed() and value == expected_value(shape, n) and recorded == step_count(shape, n)
    return {"seconds": seconds, "body_seconds": body, "recorded_after_s": record_s, "recorded_seconds": seconds + record_s,
            "value": value, "state": state.type.value, "recorded_task_runs": recorded,
            "expected_task_runs": step_count(shape, n), "quiet_wait_s": quiet, "verified": bool(ok)}


def w_run(args) -> dict[str, Any]:
    n = args.steps
    shapes = [s for s in args.shapes.split(",") if s]
    floors = {shape: floor(shape, n) for shape in shapes}
    flows = make_flows(n)

    with ExitStack() as stack:
        t0 = time.perf_counter()
        # In ephemeral mode the first client starts the temporary server (and creates its database).
        client = stack.enter_context(get_client(sync_client=True))
        client.api_healthcheck()
        server_start = time.perf_counter() - t0
        first = timed_flow(client, warmup, "small", 1)
        if first["value"] != WARMUP_X + 1:
            raise RuntimeError(f"warm-up flow returned {first['value']!r}")

        small: list[dict[str, Any]] = []
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {s: {v: [] for v in VARIANTS} for s in shapes}
        started = time.perf_counter()
        for rnd in range(args.rounds):
            if rnd and args.budget_seconds is not None and time.perf_counter() - started > args.budget_seconds:
                break  # bounded: fewer rounds (reported as "rounds_done")
            small.append({"round": rnd, **timed_flow(client, warmup, "small", 1)})
            order = VARIANTS if rnd % 2 == 0 else tuple(reversed(VARIANTS))
            for shape in shapes:
                for variant in order:
                    r = timed_flow(client, flows[(shape, variant)], shape, n)
                    runs[shape][variant].append({"round": rnd, **r})
        wait_quiet()  # let the server finish its backlog before it is stopped

    shapes_out: dict[str, Any] = {}
    for shape in shapes:
        steps, floor_s = step_count(shape, n), floors[shape]["seconds"]
        variants = {}
        for variant, rows in runs[shape].items():
            seconds = median([r["seconds"] for r in rows])
            recorded = median([r["recorded_seconds"] for r in rows])
            body = median([r["body_seconds"] for r in rows if r["body_seconds"] is not None])
            variants[variant] = {"seconds": seconds, "timings": [r["seconds"] for r in rows],
                                 "recorded_seconds": recorded, "body_seconds": body,
                                 "body_per_step_s": overhead_per_step(body, floor_s, steps),
                                 "per_step_overhead_s": overhead_per_step(seconds, floor_s, steps),
                                 "verified": all(r["verified"] for r in rows), "runs": rows}
        best = min(VARIANTS, key=lambda v: variants[v]["seconds"])
        shapes_out[shape] = {"steps": steps, "floor": floors[shape], "variants": variants, "best": best}
    small_s = median([r["seconds"] for r in small])
    return {
        "n": n,
        "rounds": args.rounds,
        "rounds_done": len(small),
        "small": {"steps": step_count("small", 1), "seconds": small_s, "timings": [r["seconds"] for r in small],
                  "recorded_seconds": median([r["recorded_seconds"] for r in small]),
                  "verified": all(r["verified"] for r in small), "runs": small},
        "shapes": shapes_out,
        "startup": {"import_seconds": IMPORT_SECONDS, "server_start_seconds": server_start,
                    "first_flow_seconds": first["seconds"], "first_flow_recorded_seconds": first["recorded_seconds"]},
        "task_runner": "ThreadPoolTaskRunner (default) for .submit; direct calls run in the flow's thread",
        "verified": all(v["verified"] for s in shapes_out.values() for v in s["variants"].values())
                    and all(r["verified"] for r in small),
    }


def main() -> int:
    if ARGS.workload != "run":
        raise SystemExit("the Prefect worker has only the 'run' workload")
    result = w_run(ARGS)
    if ARGS.spawned_at is not None:
        result["startup"]["interpreter_seconds"] = STARTED_AT - ARGS.spawned_at
    result.update(tool="prefect", version=prefect.__version__, workload=ARGS.workload,
                  python=sys.version.split()[0],
                  settings={k: v for k, v in sorted(os.environ.items()) if k.startswith("PREFECT_") or k == "DO_NOT_TRACK"})
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
