"""Table profiles: per-column statistics from one vectorised pass, as a JSON-able dict."""

from __future__ import annotations

import datetime as dt
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.errors import ValidationError

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: Columns with at most this many non-null values get an exact distinct count.
EXACT_DISTINCT_LIMIT = 100_000
#: Below this many distinct hashes in the sample, the column is recounted exactly (cheap: few values).
_SAMPLE_MIN_DISTINCT = 1_000
#: Strings are categorical with at most 50 distinct values, or up to 10,000 when that is at most 5% of
#: the non-null values; above that they are free text.
CATEGORY_MAX_DISTINCT = 50
CATEGORY_MAX_RATIO = 0.05
TEXT_MIN_DISTINCT = 10_000
#: Top values of text columns are cut to this many characters (documents would bloat the profile).
TEXT_VALUE_CHARS = 200

_TIME_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}

Floats = npt.NDArray[np.float64]


def profile_table(table: pa.Table, *, top_k: int = 20, bins: int = 20) -> dict[str, Any]:
    """Profile every column of `table`; the result has no NaN or infinity (missing numbers are None).

    Numeric statistics (min, max, mean, sample std, quantiles, histogram) cover the finite values;
    NaN and infinities are counted apart. Timestamps and dates are profiled as epoch seconds.
    """
    if top_k < 1 or bins < 1:
        raise ValidationError(f"top_k and bins must be at least 1, got top_k={top_k}, bins={bins}.")
    names = table.column_names
    columns = [table.column(i) for i in range(table.num_columns)]

    def one(column: pa.ChunkedArray) -> dict[str, Any]:
        return profile_column(column, top_k=top_k, bins=bins)

    workers = min(len(columns), os.cpu_count() or 1)
    if workers > 1 and table.num_rows >= 50_000:  # numpy and Arrow kernels release the GIL
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, columns))
    else:
        results = [one(column) for column in columns]
    return {"row_count": table.num_rows, "columns": dict(zip(names, results, strict=True))}


def profile_column(column: pa.ChunkedArray, *, top_k: int = 20, bins: int = 20) -> dict[str, Any]:
    """Profile one column (see profile_table for the shape)."""
    family = column_family(column.type)
    out: dict[str, Any] = {
        "kind": "text",
        "arrow_type": str(column.type),
        "null_count": column.null_count,
        "distinct_count": 0,
        "distinct_approx": False,
    }
    present = pc.drop_null(column) if column.null_count else column
    if family == "numeric":
        out["kind"] = "numeric"
        out.update(_numeric_stats(present, bins=bins))
    elif family == "timestamp":
        out["kind"] = "timestamp"
        out.update(_numeric_stats(present, bins=0))
    elif family == "boolean":
        out["kind"] = "boolean"
        out.update(_boolean_stats(present))
    elif family == "string":
        out.update(_string_stats(present, top_k=top_k, forced=pa.types.is_dictionary(column.type)))
    else:
        try:
            out["distinct_count"] = int(pc.count_distinct(present).as_py())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):  # nested types have no hash kernel
            out["distinct_count"] = None
        out["top"], out["other_count"] = [], len(present)
    return out


def column_family(arrow_type: pa.DataType) -> str:
    """The broad family of an Arrow type: numeric, timestamp, boolean, string or other."""
    if pa.types.is_dictionary(arrow_type):
        return "string"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
        or pa.types.is_duration(arrow_type)
        or pa.types.is_time(arrow_type)
    ):
        return "numeric"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "timestamp"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or _is_string_view(arrow_type):
        return "string"
    return "other"


def numeric_values(column: pa.ChunkedArray | pa.Array) -> Floats:
    """The non-null values of a numeric or temporal column as float64 (temporal: epoch seconds)."""
    values, _ = _numbers(pc.drop_null(column) if column.null_count else column)
    return values


