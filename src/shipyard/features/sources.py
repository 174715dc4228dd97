"""A feature view's source (a dataset version, a Parquet or a CSV file): reading only the columns needed, running
the view's transform, and typing the declared columns, the same way for training sets and the online store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.data.versions import get_version
from shipyard.errors import NotFoundError, ValidationError, did_you_mean, plain
from shipyard.features.timing import to_utc
from shipyard.features.views import TYPES

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from shipyard.features.registry import RegisteredView


@dataclass(frozen=True)
class Source:
    """A view's source as found now: a dataset version (its id) or a file (its resolved path)."""

    text: str
    dataset_version: str | None
    path: Path | None

    @property
    def label(self) -> str:
        return self.dataset_version or str(self.path)


def locate(ctx: Context, source: str) -> Source:
    """The dataset version (NAME: its latest) or the file (relative to the workspace root) a source names."""
    from shipyard.features.views import SOURCE_FILES

    if source.lower().endswith(SOURCE_FILES):
        path = Path(source).expanduser()
        path = path if path.is_absolute() else ctx.workspace.root / path
        if not path.is_file():
            raise NotFoundError(f"The source file {source} does not exist (looked at {path}); a relative path is "
                                "relative to the workspace root.", path=str(path))
        return Source(source, None, path)
    version = get_version(ctx, source)
    if version.table_digest is None:
        raise ValidationError(f"{version.version_id} is a set of files, not a table; a feature view reads a table.")
    return Source(source, version.version_id, None)


def columns_of(ctx: Context, source: Source) -> list[str]:
    """The column names of the source, read from its schema (nothing else is read)."""
    if source.dataset_version is not None:
        version = get_version(ctx, source.dataset_version)
        return [c["name"] for c in version.table_schema or []]
    assert source.path is not None
    try:
        if source.path.suffix.lower() == ".csv":
            import pyarrow.csv as pcsv

            with pcsv.open_csv(source.path) as reader:
                return list(reader.schema.names)
        import pyarrow.parquet as pq

        return list(pq.read_schema(source.path).names)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"Cannot read the columns of {source.path}: {exc}. Check that it is a complete "
                              f"{source.path.suffix.lstrip('.')} file.", path=str(source.path)) from None


def read(ctx: Context, view: RegisteredView, source: Source, needed: list[str] | None) -> pd.DataFrame:
    """The source's rows with the `needed` columns (all of them when None), as pandas. A declared column the
    source no longer has is named in the error."""
    available = columns_of(ctx, source)
    if needed is not None:
        missing = [c for c in needed if c not in available]
        if missing:
            raise ValidationError(
                f"The source {source.label} of feature view {view.version_id} has no column {missing[0]!r}, which "
                f"the view declares.{did_you_mean(missing[0], available)} Columns: {', '.join(available)}. Restore "
                "the column, or change the view and apply it again.", view=view.version_id, column=missing[0])
    table = _read_table(ctx, source, needed)
    return table.to_pandas()


def _read_table(ctx: Context, source: Source, columns: list[str] | None) -> pa.Table:
    if source.dataset_version is not None:
        from shipyard.data.workspace_files import load_arrow

        return load_arrow(ctx, get_version(ctx, source.dataset_version), columns)
    assert source.path is not None
    import pyarrow as pa

    try:
        if source.path.suffix.lower() == ".csv":
            import pyarrow.csv as pcsv

            # an empty cell is a missing value in every column, text too (as pandas.read_csv and Parquet have it)
            options = pcsv.ConvertOptions(include_columns=columns or [], strings_can_be_null=True)
            return pcsv.read_csv(source.path, convert_options=options)
        import pyarrow.parquet as pq

        return pq.read_table(source.path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"Cannot read {source.path}: {exc}.", path=str(source.path)) from None


@dataclass
class SourceRows:
    """A view's source rows as the offline and online paths both use them: after the view's transform, one entry per
    row in the source's order: the entity keys as the source has them, the event (and created) times in UTC, and the
    features in their declared types."""

    keys: pd.DataFrame
    event: pd.Series
    created: pd.Series | None
    features: dict[str, pd.Series]
    dataset_version: str | None  # the dataset version read, when the source is a dataset


