"""A pipeline named from outside Python (the CLI, a Kubeflow task): its reference
("package.module:attribute" or "path/to/file.py:attribute") and its parameters given as text."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import NotFoundError, ValidationError, did_you_mean
from shipyard.pipelines.steps import Pipeline, Step

FORMS = "package.module:attribute or path/to/file.py:attribute"


def load_pipeline(ref: str) -> Pipeline:
    """Import the module or file REF names and return its @shipyard.pipeline attribute."""
    target, sep, attribute = ref.rpartition(":")
    if not sep or not target.strip() or not attribute.strip():
        raise ValidationError(f"Pipeline reference {ref!r} must look like {FORMS}, e.g. pipelines.train:training.")
    target, attribute = target.strip(), attribute.strip()
    is_path = target.endswith(".py") or "/" in target or os.sep in target
    module = _import_file(ref, Path(target)) if is_path else _import_module(ref, target)
    found = getattr(module, attribute, None)
    pipelines = sorted(k for k, v in vars(module).items() if isinstance(v, Pipeline))
    listed = f" Pipelines in {target}: {', '.join(pipelines)}." if pipelines else \
        f" {target} defines no pipeline; decorate a function that calls steps with @shipyard.pipeline."
    if found is None:
        names = pipelines or [k for k in vars(module) if not k.startswith("_")]
        raise NotFoundError(f"{target} has no attribute '{attribute}' (pipeline reference {ref!r})."
                            f"{did_you_mean(attribute, names)}{listed}")
    if not isinstance(found, Pipeline):
        what = "a step" if isinstance(found, Step) else \
            "a function" if inspect.isfunction(found) else f"a {type(found).__name__}"
        raise ValidationError(f"{ref!r} is {what}, not a pipeline; name a function decorated with "
                              f"@shipyard.pipeline.{listed}")
    return found


def _import_module(ref: str, name: str) -> types.ModuleType:
    # Like `python -m`, the current folder is importable, so `shipyard pipeline run flows.train:training`
    # works from the project root without installing it.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise NotFoundError(
                f"Cannot import module '{name}' of pipeline reference {ref!r}: {exc}. Check the spelling, run "
                f"from the folder that contains it (or add that folder to PYTHONPATH), or name the file instead: "
                f"path/to/{name.replace('.', '/')}.py:{ref.rpartition(':')[2]}."
            ) from exc
        raise _import_failed(ref, name, exc) from exc
    except Exception as exc:  # user code failed while importing
        raise _import_failed(ref, name, exc) from exc


def _import_file(ref: str, path: Path) -> types.ModuleType:
    resolved = path.resolve()
    if not resolved.is_file():
        raise NotFoundError(f"No file {str(path)!r} (looked at {resolved}) for pipeline reference {ref!r}. "
                            "A path is relative to the current folder.")
    folder = str(resolved.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so the file's own imports of its neighbours work
    name = resolved.stem
    previous = sys.modules.get(name)
    if previous is not None and getattr(previous, "__file__", None) != str(resolved):
        name = f"_shipyard_pipeline_{resolved.stem}"  # never shadow another module of that name
        previous = sys.modules.get(name)
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ValidationError(f"Cannot import {resolved} of pipeline reference {ref!r}: name a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, pickling and relative lookups need the module registered
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # user code failed while importing
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise _import_failed(ref, str(path), exc) from exc
    return module


def _import_failed(ref: str, what: str, exc: BaseException) -> ValidationError:
    return ValidationError(f"Importing {what} for pipeline reference {ref!r} failed: {type(exc).__name__}: {exc}. "
                           "Fix the module (--debug shows the traceback).")


@dataclass(frozen=True)
class Parameter:
    """One parameter of a pipeline function: its declared type (from the annotation or the default)."""

    name: str
    type: type | None
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


_SIMPLE = {t.__name__: t for t in (bool, int, float, str, list, dict, tuple)}


def parameters(pipeline: Pipeline) -> dict[str, Parameter]:
    """The parameters of the pipeline function, in order."""
    try:
        signature = inspect.signature(pipeline.fn, eval_str=True)
    except Exception:  # noqa: BLE001 - an annotation that does not evaluate: use the raw text
        signature = inspect.signature(pipeline.fn)
    found = {}
    for p in signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        declared = _declared(p.annotation)
        if declared is None and p.default is not p.empty and p.default is not None:
            declared = type(p.default) if type(p.default) in _SIMPLE.values() else None
        found[p.name] = Parameter(p.name, declared, p.default)
    return found


def _declared(annotation: Any) -> type | None:
    if isinstance(annotation, str):
        return _SIMPLE.get(annotation.replace(" ", "").removesuffix("|None").removeprefix("Optional[").rstrip("]"))
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _declared(options[0]) if len(options) == 1 else None
    if origin is not None:
        return origin if origin in _SIMPLE.values() else None
    return annotation if annotation in _SIMPLE.values() else None


def check_params(pipeline: Pipeline, params: dict[str, Any]) -> None:
    """Every name is a parameter of the pipeline and every required parameter has a value."""
    pipeline.check_params(params, how=lambda name: f"--param {name}=VALUE")


def parse_params(pipeline: Pipeline, items: list[str]) -> dict[str, Any]:
    """`["n=5", "c=0.5", "name=x"]` → values: JSON when the text parses as JSON (numbers, booleans,
    lists), else the text; a parameter declared `str` keeps the text and one declared `float` a float."""
    raw: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValidationError(f"--param {item!r} must look like NAME=VALUE, e.g. --param n=5 or --param name=churn.")
        raw[key.strip()] = value
    declared = parameters(pipeline)
    params = {k: _convert(k, v, declared[k].type if k in declared else None) for k, v in raw.items()}
    check_params(pipeline, params)
    return params


_EXAMPLES = {bool: "true", int: "5", float: "0.5", list: '["a","b"]', tuple: '["a","b"]', dict: '{"a":1}'}


def _convert(name: str, text: str, declared: type | None) -> Any:
    if declared is str:
        return text
    if declared is bool and text in ("True", "False"):
        return text == "True"
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if declared is None or value is None:
        return value
    if declared is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # `c=1` for a float parameter means 1.0, as in Python; the cache key agrees
    if declared is float and isinstance(value, str):
        try:
            return float(text)  # inf, nan
        except ValueError:
            pass
    if declared is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if declared is tuple and isinstance(value, list):
        return value
    if isinstance(value, declared) and not (isinstance(value, bool) and declared is not bool):
        return value
    expected = {bool: "true or false", int: "a whole number", float: "a number", list: "a JSON list",
                tuple: "a JSON list", dict: "a JSON object"}.get(declared, declared.__name__)
    raise ValidationError(
        f"--param {name}={text}: the pipeline's parameter '{name}' is declared {declared.__name__}, so its value must "
        f"be {expected}; e.g. --param {name}={_EXAMPLES.get(declared, 'VALUE')}.", param=name,
    )
