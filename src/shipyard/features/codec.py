"""How the online store spells entity keys and feature values, so that every backend stores the same text
and every type comes back as it went in: whole numbers, floats (NaN and infinities too), strings, booleans,
None, timestamps (as UTC) and lists of these."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from shipyard.errors import ValidationError
from shipyard.features.timing import to_utc

if TYPE_CHECKING:
    import pandas as pd

#: The created time of a row written without one: older than any real created time.
NO_CREATED = -(2**63)

_TIME = "$t"  # a timestamp value is stored as {"$t": nanoseconds since the epoch, UTC}
_SUPPORTED = "whole numbers, floats, strings, booleans, timestamps, None, or lists of these"


def encode_key(values: Sequence[int | str]) -> str:
    """An entity key as text: a JSON list, so 42 and "42" stay different keys."""
    if all(type(v) is int for v in values):  # the common case, spelled as json.dumps would
        return "[" + ",".join(map(str, values)) + "]"
    return json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)


def key_kind(value: Any) -> str:
    """"int" or "str" for one entity key value; a ValidationError for anything else."""
    import numpy as np

    if isinstance(value, bool | np.bool_) or not isinstance(value, int | str | np.integer):
        raise ValidationError(f"Entity key value {value!r} ({type(value).__name__}) is neither a whole number nor a "
                              "string: entity keys are ints or strs.", value=repr(value))
    return "str" if isinstance(value, str) else "int"


def entity_keys(frame: pd.DataFrame, entities: Sequence[str], where: str
                ) -> tuple[list[list[int | str]], tuple[str | None, ...]]:
    """The values of each entity column as Python ints or strs, and each column's kind ("int", "str"; None for
    an empty column whose kind cannot be told). Null keys, floats and booleans are refused with the fix."""
    import numpy as np
    import pandas as pd

    columns: list[list[int | str]] = []
    kinds: list[str | None] = []
    for name in entities:
        series = frame[name]
        if series.isna().any():
            rows = series.index[series.isna()].tolist()[:5]
            raise ValidationError(f"Entity column {name} in {where} has empty keys (rows {rows}): drop or fill them.",
                                  column=name)
        dtype = series.dtype
        if pd.api.types.is_bool_dtype(dtype):
            raise ValidationError(f"Entity column {name} in {where} holds booleans: entity keys are whole numbers "
                                  "or strings.", column=name)
        if pd.api.types.is_integer_dtype(dtype):
            columns.append([int(v) for v in series.tolist()])
            kinds.append("int")
            continue
        if pd.api.types.is_float_dtype(dtype):
            raise ValidationError(f"Entity column {name} in {where} holds decimal numbers ({dtype}): entity keys are "
                                  f"whole numbers or strings. Convert it, for example .astype('int64').", column=name)
        if dtype != object and not pd.api.types.is_string_dtype(dtype):
            raise ValidationError(f"Entity column {name} in {where} holds {dtype} values: entity keys are whole "
                                  "numbers or strings.", column=name)
        values = series.tolist()
        found = {key_kind(v) for v in values}
        if len(found) > 1:
            raise ValidationError(f"Entity column {name} in {where} mixes whole numbers and strings: give it one "
                                  "type, for example .astype(str).", column=name)
        columns.append([int(v) if isinstance(v, np.integer) else v for v in values])
        kinds.append(found.pop() if found else None)
    return columns, tuple(kinds)


def value_encoder(series: pd.Series, what: str) -> Callable[[int], Any]:
    """For a feature column, a function from row position to its value in JSON-ready form."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        values: list[Any] = _times(to_utc(series, what))
    elif isinstance(dtype, pd.api.extensions.ExtensionDtype) and not isinstance(dtype, pd.CategoricalDtype):
        # Nullable and string dtypes mark missing values as pd.NA or NaN; stored as None either way.
        values = [None if missing else _plain(v, what)
                  for v, missing in zip(series.astype(object).tolist(), series.isna().tolist(), strict=True)]
    elif dtype.kind in "biuf":
        values = series.tolist()
    else:
        raw = series.astype(object).tolist()
        present = [v for v in raw if v is not None and v is not pd.NaT and v is not pd.NA]
        if present and all(isinstance(v, dt.datetime | pd.Timestamp) for v in present):
            values = _times(to_utc(series.astype(object), what))
        else:
            values = [_plain(v, what) for v in raw]
    return values.__getitem__


def decode_values(payload: str) -> dict[str, Any]:
    """A stored row's values, timestamps as UTC pandas Timestamps."""
    values = json.loads(payload)
    return {name: _revive(value) for name, value in values.items()}


def decode_value(value: Any) -> Any:
    """One value of a stored row's JSON as it went in (timestamps as UTC pandas Timestamps)."""
    return _revive(value)


def utc_ns(series: pd.Series) -> Any:
    """A datetime64[ns, UTC] series as int64 nanoseconds (NaT as the smallest int64)."""
    return series.to_numpy(dtype="datetime64[ns]").view("int64")


def _times(series: pd.Series) -> list[Any]:
    return [None if missing else {_TIME: ns} for missing, ns in
            zip(series.isna().tolist(), utc_ns(series).tolist(), strict=True)]


def _plain(value: Any, what: str) -> Any:
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime | pd.Timestamp | np.datetime64):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return {_TIME: int(stamp.value)}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v, what) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    raise ValidationError(f"{what} holds {value!r} ({type(value).__name__}); online values must be {_SUPPORTED}.",
                          column=what)


def _revive(value: Any) -> Any:
    if isinstance(value, dict):
        import pandas as pd

        return pd.Timestamp(value[_TIME], tz="UTC")
    if isinstance(value, list):
        return [_revive(v) for v in value]
    return value
