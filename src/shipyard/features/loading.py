"""Feature views found in Python: the module-level views of a module or file (for `shipyard features apply`),
and a registered view's transformation imported again from the module it was declared in."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import types
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import NotFoundError, ValidationError, did_you_mean
from shipyard.features.views import FeatureView, Transform, transform_ref

if TYPE_CHECKING:
    from shipyard.features.registry import RegisteredView

# Transformations of the views applied in this process, by the digest of their code: the same code is the same
# function, so a script that applies its views and then retrieves them never imports itself again.
_KNOWN: dict[str, Transform] = {}
_LOCK = threading.Lock()


def remember(view: FeatureView) -> None:
    if view.transform is not None and view.transform_ref is not None:
        with _LOCK:
            _KNOWN[view.transform_ref.digest] = view.transform


def load_views(target: str) -> list[FeatureView]:
    """The FeatureView objects defined at the top level of a module (`package.module`) or a Python file
    (`path/to/views.py`), in the order they are defined."""
    if not isinstance(target, str) or not target.strip():
        raise ValidationError(f"Name a module (package.views) or a Python file (path/to/views.py), got {target!r}.")
    target = target.strip()
    is_path = target.endswith(".py") or "/" in target or os.sep in target
    module = import_file(Path(target)) if is_path else import_module(target)
    found: dict[int, tuple[str, FeatureView]] = {}  # by identity: one view bound to two names is one view
    by_name: dict[str, str] = {}
    for variable, value in vars(module).items():
        if not isinstance(value, FeatureView) or id(value) in found:
            continue
        if value.name in by_name:
            raise ValidationError(
                f"{target} declares feature view '{value.name}' twice, as `{by_name[value.name]}` and `{variable}`: "
                "give each view its own name, or remove one of them. Nothing was registered.", view=value.name)
        found[id(value)] = (variable, value)
        by_name[value.name] = variable
    if not found:
        raise ValidationError(f"{target} defines no feature view at its top level: declare them as "
                              "`name = FeatureView(...)` in the module.")
    return [view for _, view in found.values()]


def import_module(name: str) -> types.ModuleType:
    # Like `python -m`, the current folder is importable, so `shipyard features apply features.views` works
    # from the project root without installing it.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise NotFoundError(f"Cannot import module '{name}': {exc}. Check the spelling, run from the folder "
                                "that contains it (or add that folder to PYTHONPATH), or name the file instead: "
                                f"{name.replace('.', '/')}.py.", module=name) from exc
        raise _import_failed(name, exc) from exc
    except Exception as exc:  # the user's code failed while importing
        raise _import_failed(name, exc) from exc


def import_file(path: Path) -> types.ModuleType:
    resolved = path.expanduser().resolve()
    if not resolved.is_file():
        raise NotFoundError(f"No file {str(path)!r} (looked at {resolved}). A path is relative to the current "
                            "folder.", path=str(path))
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(resolved):
            return module  # imported already (the running script, or an earlier apply)
    folder = str(resolved.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so the file's own imports of its neighbours work
    name = resolved.stem if resolved.stem not in sys.modules else f"_shipyard_features_{resolved.stem}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ValidationError(f"Cannot import {resolved}: name a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling need the module registered
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code failed while importing
        sys.modules.pop(name, None)
        raise _import_failed(str(path), exc) from exc
    return module


def _import_failed(what: str, exc: BaseException) -> ValidationError:
    return ValidationError(f"Importing {what} failed: {type(exc).__name__}: {exc}. Fix the module (--debug shows "
                           "the traceback).")


def resolve_transform(view: RegisteredView) -> Transform | None:
    """The registered version's transformation, from this process or imported again from where it was declared;
    its code must still be the code that was registered."""
    ref = view.definition.get("transform")
    if not ref:
        return None
    with _LOCK:
        known = _KNOWN.get(ref["digest"])
    if known is not None:
        return known
    module = _module_of(view, ref)
    candidates: list[Transform] = []
    if "<" not in ref["qualname"]:  # a lambda or a nested function has no attribute path
        found: object = module
        for part in ref["qualname"].split("."):
            found = getattr(found, part, None)
        if callable(found):
            candidates.append(found)
    candidates += [v.transform for v in vars(module).values()
                   if isinstance(v, FeatureView) and v.name == view.name and v.transform is not None]
    for candidate in candidates:
        if transform_ref(candidate).digest == ref["digest"]:
            with _LOCK:
                _KNOWN[ref["digest"]] = candidate
            return candidate
    where = ref["file"] or ref["module"]
    if candidates:
        raise ValidationError(
            f"The transform of feature view {view.version_id} ({ref['qualname']} in {where}) has changed since that "
            f"version was applied. Apply the module again (`shipyard features apply {where}`) to register the new "
            "code as a new version, or restore the code of that version.", view=view.version_id)
    names = [k for k in vars(module) if not k.startswith("_")]
    raise NotFoundError(
        f"The transform of feature view {view.version_id}, {ref['qualname']}, is no longer in {where}."
        f"{did_you_mean(ref['qualname'], names)} Restore it, or apply the views again.", view=view.version_id)


def _module_of(view: RegisteredView, ref: dict[str, str]) -> types.ModuleType:
    name, file = ref["module"], ref["file"]
    loaded = sys.modules.get(name)
    if loaded is not None and (file is None or getattr(loaded, "__file__", None) == file):
        return loaded
    if file is not None and Path(file).is_file():
        return import_file(Path(file))
    if name != "__main__":
        try:
            return import_module(name)
        except NotFoundError:
            pass
    raise NotFoundError(f"The transform of feature view {view.version_id} was declared in {file or name}, which "
                        "cannot be imported from here. Run where that module is importable, or apply the views "
                        "again from where they live now.", view=view.version_id)
