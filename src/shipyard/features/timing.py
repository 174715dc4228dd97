"""Time in the feature store: one rule for what a timestamp means, and one rule for whether a feature value is
still valid at a given time. Both the offline join and the online read use these, so training and serving can
never disagree on them.

Timestamps: timezone-aware values are converted to UTC; naive values are taken to be UTC already (the
documented rule, never a shift by the machine's zone); a column mixing aware and naive values is refused.

Validity: a value whose event time is `event` is valid at time `at` when `event <= at` (never a later value)
and `at - event <= ttl` (inclusive at the boundary); without a TTL it never expires."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from shipyard.errors import ValidationError, plain

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def to_utc(values: Any, what: str) -> pd.Series:
    """`values` as timezone-aware UTC timestamps (datetime64[ns, UTC]), or a ValidationError naming `what`."""
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return series.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    if series.dtype == object:
        present = series.dropna()
        aware = {isinstance(v, dt.datetime | pd.Timestamp) and v.tzinfo is not None for v in present}
        if aware == {True, False}:
            raise ValidationError(f"{what} mixes timezone-aware and naive timestamps: give them all a timezone, or "
                                  "none (naive timestamps are taken as UTC).", column=what)
        if all(isinstance(v, dt.datetime | dt.date | pd.Timestamp) for v in present):
            return pd.to_datetime(series, utc=True).astype("datetime64[ns, UTC]")
    example = plain(series.dropna().iloc[0]) if series.notna().any() else None
    mixed = _mixed_offsets(series)
    if mixed is not None:
        raise ValidationError(f"{what} must hold timestamps, got text that mixes times with and without a UTC offset, "
                              f"such as {mixed[0]!r} and {mixed[1]!r}: give them all an offset, or none (naive "
                              "times are taken as UTC).", column=what)
    raise ValidationError(f"{what} must hold timestamps, got {series.dtype} values such as {example!r}: parse it "
                          "first (pandas.to_datetime) or name the column that holds the event time.", column=what)


def _mixed_offsets(series: pd.Series) -> tuple[str, str] | None:
    """For text that reads as ISO 8601 times (a CSV file read without parsing them, since they mix), one time
    with a UTC offset and one without; else None."""
    import pandas as pd

    present = series.dropna().iloc[:10_000]  # an error message: a bounded look is enough
    texts = [v for v in present.tolist() if isinstance(v, str)]
    if not texts or len(texts) != len(present):
        return None
    aware: str | None = None
    naive: str | None = None
    for text in texts:
        try:
            stamp = pd.Timestamp(text)
        except (ValueError, TypeError):
            return None
        if pd.isna(stamp):
            return None
        if stamp.tzinfo is not None:
            aware = aware or text
        else:
            naive = naive or text
    return (aware, naive) if aware is not None and naive is not None else None


def live(event: np.ndarray, at: np.ndarray, ttl_seconds: float | None) -> np.ndarray:
    """Per pair, whether a value with event time `event` is valid at `at` (both datetime64[ns] arrays in UTC):
    not later than `at`, and not older than the TTL."""
    import numpy as np

    event_ns = np.asarray(event, dtype="datetime64[ns]").astype(np.int64)
    at_ns = np.asarray(at, dtype="datetime64[ns]").astype(np.int64)
    ok = event_ns <= at_ns
    if ttl_seconds is not None:
        ok &= (at_ns - event_ns) <= int(round(ttl_seconds * 1e9))
    return ok
