"""Checking a table against its schema contract and a reference profile, as typed anomalies.

Severities default to schema.DEFAULT_SEVERITY: a broken contract (missing column, type change,
duplicate key, disallowed NaN/inf, out-of-range value, excess nulls, unseen category, row count out of
bounds) is an error; a change that may be legitimate (new column, skew, row-count jump, stale data) is
a warning. `severity:` in the schema overrides per kind. A safe widening of a column's type (int32 →
int64, int → double, float → double, date → timestamp) passes without an anomaly: every value still
fits, and the value rules are checked as usual. Any other type change is a type_change and the
column's value rules are skipped.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.data.profile import (
    bin_counts,
    column_family,
    finite,
    numeric_values,
    profile_column,
    string_values,
    top_indices,
)
from shipyard.data.schema import ColumnRule, Schema, Severity, is_widening, type_name
from shipyard.errors import did_you_mean

_EXAMPLES = 3


@dataclass(frozen=True)
class Anomaly:
    """One finding: what kind, in which column, how bad, a message for people and numbers for machines."""

    kind: str
    column: str | None
    severity: Severity
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ValidationReport:
    """The anomalies found, errors first."""

    anomalies: list[Anomaly]

    @property
    def ok(self) -> bool:
        """True when no anomaly has error severity (warnings do not fail validation)."""
        return not self.errors

    @property
    def errors(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == "error"]

    @property
    def warnings(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == "warning"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error_count": len(self.errors),
            "warning_count": len(self.warnings),
            "anomalies": [a.to_dict() for a in self.anomalies],
        }

    def summary_rows(self) -> list[dict[str, Any]]:
        """One display row per anomaly: severity, kind, column, message."""
        return [{"severity": a.severity, "kind": a.kind, "column": a.column or "", "message": a.message}
                for a in self.anomalies]


def validate_table(
    table: pa.Table,
    profile: dict[str, Any] | None,
    schema: Schema,
    *,
    reference_profile: dict[str, Any] | None = None,
    previous_row_count: int | None = None,
    now: dt.datetime | None = None,
) -> ValidationReport:
    """Check `table` (whose profile is `profile`; columns missing from it are profiled here) against `schema`.

    Skew is measured against `reference_profile` when given; the row-count change against
    `previous_row_count`; freshness against `now` (default: the current time; naive means UTC).
    """
    found = _Findings(schema)
    names = table.column_names
    rows = table.num_rows
    when = now or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    broken: set[str] = set()  # columns whose values cannot be judged (missing or of another type)
    for name, rule in schema.columns.items():
        if name not in names:
            broken.add(name)
            hint = did_you_mean(name, [n for n in names if n not in schema.columns])
            expected = f" ({rule.type})" if rule.type else ""
            found.add("missing_column", name, f"Column '{name}'{expected} is missing from the table.{hint}",
                      expected_type=rule.type)
            continue
        column = table.column(name)
        stats = (profile or {}).get("columns", {}).get(name) or profile_column(column)
        if not _check_column(found, name, rule, column, stats, rows, when):
            broken.add(name)
    for name in names:
        if name not in schema.columns:
            kind = type_name(table.schema.field(name).type)
            found.add("new_column", name, f"Column '{name}' ({kind}) is not in the schema. Add it to the "
                      "schema's columns if it is expected.", observed_type=kind)
    if schema.key:
        _check_key(found, table, schema.key, schema)
    _check_row_count(found, schema, rows, previous_row_count)
    if reference_profile is not None:
        for name in names:
            reference = reference_profile.get("columns", {}).get(name)
            if reference is not None and name not in broken and name not in (schema.key or ()):  # ids always "drift"
                _check_skew(found, name, table.column(name), reference, schema)
    order = {"error": 0, "warning": 1}
    return ValidationReport(sorted(found.anomalies, key=lambda a: order[a.severity]))


class _Findings:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.anomalies: list[Anomaly] = []

    def add(self, kind: str, column: str | None, message: str, **details: Any) -> None:
        self.anomalies.append(Anomaly(kind, column, self.schema.severity_of(kind), message, _plain(details)))


def _check_column(
    found: _Findings, name: str, rule: ColumnRule, column: pa.ChunkedArray, stats: dict[str, Any],
    rows: int, now: dt.datetime,
) -> bool:
    """Add the column's anomalies; False when its type changed so its values were not judged."""
    observed = type_name(column.type)
    nulls = int(stats["null_count"])
    share = nulls / rows if rows else 0.0
    if not rule.nullable and nulls:
        found.add("excess_nulls", name, f"Column '{name}': {nulls:,} null values ({share:.1%} of {rows:,} rows); "
                  "the schema declares it not nullable.", null_count=nulls, null_fraction=share,
                  max_null_fraction=0.0)
    elif rule.max_null_fraction is not None and share > rule.max_null_fraction:
        found.add("excess_nulls", name, f"Column '{name}': {share:.1%} null values ({nulls:,} of {rows:,} rows); "
                  f"the schema allows at most {rule.max_null_fraction:.1%}.", null_count=nulls,
                  null_fraction=share, max_null_fraction=rule.max_null_fraction)
    if rule.type is not None and not is_widening(rule.type, observed):
        found.add("type_change", name, f"Column '{name}' has type {observed}; the schema expects {rule.type}.",
                  expected_type=rule.type, observed_type=observed)
        return False
    family = column_family(column.type)
    if family == "numeric":
        _check_numbers(found, name, rule, column, stats)
    elif family == "string" and rule.categories is not None:
        _check_categories(found, name, rule.categories, column)
    elif family == "timestamp" and rule.freshness_days is not None:
        _check_freshness(found, name, rule.freshness_days, stats, now)
    return True


