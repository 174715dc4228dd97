"""The infrastructure gate: latency and throughput measured around a predict function, checked against budgets.

Loading the model in a clean environment and measuring its peak memory are the caller's part; this module
times calls and compares numbers.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from shipyard.gates.results import Check, GateResult, format_number
from shipyard.policy.gates import GateSpec

#: Budget key → (unit shown in messages, True when the measured value must stay at or under the budget).
BUDGETS: dict[str, tuple[str, bool]] = {
    "latency_p50_ms": ("ms", True),
    "latency_p99_ms": ("ms", True),
    "throughput_rows_per_s": ("rows/s", False),
    "peak_memory_mb": ("MB", True),
}
#: The fewest timed calls behind a latency percentile and a throughput, however long they take.
MIN_SINGLE_ROW_RUNS = 100
MIN_BATCH_RUNS = 3


def machine_load() -> dict[str, float]:
    """The load average (1, 5 and 15 minutes) and the CPUs this process may use: what a latency was
    measured under, kept with it so a reader can tell a slow model from a busy machine."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        one, five, fifteen = os.getloadavg()
    except (AttributeError, OSError):  # Windows has no load average
        return {"cpu_count": cpus}
    return {"load_average_1m": round(one, 2), "load_average_5m": round(five, 2),
            "load_average_15m": round(fifteen, 2), "cpu_count": cpus}


@contextlib.contextmanager
def _threads(limit: int | None) -> Iterator[int | None]:
    """Limit the native thread pools to `limit` threads inside the block (threadpoolctl, which comes with
    scikit-learn); yields the limit in force, or None when nothing was limited."""
    if limit is None:
        yield None
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield None
        return
    with threadpool_limits(limits=limit):
        yield limit


def measure(
    predict: Callable[[pd.DataFrame], Any],
    frame: pd.DataFrame,
    *,
    single_row_runs: int = 300,
    batch_runs: int = 10,
    warmup_runs: int = 20,
    max_seconds: float = 10,
    single_row_threads: int | None = 1,
) -> dict[str, float]:
    """Time `predict` on single rows of `frame` (p50/p99 latency) and on the whole frame (throughput).

    Untimed warm-up calls come first (`warmup_runs` single rows and one batch), so caches, lazy imports
    and thread pools are ready. Single-row calls cycle through the rows and stop after `single_row_runs`
    or half of `max_seconds`, but never before MIN_SINGLE_ROW_RUNS (or `single_row_runs` if fewer): a p99
    needs that many calls to mean anything. Batch calls stop after `batch_runs` or at `max_seconds`, with
    at least MIN_BATCH_RUNS (or `batch_runs` if fewer). The result names the counts and the machine's load
    while measuring. Exceptions raised by `predict` propagate.

    Single rows are predicted with the native thread pools (OpenMP, BLAS) limited to `single_row_threads`,
    as a serving worker answers one request: splitting one row across threads gains nothing, and on a busy
    machine the threads' waiting for each other, not the model, would set the p99. None leaves them be.
    """
    if len(frame) == 0:
        raise ValueError("measure needs at least one row to predict")
    rows = [frame.iloc[[i % len(frame)]] for i in range(max(1, min(single_row_runs, len(frame))))]
    predict(frame)
    timings: list[float] = []
    with _threads(single_row_threads) as threads:
        for i in range(max(1, warmup_runs)):
            predict(rows[i % len(rows)])
        started = time.perf_counter()
        single_deadline = started + max_seconds / 2
        at_least = min(max(1, single_row_runs), MIN_SINGLE_ROW_RUNS)
        for i in range(max(1, single_row_runs)):
            row = rows[i % len(rows)]
            begin = time.perf_counter()
            predict(row)
            end = time.perf_counter()
            timings.append(end - begin)
            if end >= single_deadline and len(timings) >= at_least:
                break
    deadline = max(started + max_seconds, time.perf_counter() + max_seconds / 2)
    at_least = min(max(1, batch_runs), MIN_BATCH_RUNS)
    batch_seconds = 0.0
    runs = 0
    while runs < max(1, batch_runs):  # batches use every thread the libraries would use
        begin = time.perf_counter()
        predict(frame)
        end = time.perf_counter()
        batch_seconds += end - begin
        runs += 1
        if end >= deadline and runs >= at_least:
            break
    millis = np.asarray(timings) * 1000
    return {
        "latency_p50_ms": float(np.percentile(millis, 50)),
        "latency_p99_ms": float(np.percentile(millis, 99)),
        "latency_mean_ms": float(millis.mean()),
        "throughput_rows_per_s": len(frame) * runs / batch_seconds if batch_seconds > 0 else float("inf"),
        "warmup_runs": max(1, warmup_runs),
        **({"single_row_threads": threads} if threads is not None else {}),
        "single_row_runs": len(timings),
        "batch_runs": runs,
        "batch_rows": len(frame),
        **machine_load(),
    }


def infrastructure_gate(
    spec: GateSpec, measured: dict[str, Any], environment_diff: list[dict[str, Any]]
) -> GateResult:
    """Compare `measured` with the budgets of `spec.infrastructure`; each package mismatch is a failed check.

    `environment_diff` holds {package, recorded, running} for every package whose running version differs from
    the one recorded with the model (running None: not installed). Without an infrastructure section only the
    environment is checked.
    """
    checks: list[Check] = []
    budgets = spec.infrastructure
    for key, (unit, at_most) in BUDGETS.items():
        budget = getattr(budgets, key) if budgets is not None else None
        if budget is None:
            continue
        value = measured.get(key)
        if value is None:
            checks.append(Check(name=key, status="FAIL", threshold=budget,
                                message=f"{key} was not measured, so its budget of {format_number(budget)} {unit} "
                                        "cannot be checked"))
            continue
        ok = value <= budget if at_most else value >= budget
        sign = ("<=" if ok else ">") if at_most else (">=" if ok else "<")
        word = "budget" if at_most else "required"
        message = f"{key} {format_number(value)} {unit} {sign} {word} {format_number(budget)} {unit}"
        if key != "peak_memory_mb" and "load_average_1m" in measured:  # a timing: say how busy the machine was
            message += (f" (load average {format_number(measured['load_average_1m'])} on "
                        f"{measured.get('cpu_count', '?')} CPUs while measuring)")
        checks.append(Check(name=key, status="PASS" if ok else "FAIL", observed=value, threshold=budget,
                            message=message))
    for item in environment_diff:
        package, recorded, running = item.get("package"), item.get("recorded"), item.get("running")
        if recorded is None:
            message = (f"{package} {running} is running but was not recorded with the model; remove it from the "
                       "serving environment or retrain")
        else:
            now = f"{running} is running" if running is not None else "it is not installed"
            message = (f"{package} {recorded} was recorded with the model but {now}; install "
                       f"{package}=={recorded} in the serving environment or retrain")
        checks.append(Check(name=f"environment.{package}", status="FAIL", observed=running, threshold=recorded,
                            message=message))
    if not environment_diff:
        checks.append(Check(name="environment", status="PASS",
                            message="every recorded package runs at its recorded version"))
    return GateResult.from_checks("infrastructure", checks, dict(measured))
