"""LightGBM models as LightGBM's own text model file, loaded as a Booster that predicts like the wrapper did.

Load returns a lightgbm.Booster; the recorded classes and objective travel with it, so predict gives
labels and predict_proba probabilities for classifiers, as LGBMClassifier would.
Column order: LightGBM stores feature names with spaces turned into underscores; frames are matched
to them by name (either spelling), so the order of their columns does not matter. A model trained on
an array (names "Column_0", ...) takes the columns by position."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.errors import ValidationError
from shipyard.models.flavors.base import (
    Flavor,
    Task,
    as_1d,
    attach_meta,
    attached_meta,
    check_options,
    class_list,
    imported,
    jsonable_params,
    match_columns,
    qualified_name,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

CLASSIFICATION_OBJECTIVES = {"binary", "multiclass", "multiclassova", "softmax", "ova", "ovr", "multiclass_ova"}
REGRESSION_OBJECTIVES = {"regression", "regression_l1", "huber", "fair", "poisson", "quantile", "mape", "gamma",
                         "tweedie", "l1", "l2", "mse", "mae", "rmse", "cross_entropy", "xentropy"}
_DEFAULT_NAME = re.compile(r"Column_\d+")


class LightGBMFlavor(Flavor):
    name: ClassVar[str] = "lightgbm"
    file_name: ClassVar[str] = "model.txt"
    pickle_based: ClassVar[bool] = False
    deterministic: ClassVar[bool] = True
    packages: ClassVar[tuple[str, ...]] = ("lightgbm", "numpy", "scipy")

    def handles(self, model: Any) -> bool:
        lgb = imported("lightgbm")
        return lgb is not None and isinstance(model, (lgb.LGBMModel, lgb.Booster))

    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        check_options(self.name, options)
        self._check_handles(model)
        info = _info(model)
        _booster(model).save_model(str(path))
        return {"flavor": self.name, "format": "lightgbm-text", "class": qualified_name(model), **info,
                "pickle_based": False}

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(path))
        keys = ("wrapper", "objective", "task", "classes", "columns", "feature_names", "n_features")
        return attach_meta(booster, {key: meta.get(key) for key in keys})

    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        import lightgbm as lgb

        if not isinstance(model, lgb.Booster):
            return as_1d(model.predict(_inputs(model, frame)))
        info = _info(model)
        raw = model.predict(_inputs(model, frame))
        if info["task"] != "classification":
            return as_1d(raw)
        import numpy as np

        classes = np.asarray(info["classes"])
        return classes[np.argmax(_probabilities(raw), axis=1)]

    def predict_proba(self, model: Any, frame: pd.DataFrame) -> np.ndarray | None:
        import lightgbm as lgb

        if not isinstance(model, lgb.Booster):
            return model.predict_proba(_inputs(model, frame)) if hasattr(model, "predict_proba") else None
        if _info(model)["task"] != "classification":
            return None
        return _probabilities(model.predict(_inputs(model, frame)))

    def describe(self, model: Any) -> dict[str, Any]:
        import lightgbm as lgb

        info = _info(model)
        params = model.params if isinstance(model, lgb.Booster) else model.get_params()
        return {
            "class": qualified_name(model),
            "task": info["task"],
            "objective": info["objective"],
            "params": jsonable_params(params),
            "n_features": info["n_features"],
            "classes": info["classes"],
        }


def _booster(model: Any) -> Any:
    import lightgbm as lgb

    if isinstance(model, lgb.Booster):
        return model
    try:
        return model.booster_
    except Exception as exc:  # noqa: BLE001 - LightGBM raises its own NotFittedError
        raise ValidationError(f"This {qualified_name(model)} is not fitted: {exc}. Fit it before saving.") from exc


def _info(model: Any) -> dict[str, Any]:
    """What predict needs beyond the Booster: recorded at save, attached at load, else read off the model."""
    recorded = attached_meta(model)
    if recorded:
        return recorded
    booster = _booster(model)
    wrapper = type(model).__name__
    objective = getattr(model, "objective_", None) or booster.params.get("objective")
    if callable(objective):
        raise ValidationError(
            f"This {qualified_name(model)} uses a custom objective function, which a LightGBM model file cannot "
            "hold. Save it with the pyfunc flavor instead."
        )
    objective = str(objective) if objective else None
    classes = class_list(getattr(model, "classes_", None))
    task: Task = "unknown"
    if wrapper == "LGBMClassifier" or objective in CLASSIFICATION_OBJECTIVES:
        task = "classification"
        if classes is None:  # a bare Booster: LightGBM's own labels are 0 .. k-1
            count = booster.num_model_per_iteration() if objective != "binary" else 2
            classes = list(range(max(count, 2)))
    elif wrapper == "LGBMRegressor" or objective in REGRESSION_OBJECTIVES:
        task = "regression"
    names = [str(n) for n in booster.feature_name()]
    by_name = not all(_DEFAULT_NAME.fullmatch(n) for n in names)
    return {
        "wrapper": wrapper,
        "objective": objective,
        "task": task,
        "classes": classes,
        "columns": "by_name" if by_name else "by_position",
        "feature_names": names if by_name else None,
        "n_features": booster.num_feature(),
    }


def _inputs(model: Any, frame: pd.DataFrame) -> Any:
    info = _info(model)
    names = info["feature_names"]
    if names is None:  # trained on an array: pass one, so no feature-name check compares the frame's
        return match_columns(frame, None, info["n_features"]).to_numpy()
    present = {str(c) for c in frame.columns}
    # LightGBM turned spaces into underscores when it stored the names; accept the original spelling too.
    renames = {c: str(c).replace(" ", "_") for c in frame.columns
               if " " in str(c) and str(c).replace(" ", "_") not in present}
    return match_columns(frame.rename(columns=renames) if renames else frame, names)


def _probabilities(raw: Any) -> np.ndarray:
    """(n, n_classes) probabilities from Booster.predict: binary models give P(class 1) only."""
    import numpy as np

    raw = np.asarray(raw)
    if raw.ndim == 1:
        return np.vstack((1.0 - raw, raw)).transpose()
    return raw
