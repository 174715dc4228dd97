"""MLflow side of the tracking benchmark.

Run with ``benchmarks/.venv-peers/bin/python`` (see ``setup_peers.sh``). The
driver sets ``MLFLOW_TRACKING_URI=sqlite:///<workdir>/mlflow.db`` and turns
telemetry off; every workload gets a fresh ``--workdir``. The result is
printed as one ``BENCH_RESULT {json}`` line on stdout.

MLflow is used as a user would use it: the fluent API (``mlflow.log_metric``
and friends) with its default settings, plus ``MlflowClient.log_batch`` for
the batch workload.
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

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
from mlflow.entities import Metric  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402


def _tracking_uri(workdir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workdir / 'mlflow.db'}"


def _experiment(client: MlflowClient, workdir: Path, name: str) -> str:
    """Create (or get) an experiment whose artifacts live inside ``workdir``."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifacts = (workdir / "mlartifacts" / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except Exception:  # created concurrently by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def setup(workdir: Path, *, warm: bool = True) -> tuple[MlflowClient, str]:
    """Open the store and create the experiment outside the timed region.

    The first access to an empty SQLite file runs MLflow's schema migrations;
    a one-point warm-up run in a separate experiment also takes lazy imports
    and engine creation off the clock.
    """
    mlflow.set_tracking_uri(_tracking_uri(workdir))
    client = MlflowClient()
    if warm:
        warm_id = _experiment(client, workdir, WARMUP_EXPERIMENT)
        with mlflow.start_run(experiment_id=warm_id, run_name="warmup"):
            mlflow.log_param("warm", "1")
            mlflow.log_metric("warm", 1.0, step=0)
    exp_id = _experiment(client, workdir, EXPERIMENT)
    mlflow.set_experiment(experiment_id=exp_id)
    return client, exp_id


def stored_points(client: MlflowClient, run_id: str, keys: list[str]) -> int:
    return sum(len(client.get_metric_history(run_id, key)) for key in keys)


def w_log_metric(args) -> dict:
    workdir = Path(args.workdir)
    client, exp_id = setup(workdir)
    n = args.n
    t0 = time.perf_counter()
    with mlflow.start_run(experiment_id=exp_id, run_name="log-metric") as run:
        for i in range(n):
            mlflow.log_metric("m", i * 0.001, step=i)
    seconds = time.perf_counter() - t0
    stored = stored_points(client, run.info.run_id, ["m"])
    return {"seconds": seconds, "points": n, "stored": stored}


def w_log_batch(args) -> dict:
    workdir = Path(args.workdir)
    client, exp_id = setup(workdir)
    points = batch_points(args.n)
    chunk = args.chunk
    keys = sorted({p[0] for p in points})
    t0 = time.perf_counter()
    with mlflow.start_run(experiment_id=exp_id, run_name="log-batch") as run:
        run_id = run.info.run_id
        ts = int(time.time() * 1000)
        for start in range(0, len(points), chunk):
            metrics = [Metric(k, v, ts, s) for k, v, s in points[start : start + chunk]]
            client.log_batch(run_id, metrics=metrics)
    seconds = time.perf_counter() - t0
    stored = stored_points(client, run_id, keys)
    return {"seconds": seconds, "points": len(points), "stored": stored, "chunk": chunk, "calls": -(-len(points) // chunk)}


def w_runs_search(args) -> dict:
    workdir = Path(args.workdir)
    client, exp_id = setup(workdir)
    dataset = search_dataset(args.n)
    t0 = time.perf_counter()
    for name, params, metrics in dataset:
        with mlflow.start_run(experiment_id=exp_id, run_name=name):
            mlflow.log_params(params)
            mlflow.log_metrics(metrics, step=0)
    create_seconds = time.perf_counter() - t0

    timings = []
    df = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        df = mlflow.search_runs(
            experiment_ids=[exp_id],
            filter_string=SEARCH_FILTER,
            order_by=SEARCH_ORDER_BY,
            max_results=SEARCH_MAX_RESULTS,
            output_format="pandas",
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
    workdir = Path(args.workdir)
    # Runs before the start signal: imports, engine creation, experiment lookup.
    setup(workdir, warm=False)
    exp_id = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    errors = ErrorLog()
    latencies = []
    wait_for_go()

    t_start = time.monotonic()
    run = retry_start(lambda: mlflow.start_run(experiment_id=exp_id, run_name=f"writer-{args.index}"), errors)
    t_started = time.monotonic()
    for i in range(args.n):
        t0 = time.perf_counter()
        try:
            mlflow.log_metric("m", float(i), step=i)
        except Exception as exc:  # noqa: BLE001 - counted
            errors.add(exc)
        latencies.append(time.perf_counter() - t0)
    t_logged = time.monotonic()
    try:
        mlflow.end_run()
    except Exception as exc:  # noqa: BLE001 - counted
        errors.add(exc)
    t_end = time.monotonic()
    return {
        "run_id": run.info.run_id,
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
    workdir = Path(args.workdir)
    mlflow.set_tracking_uri(_tracking_uri(workdir))
    client = MlflowClient()
    exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([exp_id], max_results=SEARCH_MAX_RESULTS)
    stored = sum(stored_points(client, r.info.run_id, ["m"]) for r in runs)
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
    result.update(tool="mlflow", version=mlflow.__version__, workload=args.workload)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
