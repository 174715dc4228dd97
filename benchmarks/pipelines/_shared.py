"""Helpers shared by the pipeline workers.

Standard library only: this module is imported both by the Shipyard worker
(project virtualenv) and by the Prefect worker (``benchmarks/.venv-peers``),
so both tools wrap byte-for-byte the same step functions, and the plain
Python "floor" calls those same functions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "

SHAPES = ("chain", "fanin")
#: The warm-up pipeline/flow is ``total([inc(WARMUP_X)])``: the same two functions, another input,
#: so it never shares a cache key with a timed step.
WARMUP_X = -1
#: Repetitions of the plain-Python floor (the median is reported).
FLOOR_REPEATS = 201


# --------------------------------------------------------------------------- the step functions


def inc(x):
    return x + 1


def total(values):
    return sum(values)


# --------------------------------------------------------------------------- the floor


def plain_chain(n: int) -> int:
    """Step i takes the previous output and returns x + 1: n plain calls."""
    x = 0
    for _ in range(n):
        x = inc(x)
    return x


def plain_fanin(n: int) -> int:
    """n independent calls inc(i), then one call summing their outputs."""
    return total([inc(i) for i in range(n)])


def plain_small(n: int) -> int:
    """The two-step warm-up pipeline: total([inc(WARMUP_X)]) (n is ignored)."""
    return total([inc(WARMUP_X)])


PLAIN: dict[str, Callable[[int], int]] = {"chain": plain_chain, "fanin": plain_fanin, "small": plain_small}


def expected_value(shape: str, n: int) -> int:
    if shape == "small":
        return WARMUP_X + 1
    return n if shape == "chain" else n * (n + 1) // 2


def step_count(shape: str, n: int) -> int:
    """Steps (tasks) in one run: the chain has n, the fan-in n + the final sum, "small" 2."""
    if shape == "small":
        return 2
    return n if shape == "chain" else n + 1


def floor(shape: str, n: int, repeats: int = FLOOR_REPEATS) -> dict[str, Any]:
    """Median wall time of the plain-Python version of a shape, in this process."""
    fn = PLAIN[shape]
    value = fn(n)  # warm-up, and the value to check
    timings = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(n)
        timings.append(time.perf_counter() - t0)
    return {"seconds": median(timings), "min_seconds": min(timings), "repeats": repeats,
            "value": value, "verified": value == expected_value(shape, n)}


# --------------------------------------------------------------------------- small utilities


def emit(result: dict[str, Any]) -> None:
    """Print the worker's result as one prefixed JSON line on stdout."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def median(values: list[float]) -> float:
    if not values:
        return float("nan")
    data = sorted(values)
    mid = len(data) // 2
    return data[mid] if len(data) % 2 else (data[mid - 1] + data[mid]) / 2


def overhead_per_step(total_s: float, floor_s: float, steps: int) -> float:
    """(run time - plain-Python time) / steps."""
    return (total_s - floor_s) / steps


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="pipelines benchmark worker")
    parser.add_argument("workload", choices=["run", "profile"])
    parser.add_argument("--workdir", required=True, help="fresh directory for this worker's stores")
    parser.add_argument("--steps", type=int, default=100, help="n: steps in the chain / independent steps of the fan-in")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per shape and mode (median reported)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated shapes to run")
    parser.add_argument("--spawned-at", type=float, default=None,
                        help="time.time() when the driver started this process (to report interpreter start-up)")
    parser.add_argument("--budget-seconds", type=float, default=None,
                        help="Prefect: start no new round after this many seconds (at least one round runs)")
    # profile workload (Shipyard only)
    parser.add_argument("--shape", default="chain", choices=SHAPES, help="profile: shape to profile")
    parser.add_argument("--mode", default="off", choices=["off", "miss", "hit"],
                        help="profile: caching off, first run with caching on, or fully cached re-run")
    parser.add_argument("--top", type=int, default=25, help="profile: functions listed per thread group")
    return parser.parse_args(argv)
