"""The Flavor interface: how one kind of model is saved to one file, loaded, asked for predictions and described."""

from __future__ import annotations

import abc
import hashlib
import sys
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from shipyard.errors import IntegrityError, ValidationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Task = Literal["classification", "regression", "unknown"]

#: How a flavor matches a frame's columns to the model's inputs (meta["columns"]).
#: "by_name": columns are picked and ordered by meta["feature_names"]; order in the frame does not matter.
#: "by_position": the frame's columns are used in the order given; their names are ignored.
#: "as_given": the frame is handed to the model unchanged (pyfunc); the model decides.
ColumnMatching = Literal["by_name", "by_position", "as_given"]

_MAX_PARAMS = 50
_MAX_REPR = 200
_META_ATTR = "shipyard_flavor_meta"


class Flavor(abc.ABC):
    """One kind of model. Implementations hold no state: one instance serves every model of its kind."""

    name: ClassVar[str]
    file_name: ClassVar[str]
    pickle_based: ClassVar[bool]
    packages: ClassVar[tuple[str, ...]]
    #: Whether saving the same model object twice writes identical bytes, so that registering it again
    #: finds the stored artifact instead of making a new version. check_flavor holds a flavor to it.
    deterministic: ClassVar[bool] = False

    @abc.abstractmethod
    def handles(self, model: Any) -> bool:
        """Whether `model` is of this flavor. Imports nothing that is not already imported."""

    @abc.abstractmethod
    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        """Write the model as one file at `path`; return the JSON-able metadata `load` needs."""

    @abc.abstractmethod
    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        """The native model object saved at `path`, given the metadata `save` returned."""

    @abc.abstractmethod
    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        """1-D predictions: class labels for classifiers, values for regressors."""

    @abc.abstractmethod
    def predict_proba(self, model: Any, frame: pd.DataFrame) -> np.ndarray | None:
        """Class probabilities of shape (n, n_classes), or None when the model gives none."""

    @abc.abstractmethod
    def describe(self, model: Any) -> dict[str, Any]:
        """JSON-able summary: class, task, params, n_features, classes."""

    def environment(self) -> dict[str, str]:
        """Installed versions of this flavor's packages, by distribution name; missing ones are left out."""
        return dict(installed_versions(self.packages))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def _check_handles(self, model: Any) -> None:
        if not self.handles(model):
            raise ValidationError(
                f"The {self.name} flavor cannot save a {qualified_name(model)}. "
                "Let Shipyard pick the flavor (flavor_for(model)) or pass the flavor that fits the model."
            )


@lru_cache(maxsize=None)
def installed_versions(distributions: tuple[str, ...]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for distribution in distributions:
        try:
            found[distribution] = version(distribution)
        except PackageNotFoundError:
            continue
    return found


def attach_meta(model: Any, meta: Mapping[str, Any]) -> Any:
    """Keep the saved metadata on a loaded model whose native object cannot hold it (a LightGBM Booster)."""
    setattr(model, _META_ATTR, dict(meta))
    return model


def attached_meta(model: Any) -> dict[str, Any]:
    found = getattr(model, _META_ATTR, None)
    return found if isinstance(found, dict) else {}


def module_root(model: Any) -> str:
    """The top-level package of the model's class ("sklearn" for sklearn.linear_model._logistic)."""
    return type(model).__module__.partition(".")[0]


def imported(module: str) -> Any:
    """The module if something already imported it, else None; never triggers an import."""
    return sys.modules.get(module)


def qualified_name(model: Any) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def check_options(flavor: str, options: Mapping[str, Any], allowed: Sequence[str] = ()) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "none"
        raise ValidationError(
            f"Unknown save option(s) for the {flavor} flavor: {', '.join(unknown)}. Accepted options: {accepted}."
        )


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_digest(path: Path, meta: Mapping[str, Any]) -> None:
    """Refuse to unpickle a file whose SHA-256 differs from the one recorded when it was saved."""
    expected = meta.get("sha256")
    if not expected:
        raise IntegrityError(
            f"Refusing to unpickle {path}: its metadata records no 'sha256' digest to check it against. "
            "Save the model again with this version of Shipyard."
        )
    actual = file_digest(path)
    if actual != expected:
        raise IntegrityError(
            f"Refusing to unpickle {path}: its SHA-256 is {actual}, but {expected} was recorded when it was saved. "
            "The file was changed or replaced; restore it from the model registry."
        )


def match_columns(frame: pd.DataFrame, feature_names: Sequence[str] | None, n_features: int | None = None) -> pd.DataFrame:
    """The frame's columns in the model's order when names are known; otherwise checked by count only.

    Extra columns are ignored when matching by name; missing ones raise a ValidationError naming them."""
    if feature_names is None:
        if n_features is not None and frame.shape[1] != n_features:
            raise ValidationError(
                f"The model takes {n_features} columns by position, but the frame has {frame.shape[1]}. "
                "Pass exactly the training columns, in the training order."
            )
        return frame
    missing = [name for name in feature_names if name not in frame.columns]
    if missing:
        raise ValidationError(
            f"The frame lacks {len(missing)} column(s) the model needs: {_shorten(missing)}. "
            f"The model takes {len(feature_names)}: {_shorten(feature_names)}."
        )
    if list(frame.columns) == list(feature_names):
        return frame
    return frame.loc[:, list(feature_names)]


def _shorten(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def jsonable(value: Any) -> Any:
    """A JSON-able copy of a parameter value: scalars and small containers as is, anything else as a short repr."""
    import numpy as np

    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, np.ndarray) and value.size <= _MAX_PARAMS:
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)) and len(value) <= _MAX_PARAMS:
        return [jsonable(v) for v in value]
    if isinstance(value, dict) and len(value) <= _MAX_PARAMS:
        return {str(k): jsonable(v) for k, v in value.items()}
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 1] + "…"


def jsonable_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """At most 50 parameters, each made JSON-able."""
    return {str(key): jsonable(params[key]) for key in sorted(params)[:_MAX_PARAMS]}


def class_list(classes: Any) -> list[Any] | None:
    if classes is None:
        return None
    import numpy as np

    return [jsonable(c) for c in np.asarray(classes).tolist()]


def as_1d(values: Any) -> np.ndarray:
    """Predictions as a 1-D array; an (n, 1) column is flattened."""
    import numpy as np

    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        return array.ravel()
    return array
