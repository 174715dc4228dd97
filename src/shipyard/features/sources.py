"""Reading a feature view's source (a dataset version, a Parquet or a CSV file), only the columns needed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.context import Context
from shipyard.data.versions import get_version
from shipyard.errors import NotFoundError, ValidationError, did_you_mean

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

            options = pcsv.ConvertOptions(include_columns=columns) if columns is not None else None
            return pcsv.read_csv(source.path, convert_options=options)
        import pyarrow.parquet as pq

        return pq.read_table(source.path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"Cannot read {source.path}: {exc}.", path=str(source.path)) from None
