"""Shipyard side of the monitoring benchmark (project virtualenv, PYTHONPATH at the worktree's src).

    generate --folder F --rows N        write F/reference.parquet, F/current.parquet and F/spec.json
    drift --folder F --repeats R        load both files, time shipyard.monitoring.drift.dataset_drift
    log-write --workspace W --folder F --requests N --rows-per-request M
                                        a workspace with a registered model and N x M logged predictions
    log-monitor --workspace W --folder F  time reading that window from the prediction log and its drift
    monitor-run --workspace W           time `run_monitor` over that window (the whole monitor: window,
                                        drift against the reference's sketch, prediction drift, health,
                                        the stored report and its alerts)

Each command prints one ``BENCH_RESULT {json}`` line; peak memory is this process's ru_maxrss.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _shared import WARMUP_ROWS, emit, library_versions, peak_mb, read_parquet, timed

os.environ.setdefault("SHIPYARD_USER", "bench")
MODEL = "drift-bench"
REFERENCE = "drift-bench-reference"
MONITOR = "drift-bench"
#: When the logged requests arrived (unix seconds): fixed, so that runs are alike; monitors look back from after.
T0 = 1_800_000_000.0


def verdicts(report: Any) -> dict[str, dict[str, Any]]:
    return {c.column: {"method": c.method, "score": c.score, "threshold": c.threshold, "drifted": c.drifted}
            for c in report.columns}


def cmd_generate(args: argparse.Namespace) -> dict[str, Any]:
    from _table import write

    seconds, spec = timed(lambda: write(Path(args.folder), args.rows))
    return {"seconds": seconds, "spec": spec}


def cmd_drift(args: argparse.Namespace) -> dict[str, Any]:
    from shipyard.monitoring.drift import dataset_drift

    folder = Path(args.folder)
    load_s, (reference, current) = timed(lambda: (read_parquet(folder / "reference.parquet"),
                                                  read_parquet(folder / "current.parquet")))
    after_load = peak_mb()
    dataset_drift(reference.head(WARMUP_ROWS), current.head(WARMUP_ROWS))  # imports, off the clock
    timings, report = [], None
    for _ in range(args.repeats):
        seconds, report = timed(lambda: dataset_drift(reference, current))
        timings.append(seconds)
    assert report is not None
    return {"rows": len(reference), "load_seconds": load_s, "seconds": statistics.median(timings),
            "timings": timings, "peak_mb_after_load": after_load, "peak_mb": peak_mb(),
            "dataset_drifted": report.drifted, "libraries": library_versions(), "columns": verdicts(report)}


def cmd_log_write(args: argparse.Namespace) -> dict[str, Any]:
    """A fresh workspace, a model registered on the reference's features, then the current table logged as
    `requests` requests of `rows_per_request` rows, one stored batch per request (the server's writer flushes
    at 5,000 rows)."""
    import numpy as np
    import shipyard
    from shipyard.context import open_context
    from shipyard.serving.batches import build_batches, store_batch
    from shipyard.serving.predlog import Prediction
    from sklearn.dummy import DummyClassifier

    folder = Path(args.folder)
    current = read_parquet(folder / "current.parquet")
    reference = read_parquet(folder / "reference.parquet")
    rows = args.requests * args.rows_per_request
    if rows > len(current):
        raise SystemExit(f"{rows:,} rows asked for, the current table has {len(current):,}")
    root = shipyard.init_workspace(args.workspace)
    # The reference as a dataset version the model names (what a monitor compares with), and a monitor of the
    # newest `rows` rows of the log: setup, untimed.
    shipyard.data.add(REFERENCE, reference, workspace=root)
    sample = reference.head(1_000)
    labels = np.where(sample["income"].to_numpy() > np.median(sample["income"]), "yes", "no")
    version = shipyard.models.register(MODEL, DummyClassifier(strategy="prior").fit(sample, labels),
                                       input_example=sample.head(), dataset=f"{REFERENCE}@1", workspace=root)
    with open(root / "shipyard.yaml", "a") as spec:
        spec.write(f"monitor:\n  {MONITOR}:\n    model: {MODEL}/{int(version.version)}\n"
                   f"    window: {{rows: {rows}}}\n    performance: null\n    health: {{max_p99_ms: 50}}\n")
    ctx = open_context(root)
    rng = np.random.default_rng(3)
    t0 = T0
    stored = 0

    def write_all() -> None:
        nonlocal stored
        for i in range(args.requests):
            inputs = current.iloc[i * args.rows_per_request:(i + 1) * args.rows_per_request].reset_index(drop=True)
            p = rng.random(len(inputs))
            entry = Prediction(f"req-{i:06d}", t0 + i, MODEL, int(version.version), "infer", inputs,
                               np.where(p > 0.5, "yes", "no").astype(object), np.column_stack([1 - p, p]), 3.0)
            for batch in build_batches([entry]):
                store_batch(ctx, batch)
                stored += 1

    seconds, _ = timed(write_all)
    return {"workspace": str(root), "model": MODEL, "version": int(version.version), "rows": rows,
            "requests": args.requests, "batches": stored, "write_seconds": seconds, "peak_mb": peak_mb()}


def time_prediction_log(ctx: Any, model: str, version: int, reference: Any) -> dict[str, Any]:
    """Monitor a window straight from the prediction log: read every logged row of `model`/`version`, then the
    drift of its feature columns against `reference`. Times each step and the whole (seconds), and notes the
    process's peak memory after the read."""
    from shipyard.monitoring.drift import dataset_drift
    from shipyard.serving.batches import read_predictions

    features = list(reference.columns)
    start = time.perf_counter()
    read_s, window = timed(lambda: read_predictions(ctx, model, version))
    after_read = peak_mb()
    drift_s, report = timed(lambda: dataset_drift(reference, window[features]))
    return {"rows": len(window), "read_seconds": read_s, "drift_seconds": drift_s,
            "total_seconds": time.perf_counter() - start, "peak_mb_after_read": after_read, "report": report}


