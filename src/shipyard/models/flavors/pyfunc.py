"""Any object with a predict(frame) method, saved with cloudpickle: loading runs code, so the digest is checked first.

Column order: the frame is handed to the object's predict unchanged; whether order matters is up to it."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.errors import ValidationError
from shipyard.models.flavors.base import (
    Flavor,
    Task,
    as_1d,
    check_options,
    class_list,
    file_digest,
    jsonable_params,
    module_root,
    qualified_name,
    verify_digest,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Models from these packages have safer flavors of their own; pyfunc does not take them.
NATIVE_PACKAGES = ("sklearn", "xgboost", "lightgbm", "onnx", "onnxruntime")


class PyfuncFlavor(Flavor):
    name: ClassVar[str] = "pyfunc"
    file_name: ClassVar[str] = "model.pkl"
    pickle_based: ClassVar[bool] = True
    deterministic: ClassVar[bool] = False  # cloudpickle's bytes can vary (set order, classes pickled by value)
    packages: ClassVar[tuple[str, ...]] = ("cloudpickle", "numpy", "pandas")

    def handles(self, model: Any) -> bool:
        if isinstance(model, type) or module_root(model) in NATIVE_PACKAGES:
            return False
        return callable(getattr(model, "predict", None))

    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        check_options(self.name, options)
        self._check_handles(model)
        import cloudpickle

        try:
            with open(path, "wb") as handle:
                cloudpickle.dump(model, handle, protocol=5)
        except Exception as exc:  # noqa: BLE001 - pickling fails in many ways (locks, open files, generators)
            raise ValidationError(
                f"cloudpickle cannot save this {qualified_name(model)}: {type(exc).__name__}: {exc}. "
                "Keep only picklable state on the model (no open files, connections or locks)."
            ) from exc
        return {
            "flavor": self.name,
            "format": "cloudpickle",
            "class": qualified_name(model),
            "task": _task(model),
            "classes": class_list(getattr(model, "classes_", None)),
            "columns": "as_given",
            "feature_names": None,
            "n_features": _n_features(model),
            # cloudpickle files only load reliably on the Python minor version that wrote them.
            "python": _python(),
            "sha256": file_digest(path),
            "pickle_based": True,
        }

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        verify_digest(path, meta)
        saved_with = meta.get("python")
        if saved_with and saved_with != _python():
            raise ValidationError(
                f"{path} was pickled under Python {saved_with}, but this is Python {_python()}; cloudpickle "
                f"files do not load across Python versions. Load it under Python {saved_with}."
            )
        import cloudpickle

        with open(path, "rb") as handle:
            return cloudpickle.load(handle)  # noqa: S301 - digest checked above

    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        return as_1d(model.predict(frame))

    def predict_proba(self, model: Any, frame: pd.DataFrame) -> np.ndarray | None:
        method = getattr(model, "predict_proba", None)
        if not callable(method):
            return None
        import numpy as np

        return np.asarray(method(frame))

    def describe(self, model: Any) -> dict[str, Any]:
        get_params = getattr(model, "get_params", None)
        state = vars(model) if hasattr(model, "__dict__") else {}
        # Public attributes otherwise, leaving out fitted state ("classes_") as scikit-learn names it.
        params = get_params() if callable(get_params) else {
            k: v for k, v in state.items() if not (k.startswith("_") or k.endswith("_"))
        }
        return {
            "class": qualified_name(model),
            "task": _task(model),
            "params": jsonable_params(params),
            "n_features": _n_features(model),
            "classes": class_list(getattr(model, "classes_", None)),
        }


def _python() -> str:
    return ".".join(platform.python_version_tuple()[:2])


def _task(model: Any) -> Task:
    """From the object's own declaration: `task`, or scikit-learn's `_estimator_type`."""
    declared = getattr(model, "task", None) or getattr(model, "_estimator_type", None)
    if declared in ("classification", "classifier"):
        return "classification"
    if declared in ("regression", "regressor"):
        return "regression"
    return "unknown"


def _n_features(model: Any) -> int | None:
    count = getattr(model, "n_features_in_", None)
    return int(count) if isinstance(count, int) else None
