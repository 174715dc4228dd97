"""A model from no ML library: a fixed linear scorer that reads its inputs by column name (for the pyfunc flavor)."""

from __future__ import annotations

import numpy as np
import pandas as pd


class LinearScorer:
    """Logistic scores from named columns; importable, so a cloudpickled instance loads in a fresh process."""

    task = "classification"

    def __init__(self, weights: dict[str, float], bias: float, classes: tuple[int, int] = (0, 1)) -> None:
        self.weights = weights
        self.bias = bias
        self.classes_ = np.asarray(classes)

    @classmethod
    def fit(cls, frame: pd.DataFrame, target: pd.Series) -> LinearScorer:
        """A naive linear discriminant: the difference of class means over the pooled variance."""
        low, high = frame[target == 0], frame[target == 1]
        variance = frame.var().to_numpy() + 1e-9
        weights = (high.mean().to_numpy() - low.mean().to_numpy()) / variance
        bias = -float(weights @ (high.mean().to_numpy() + low.mean().to_numpy())) / 2
        return cls(dict(zip(map(str, frame.columns), weights.tolist())), bias)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        scores = frame[list(self.weights)].to_numpy(dtype=float) @ np.asarray(list(self.weights.values())) + self.bias
        positive = 1.0 / (1.0 + np.exp(-np.clip(scores, -50, 50)))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(frame), axis=1)]
