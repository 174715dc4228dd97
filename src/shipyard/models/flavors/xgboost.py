"""XGBoost models in XGBoost's own UBJSON format; the scikit-learn wrapper class is rebuilt at load.

Column order: a model trained on a DataFrame keeps its feature names; frames are reordered to them.
A model trained on an array takes the columns by position."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.errors import ValidationError
from shipyard.models.flavors.base import (
    Flavor,
    Task,
    as_1d,
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

# The classes load() may rebuild, by name; nothing else named in metadata is ever looked up.
WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor", "Booster")


class XGBoostFlavor(Flavor):
    name: ClassVar[str] = "xgboost"
    file_name: ClassVar[str] = "model.ubj"
    pickle_based: ClassVar[bool] = False
    deterministic: ClassVar[bool] = True
    packages: ClassVar[tuple[str, ...]] = ("xgboost", "xgboost-cpu", "scikit-learn", "numpy", "scipy")

    def handles(self, model: Any) -> bool:
        xgb = imported("xgboost")
        return xgb is not None and isinstance(model, (xgb.XGBModel, xgb.Booster))

    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        check_options(self.name, options)
        self._check_handles(model)
        booster = _booster(model)
        # XGBoost picks the format from the file extension, so write "*.ubj" and move it into place.
        fd, tmp = tempfile.mkstemp(suffix=".ubj", dir=path.parent)
        os.close(fd)
        try:
            model.save_model(tmp)  # the wrapper's save_model also stores its scikit-learn attributes
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        names = booster.feature_names
        return {
            "flavor": self.name,
            "format": "ubj",
            "wrapper": _wrapper(model),
            "class": qualified_name(model),
            "objective": _objective(booster),
            "task": _task(model, booster),
            "classes": class_list(getattr(model, "classes_", None)),
            "columns": "by_position" if names is None else "by_name",
            "feature_names": None if names is None else list(names),
            "n_features": booster.num_features(),
            "pickle_based": False,
        }

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        import xgboost as xgb

        wrapper = meta.get("wrapper", "Booster")
        if wrapper not in WRAPPERS:
            raise ValidationError(
                f"Unknown XGBoost model class {wrapper!r} in the metadata of {path}. Known: {', '.join(WRAPPERS)}."
            )
        model = getattr(xgb, wrapper)()
        model.load_model(bytearray(path.read_bytes()))  # from a buffer, the format is detected from the content
        return model

    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        inputs = _inputs(model, frame)
        if _is_booster(model):
            import xgboost as xgb

            return as_1d(model.predict(xgb.DMatrix(inputs)))
        return as_1d(model.predict(inputs))

    def predict_proba(self, model: Any, frame: pd.DataFrame) -> np.ndarray | None:
        if _is_booster(model) or not hasattr(model, "predict_proba"):
            return None
        import numpy as np

        return np.asarray(model.predict_proba(_inputs(model, frame)))

    def describe(self, model: Any) -> dict[str, Any]:
        booster = _booster(model)
        params = model.get_params() if not _is_booster(model) else json.loads(booster.save_config())["learner"]
        return {
            "class": qualified_name(model),
            "task": _task(model, booster),
            "objective": _objective(booster),
            "params": jsonable_params(params),
            "n_features": booster.num_features(),
            "classes": class_list(getattr(model, "classes_", None)),
        }


def _is_booster(model: Any) -> bool:
    import xgboost as xgb

    return isinstance(model, xgb.Booster)


def _booster(model: Any) -> Any:
    if _is_booster(model):
        return model
    try:
        return model.get_booster()
    except Exception as exc:  # noqa: BLE001 - XGBoost raises NotFittedError or XGBoostError
        raise ValidationError(f"This {qualified_name(model)} is not fitted: {exc}. Fit it before saving.") from exc


def _wrapper(model: Any) -> str:
    """The XGBoost class to rebuild: the model's own, or the nearest XGBoost base of a subclass."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("xgboost") and cls.__name__ in WRAPPERS:
            return cls.__name__
    raise ValidationError(
        f"Cannot save a {qualified_name(model)} with the xgboost flavor: it derives from none of {', '.join(WRAPPERS)}. "
        "Save it with the pyfunc flavor instead."
    )


def _objective(booster: Any) -> str | None:
    config = json.loads(booster.save_config())
    name = config.get("learner", {}).get("objective", {}).get("name")
    return str(name) if name else None


def _task(model: Any, booster: Any) -> Task:
    import xgboost as xgb

    if isinstance(model, xgb.XGBClassifier):
        return "classification"
    if isinstance(model, xgb.XGBRegressor):
        return "regression"
    objective = _objective(booster) or ""
    if objective.startswith(("binary:", "multi:")):
        return "classification"
    if objective.startswith(("reg:", "count:", "survival:")):
        return "regression"
    return "unknown"


def _inputs(model: Any, frame: pd.DataFrame) -> Any:
    booster = _booster(model)
    names = booster.feature_names
    if names is None:
        return match_columns(frame, None, booster.num_features()).to_numpy()
    return match_columns(frame, list(names))
