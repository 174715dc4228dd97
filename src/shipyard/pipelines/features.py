"""The feature preparation inside a standard-pipeline model: scikit-learn steps built from the spec's
`features` section, so that the registered model takes the table's own columns. DateParts and MissingText are
saved with the models that use them, so loading such a model needs Shipyard installed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

#: What a timestamp or date column becomes.
DATE_PARTS = ("year", "month", "day", "weekday", "hour")


class DateParts(TransformerMixin, BaseEstimator):
    """Timestamps and dates (or text that parses as them) as numbers: year, month, day, weekday (Monday 0)
    and hour, in UTC when they carry a time zone. A missing or unparseable value gives NaN parts."""

    def fit(self, x: Any, y: Any = None) -> DateParts:
        self.feature_names_in_ = np.asarray([str(c) for c in _columns(x)], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, x: Any) -> Any:
        import pandas as pd

        frame = x if isinstance(x, pd.DataFrame) else pd.DataFrame(x)
        parts = []
        for column in frame.columns:
            values = frame[column]
            if not pd.api.types.is_datetime64_any_dtype(values):
                values = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
            elif getattr(values.dt, "tz", None) is not None:
                values = values.dt.tz_convert("UTC")
            stamp = values.dt
            for part in (stamp.year, stamp.month, stamp.day, stamp.day_of_week, stamp.hour):
                parts.append(part.to_numpy(dtype=float, na_value=np.nan))
        return np.column_stack(parts) if parts else np.empty((len(frame), 0))

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> Any:
        names = input_features if input_features is not None else self.feature_names_in_
        return np.asarray([f"{name}_{part}" for name in names for part in DATE_PARTS], dtype=object)


def _columns(x: Any) -> list[Any]:
    columns = getattr(x, "columns", None)
    return list(columns) if columns is not None else list(range(np.shape(x)[1]))


def non_numeric(frame: Any, columns: Sequence[str]) -> list[str]:
    """The columns among `columns` a model cannot take as numbers (booleans count as numbers)."""
    import pandas as pd

    return [c for c in columns
            if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
                    or _booleans(frame[c]))]


def _booleans(values: Any) -> bool:
    present = values.dropna()
    return values.dtype == object and all(isinstance(v, bool | np.bool_) for v in present)


class MissingText(TransformerMixin, BaseEstimator):
    """Text columns whose missing values are pandas' NA (the `string` type of feature views) as Python objects with
    NaN for a missing value, which the one-hot encoder takes as a value of its own."""

    def fit(self, x: Any, y: Any = None) -> MissingText:
        self.feature_names_in_ = np.asarray([str(c) for c in _columns(x)], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, x: Any) -> Any:
        import pandas as pd

        frame = x if isinstance(x, pd.DataFrame) else pd.DataFrame(x, columns=self.feature_names_in_)
        return frame.astype(object).where(frame.notna(), np.nan)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> Any:
        names = input_features if input_features is not None else self.feature_names_in_
        return np.asarray(list(names), dtype=object)


def _text_with_na(values: Any) -> bool:
    import pandas as pd

    return isinstance(values.dtype, pd.StringDtype) and values.dtype.na_value is pd.NA


def preprocessor(frame: Any, *, categorical: Sequence[str], datetime: Sequence[str], max_categories: int,
                 impute: bool, scale: bool) -> Any:
    """A ColumnTransformer for `frame`'s columns: numbers imputed (median) and scaled when asked, categorical
    columns one-hot encoded, date columns expanded into parts. None when no column needs anything."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in frame.columns if c not in categorical and c not in datetime]
    transformers: list[Any] = []

    def numbers(first: list[tuple[str, Any]], *, indicator: bool) -> Any:
        steps = [*first]
        if impute:  # with an indicator, the model still sees which numbers were missing
            steps.append(("impute", SimpleImputer(strategy="median", add_indicator=indicator,
                                                  keep_empty_features=True)))
        if scale:
            steps.append(("scale", StandardScaler()))
        return Pipeline(steps)

    if numeric and (impute or scale):
        transformers.append(("numeric", numbers([], indicator=True), numeric))
    def encoder() -> Any:
        return OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=max_categories, sparse_output=False)

    text = [c for c in categorical if _text_with_na(frame[c])]
    plain = [c for c in categorical if c not in text]
    if plain:
        transformers.append(("categorical", encoder(), plain))
    if text:  # the encoder cannot compare pandas' NA (nor can skops save it): it becomes NaN first
        transformers.append(("categorical_text", Pipeline([("missing", MissingText()), ("encode", encoder())]), text))
    if datetime:
        transformers.append(("datetime", numbers([("parts", DateParts())], indicator=False), list(datetime)))
    if not transformers:
        return None
    return ColumnTransformer(transformers, remainder="passthrough")
