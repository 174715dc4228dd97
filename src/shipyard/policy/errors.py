"""The one translator from a pydantic validation error of a shipyard.yaml section to a ConfigError whose
lines name the file and line, the key path, the value, what was expected and the closest known key."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from shipyard.errors import ConfigError, did_you_mean

if typing.TYPE_CHECKING:
    from shipyard.policy.document import Document

#: What the keys of a mapping typed dict[K, ...] are called in messages ("unknown metric …"), by K.
KEY_WORDS: dict[Any, str] = {}


def translate(
    exc: PydanticValidationError,
    root: type[BaseModel],
    *,
    prefix: tuple[str, ...] = (),
    document: Document | None = None,
    source: str = "shipyard.yaml",
    source_of: Callable[[str], str] | None = None,
) -> ConfigError:
    """A ConfigError for `exc`, raised validating `root` at key path `prefix` of the document.

    `source_of(dotted_path)` may name where a value came from (an environment variable, a flag)."""
    errors = exc.errors()
    misspelt = {  # `sensitve: sex` also makes `sensitive` missing; the typo's line says all there is to say
        (*err["loc"][:-1], _closest(str(err["loc"][-1]), keys_of(strip(annotation_at(root, err["loc"][:-1])))))
        for err in errors if err["type"] == "extra_forbidden"
    }
    lines = dict.fromkeys(  # unique, in order
        _describe(err, root, prefix, document, source, source_of) for err in errors
        if not (err["type"] == "missing" and tuple(err["loc"]) in misspelt)
    )
    return ConfigError("\n".join(lines), path=_path(prefix, tuple(errors[0]["loc"])) if errors else ".".join(prefix))


def _describe(err: Any, root: type[BaseModel], prefix: tuple[str, ...], document: Document | None, source: str,
              source_of: Callable[[str], str] | None) -> str:
    loc = tuple(err["loc"])
    if loc and loc[-1] == "[key]":  # a mapping key failed, e.g. thresholds.roc_acu
        loc, value, unknown = loc[:-1], None, True
    else:
        value, unknown = err.get("input"), err["type"] == "extra_forbidden"
    path = _path(prefix, loc)
    where, snippet = _where(prefix, loc, document, source, source_of, path)
    if unknown:
        key = str(loc[-1])
        parent = strip(annotation_at(root, loc[:-1]))
        known = keys_of(parent)
        what = KEY_WORDS.get(get_args(parent)[0], "key") if get_origin(parent) is dict else "key"
        shown = f" (value {value!r})" if value is not None and not isinstance(value, dict) else ""
        return (f"{where}: unknown {what} {path}{shown}.{did_you_mean(key, known)} "
                f"Known {what}s there: {', '.join(known) or 'none'}.{snippet}")
    message = str(err["msg"]).removeprefix("Value error, ")
    if source_of is not None:  # a setting: it may come from the file, the environment or a flag
        named = source_of(path)
        line = document.point((*prefix, *loc))[0] if document is not None and named == source else ""
        return f"Invalid setting {path} = {value!r} (from {named}{',' + line if line else ''}): {message}."
    shown = "" if isinstance(value, dict) else f" = {value!r}"
    fix = ""
    if err["type"] == "literal_error" and isinstance(value, str):
        fix = did_you_mean(value, [str(option) for option in get_args(strip(annotation_at(root, loc)))])
    return f"{where}: {path}{shown}: {message}.{fix}{snippet}"


def _where(prefix: tuple[str, ...], loc: tuple[Any, ...], document: Document | None, source: str,
           source_of: Callable[[str], str] | None, path: str) -> tuple[str, str]:
    if source_of is not None:
        named = source_of(path)
        if named != source:
            return f"{named}", ""
    if document is None:
        return source, ""
    line, snippet = document.point((*prefix, *loc))
    return f"{document.name}{line}", snippet


def _closest(key: str, known: list[str]) -> str | None:
    matches = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _path(prefix: tuple[str, ...], loc: tuple[Any, ...]) -> str:
    path = ".".join(prefix)
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def strip(annotation: Any) -> Any:
    """The annotation without Optional and Annotated wrappers."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def annotation_at(root: Any, loc: tuple[Any, ...]) -> Any:
    """The type annotation at a pydantic error location below `root`, or None when it cannot be followed."""
    annotation: Any = root
    for part in loc:
        annotation = strip(annotation)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = next((f for name, f in annotation.model_fields.items() if part in (name, f.alias)), None)
            if field is None:
                return None
            hints = typing.get_type_hints(annotation, include_extras=True)
            annotation = next(hints[name] for name, f in annotation.model_fields.items() if f is field)
        elif origin is list and isinstance(part, int):
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    return annotation


def keys_of(annotation: Any) -> list[str]:
    """The keys a mapping of this type may have: a model's fields (by alias), or a Literal key's options."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or name for name, f in annotation.model_fields.items()]
    if get_origin(annotation) is dict:
        return [str(key) for key in get_args(strip(get_args(annotation)[0]))]
    return []


def require_mapping(value: Any, path: str, what: str, document: Document | None = None) -> dict[str, Any]:
    """`value` when it is a mapping (None, a section whose keys are all commented out, is empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        where, snippet = ("shipyard.yaml", "") if document is None else (
            document.name + document.point(tuple(path.split(".")))[0], document.point(tuple(path.split(".")))[1])
        raise ConfigError(f"{where}: '{path}' must be a mapping of {what}; got {type(value).__name__} {value!r}."
                          f"{snippet}", path=path)
    return value
