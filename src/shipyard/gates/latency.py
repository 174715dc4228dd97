"""The infrastructure gate: latency and throughput measured around a predict function, checked against budgets.

Loading the model in a clean environment and measuring its peak memory are the caller's part; this module
times calls and compares numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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


def measure(
    predict: Callable[[pd.DataFrame], Any],
    frame: pd.DataFrame,
    *,
    single_row_runs: int = 200,
    batch_runs: int = 5,
    max_seconds: float = 10,
) -> dict[str, float]:
    """Time `predict` on single rows of `frame` (p50/p99 latency) and on the whole frame (throughput).

    One untimed warm-up call comes first. Single-row calls cycle through the rows and stop after
    `single_row_runs` or half of `max_seconds`; batch calls stop after `batch_runs` or at `max_seconds`, with at
    least one of each. Exceptions raised by `predict` propagate.
    """
    if len(frame) == 0:
        raise ValueError("measure needs at least one row to predict")
    started = time.perf_counter()
    rows = [frame.iloc[[i % len(frame)]] for i in range(max(1, min(single_row_runs, len(frame))))]
    predict(rows[0])
    single_deadline = started + max_seconds / 2
    timings: list[float] = []
    for i in range(max(1, single_row_runs)):
        row = rows[i % len(rows)]
        begin = time.perf_counter()
        predict(row)
        end = time.perf_counter()
        timings.append(end - begin)
        if end >= single_deadline:
            break
    deadline = started + max_seconds
    batch_seconds = 0.0
    runs = 0
    while runs < max(1, batch_runs):
        begin = time.perf_counter()
        predict(frame)
        end = time.perf_counter()
        batch_seconds += end - begin
        runs += 1
        if end >= deadline:
            break
    millis = np.asarray(timings) * 1000
    return {
        "latency_p50_ms": float(np.percentile(millis, 50)),
        "latency_p99_ms": float(np.percentile(millis, 99)),
        "latency_mean_ms": float(millis.mean()),
        "throughput_rows_per_s": len(frame) * runs / batch_seconds if batch_seconds > 0 else float("inf"),
        "single_row_runs": len(timings),
        "batch_runs": runs,
        "batch_rows": len(frame),
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
