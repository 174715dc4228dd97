"""Feature views declared in Python: which entity keys, event timestamp, source, features (with their types),
TTL and transformation make a set of features. A definition is checked when it is made and has a fingerprint;
the registry keeps a new version of a view whenever its fingerprint changes."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import inspect
import json
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

Transform = Callable[["pd.DataFrame"], "pd.DataFrame"]

#: The feature types a view may declare, and the pandas dtype a retrieved column gets (nullable, since an
#: entity without a valid value gets a null).
TYPES: dict[str, str] = {
    "float64": "float64", "float32": "float32", "int64": "Int64", "int32": "Int32", "bool": "boolean",
    "string": "string", "timestamp": "datetime64[ns, UTC]",
}
#: Files a view may read directly, by their suffix; any other source names a dataset (NAME or NAME@V).
SOURCE_FILES = (".parquet", ".pq", ".csv")

_VIEW_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,127}$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]{0,127}$")
_TTL = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_ttl(ttl: object) -> float | None:
    """A TTL in seconds from "30d", "12h", "90m", "45s" (or a sum such as "1d12h"), a timedelta, a number of
    seconds, or None (values never expire)."""
    if ttl is None:
        return None
    if isinstance(ttl, bool):
        raise ValidationError(f"Invalid TTL {ttl!r}: give a duration such as '30d', '12h', '90m' or '45s', a "
                              "timedelta, a number of seconds, or None for values that never expire.")
    if isinstance(ttl, dt.timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, int | float):
        seconds = float(ttl)
    elif isinstance(ttl, str):
        text = ttl.strip().lower()
        parts = _TTL.findall(text)
        if not text or _TTL.sub("", text).strip():
            raise ValidationError(f"Invalid TTL {ttl!r}: use a number with a unit d, h, m or s, such as '30d', "
                                  "'12h', '90m', '45s' or '1d12h'.")
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    else:
        raise ValidationError(f"Invalid TTL {ttl!r} ({type(ttl).__name__}): give a duration such as '30d', a "
                              "timedelta, a number of seconds, or None.")
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise ValidationError(f"Invalid TTL {ttl!r}: a TTL is zero or more seconds (None: values never expire).")
    return seconds


def format_ttl(seconds: float | None) -> str:
    """A TTL for people: 30d, 12h, 90m, 45s (None: never)."""
    if seconds is None:
        return "never"
    for unit, size in _UNITS.items():
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def check_view_name(name: object) -> str:
    if not isinstance(name, str) or not _VIEW_NAME.match(name):
        raise ValidationError(f"Invalid feature view name {name!r}: use 1-128 letters, digits, '_' or '-', starting "
                              "with a letter (for example 'customer_stats').")
    return name


def _check_column(value: object, what: str) -> str:
    if not isinstance(value, str) or not _COLUMN.match(value):
        raise ValidationError(f"Invalid {what} {value!r}: a column name of letters, digits, '_', '-' or '.', "
                              "starting with a letter or '_' (no ':' or ',', which the feature references use).")
    return value


@dataclass(frozen=True)
class TransformRef:
    """Where a view's transformation lives, so it can be imported again, and the digest of its normalised
    source code."""

    module: str
    qualname: str
    file: str | None
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "qualname": self.qualname, "file": self.file, "digest": self.digest}


def transform_source(fn: Callable[..., Any]) -> str:
    """The transformation's source code, normalised: formatting, comments and the function's name do not count
    (a function is parsed and unparsed); a lambda's line is taken as written, without surrounding whitespace."""
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise ValidationError(
            f"Cannot read the source code of the transform {getattr(fn, '__qualname__', fn)!r} ({exc}): define it "
            "with `def` in a Python file, so its code can be fingerprinted and imported again."
        ) from None
    try:
        tree = ast.parse(text)
    except SyntaxError:  # a lambda inside a larger expression: its lines are not a statement on their own
        return "\n".join(line.strip() for line in text.splitlines() if line.strip())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.name = "transform"
    return ast.unparse(tree)


def transform_ref(fn: Callable[..., Any]) -> TransformRef:
    if not callable(fn):
        raise ValidationError(f"A transform must be a function taking and returning a DataFrame, got "
                              f"{type(fn).__name__}.")
    code = transform_source(fn)
    module = getattr(fn, "__module__", None) or "__main__"
    try:
        file = inspect.getsourcefile(fn)
    except TypeError:
        file = None
    return TransformRef(module, getattr(fn, "__qualname__", "<transform>"), file,
                        hashlib.sha256(code.encode()).hexdigest())


