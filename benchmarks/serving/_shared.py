"""Helpers shared by the serving workers.

Imported by the Shipyard worker (project virtualenv), by the MLflow worker
(``benchmarks/.venv-peers``) and by the driver, so both tools train the same
model on the same table and both servers get byte-for-byte the same request
bodies. The module needs only the standard library; numpy, pandas and
scikit-learn are imported inside the functions that use them.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "

MODEL_NAME = "serving-bench"
EXPERIMENT = "serving-bench"
SEED = 0
FEATURES = [f"f{i}" for i in range(10)]
TRAIN_ROWS = 5_000
SINGLE_BODIES = 64  # distinct one-row bodies the clients cycle through
BATCH_ROWS = 1_000
BATCH_BODIES = 4
FLOOR_CALLS = 2_000  # one-row in-process predicts for the floor (median of rounds)
FLOOR_ROUNDS = 3

#: Distributions whose versions each worker reports, to show both sides ran the same libraries.
LIBRARIES = ("scikit-learn", "pandas", "numpy", "skops", "uvicorn", "starlette", "fastapi", "uvloop", "httptools")

#: Body files written by the Shipyard worker into the shared folder, read by the load generator.
BODY_FILES = {
    "split_1": "split-1row.jsonl",  # MLflow dataframe_split, one row
    "split_batch": "split-batch.jsonl",  # MLflow dataframe_split, BATCH_ROWS rows
    "oip_1": "oip-1row.jsonl",  # Open Inference Protocol V2 request, one tensor per column, one row
    "oip_batch": "oip-batch.jsonl",
}


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


def median(values: list[float]) -> float:
    data = sorted(values)
    mid = len(data) // 2
    return data[mid] if len(data) % 2 else (data[mid - 1] + data[mid]) / 2


# --------------------------------------------------------------------------- model and data


def dataset() -> tuple[Any, Any]:
    """A generated classification table: 10 float columns f0..f9 (rounded to 6 decimals) and a 0/1 label."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=TRAIN_ROWS, n_features=len(FEATURES), n_informative=6,
                               n_redundant=2, random_state=SEED)
    return pd.DataFrame(X.round(6), columns=FEATURES), pd.Series(y, name="label")


def train(X: Any, y: Any) -> Any:
    """The served model: StandardScaler + LogisticRegression fitted on the DataFrame (so it has feature names)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=SEED)).fit(X, y)


def model_digest(model: Any) -> str:
    """Digest of the fitted parameters: equal on both sides when both trained the same model."""
    import numpy as np

    scaler, lr = model[0], model[-1]
    parts = [scaler.mean_, scaler.scale_, lr.coef_, lr.intercept_]
    return hashlib.sha256(b"".join(np.round(np.asarray(p, dtype=float), 10).tobytes() for p in parts)).hexdigest()[:16]


def request_frames(X: Any) -> tuple[list[Any], list[Any]]:
    """The rows the clients send: SINGLE_BODIES one-row frames and BATCH_BODIES frames of BATCH_ROWS rows."""
    import numpy as np

    rng = np.random.default_rng(SEED + 1)
    singles = [X.iloc[[int(i)]] for i in rng.integers(0, len(X), size=SINGLE_BODIES)]
    batches = [X.iloc[rng.integers(0, len(X), size=BATCH_ROWS)].reset_index(drop=True) for _ in range(BATCH_BODIES)]
    return singles, batches


def split_body(frame: Any) -> str:
    """MLflow's dataframe_split JSON for a frame (the same text for both servers)."""
    return json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}},
                      separators=(",", ":"))


def oip_body(frame: Any) -> str:
    """An Open Inference Protocol V2 request with one FP64 tensor per column."""
    inputs = [{"name": c, "shape": [len(frame)], "datatype": "FP64", "data": frame[c].tolist()} for c in frame.columns]
    return json.dumps({"inputs": inputs}, separators=(",", ":"))


def digest(predictions: Any) -> str:
    """A short digest of a list of class predictions, to compare servers and the raw model."""
    import numpy as np

    arr = np.ascontiguousarray(np.asarray(predictions).astype("int64").ravel())
    return hashlib.sha256(arr.tobytes()).hexdigest()[:16]


def write_bodies(folder: Path, singles: list[Any], batches: list[Any]) -> dict[str, str]:
    """Write the request bodies (one JSON document per line); returns each body kind's file path."""
    folder.mkdir(parents=True, exist_ok=True)
    content = {
        "split_1": [split_body(f) for f in singles],
        "split_batch": [split_body(f) for f in batches],
        "oip_1": [oip_body(f) for f in singles],
        "oip_batch": [oip_body(f) for f in batches],
    }
    for key, bodies in content.items():
        (folder / BODY_FILES[key]).write_text("\n".join(bodies) + "\n")
    return {key: str(folder / name) for key, name in BODY_FILES.items()}


def floor(predict: Callable[[Any], Any], frames: list[Any]) -> dict[str, Any]:
    """Per-call time of ``predict`` on one-row frames: FLOOR_ROUNDS passes of FLOOR_CALLS calls, median pass."""
    for frame in frames:  # warm-up
        predict(frame)
    rounds = []
    for _ in range(FLOOR_ROUNDS):
        t0 = time.perf_counter()
        for i in range(FLOOR_CALLS):
            predict(frames[i % len(frames)])
        rounds.append((time.perf_counter() - t0) / FLOOR_CALLS)
    return {"per_call_s": median(rounds), "rounds_per_call_s": rounds, "calls": FLOOR_CALLS}
