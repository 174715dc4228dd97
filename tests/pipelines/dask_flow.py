"""Steps for the Dask executor tests: module-level, so workers import them by reference."""

from __future__ import annotations

import os

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import shipyard


@shipyard.step
def load(n: int) -> pd.DataFrame:
    x, y = load_breast_cancer(as_frame=True, return_X_y=True)
    return x.assign(target=y).head(n)


@shipyard.step
def fit(frame: pd.DataFrame, c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=5000).fit(frame.drop(columns=["target"]), frame["target"])


@shipyard.step
def score(model: LogisticRegression, frame: pd.DataFrame) -> dict[str, float]:
    return {"accuracy": float(model.score(frame.drop(columns=["target"]), frame["target"])), "pid": os.getpid()}


@shipyard.step
def explode(frame: pd.DataFrame) -> int:
    raise RuntimeError(f"worker-side failure on {len(frame)} rows")


@shipyard.pipeline
def train(n: int = 300, c: float = 1.0):
    frame = load(n)
    return score(fit(frame, c), frame)


@shipyard.pipeline
def sweep(n: int = 300):
    frame = load(n)
    return [score(fit(frame, c), frame) for c in (0.01, 0.1, 1.0)]


@shipyard.pipeline
def broken(n: int = 50):
    return explode(load(n))
