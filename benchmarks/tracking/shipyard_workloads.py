"""Shipyard side of the tracking benchmark.

Run with the project's virtualenv python. The driver points
``SHIPYARD_WORKSPACE`` at a fresh ``--workdir`` per workload (the workspace is
created here with ``shipyard.init_workspace``). The result is printed as one
``BENCH_RESULT {json}`` line on stdout.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from _shared import (
    EXPERIMENT,
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    SEARCH_ORDER_BY,
    WARMUP_EXPERIMENT,
    ErrorLog,
    batch_points,
    emit,
    expected_matches,
    median,
    non_increasing,
    parse_args,
    retry_start,
    search_dataset,
    wait_for_go,
)

os.environ.setdefault("SHIPYARD_USER", "bench")

import shipyard  # noqa: E402


def setup(workdir: Path, *, init: bool = True, warm: bool = True) -> None:
    """Create the workspace and take lazy imports / engine creation off the clock."""
    os.environ["SHIPYARD_WORKSPACE"] = str(workdir)
    os.chdir(workdir)
    if init and not (workdir / "shipyard.yaml").exists():
        shipyard.init_workspace(workdir)
    if warm:
        with shipyard.start_run(name="warmup", experiment=WARMUP_EXPERIMENT) as run:
            run.log_param("warm", "1")
            run.log_metric("warm", 1.0, step=0)


def stored_points(run_id: str, keys: list[str]) -> int:
    return sum(len(shipyard.get_metric_history(run_id, key)) for key in keys)


def w_log_metric(args) -> dict:
    setup(Path(args.workdir))
    n = args.n
    t0 = time.perf_counter()
    with shipyard.start_run(name="log-metric", experiment=EXPERIMENT) as run:
        for i in range(n):
            run.log_metric("m", i * 0.001, step=i)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "points": n, "stored": stored_points(run.run_id, ["m"])}


def w_log_batch(args) -> dict:
    setup(Path(args.workdir))
    points = batch_points(args.n)
    chunk = args.chunk
    keys = sorted({p[0] for p in points})
    t0 = time.perf_counter()
    with shipyard.start_run(name="log-batch", experiment=EXPERIMENT) as run:
        for start in range(0, len(points), chunk):
            run.log_batch(metrics=points[start : start + chunk])
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "points": len(points),
        "stored": stored_points(run.run_id, keys),
        "chunk": chunk,
        "calls": -(-len(points) // chunk),
    }


def w_runs_search(args) -> dict:
    setup(Path(args.workdir))
    dataset = search_dataset(args.n)
    t0 = time.perf_counter()
    for name, params, metrics in dataset:
        with shipyard.start_run(name=name, experiment=EXPERIMENT) as run:
            run.log_params(params)
            run.log_metrics(metrics, step=0)
    create_seconds = time.perf_counter() - t0

    timings = []
    df = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        df = shipyard.search_runs(
            filter=SEARCH_FILTER,
            order_by=SEARCH_ORDER_BY,
            max_results=SEARCH_MAX_RESULTS,
            experiment=EXPERIMENT,
            output="pandas",
        )
        timings.append(time.perf_counter() - t0)
    assert df is not None
    return {
        "runs": len(dataset),
        "create_seconds": create_seconds,
        "search_seconds": median(timings),
        "search_timings": timings,
        "rows": int(len(df)),
        "expected_rows": expected_matches(dataset),
        "ordered": non_increasing([float(x) for x in df["metrics.m1"]]),
        "dataframe_type": type(df).__name__,
    }


def w_concurrent_setup(args) -> dict:
    setup(Path(args.workdir))
    return {"ok": True}


def w_writer(args) -> dict:
    # Runs before the start signal: imports and opening the store (one read
    # query), as the MLflow writer does with get_experiment_by_name.
    setup(Path(args.workdir), init=False, warm=False)
    shipyard.search_runs(experiment=EXPERIMENT, max_results=1)
    errors = ErrorLog()
    latencies = []
    durable = args.durable
    wait_for_go()

    t_start = time.monotonic()
    ctx = retry_start(lambda: shipyard.start_run(name=f"writer-{args.index}", experiment=EXPERIMENT), errors)
    run_id = None
    t_started = time.monotonic()
    t_logged = t_started
    try:
        with ctx as run:
            run_id = run.run_id
            for i in range(args.n):
                t0 = time.perf_counter()
                try:
                    run.log_metric("m", float(i), step=i)
                    if durable:
                        run.flush()
                except Exception as exc:  # noqa: BLE001 - counted
                    errors.add(exc)
                latencies.append(time.perf_counter() - t0)
            t_logged = time.monotonic()
    except Exception as exc:  # noqa: BLE001 - e.g. the final flush at end of run
        errors.add(exc)
    t_end = time.monotonic()
    return {
        "run_id": run_id,
        "t_start": t_start,
        "t_end": t_end,
        "start_run_seconds": t_started - t_start,
        "log_loop_seconds": t_logged - t_started,
        "end_run_seconds": t_end - t_logged,
        "latencies": latencies,
        "errors": errors.count,
        "error_samples": errors.samples,
    }


def w_concurrent_verify(args) -> dict:
    setup(Path(args.workdir), init=False, warm=False)
    runs = shipyard.search_runs(experiment=EXPERIMENT, max_results=SEARCH_MAX_RESULTS)
    stored = sum(stored_points(r.run_id, ["m"]) for r in runs)
    return {"runs": len(runs), "stored": stored, "expected": args.expected}


WORKLOADS = {
    "log_metric": w_log_metric,
    "log_batch": w_log_batch,
    "runs_search": w_runs_search,
    "concurrent_setup": w_concurrent_setup,
    "writer": w_writer,
    "concurrent_verify": w_concurrent_verify,
}


def main() -> int:
    args = parse_args()
    result = WORKLOADS[args.workload](args)
    result.update(tool="shipyard", version=getattr(shipyard, "__version__", "?"), workload=args.workload)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
