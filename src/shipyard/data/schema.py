"""The schema contract of a table: pydantic models, inferred from a profile, kept as an editable YAML file."""

from __future__ import annotations

import datetime as dt
import math
import re
import textwrap
from typing import Annotated, Any, Literal, get_args

import pyarrow as pa
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from shipyard.data.profile import profile_column, profile_table
from shipyard.errors import ValidationError, did_you_mean

Severity = Literal["error", "warning"]
AnomalyKind = Literal[
    "missing_column", "new_column", "type_change", "excess_nulls", "out_of_range", "non_finite",
    "unseen_category", "duplicate_key", "row_count_out_of_bounds", "row_count_change", "stale_data", "skew",
]
ANOMALY_KINDS: tuple[str, ...] = get_args(AnomalyKind)

#: Broken contracts (the data cannot be used as declared) are errors; changes that may be legitimate
#: (a new column, drift, a jump in size, old data) are warnings. `severity:` in the schema overrides.
DEFAULT_SEVERITY: dict[str, Severity] = {
    "missing_column": "error", "type_change": "error", "duplicate_key": "error", "non_finite": "error",
    "row_count_out_of_bounds": "error", "out_of_range": "error", "excess_nulls": "error",
    "unseen_category": "error", "new_column": "warning", "skew": "warning", "row_count_change": "warning",
    "stale_data": "warning",
}

#: Inferred timestamp columns must stay this fresh, when the data is that fresh at inference time.
DEFAULT_FRESHNESS_DAYS = 30
#: Inferred row-count bounds are the observed count times (1 ∓ this); also the inferred change limit.
DEFAULT_ROW_COUNT_MARGIN = 0.5
#: Inferred numeric ranges are the observed range widened by this fraction of its span on each side
#: (never below zero for data that had no negative value), so ordinary new data is not out of range.
RANGE_MARGIN = 0.1
#: Categorical columns with at most this many distinct values get their categories listed.
MAX_INFERRED_CATEGORIES = 50

