"""Model signatures: the input columns (name, dtype, nullability, the ranges and categories seen) and the
output, inferred from the training features and enforced at prediction time with errors that name the
column."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.errors import ValidationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_KINDS = ("integer", "float", "boolean", "string", "datetime", "category", "object")
MAX_CATEGORIES = 100  # a text column with more distinct values records none (an id, free text)


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: str  # integer | float | boolean | string | datetime | category | object
    dtype: str  # the pandas dtype seen in the training features
    nullable: bool  # whether any training row had a null here
    minimum: float | int | None = None  # integer and float columns: the finite range seen in training
    maximum: float | int | None = None
    categories: list[Any] | None = None  # string and category columns: the values seen, when few


@dataclass
class Signature:
    inputs: list[ColumnSpec]
    output: dict[str, Any] = field(default_factory=dict)  # {"kind": ..., "classes": [...]} when known

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [asdict(c) for c in self.inputs], "output": self.output}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        return cls([ColumnSpec(**c) for c in data.get("inputs", [])], dict(data.get("output") or {}))

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.inputs]


def column_kind(dtype: Any) -> str:
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype):
        return "string"
    return "object"


def infer_signature(frame: pd.DataFrame, predictions: np.ndarray | None = None, *,
                    classes: list[Any] | None = None) -> Signature:
    """The signature of a model trained on `frame`: pass all the training features, not a sample, since
    nullability, ranges and categories are what every row showed (a column whose first nulls come late
    is still nullable)."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(
            f"input_example must be a pandas DataFrame with the model's input columns, got {type(frame).__name__}."
        )
    if frame.empty:
        raise ValidationError("input_example has no rows; give a few representative rows of input.")
    inputs = [_column(str(name), frame[name]) for name in frame.columns]
    output: dict[str, Any] = {}
    if predictions is not None:
        output["dtype"] = str(getattr(predictions, "dtype", type(predictions).__name__))
    if classes is not None:
        output["classes"] = [c.item() if hasattr(c, "item") else c for c in classes]
    return Signature(inputs, output)


def _column(name: str, values: pd.Series) -> ColumnSpec:
    import numpy as np

    kind = column_kind(values.dtype)
    present = values.dropna()
    minimum: float | int | None = None
    maximum: float | int | None = None
    categories: list[Any] | None = None
    if kind == "integer" and len(present):
        minimum, maximum = int(present.min()), int(present.max())
    elif kind == "float":
        finite = present.to_numpy(dtype=float)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            minimum, maximum = float(finite.min()), float(finite.max())
    elif kind in ("string", "category"):
        seen = [v.item() if isinstance(v, np.generic) else v for v in present.unique()]
        if len(seen) <= MAX_CATEGORIES and all(isinstance(v, (str, int, float, bool)) for v in seen):
            categories = sorted(seen, key=str)
    return ColumnSpec(name, kind, str(values.dtype), bool(values.isna().any()), minimum, maximum, categories)


def enforce(signature: Signature, frame: Any) -> pd.DataFrame:
    """Return the frame the model should see: the signature's columns in its order, safely cast.

    A missing column, a type that cannot be cast without loss, or a null in a column that had none in
    training raises ValidationError naming the column. Extra columns are dropped; ranges and categories
    are recorded, not enforced."""
    import numpy as np
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(f"Model input must be a pandas DataFrame, got {type(frame).__name__}.")
    if not frame.columns.is_unique:
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise ValidationError(f"Model input has duplicate columns {', '.join(dupes)}; give each column once.")
    missing = [c.name for c in signature.inputs if c.name not in frame.columns]
    if missing:
        raise ValidationError(
            f"Model input is missing column(s) {', '.join(repr(m) for m in missing)}. "
            f"The model expects: {', '.join(signature.columns)}."
        )
    columns = signature.columns
    # One selection (none when the frame already is the model's columns in its order).
    selected = frame if frame.columns.tolist() == columns else frame[columns]
    required = [i for i, c in enumerate(signature.inputs) if not c.nullable]
    if required:
        nulls = selected.isna().to_numpy()[:, required]
        if nulls.any():
            column_index = required[int(np.flatnonzero(nulls.any(axis=0))[0])]
            row = int(np.flatnonzero(nulls[:, required.index(column_index)])[0])
            raise ValidationError(
                f"Column '{columns[column_index]}' has a null at row {row}, but the model was registered with "
                "no nulls there. Fill or drop the missing values first."
            )
    casts = {
        spec.name: _cast(spec, selected[spec.name])
        for spec, dtype in zip(signature.inputs, selected.dtypes, strict=True)
        if not _same_dtype(dtype, spec.dtype)
    }
    return selected.assign(**casts) if casts else selected


def _same_dtype(dtype: Any, name: str) -> bool:
    """str(dtype) == name, without formatting a numpy dtype's name (which costs more than the rest of a check)."""
    import numpy as np

    if isinstance(dtype, np.dtype):
        try:
            return bool(dtype == name)
        except TypeError:  # a name numpy does not know, such as "category"
            return False
    return str(dtype) == name


def _check_integer_range(spec: ColumnSpec, column: pd.Series) -> None:
    import numpy as np

    try:
        info = np.iinfo(spec.dtype.lower())  # "Int64" (nullable) has int64's range
    except (TypeError, ValueError):
        return
    values = column.dropna()
    if len(values) and not (info.min <= int(values.min()) and int(values.max()) <= info.max):
        outside = next(int(v) for v in values if not info.min <= int(v) <= info.max)
        raise ValidationError(f"Column '{spec.name}' holds {outside}, outside the range of {spec.dtype} "
                              f"({info.min}..{info.max}) that the model expects. Convert the column before "
                              "predicting.", column=spec.name)


def _cast(spec: ColumnSpec, column: pd.Series) -> pd.Series:
    import numpy as np
    import pandas as pd

    kind = column_kind(column.dtype)
    if kind == spec.kind == "integer":
        _check_integer_range(spec, column)  # uint64 -> int64 would wrap around silently
    if kind == spec.kind or spec.kind == "object":
        return column.astype(spec.dtype) if str(column.dtype) != spec.dtype and kind != "category" else column

    def refuse(why: str) -> ValidationError:
        return ValidationError(
            f"Column '{spec.name}' has type {column.dtype} but the model expects {spec.dtype} ({spec.kind}); "
            f"{why}. Convert the column before predicting."
        )

    if spec.kind == "float" and kind in ("integer", "boolean"):
        return column.astype(spec.dtype)
    if spec.kind == "integer" and kind == "float":
        values = column.to_numpy(dtype=float, na_value=np.nan)
        finite = values[~np.isnan(values)]
        if not np.all(np.mod(finite, 1) == 0):
            bad = float(finite[np.mod(finite, 1) != 0][0])
            raise refuse(f"a value such as {bad!r} is not a whole number")
        return column.astype("Int64" if column.isna().any() else spec.dtype)
    if spec.kind == "integer" and kind == "boolean":
        return column.astype(spec.dtype)
    if spec.kind in ("string", "category") and kind in ("string", "category"):
        return column.astype(spec.dtype) if spec.kind == "string" else column.astype("category")
    if spec.kind == "datetime" and kind == "string":
        try:
            return pd.to_datetime(column)
        except (ValueError, TypeError) as exc:
            raise refuse(f"it cannot be parsed as dates ({exc})") from None
    raise refuse("it cannot be cast safely")