@dataclass(frozen=True, eq=False)
class FeatureView:
    """A set of features of some entities, read from one source.

    `entities` are the key columns; `timestamp` the column with each row's event time; `created_timestamp`
    (optional) a column saying when a row was written, which breaks ties between rows of one entity at one
    event time (the later one wins; then the later row of the source). `source` is a dataset ("credit", its
    latest version, or "credit@3") or a .parquet/.csv file. `features` maps each feature to its type (one of
    TYPES). `ttl` is how long a value stays valid after its event time ("30d", "12h", "90m", "45s", a
    timedelta, seconds, or None for never). `transform`, if given, runs on the source rows before anything
    else, offline and online alike."""

    name: str
    entities: Sequence[str]
    source: str
    features: Mapping[str, str]
    timestamp: str = "event_ts"
    created_timestamp: str | None = None
    ttl: str | float | dt.timedelta | None = None
    transform: Transform | None = None
    description: str = ""
    ttl_seconds: float | None = field(init=False)
    transform_ref: TransformRef | None = field(init=False)

    def __init__(self, name: str, *, entities: Sequence[str], source: str, features: Mapping[str, str],
                 timestamp: str = "event_ts", created_timestamp: str | None = None,
                 ttl: str | float | dt.timedelta | None = None, transform: Transform | None = None,
                 description: str = "") -> None:
        check_view_name(name)
        if isinstance(entities, str) or not isinstance(entities, Sequence) or not entities:
            raise ValidationError(f"Feature view '{name}': entities must be a non-empty list of key columns, e.g. "
                                  f"entities=['customer_id'], got {entities!r}.")
        keys = [_check_column(e, f"entity column of feature view '{name}'") for e in entities]
        _check_column(timestamp, f"timestamp column of feature view '{name}'")
        if created_timestamp is not None:
            _check_column(created_timestamp, f"created timestamp column of feature view '{name}'")
        if not isinstance(source, str) or not source.strip():
            raise ValidationError(f"Feature view '{name}': source must name a dataset ('credit', 'credit@3') or a "
                                  f".parquet or .csv file, got {source!r}.")
        if not isinstance(features, Mapping) or not features:
            raise ValidationError(f"Feature view '{name}': features must map each feature to its type, e.g. "
                                  f"{{'spend_30d': 'float64'}}, got {features!r}.")
        for feature, kind in features.items():
            _check_column(feature, f"feature name in feature view '{name}'")
            if kind not in TYPES:
                from shipyard.errors import did_you_mean

                raise ValidationError(
                    f"Feature '{feature}' of view '{name}' has unknown type {kind!r}.{did_you_mean(str(kind), TYPES)} "
                    f"Types: {', '.join(TYPES)}.", feature=feature)
        columns = [*keys, timestamp, *([created_timestamp] if created_timestamp else []), *features]
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValidationError(f"Feature view '{name}' uses {repeated[0]!r} for more than one role (entity, "
                                  "timestamp, created timestamp, feature): each column has one role.")
        if transform is not None and not callable(transform):
            raise ValidationError(f"Feature view '{name}': transform must be a function taking and returning a "
                                  f"DataFrame, got {type(transform).__name__}.")
        if not isinstance(description, str):
            raise ValidationError(f"Feature view '{name}': description must be text.")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "entities", tuple(keys))
        object.__setattr__(self, "source", source.strip())
        object.__setattr__(self, "features", dict(features))
        object.__setattr__(self, "timestamp", timestamp)
        object.__setattr__(self, "created_timestamp", created_timestamp)
        object.__setattr__(self, "ttl", ttl)
        object.__setattr__(self, "ttl_seconds", parse_ttl(ttl))
        object.__setattr__(self, "transform", transform)
        object.__setattr__(self, "transform_ref", transform_ref(transform) if transform is not None else None)
        object.__setattr__(self, "description", description)

    @property
    def source_is_file(self) -> bool:
        return self.source.lower().endswith(SOURCE_FILES)

    def definition(self) -> dict[str, Any]:
        """The definition as JSON-able data, as the registry keeps it."""
        return {
            "name": self.name, "entities": list(self.entities), "timestamp": self.timestamp,
            "created_timestamp": self.created_timestamp, "source": self.source, "features": dict(self.features),
            "ttl_seconds": self.ttl_seconds,
            "transform": self.transform_ref.to_dict() if self.transform_ref is not None else None,
            "description": self.description,
        }

    @property
    def fingerprint(self) -> str:
        """SHA-256 of what decides the values a view yields: keys, timestamps, source, features and their types,
        TTL and the transformation's normalised code (not its location, nor the description)."""
        body = {
            "entities": list(self.entities), "timestamp": self.timestamp, "created_timestamp": self.created_timestamp,
            "source": self.source, "features": sorted(self.features.items()), "ttl_seconds": self.ttl_seconds,
            "transform": self.transform_ref.digest if self.transform_ref is not None else None,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def __repr__(self) -> str:
        return (f"FeatureView({self.name!r}, entities={list(self.entities)!r}, source={self.source!r}, "
                f"features={dict(self.features)!r}, ttl={format_ttl(self.ttl_seconds)!r})")
