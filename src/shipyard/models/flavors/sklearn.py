"""scikit-learn estimators and Pipelines, saved with skops (no code runs at load) unless pickle is asked for.

Column order: a model fitted on a DataFrame has feature_names_in_; frames are reordered to it, so the
order of their columns does not matter. A model fitted on an array takes the columns by position."""

from __future__ import annotations

import pickle
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
    imported,
    jsonable_params,
    match_columns,
    module_root,
    qualified_name,
    verify_digest,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

FORMATS = ("skops", "pickle")
# Estimators from these packages subclass BaseEstimator but have flavors of their own.
_OTHER_FLAVORS = ("xgboost", "lightgbm")


class SklearnFlavor(Flavor):
    name: ClassVar[str] = "sklearn"
    file_name: ClassVar[str] = "model.skops"
    pickle_based: ClassVar[bool] = False  # the default skops format; meta["pickle_based"] is True for format="pickle"
    deterministic: ClassVar[bool] = True
    packages: ClassVar[tuple[str, ...]] = ("scikit-learn", "skops", "numpy", "scipy")

    def handles(self, model: Any) -> bool:
        base = imported("sklearn.base")
        if base is None or isinstance(model, type):
            return False
        return isinstance(model, base.BaseEstimator) and module_root(model) not in _OTHER_FLAVORS

    def save(self, model: Any, path: Path, **options: Any) -> dict[str, Any]:
        """Options: format="skops" (default, safe) or "pickle" for models skops cannot represent."""
        check_options(self.name, options, ("format",))
        self._check_handles(model)
        fmt = options.get("format", "skops")
        meta: dict[str, Any] = {
            "flavor": self.name,
            "format": fmt,
            "class": qualified_name(model),
            "task": _task(model),
            "classes": class_list(getattr(model, "classes_", None)),
            **_columns(model),
        }
        if fmt == "skops":
            sio = _skops()
            try:
                sio.dump(model, path)
            except Exception as exc:  # noqa: BLE001 - skops raises many kinds for objects it cannot represent
                raise ValidationError(
                    f"skops cannot save this {qualified_name(model)}: {type(exc).__name__}: {exc}. "
                    "Save it with format='pickle' if you trust everyone who will load it."
                ) from exc
            _normalise_zip(path)
            # The saver vouches for every type in its own file; at load, only these are trusted.
            meta["trusted_types"] = sorted(sio.get_untrusted_types(file=path))
            meta["pickle_based"] = False
        elif fmt == "pickle":
            with open(path, "wb") as handle:
                pickle.dump(model, handle, protocol=5)
            meta["sha256"] = file_digest(path)
            meta["pickle_based"] = True
        else:
            raise ValidationError(f"Unknown sklearn save format {fmt!r}. Formats: {', '.join(FORMATS)}.")
        return meta

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        fmt = meta.get("format", "skops")
        if fmt == "pickle":
            verify_digest(path, meta)
            with open(path, "rb") as handle:
                return pickle.load(handle)  # noqa: S301 - digest checked above
        if fmt != "skops":
            raise ValidationError(f"Unknown sklearn model format {fmt!r} in {path}. Formats: {', '.join(FORMATS)}.")
        sio = _skops()
        trusted = [str(t) for t in meta.get("trusted_types", [])]
        needed = sio.get_untrusted_types(file=path)
        unexpected = sorted(set(needed) - set(trusted))
        if unexpected:
            raise ValidationError(
                f"Refusing to load {path}: it contains type(s) that were not trusted when it was saved: "
                f"{', '.join(unexpected)}. Trusted: {', '.join(trusted) or 'none'}. "
                "The file or its metadata was changed; restore the model from the registry or save it again."
            )
        return sio.load(path, trusted=trusted)

    def predict(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        return as_1d(model.predict(_inputs(model, frame)))

    def predict_proba(self, model: Any, frame: pd.DataFrame) -> np.ndarray | None:
        if not hasattr(model, "predict_proba"):  # also False for a Pipeline whose last step has none
            return None
        import numpy as np

        return np.asarray(model.predict_proba(_inputs(model, frame)))

    def describe(self, model: Any) -> dict[str, Any]:
        details: dict[str, Any] = {
            "class": qualified_name(model),
            "task": _task(model),
            "params": jsonable_params(model.get_params(deep=False)),
            "n_features": _n_features(model),
            "classes": class_list(getattr(model, "classes_", None)),
        }
        steps = getattr(model, "steps", None)
        if isinstance(steps, list):
            details["steps"] = [[str(name), qualified_name(step)] for name, step in steps]
        return details


def _task(model: Any) -> Task:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model):
        return "classification"
    if is_regressor(model):
        return "regression"
    return "unknown"


def _n_features(model: Any) -> int | None:
    try:
        count = model.n_features_in_
    except AttributeError:  # unfitted, or a Pipeline whose first step is "passthrough"
        return None
    return int(count)


def _columns(model: Any) -> dict[str, Any]:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return {"columns": "by_position", "feature_names": None, "n_features": _n_features(model)}
    return {"columns": "by_name", "feature_names": [str(n) for n in names], "n_features": len(names)}


def _inputs(model: Any, frame: pd.DataFrame) -> Any:
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return match_columns(frame, [str(n) for n in names])
    # Fitted on an array: pass an array too, so scikit-learn does not warn about unexpected names.
    return match_columns(frame, None, _n_features(model)).to_numpy()


def _skops() -> Any:
    try:
        import skops.io as sio
    except ModuleNotFoundError:
        from shipyard.errors import ConfigError

        raise ConfigError(
            "Saving and loading scikit-learn models in the safe skops format needs the skops package. "
            "Install it with `pip install 'shipyard-mlops[sklearn]'`."
        ) from None
    return sio


def _normalise_zip(path: Path) -> None:
    """Rewrite a skops archive so that the same model always gives the same bytes (and the same
    content address): skops names arrays and nodes by Python object ids and stamps the entries with
    the time, so ids are renumbered in order of appearance and timestamps fixed."""
    import json
    import re
    import zipfile

    with zipfile.ZipFile(path) as source:
        entries = {info.filename: (info, source.read(info)) for info in source.infolist()}
    if "schema.json" not in entries:
        return
    schema = json.loads(entries["schema.json"][1])
    numbers: dict[int, int] = {}

    def renumber(value: int) -> int:
        return numbers.setdefault(value, len(numbers) + 1)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    out[key] = renumber(value)
                elif key == "file" and isinstance(value, str) and re.fullmatch(r"\d+\.\w+", value):
                    stem, ext = value.split(".", 1)
                    out[key] = f"{renumber(int(stem))}.{ext}"
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    rewritten = walk(schema)
    renamed: dict[str, bytes] = {"schema.json": json.dumps(rewritten, indent=2).encode()}
    for name, (_, data) in entries.items():
        if name == "schema.json":
            continue
        match = re.fullmatch(r"(\d+)\.(\w+)", name)
        renamed[f"{renumber(int(match.group(1)))}.{match.group(2)}" if match else name] = data
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for name in sorted(renamed):
            fixed = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(fixed, renamed[name])
    tmp.replace(path)