def string_values(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """The non-null values of a string, dictionary or boolean column as Arrow strings."""
    present = pc.drop_null(column) if column.null_count else column
    if pa.types.is_dictionary(present.type):
        present = present.cast(present.type.value_type)
    if pa.types.is_boolean(present.type):
        return pc.if_else(present, "true", "false")
    if not pa.types.is_string(present.type):
        present = present.cast(pa.string())
    return present


def finite(value: Any) -> float | None:
    """`value` as a float, or None when it is missing, NaN or infinite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def profile_summary(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """One display row per column: name, kind, nulls, distinct, min, max, mean.

    Timestamp columns show min, max and mean as ISO 8601 UTC text.
    """
    rows = []
    for name, col in profile["columns"].items():
        low, high, mean = col.get("min"), col.get("max"), col.get("mean")
        if col["kind"] == "timestamp":
            low, high, mean = (iso_time(v) for v in (low, high, mean))
        rows.append(
            {"name": name, "kind": col["kind"], "nulls": col["null_count"], "distinct": col["distinct_count"],
             "min": low, "max": high, "mean": mean}
        )
    return rows


def iso_time(seconds: float | None) -> str | None:
    """Epoch seconds (how profiles hold timestamps and dates) as ISO 8601 UTC text."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def _is_string_view(arrow_type: pa.DataType) -> bool:
    check = getattr(pa.types, "is_string_view", None)
    return bool(check and check(arrow_type))


def _numbers(present: pa.ChunkedArray | pa.Array) -> tuple[Floats, npt.NDArray[Any] | None]:
    """(values as float64, exact integer values when the column is integral or temporal)."""
    arrow_type = present.type
    if pa.types.is_timestamp(arrow_type) or pa.types.is_duration(arrow_type) or pa.types.is_time(arrow_type):
        ints = _to_numpy(present.cast(pa.int64()))
        scale = _TIME_UNIT_SECONDS[arrow_type.unit] if pa.types.is_timestamp(arrow_type) else 1.0
    elif pa.types.is_date32(arrow_type):
        ints = _to_numpy(present.cast(pa.int32())).astype(np.int64)
        scale = 86_400.0
    elif pa.types.is_date64(arrow_type):
        ints = _to_numpy(present.cast(pa.int64()))
        scale = 1e-3
    elif pa.types.is_integer(arrow_type):
        ints = _to_numpy(present)
        scale = 1.0
    else:  # floating and decimal
        return _to_numpy(present.cast(pa.float64()) if not pa.types.is_float64(arrow_type) else present), None
    values = ints.astype(np.float64)
    if scale != 1.0:
        values *= scale
    return values, ints


def _to_numpy(values: pa.ChunkedArray | pa.Array) -> npt.NDArray[Any]:
    if isinstance(values, pa.ChunkedArray):
        if values.num_chunks == 1:
            return np.asarray(values.chunk(0).to_numpy(zero_copy_only=False))
        return np.asarray(values.to_numpy())
    return np.asarray(values.to_numpy(zero_copy_only=False))


def _numeric_stats(present: pa.ChunkedArray, *, bins: int) -> dict[str, Any]:
    values, ints = _numbers(present)
    finite_mask = np.isfinite(values)
    n_finite = int(np.count_nonzero(finite_mask))
    nan_count = inf_count = 0
    x = values
    if n_finite < len(values):
        nan_count = int(np.count_nonzero(np.isnan(values)))
        inf_count = len(values) - n_finite - nan_count
        x = values[finite_mask]
    distinct, approx = _distinct_numbers(values if ints is None else ints)
    stats: dict[str, Any] = {
        "distinct_count": distinct,
        "distinct_approx": approx,
        "min": None, "max": None, "mean": None, "std": None,
        "nan_count": nan_count,
        "inf_count": inf_count,
        "quantiles": {str(q): None for q in QUANTILES},
    }
    if bins:
        stats["histogram"] = {"edges": [], "counts": []}
    if n_finite == 0:
        return stats
    if ints is not None and pa.types.is_integer(present.type):
        low, high = int(ints.min()), int(ints.max())  # exact beyond 2**53
        stats["min"], stats["max"] = low, high
        flow, fhigh = float(low), float(high)
    else:
        flow, fhigh = float(x.min()), float(x.max())
        stats["min"], stats["max"] = flow, fhigh
    stats["mean"] = finite(x.mean())
    stats["std"] = finite(x.std(ddof=1)) if n_finite > 1 else None
    stats["quantiles"] = {str(q): finite(v) for q, v in zip(QUANTILES, np.quantile(x, QUANTILES), strict=True)}
    if bins:
        edges = histogram_edges(flow, fhigh, bins)
        stats["histogram"] = {"edges": edges.tolist(), "counts": bin_counts(x, edges).tolist()}
    return stats


def histogram_edges(low: float, high: float, bins: int) -> Floats:
    """`bins` equal-width bins over [low, high]; one value gets a bin of width 1 around it."""
    if low == high:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low / 2, high / 2, bins + 1) * 2  # halved so high - low cannot overflow
    edges[0], edges[-1] = low, high
    return edges


