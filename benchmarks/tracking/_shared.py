"""Helpers shared by the tracking workers.

Standard library only: this module is imported both by the Shipyard worker
(project virtualenv) and by the MLflow worker (``benchmarks/.venv-peers``),
so both tools see byte-for-byte the same workload definitions and data.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "
READY_LINE = "BENCH_READY"

EXPERIMENT = "bench"
WARMUP_EXPERIMENT = "warmup"

# Workload (c): filter and ordering used by both tools.
SEARCH_FILTER = "metrics.m0 > 0.5 and params.p1 = 'v1'"
SEARCH_ORDER_BY = ["metrics.m1 DESC"]
SEARCH_MAX_RESULTS = 5000
N_PARAMS = 10
N_METRICS = 10


def emit(result: dict[str, Any]) -> None:
    """Print the worker's result as one prefixed JSON line on stdout."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def wait_for_go() -> None:
    """Announce readiness and block until the driver writes a line on stdin."""
    sys.stdout.write(READY_LINE + "\n")
    sys.stdout.flush()
    sys.stdin.readline()


def search_dataset(n_runs: int, seed: int = 1234) -> list[tuple[str, dict[str, str], dict[str, float]]]:
    """The runs of workload (c): (run name, params, metrics) per run.

    ``params.p1 = 'v1'`` holds for two runs in three and ``metrics.m0 > 0.5``
    for about half, so the filter matches roughly a third of the runs.
    """
    rng = random.Random(seed)
    runs = []
    for i in range(n_runs):
        params = {f"p{j}": f"v{(i + j) % 7}" for j in range(N_PARAMS)}
        params["p1"] = "v0" if i % 3 == 0 else "v1"
        metrics = {f"m{j}": round(rng.random(), 6) for j in range(N_METRICS)}
        runs.append((f"run-{i:05d}", params, metrics))
    return runs


def expected_matches(dataset: list[tuple[str, dict[str, str], dict[str, float]]]) -> int:
    return sum(1 for _, p, m in dataset if m["m0"] > 0.5 and p["p1"] == "v1")


def batch_points(n_points: int, n_keys: int = 10) -> list[tuple[str, float, int]]:
    """Metric points of workload (b): ``n_keys`` keys, consecutive steps."""
    per_key = n_points // n_keys
    return [(f"m{k}", (s % 997) / 997.0, s) for k in range(n_keys) for s in range(per_key)]


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (q in [0, 100]); NaN when empty."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: list[float]) -> float:
    return percentile(values, 50.0)


def short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:300]


class ErrorLog:
    """Counts exceptions and keeps the first few distinct messages."""

    def __init__(self, keep: int = 5) -> None:
        self.count = 0
        self.samples: list[str] = []
        self._keep = keep

    def add(self, exc: BaseException) -> None:
        self.count += 1
        msg = short_error(exc)
        if len(self.samples) < self._keep and msg not in self.samples:
            self.samples.append(msg)


def retry_start(start: Callable[[], Any], errors: ErrorLog, attempts: int = 20) -> Any:
    """Start a run, retrying on failure; every failed attempt counts as an error."""
    for attempt in range(attempts):
        try:
            return start()
        except Exception as exc:  # noqa: BLE001 - counted, then retried
            errors.add(exc)
            time.sleep(0.05 * (attempt + 1))
    raise RuntimeError("could not start a run")


def non_increasing(values: list[float]) -> bool:
    return all(a >= b for a, b in zip(values, values[1:]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="tracking benchmark worker")
    parser.add_argument(
        "workload",
        choices=["log_metric", "log_batch", "runs_search", "concurrent_setup", "writer", "concurrent_verify"],
    )
    parser.add_argument("--workdir", required=True, help="fresh directory holding this workload's store")
    parser.add_argument("--n", type=int, default=0, help="number of points / runs")
    parser.add_argument("--chunk", type=int, default=0, help="points per batch call")
    parser.add_argument("--repeats", type=int, default=5, help="search repeats (median reported)")
    parser.add_argument("--index", type=int, default=0, help="writer index")
    parser.add_argument("--durable", action="store_true", help="flush after each call (Shipyard)")
    parser.add_argument("--expected", type=int, default=0, help="expected stored points")
    return parser.parse_args(argv)
