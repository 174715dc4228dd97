"""Helpers shared by the registry workers.

Imported both by the Shipyard worker (project virtualenv) and by the MLflow
worker (``benchmarks/.venv-peers``), so both tools train byte-for-byte the
same model on the same data and predict on the same rows. The module itself
needs only the standard library (the driver imports its constants);
scikit-learn, pandas and numpy are imported inside the functions that use
them, from whichever virtualenv runs the worker.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "

MODEL_NAME = "bc"
ALIAS = "champion"
EXPERIMENT = "bench"
WARMUP_EXPERIMENT = "warmup"
SEED = 0
EXAMPLE_ROWS = 5  # input_example = X.head()
PREDICT_WARMUP = 50  # untimed predictions through each path before the clock starts
CHECK_ROWS = 200  # single rows whose predictions are compared between raw and wrapped

#: Distributions whose versions each worker reports, to show both sides ran the same libraries.
LIBRARIES = ("scikit-learn", "skops", "pandas", "numpy", "scipy")


def emit(result: dict[str, Any]) -> None:
    """Print the worker's result as one prefixed JSON line on stdout."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def library_versions() -> dict[str, str]:
    found = {}
    for dist in LIBRARIES:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "missing"
    return found


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


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# --------------------------------------------------------------------------- model and data


def dataset() -> tuple[Any, Any]:
    """scikit-learn's bundled breast cancer data as (X DataFrame of 30 float64 columns, y Series)."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


def train(X: Any, y: Any) -> Any:
    """The benchmarked model: a LogisticRegression fitted on the DataFrame (so it has feature names)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=5000, random_state=SEED).fit(X, y)


def single_rows(X: Any, n: int) -> list[Any]:
    """``n`` one-row DataFrames (rows of X in order, wrapping around), built before any clock starts."""
    return [X.iloc[[i % len(X)]] for i in range(n)]


def batch(X: Any, n: int) -> Any:
    """An ``n``-row DataFrame drawn from X with replacement (fixed seed), with a fresh RangeIndex."""
    import numpy as np

    idx = np.random.default_rng(SEED).integers(0, len(X), size=n)
    return X.iloc[idx].reset_index(drop=True)


def digest(predictions: Any) -> str:
    """A short digest of a prediction array, to compare the two tools' (and raw) outputs."""
    import numpy as np

    arr = np.ascontiguousarray(np.asarray(predictions).astype("int64").ravel())
    return hashlib.sha256(arr.tobytes()).hexdigest()[:16]


def model_digest(model: Any) -> str:
    """Digest of the fitted coefficients: equal on both sides when both trained the same model."""
    import numpy as np

    parts = [np.round(np.asarray(model.coef_, dtype=float), 10), np.round(np.asarray(model.intercept_, dtype=float), 10)]
    return hashlib.sha256(b"".join(p.tobytes() for p in parts)).hexdigest()[:16]


# --------------------------------------------------------------------------- predict loops


def time_loop(predict: Callable[[Any], Any], frames: list[Any]) -> float:
    """Seconds for one pass of ``predict`` over every frame."""
    t0 = time.perf_counter()
    for frame in frames:
        predict(frame)
    return time.perf_counter() - t0


def compare_single_rows(raw: Callable[[Any], Any], wrapped: Callable[[Any], Any], frames: list[Any],
                        rounds: int) -> dict[str, Any]:
    """Per-call time of ``raw`` and ``wrapped`` over the same one-row frames.

    Both go through ``PREDICT_WARMUP`` untimed calls first; then ``rounds``
    rounds alternate a full pass of raw and a full pass of wrapped, so that
    a slow phase of the machine hits both. The median round is reported.
    """
    for frame in frames[:PREDICT_WARMUP]:
        raw(frame)
        wrapped(frame)
    raw_rounds, wrapped_rounds = [], []
    for _ in range(rounds):
        raw_rounds.append(time_loop(raw, frames))
        wrapped_rounds.append(time_loop(wrapped, frames))
    n = len(frames)
    raw_call = median(raw_rounds) / n
    wrapped_call = median(wrapped_rounds) / n
    # Same answers, row by row, on the first CHECK_ROWS rows (outside the timed passes).
    same = all(digest(raw(f)) == digest(wrapped(f)) for f in frames[:CHECK_ROWS])
    return {
        "calls_per_round": n,
        "rounds": rounds,
        "raw_round_seconds": raw_rounds,
        "wrapped_round_seconds": wrapped_rounds,
        "raw_per_call_s": raw_call,
        "wrapped_per_call_s": wrapped_call,
        "overhead_per_call_s": wrapped_call - raw_call,
        "checked_rows": min(n, CHECK_ROWS),
        "same_predictions": same,
    }


def compare_batch(raw: Callable[[Any], Any], wrapped: Callable[[Any], Any], frame: Any, repeats: int) -> dict[str, Any]:
    """Median time of ``repeats`` batch predictions through raw and wrapped, alternating."""
    raw(frame)
    wrapped(frame)
    raw_times, wrapped_times = [], []
    raw_out = wrapped_out = None
    for _ in range(repeats):
        t, raw_out = timed(lambda: raw(frame))
        raw_times.append(t)
        t, wrapped_out = timed(lambda: wrapped(frame))
        wrapped_times.append(t)
    raw_s, wrapped_s = median(raw_times), median(wrapped_times)
    return {
        "rows": len(frame),
        "repeats": repeats,
        "raw_timings": raw_times,
        "wrapped_timings": wrapped_times,
        "raw_s": raw_s,
        "wrapped_s": wrapped_s,
        "overhead_s": wrapped_s - raw_s,
        "raw_digest": digest(raw_out),
        "wrapped_digest": digest(wrapped_out),
        "same_predictions": digest(raw_out) == digest(wrapped_out),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="registry benchmark worker")
    parser.add_argument("workload", choices=["log_register", "serve"])
    parser.add_argument("--workdir", required=True, help="fresh directory holding this workload's store")
    parser.add_argument("--n", type=int, default=10, help="timed log+register calls / loads / alias moves")
    parser.add_argument("--variant", default="default",
                        help="MLflow log_model variant: 'infer' (pip requirements inferred) or 'explicit'")
    parser.add_argument("--rows", type=int, default=2000, help="single-row predicts per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw / wrapped rounds (median reported)")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="rows of the batch predict")
    parser.add_argument("--batch-repeats", type=int, default=5, help="batch predicts per path (median reported)")
    return parser.parse_args(argv)