_INTS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
_UINTS = {"uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64}
_FLOATS = {"halffloat": 11, "float": 24, "double": 53}  # significand bits
NUMERIC_TYPES = {*_INTS, *_UINTS, *_FLOATS, "decimal", "duration", "time"}
TEMPORAL_TYPES = {"timestamp", "date"}
TYPES = sorted({*NUMERIC_TYPES, *TEMPORAL_TYPES, "bool", "string", "binary", "null"})
TYPE_ALIASES = {
    "int": "int64", "integer": "int64", "long": "int64", "float64": "double", "float32": "float",
    "float16": "halffloat", "str": "string", "utf8": "string", "large_string": "string", "text": "string",
    "category": "string", "boolean": "bool", "datetime": "timestamp", "large_binary": "binary",
    "decimal128": "decimal", "decimal256": "decimal", "date32": "date", "date64": "date", "time32": "time",
    "time64": "time", "large_utf8": "string", "string_view": "string",
}

HEADER = """\
# Data contract, checked by `validate_table`. Edit freely; every rule is optional.
#   columns.NAME: type, nullable, max_null_fraction, min, max, allow_non_finite (NaN/inf in a numeric
#                 column), categories (the allowed values), freshness_days (newest value vs now)
#   key: columns whose values together must be unique
#   row_count: min, max, max_change_fraction (versus the previous version)
#   skew: numeric_js_max, categorical_linf_max (distance to the reference profile; null turns it off)
#   severity: KIND: error | warning, e.g. {skew: error}, for the kinds
""" + "".join(f"#     {line}\n" for line in textwrap.wrap(", ".join(ANOMALY_KINDS), 90))


def type_name(arrow_type: pa.DataType) -> str:
    """The schema's name for an Arrow type: units, time zones, widths of strings and dictionaries dropped."""
    if pa.types.is_dictionary(arrow_type):
        return type_name(arrow_type.value_type)
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return str(arrow_type)
    if pa.types.is_floating(arrow_type):
        return str(arrow_type)  # halffloat, float, double
    for check, name in (
        (pa.types.is_decimal, "decimal"), (pa.types.is_timestamp, "timestamp"), (pa.types.is_date, "date"),
        (pa.types.is_time, "time"), (pa.types.is_duration, "duration"), (pa.types.is_null, "null"),
        (pa.types.is_string, "string"), (pa.types.is_large_string, "string"),
        (pa.types.is_binary, "binary"), (pa.types.is_large_binary, "binary"),
        (pa.types.is_fixed_size_binary, "binary"),
    ):
        if check(arrow_type):
            return name
    if str(arrow_type) == "string_view":
        return "string"
    return str(arrow_type)


def is_widening(expected: str, observed: str) -> bool:
    """True when data of type `expected` converts to `observed` without loss (int32 → int64, int → double)."""
    if expected == observed:
        return True
    if expected in _INTS and observed in _INTS:
        return _INTS[observed] >= _INTS[expected]
    if expected in _UINTS and observed in _UINTS:
        return _UINTS[observed] >= _UINTS[expected]
    if expected in _UINTS and observed in _INTS:
        return _INTS[observed] > _UINTS[expected]
    if expected in _FLOATS and observed in _FLOATS:
        return _FLOATS[observed] >= _FLOATS[expected]
    if (expected in _INTS or expected in _UINTS) and observed in _FLOATS:
        return observed == "double" or (_INTS.get(expected) or _UINTS[expected]) <= 16
    return expected == "date" and observed == "timestamp"


def _number(value: Any) -> Any:
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


Number = Annotated[int | float, BeforeValidator(_number)]  # ints stay ints in the YAML


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ColumnRule(_Rule):
    type: str | None = None
    nullable: bool = True
    max_null_fraction: float | None = Field(default=None, ge=0, le=1)
    min: Number | None = None
    max: Number | None = None
    allow_non_finite: bool = False
    categories: list[str] | None = None
    freshness_days: float | None = Field(default=None, gt=0)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is None or "<" in value:  # nested types pass as written
            return value
        name = re.sub(r"[\[(].*$", "", value.strip().lower())  # timestamp[us, tz=UTC] -> timestamp
        name = TYPE_ALIASES.get(name, name)
        if name not in TYPES:
            raise ValueError(f"unknown type.{did_you_mean(name, TYPES + list(TYPE_ALIASES))} Known: {', '.join(TYPES)}")
        return name

    @field_validator("categories", mode="before")
    @classmethod
    def _text_categories(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        for item in value:
            if isinstance(item, bool):
                raise ValueError(
                    f"{item!r} was read as a YAML boolean; quote category values such as 'yes', 'no', 'on', 'off'"
                )
        return [str(item) if isinstance(item, int | float) else item for item in value]

    @model_validator(mode="after")
    def _consistent(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if not self.nullable and self.max_null_fraction:
            raise ValueError("max_null_fraction needs nullable: true (nullable: false allows no nulls)")
        kind = self.type
        if kind in TYPES:
            if (self.min is not None or self.max is not None) and kind not in NUMERIC_TYPES:
                raise ValueError(f"min and max apply to numeric columns, not {kind}")
            if self.freshness_days is not None and kind not in TEMPORAL_TYPES:
                raise ValueError(f"freshness_days applies to timestamp and date columns, not {kind}")
            if self.categories is not None and kind != "string":
                raise ValueError(f"categories apply to string columns, not {kind}")
        return self


class RowCountRule(_Rule):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    max_change_fraction: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> RowCountRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class SkewRule(_Rule):
    numeric_js_max: float | None = Field(default=0.1, ge=0, le=1)
    categorical_linf_max: float | None = Field(default=0.1, ge=0, le=1)


class Schema(_Rule):
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    key: list[str] | None = None
    row_count: RowCountRule | None = None
    skew: SkewRule = Field(default_factory=SkewRule)
    severity: dict[AnomalyKind, Severity] = Field(default_factory=dict)

    @field_validator("columns", mode="before")
    @classmethod
    def _empty_columns(cls, value: Any) -> Any:
        if isinstance(value, dict):  # `age:` with every rule commented out
            return {name: {} if rule is None else rule for name, rule in value.items()}
        return {} if value is None else value

    @field_validator("key", mode="before")
    @classmethod
    def _one_key(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def severity_of(self, kind: str) -> Severity:
        """The severity of an anomaly kind: the schema's override, else the default."""
        overrides: dict[str, Severity] = {str(k): v for k, v in self.severity.items()}
        return overrides.get(kind, DEFAULT_SEVERITY[kind])

    def to_yaml(self) -> str:
        """The schema as YAML with a comment header; load_schema reads it back unchanged."""
        parts = [HEADER]
        columns = {name: _rule_dict(rule) for name, rule in self.columns.items()}
        parts.append(_dump({"columns": columns}))
        if self.key:
            parts.append(_dump({"key": self.key}))
        if self.row_count is not None:
            parts.append(_dump({"row_count": self.row_count.model_dump()}))
        parts.append(_dump({"skew": self.skew.model_dump()}))
        if self.severity:
            parts.append(_dump({"severity": dict(self.severity)}))
        return "".join(parts)


def _rule_dict(rule: ColumnRule) -> dict[str, Any]:
    data = rule.model_dump()
    if not data["allow_non_finite"]:
        del data["allow_non_finite"]
    return {k: v for k, v in data.items() if v is not None}


def _dump(section: dict[str, Any]) -> str:
    # Flow style for mappings of scalars keeps one line per column, as people write it.
    return yaml.safe_dump(section, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True)


def load_schema(text: str, source: str = "schema.yaml") -> Schema:
    """Parse schema YAML; errors name `source`, the key path, the value and a likely fix."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start:  # e.g. an unclosed brace: say where the construct began
            problem += f" ({context} at line {start.line + 1})"
        raise ValidationError(f"{source} is not valid YAML{where}: {problem}. Fix the file and retry.") from None
    if not isinstance(data, dict):
        got = "nothing" if data is None else f"a {type(data).__name__}"
        raise ValidationError(
            f"{source} must hold a mapping with 'columns' (and optionally key, row_count, skew, severity); "
            f"got {got}."
        )
    try:
        return Schema.model_validate(data)
    except PydanticValidationError as exc:
        lines = dict.fromkeys(_describe(err, source) for err in exc.errors())  # unique, in order
        raise ValidationError("\n".join(lines)) from None


def _describe(err: Any, source: str) -> str:
    loc = tuple(err["loc"])
    value = err.get("input")
    if loc and loc[-1] == "[key]":  # a mapping key failed, e.g. severity.skwe
        loc = loc[:-1]
        return _unknown_key(source, loc, value=None, known=_known_keys(loc[:-1]))
    if err["type"] == "extra_forbidden":
        return _unknown_key(source, loc, value=value, known=_known_keys(loc[:-1]))
    path = ".".join(str(part) for part in loc) or "the top level"
    message = str(err["msg"]).removeprefix("Value error, ")
    shown = "" if isinstance(value, dict) else f" = {value!r}"
    fix = ""
    if err["type"] == "literal_error" and isinstance(value, str):
        fix = did_you_mean(value, get_args(Severity))
    return f"{source}: {path}{shown}: {message}.{fix}"


def _unknown_key(source: str, loc: tuple[Any, ...], *, value: Any, known: list[str]) -> str:
    path = ".".join(str(part) for part in loc)
    key = str(loc[-1])
    shown = f" (value {value!r})" if value is not None else ""
    return (
        f"{source}: unknown key {path}{shown}.{did_you_mean(key, known)} "
        f"Known keys there: {', '.join(known)}."
    )


def _known_keys(parent: tuple[Any, ...]) -> list[str]:
    models: dict[tuple[str, ...], type[BaseModel]] = {(): Schema, ("row_count",): RowCountRule, ("skew",): SkewRule}
    if len(parent) == 2 and parent[0] == "columns":
        return list(ColumnRule.model_fields)
    if parent == ("severity",):
        return list(ANOMALY_KINDS)
    model = models.get(tuple(str(p) for p in parent))
    return list(model.model_fields) if model else []


def infer_schema(
    table: pa.Table, profile: dict[str, Any] | None, *, key: list[str] | None = None,
    now: dt.datetime | None = None,
) -> Schema:
    """A starting contract for data like `table`, to be reviewed and edited.

    Types come from Arrow; nullable from the null counts (with max_null_fraction twice the observed
    share, rounded up to 0.01); min and max from the profile; categories for categorical columns with at
    most 50 values; freshness_days = 30 for timestamp columns whose newest value is within 30 days of
    `now` (older data is historical and gets no freshness rule); no range for the key's columns (identifiers);
    row-count bounds ±50% with a 50% change limit; skew thresholds 0.1. Without a profile, the table is
    profiled here.
    """
    if not profile:
        profile = profile_table(table)
    names = table.column_names
    for name in key or []:
        if name not in names:
            raise ValidationError(
                f"Key column '{name}' is not in the table.{did_you_mean(name, names)} Columns: {', '.join(names)}."
            )
    now = now or dt.datetime.now(dt.UTC)
    columns = {}
    rows = int(profile["row_count"])
    for field in table.schema:
        stats = profile["columns"].get(field.name)
        if stats is None:
            stats = profile_column(table.column(field.name))
        columns[field.name] = _infer_column(type_name(field.type), stats, rows, now)
    for name in key or []:  # identifiers: new rows bring new values, so the range seen says nothing
        columns[name] = columns[name].model_copy(update={"min": None, "max": None})
    margin = DEFAULT_ROW_COUNT_MARGIN
    return Schema(
        columns=columns,
        key=list(key) if key else None,
        row_count=RowCountRule(
            min=math.floor(rows * (1 - margin)), max=math.ceil(rows * (1 + margin)), max_change_fraction=margin
        ),
    )


def _widened(low: Any, high: Any, *, integral: bool) -> tuple[Any, Any]:
    if low is None or high is None:
        return low, high
    span = float(high) - float(low)
    new_low, new_high = float(low) - RANGE_MARGIN * span, float(high) + RANGE_MARGIN * span
    if float(low) >= 0:
        new_low = max(new_low, 0.0)
    if integral:
        return math.floor(new_low), math.ceil(new_high)
    return round(new_low, 6), round(new_high, 6)


def _infer_column(kind: str, stats: dict[str, Any], rows: int, now: dt.datetime) -> ColumnRule:
    nulls = int(stats["null_count"])
    rule: dict[str, Any] = {"type": kind, "nullable": nulls > 0}
    if nulls:
        rule["max_null_fraction"] = min(1.0, max(0.01, math.ceil(200 * nulls / rows) / 100))
    if stats["kind"] == "numeric" and kind in NUMERIC_TYPES:
        rule["min"], rule["max"] = _widened(stats.get("min"), stats.get("max"), integral=kind in _INTS or kind in _UINTS)
        rule["allow_non_finite"] = bool(stats.get("nan_count") or stats.get("inf_count"))
    elif stats["kind"] == "categorical" and kind == "string":
        top = stats.get("top") or []
        if 0 < stats["distinct_count"] <= MAX_INFERRED_CATEGORIES and len(top) == stats["distinct_count"]:
            rule["categories"] = sorted(item["value"] for item in top)
    elif stats["kind"] == "timestamp" and stats.get("max") is not None:
        age_days = (now.timestamp() - float(stats["max"])) / 86_400
        if age_days <= DEFAULT_FRESHNESS_DAYS:
            rule["freshness_days"] = DEFAULT_FRESHNESS_DAYS
    return ColumnRule(**rule)