def _check_numbers(found: _Findings, name: str, rule: ColumnRule, column: pa.ChunkedArray,
                   stats: dict[str, Any]) -> None:
    nan, inf = int(stats.get("nan_count") or 0), int(stats.get("inf_count") or 0)
    if (nan or inf) and not rule.allow_non_finite:
        found.add("non_finite", name, f"Column '{name}': {nan:,} NaN and {inf:,} infinite values; the schema "
                  "allows finite numbers only (set allow_non_finite: true to accept them).",
                  nan_count=nan, inf_count=inf)
    low, high = stats.get("min"), stats.get("max")
    minimum = rule.min if rule.min is not None and low is not None and low < rule.min else None
    maximum = rule.max if rule.max is not None and high is not None and high > rule.max else None
    if minimum is None and maximum is None:  # the profile settles it without reading the data
        return
    values = numeric_values(column)
    values = values[np.isfinite(values)]
    if minimum is not None:
        count = int(np.count_nonzero(values < minimum))
        found.add("out_of_range", name, f"Column '{name}': {count:,} values below the minimum {_num(minimum)} "
                  f"(lowest {_num(low)}).", count=count, minimum=minimum, lowest=low)
    if maximum is not None:
        count = int(np.count_nonzero(values > maximum))
        found.add("out_of_range", name, f"Column '{name}': {count:,} values above the maximum {_num(maximum)} "
                  f"(highest {_num(high)}).", count=count, maximum=maximum, highest=high)


def _check_categories(found: _Findings, name: str, categories: list[str], column: pa.ChunkedArray) -> None:
    values = string_values(column)
    unseen = pc.filter(values, pc.invert(pc.is_in(values, value_set=pa.array(categories, pa.string()))))
    if not len(unseen):
        return
    counted = pc.value_counts(unseen)
    counts = np.asarray(counted.field("counts").to_numpy(zero_copy_only=False), dtype=np.int64)
    chosen = top_indices(counts, _EXAMPLES)
    examples = counted.field("values").take(pa.array(chosen, pa.int64())).to_pylist()
    shown = ", ".join(f"{v!r} ({counts[i]:,})" for v, i in zip(examples, chosen, strict=True))
    found.add("unseen_category", name, f"Column '{name}': {len(unseen):,} values outside the categories "
              f"({len(counted):,} distinct, e.g. {shown}); expected one of {', '.join(categories)}.",
              count=len(unseen), distinct=len(counted), examples=examples)


def _check_freshness(found: _Findings, name: str, days: float, stats: dict[str, Any], now: dt.datetime) -> None:
    newest = stats.get("max")
    if newest is None:
        found.add("stale_data", name, f"Column '{name}' has no values, so the data's freshness is unknown; the "
                  f"schema expects values within {_num(days)} days.", freshness_days=days)
        return
    age = (now.timestamp() - float(newest)) / 86_400
    if age > days:
        stamp = dt.datetime.fromtimestamp(float(newest), tz=dt.UTC).isoformat().replace("+00:00", "Z")
        found.add("stale_data", name, f"Column '{name}': the newest value {stamp} is {age:.1f} days old; the "
                  f"schema allows {_num(days)} days.", newest=newest, age_days=age, freshness_days=days)


def _check_key(found: _Findings, table: pa.Table, key: list[str], schema: Schema) -> None:
    absent = [k for k in key if k not in table.column_names]
    for name in absent:
        if name not in schema.columns:  # otherwise already reported as missing
            found.add("missing_column", name, f"Key column '{name}' is missing from the table."
                      f"{did_you_mean(name, table.column_names)}", expected_type=None)
    if absent or table.num_rows == 0:
        return
    groups = table.select(key).group_by(key).aggregate([([], "count_all")])
    repeated = groups.filter(pc.greater(groups.column("count_all"), 1))
    if not repeated.num_rows:
        return
    counts = np.asarray(repeated.column("count_all").to_numpy(), dtype=np.int64)
    chosen = top_indices(counts, _EXAMPLES)
    sample = repeated.take(pa.array(chosen, pa.int64())).to_pylist()
    examples = [tuple(row[k] for k in key) if len(key) > 1 else row[key[0]] for row in sample]
    shown = ", ".join(f"{ex!r} ({counts[i]:,} times)" for ex, i in zip(examples, chosen, strict=True))
    duplicated_rows = int(counts.sum())
    found.add("duplicate_key", None, f"Key ({', '.join(key)}): {len(counts):,} values occur more than once "
              f"({duplicated_rows:,} rows in all), e.g. {shown}. Each key must be unique.",
              key=key, duplicated_values=len(counts), duplicated_rows=duplicated_rows, examples=examples)