def cmd_log_monitor(args: argparse.Namespace) -> dict[str, Any]:
    from shipyard.context import open_context
    from shipyard.monitoring.drift import dataset_drift
    from shipyard.serving.batches import read_predictions

    folder = Path(args.folder)
    load_s, reference = timed(lambda: read_parquet(folder / "reference.parquet"))
    ctx = open_context(args.workspace)
    # warm-up off the clock: imports, the store's connection, one batch's read
    warm = read_predictions(ctx, MODEL, args.version, since=T0 + args.requests - 1)
    dataset_drift(reference.head(WARMUP_ROWS), warm[list(reference.columns)].head(WARMUP_ROWS))
    del warm
    after_load = peak_mb()
    result = time_prediction_log(ctx, MODEL, args.version, reference)
    report = result.pop("report")
    return {**result, "reference_rows": len(reference), "load_seconds": load_s, "peak_mb_after_load": after_load,
            "peak_mb": peak_mb(), "dataset_drifted": report.drifted, "columns": verdicts(report)}


def cmd_monitor_run(args: argparse.Namespace) -> dict[str, Any]:
    """One `run_monitor` in this process: the first reads the reference once and stores its sketch (and the
    model's predictions on it); later ones find them in the store."""
    from shipyard.context import open_context
    from shipyard.monitoring.monitors import run_monitor

    ctx = open_context(args.workspace)
    seconds, result = timed(lambda: run_monitor(ctx, MONITOR, until=T0 + 10_000_000))
    report = result.report
    drift = report["data_drift"] or {}
    return {"seconds": seconds, "peak_mb": peak_mb(), "rows": report["window"]["rows"],
            "reference_source": (report.get("reference") or {}).get("source"),
            "drifted_columns": drift.get("drifted_columns"), "status": report["status"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("generate")
    p.add_argument("--folder", required=True)
    p.add_argument("--rows", type=int, required=True)
    p = sub.add_parser("drift")
    p.add_argument("--folder", required=True)
    p.add_argument("--repeats", type=int, default=1)
    p = sub.add_parser("log-write")
    p.add_argument("--workspace", required=True)
    p.add_argument("--folder", required=True)
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--rows-per-request", type=int, required=True)
    p = sub.add_parser("log-monitor")
    p.add_argument("--workspace", required=True)
    p.add_argument("--folder", required=True)
    p.add_argument("--version", type=int, required=True)
    p.add_argument("--requests", type=int, required=True)
    p = sub.add_parser("monitor-run")
    p.add_argument("--workspace", required=True)
    args = parser.parse_args(argv)
    commands = {"generate": cmd_generate, "drift": cmd_drift, "log-write": cmd_log_write,
                "log-monitor": cmd_log_monitor, "monitor-run": cmd_monitor_run}
    emit(commands[args.command](args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