def bin_counts(values: Floats, edges: Floats) -> npt.NDArray[np.int64]:
    """Count finite `values` in the bins [e0, e1), [e1, e2), … [e(n-1), en]; values outside go to the end bins."""
    bins = len(edges) - 1
    low, high = float(edges[0]), float(edges[-1])
    width = (high / 2 - low / 2) / bins * 2
    if not (0 < width < np.inf and np.allclose(np.diff(edges), width, rtol=1e-9, atol=0)):
        index = np.searchsorted(edges, values, side="right") - 1
        np.clip(index, 0, bins - 1, out=index)
        return np.bincount(index, minlength=bins).astype(np.int64)
    # Equal widths: arithmetic is 3x faster than a binary search; the comparisons then fix the
    # off-by-one that rounding can cause next to an edge, so the result matches the edges exactly.
    position = (values / 2 - low / 2) * (2 / width)
    index = np.clip(position, 0, bins - 1).astype(np.intp)
    index -= (values < edges[index]) & (index > 0)
    index += (values >= edges[index + 1]) & (index < bins - 1)
    return np.bincount(index, minlength=bins).astype(np.int64)


def _distinct_numbers(values: npt.NDArray[Any]) -> tuple[int, bool]:
    """Distinct count: exact up to EXACT_DISTINCT_LIMIT values, else estimated by hash sampling.

    The estimate keeps the values whose 64-bit mixed hash falls below p·2**64 (p = limit / n, so
    every copy of a value is kept or dropped together), counts the distinct hashes kept and divides
    by p. The relative standard error is about 1/sqrt(kept), under 3%. When fewer than 1,000 distinct
    hashes are kept the column has few values and is recounted exactly.
    """
    if values.dtype.kind == "f":
        values = values + 0.0  # -0.0 and 0.0 are one value
        nan = np.isnan(values)
        if nan.any():
            values[nan] = np.nan  # one NaN bit pattern
    bits = np.ascontiguousarray(values).view(np.uint64) if values.dtype.itemsize == 8 else values.astype(np.uint64)
    if len(bits) <= EXACT_DISTINCT_LIMIT:
        return len(np.unique(bits)), False
    hashes = _mix64(bits)
    share = EXACT_DISTINCT_LIMIT / len(bits)
    threshold = np.uint64(int(share * 2**64))
    kept = len(np.unique(hashes[hashes < threshold]))
    if kept < _SAMPLE_MIN_DISTINCT:
        return int(pc.count_distinct(pa.array(bits)).as_py()), False
    return round(kept / (int(threshold) / 2**64)), True


def _mix64(bits: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The splitmix64 finaliser: a fast, well-spread 64-bit hash (uint64 arithmetic wraps)."""
    z = bits + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _boolean_stats(present: pa.ChunkedArray) -> dict[str, Any]:
    true = int(pc.sum(present).as_py() or 0)
    false = len(present) - true
    pairs = sorted((pair for pair in (("false", false), ("true", true)) if pair[1]), key=lambda pair: -pair[1])
    top = [{"value": name, "count": count} for name, count in pairs]
    return {"distinct_count": len(top), "distinct_approx": False, "top": top, "other_count": 0}


def _string_stats(present: pa.ChunkedArray, *, top_k: int, forced: bool) -> dict[str, Any]:
    present = string_values(present)
    counted = pc.value_counts(present)
    distinct = len(counted)
    counts = np.asarray(counted.field("counts").to_numpy(zero_copy_only=False), dtype=np.int64)
    non_null = len(present)
    categorical = forced or distinct <= CATEGORY_MAX_DISTINCT or (
        distinct <= TEXT_MIN_DISTINCT and distinct <= CATEGORY_MAX_RATIO * non_null
    )
    chosen = top_indices(counts, top_k)
    labels = counted.field("values").take(pa.array(chosen, type=pa.int64())).to_pylist()
    if not categorical:
        labels = [v if len(v) <= TEXT_VALUE_CHARS else v[: TEXT_VALUE_CHARS - 1] + "…" for v in labels]
    top = [{"value": v, "count": int(counts[i])} for v, i in zip(labels, chosen, strict=True)]
    return {
        "kind": "categorical" if categorical else "text",
        "distinct_count": distinct,
        "distinct_approx": False,  # the value counts behind top-k are exact anyway
        "top": top,
        "other_count": non_null - sum(item["count"] for item in top),
    }


def top_indices(counts: npt.NDArray[np.int64], k: int) -> npt.NDArray[np.int64]:
    """Indices of the k largest counts, largest first; ties keep their order (first seen first)."""
    if len(counts) <= k:
        return np.argsort(-counts, kind="stable")
    cutoff = np.partition(counts, len(counts) - k)[len(counts) - k]  # the k-th largest count
    above = np.flatnonzero(counts > cutoff)
    tied = np.flatnonzero(counts == cutoff)[: k - len(above)]
    chosen = np.concatenate([above, tied])
    return chosen[np.argsort(-counts[chosen], kind="stable")]