def _check_row_count(found: _Findings, schema: Schema, rows: int, previous: int | None) -> None:
    rule = schema.row_count
    if rule is None:
        return
    if rule.min is not None and rows < rule.min:
        found.add("row_count_out_of_bounds", None, f"The table has {rows:,} rows; the schema expects at least "
                  f"{rule.min:,}.", row_count=rows, min=rule.min)
    if rule.max is not None and rows > rule.max:
        found.add("row_count_out_of_bounds", None, f"The table has {rows:,} rows; the schema expects at most "
                  f"{rule.max:,}.", row_count=rows, max=rule.max)
    if previous is not None and rule.max_change_fraction is not None:
        change = abs(rows - previous) / max(previous, 1)
        if change > rule.max_change_fraction:
            direction = "more" if rows > previous else "fewer"
            found.add("row_count_change", None, f"The table has {rows:,} rows, {change:.1%} {direction} than the "
                      f"previous version's {previous:,}; the schema allows a change of at most "
                      f"{rule.max_change_fraction:.1%}.", row_count=rows, previous_row_count=previous,
                      change_fraction=change, max_change_fraction=rule.max_change_fraction)


def _check_skew(found: _Findings, name: str, column: pa.ChunkedArray, reference: dict[str, Any],
                schema: Schema) -> None:
    family = column_family(column.type)
    if reference["kind"] == "numeric" and family == "numeric":
        limit = schema.skew.numeric_js_max
        histogram = reference.get("histogram") or {}
        if limit is None or not histogram.get("edges"):
            return
        values = numeric_values(column)
        values = values[np.isfinite(values)]
        if not len(values):
            return
        distance = js_distance(histogram["counts"], bin_counts(values, np.asarray(histogram["edges"])))
        if distance > limit:
            found.add("skew", name, f"Column '{name}': the distribution drifted from the reference; "
                      f"Jensen-Shannon distance {distance:.3f} > {_num(limit)}.", measure="jensen_shannon",
                      distance=distance, threshold=limit)
    elif reference["kind"] in ("categorical", "boolean") and family in ("string", "boolean"):
        limit = schema.skew.categorical_linf_max
        if limit is None:
            return
        labels, expected, observed = category_frequencies(reference, column)
        if not sum(expected) or not sum(observed):
            return
        distance, at = linf_distance(expected, observed)
        if distance > limit:
            p, q = (np.asarray(v, dtype=np.float64) for v in (expected, observed))
            before, after = p[at] / p.sum(), q[at] / q.sum()
            label = "(other values)" if labels[at] is None else repr(labels[at])
            found.add("skew", name, f"Column '{name}': category frequencies drifted from the reference; "
                      f"L-infinity distance {distance:.3f} > {_num(limit)} (largest change: {label} "
                      f"{before:.1%} → {after:.1%}).", measure="l_infinity", distance=distance,
                      threshold=limit, category=labels[at])


def category_frequencies(
    reference: dict[str, Any], column: pa.ChunkedArray
) -> tuple[list[str | None], list[int], list[int]]:
    """Reference and current counts over the reference's top values plus one bucket (None) for the rest."""
    labels: list[str | None] = [item["value"] for item in reference.get("top", [])]
    expected = [int(item["count"]) for item in reference.get("top", [])] + [int(reference.get("other_count", 0))]
    values = string_values(column)
    counted = pc.value_counts(values)
    seen = dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True))
    observed = [int(seen.get(label, 0)) for label in labels]
    observed.append(len(values) - sum(observed))
    return [*labels, None], expected, observed


def js_distance(p_counts: Any, q_counts: Any) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count vectors over the same bins."""
    p = np.asarray(p_counts, dtype=np.float64)
    q = np.asarray(q_counts, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    divergence = (_kl(p, m) + _kl(q, m)) / 2
    return float(min(1.0, math.sqrt(max(divergence, 0.0))))


def _kl(p: npt.NDArray[np.float64], m: npt.NDArray[np.float64]) -> float:
    used = p > 0
    return float(np.sum(p[used] * np.log2(p[used] / m[used])))


def linf_distance(p_counts: Any, q_counts: Any) -> tuple[float, int]:
    """L-infinity distance between two frequency distributions, and the index where it is reached."""
    p = np.asarray(p_counts, dtype=np.float64)
    q = np.asarray(q_counts, dtype=np.float64)
    gaps = np.abs(p / p.sum() - q / q.sum())
    at = int(np.argmax(gaps))
    return float(gaps[at]), at


def _num(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):.6g}"


def _plain(value: Any) -> Any:
    """Details as JSON-able Python values (numpy scalars unwrapped, non-finite floats as None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
