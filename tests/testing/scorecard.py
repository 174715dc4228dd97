"""A flavor that keeps the whole contract, for a model from no ML library: the known-good subject that each
deliberately broken flavor in test_flavor_checks departs from in one way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from shipyard.models.flavors.base import Flavor, check_options, match_columns, qualified_name


class Scorecard:
    """Points per unit of each named column plus a base score; a positive total declines the application."""

    classes_ = ("accept", "decline")

    def __init__(self, points: dict[str, float], base: float) -> None:
        self.points = points
        self.base = base

    def probabilities(self, inputs: pd.DataFrame) -> np.ndarray:
        scores = inputs.to_numpy(dtype=float) @ np.array(list(self.points.values())) + self.base
        decline = 1.0 / (1.0 + np.exp(-scores))
        return np.column_stack([1.0 - decline, decline])


class ScorecardFlavor(Flavor):
    name: ClassVar[str] = "scorecard"
    file_name: ClassVar[str] = "model.json"
    pickle_based: ClassVar[bool] = False
    deterministic: ClassVar[bool] = True
    packages: ClassVar[tuple[str, ...]] = ("numpy", "pandas")

    def handles(self, model: Any) -> bool:
        return isinstance(model, Scorecard)

    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        check_options(self.name, options)
        self._check_handles(model)
        path.write_text(json.dumps({"points": model.points, "base": model.base}))
        return {"flavor": self.name, "task": "classification", "classes": list(Scorecard.classes_),
                "columns": "by_name", "feature_names": list(model.points), "n_features": len(model.points),
                "pickle_based": False}

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        data = json.loads(path.read_text())
        return Scorecard(data["points"], data["base"])

    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        proba = self.predict_proba(model, frame)
        assert proba is not None
        return np.array(Scorecard.classes_)[np.argmax(proba, axis=1)]

    def predict_proba(self, model: Any, frame: pd.DataFrame) -> np.ndarray | None:
        return model.probabilities(self.inputs(model, frame))

    def describe(self, model: Any) -> dict[str, Any]:
        return {"class": qualified_name(model), "task": "classification", "params": {"base": model.base},
                "n_features": len(model.points), "classes": list(Scorecard.classes_)}

    def inputs(self, model: Any, frame: pd.DataFrame) -> pd.DataFrame:
        return match_columns(frame, list(model.points))


def example_frame(rows: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"income": rng.normal(50.0, 15.0, rows), "debt": rng.normal(20.0, 8.0, rows),
                         "age": rng.integers(18, 80, rows)})


def example_model() -> Scorecard:
    return Scorecard({"income": -0.08, "debt": 0.15, "age": -0.02}, 2.0)
