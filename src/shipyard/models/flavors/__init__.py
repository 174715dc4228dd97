"""Model flavors by name: the built-in ones and those plugged in through the "shipyard.flavors" entry points.

A package adds a flavor by declaring, in its pyproject.toml,
    [project.entry-points."shipyard.flavors"]
    torch = "my_package.flavor:TorchFlavor"
where the object is a Flavor subclass or instance; shipyard.testing.check_flavor proves that it keeps the
contract. Importing this package imports no ML library."""

from __future__ import annotations

import importlib.metadata
import threading
from typing import Any

from shipyard.errors import ConfigError, NotFoundError, ValidationError, did_you_mean
from shipyard.models.flavors.base import Flavor, qualified_name
from shipyard.models.flavors.lightgbm import LightGBMFlavor
from shipyard.models.flavors.onnx import OnnxFlavor
from shipyard.models.flavors.pyfunc import PyfuncFlavor
from shipyard.models.flavors.sklearn import SklearnFlavor
from shipyard.models.flavors.xgboost import XGBoostFlavor

__all__ = ["ENTRY_POINT_GROUP", "Flavor", "all_flavors", "flavor_for", "get_flavor"]

ENTRY_POINT_GROUP = "shipyard.flavors"

# Detection order, most specific first: XGBoost and LightGBM estimators are also scikit-learn
# estimators, and pyfunc takes any object with a predict method, so it comes last.
_BUILTIN: dict[str, Flavor] = {
    flavor.name: flavor
    for flavor in (XGBoostFlavor(), LightGBMFlavor(), OnnxFlavor(), SklearnFlavor(), PyfuncFlavor())
}
_FALLBACK = "pyfunc"
_plugins: dict[str, Flavor] | None = None
_plugins_lock = threading.Lock()


def get_flavor(name: str) -> Flavor:
    """The flavor called `name`; plug-ins are only loaded when the name is not a built-in one."""
    if name in _BUILTIN:
        return _BUILTIN[name]
    plugins = _load_plugins()
    if name in plugins:
        return plugins[name]
    known = sorted([*_BUILTIN, *plugins])
    raise NotFoundError(f"No model flavor named {name!r}. Flavors: {', '.join(known)}.{did_you_mean(name, known)}")


def flavor_for(model: Any) -> Flavor:
    """The flavor that saves `model`: the first built-in that handles it, then plug-ins, then pyfunc."""
    for name, flavor in _BUILTIN.items():
        if name != _FALLBACK and flavor.handles(model):
            return flavor
    for flavor in _load_plugins().values():
        if flavor.handles(model):
            return flavor
    if _BUILTIN[_FALLBACK].handles(model):
        return _BUILTIN[_FALLBACK]
    supported = (
        "scikit-learn estimators and Pipelines, XGBoost and LightGBM models, onnx.ModelProto, "
        "any object with a predict(frame) method"
    )
    extra = f", and the plug-in flavors {', '.join(_load_plugins())}" if _load_plugins() else ""
    raise ValidationError(
        f"No model flavor can save a {qualified_name(model)}. Supported: {supported}{extra}. "
        "Wrap the model in a class with a predict(frame) method to save it as pyfunc."
    )


def all_flavors() -> list[Flavor]:
    """Built-in flavors in detection order, then plug-ins by name."""
    plugins = _load_plugins()
    return [*_BUILTIN.values(), *(plugins[name] for name in sorted(plugins))]


def _load_plugins() -> dict[str, Flavor]:
    """Load every "shipyard.flavors" entry point once; a broken one raises an error naming it, every time."""
    global _plugins
    with _plugins_lock:
        if _plugins is None:
            found: dict[str, Flavor] = {}
            for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                flavor = _instantiate(entry_point)
                if flavor.name in _BUILTIN or flavor.name in found:
                    raise ConfigError(
                        f"The model flavor plug-in {_describe(entry_point)} is named {flavor.name!r}, which "
                        f"{'is built in' if flavor.name in _BUILTIN else 'another plug-in already uses'}. "
                        "Rename the flavor or uninstall one of the packages."
                    )
                found[flavor.name] = flavor
            _plugins = found
        return _plugins


def _instantiate(entry_point: importlib.metadata.EntryPoint) -> Flavor:
    try:
        loaded = entry_point.load()
        flavor = loaded() if isinstance(loaded, type) and issubclass(loaded, Flavor) else loaded
    except Exception as exc:  # noqa: BLE001 - a plug-in can fail in any way; say which one failed
        raise ConfigError(
            f"The model flavor plug-in {_describe(entry_point)} failed to load: {type(exc).__name__}: {exc}. "
            "Fix or uninstall the package that provides it."
        ) from exc
    if not isinstance(flavor, Flavor):
        raise ConfigError(
            f"The model flavor plug-in {_describe(entry_point)} gave a {qualified_name(flavor)}, not a Flavor "
            "subclass or instance. Point the entry point at a shipyard.models.flavors.base.Flavor subclass."
        )
    if not isinstance(getattr(flavor, "name", None), str):
        raise ConfigError(f"The model flavor plug-in {_describe(entry_point)} has no `name`. Give the class one.")
    return flavor


def _describe(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    source = f" from {dist.name}" if dist is not None else ""
    return f"'{entry_point.name}' ({entry_point.value}{source})"