def rows(ctx: Context, view: RegisteredView, features: Sequence[str] | None = None) -> SourceRows:
    """Read the source of a registered view version (only the columns needed, unless it has a transform), run the
    transform, and check and type the declared columns; `features` picks some of the view's features."""
    from shipyard.features.loading import resolve_transform

    d = view.definition
    wanted = list(features) if features is not None else list(view.features)
    keys, ts, created = view.entities, d["timestamp"], d["created_timestamp"]
    declared = [*keys, ts, *([created] if created else []), *wanted]
    transform = resolve_transform(view)
    source = locate(ctx, d["source"])
    frame = read(ctx, view, source, None if transform is not None else declared)
    if transform is not None:
        frame = _transformed(view, transform, frame)
        missing = [c for c in declared if c not in frame.columns]
        if missing:
            raise ValidationError(
                f"Feature view {view.version_id}: after its transform the source has no column {missing[0]!r}, which "
                f"the view declares.{did_you_mean(missing[0], map(str, frame.columns))} Columns: "
                f"{', '.join(map(str, frame.columns))}.", view=view.version_id, column=missing[0])
    frame = frame.reset_index(drop=True)
    event = to_utc(frame[ts], f"the timestamp column '{ts}' of feature view {view.version_id}")
    stamp = to_utc(frame[created], f"the created timestamp column '{created}' of feature view {view.version_id}") \
        if created else None
    typed = {feature: _typed(view, feature, frame[feature]) for feature in wanted}
    return SourceRows(frame[keys], event, stamp, typed, source.dataset_version)


def _transformed(view: RegisteredView, transform: Any, frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    try:
        out = transform(frame)
    except Exception as exc:  # the user's transformation failed
        raise ValidationError(f"The transform of feature view {view.version_id} failed: {type(exc).__name__}: "
                              f"{exc}. Fix the function (--debug shows the traceback).", view=view.version_id) from exc
    if not isinstance(out, pd.DataFrame):
        raise ValidationError(f"The transform of feature view {view.version_id} returned {type(out).__name__}; it "
                              "must return a DataFrame.", view=view.version_id)
    return out


def value_kind(series: pd.Series) -> str:
    """What a column holds, for comparing two columns and for messages: bool, integer (also floats that are all
    whole numbers, as integers with nulls become), float, timestamp, string, or the types found."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        present = series.dropna()
        return "integer" if len(present) and (present == present.round()).all() else "float"
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        return "timestamp"
    if pd.api.types.is_string_dtype(dtype):
        present = series.dropna()
        kinds = {type(v).__name__ for v in present.iloc[:1000]}
        if kinds <= {"str"}:
            return "string"
        return "/".join(sorted(kinds))
    return str(dtype)


def _typed(view: RegisteredView, feature: str, values: pd.Series) -> pd.Series:
    """A source column in its declared type (nullable), or an error naming the feature, the type and a value."""
    kind = view.features[feature]
    dtype = TYPES[kind]
    try:
        if kind == "timestamp":
            return to_utc(values, f"feature '{feature}' of view {view.version_id}")
        ok = {"float64": "float", "float32": "float", "int64": "integer", "int32": "integer", "bool": "bool",
              "string": "string"}[kind]
        found = value_kind(values)
        if values.notna().any() and found != ok and not (ok == "float" and found == "integer"):
            raise TypeError(found)
        return values.astype(dtype)
    except (TypeError, ValueError) as exc:
        example = plain(values.dropna().iloc[0]) if values.notna().any() else None
        raise ValidationError(
            f"Feature '{feature}' of view {view.version_id} is declared {kind}, but its source column holds "
            f"{value_kind(values)} values such as {example!r}. Change the declared type (and apply the view again), or "
            "convert the column in the view's transform.", view=view.version_id, feature=feature) from exc
