"""Tables in chunks for batch scoring: read a Parquet, CSV or JSON-lines file batch by batch, score one
chunk, and write the scores as row groups of a fixed size (so the output does not depend on the chunking)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.data import formats
from shipyard.errors import ValidationError

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.models.loading import LoadedModel

PREDICTION = "prediction"
PROBABILITY_PREFIX = "proba_"
#: Rows per row group of the output file, whatever the chunk size: the same scores make the same bytes.
ROW_GROUP_ROWS = 65_536


@dataclass(frozen=True)
class TableSource:
    """A table file read in chunks; `label` is how messages name it (a path or a dataset version)."""

    path: Path
    fmt: str
    label: str

    def schema(self) -> pa.Schema:
        with self._errors():
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                return pq.ParquetFile(self.path).schema_arrow
            return self._reader().schema

    def row_count(self) -> int | None:
        if self.fmt != "parquet":
            return None  # known only once read
        import pyarrow.parquet as pq

        with self._errors():
            return int(pq.ParquetFile(self.path).metadata.num_rows)

    def batches(self, rows: int) -> Iterator[pa.RecordBatch]:
        """Record batches of exactly `rows` rows (the last one fewer), read lazily."""
        with self._errors():
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                # Unbuffered reads without pre-buffering: by default pyarrow holds more of the file the longer it is.
                parquet = pq.ParquetFile(self.path, buffer_size=1 << 20, pre_buffer=False)
                source: Iterator[pa.RecordBatch] = parquet.iter_batches(batch_size=rows, use_threads=False)
            else:
                source = iter(self._reader())
            yield from rebatch(source, rows)

    def _reader(self) -> Any:
        if self.fmt == "csv":
            import pyarrow.csv as pcsv

            return pcsv.open_csv(self.path, read_options=pcsv.ReadOptions(block_size=1 << 20))
        import pyarrow.json as pj

        return pj.open_json(self.path, read_options=pj.ReadOptions(block_size=1 << 20))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """A reader's failure (at the start or mid-stream) becomes a ValidationError naming the file."""
        import pyarrow as pa

        try:
            yield
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            where = ""
            if self.fmt == "csv":
                line, problem = formats.find_bad_csv_line(self.path)
                if line:
                    where, text = f" at line {line}", f"{problem} ({text})"
            raise ValidationError(
                f"Cannot read {self.label} as {self.fmt}{where}: {text}. Check that the file is complete and of "
                "that format, and give each column one type throughout.", path=str(self.path),
            ) from None


def rebatch(source: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Regroup batches of any sizes into batches of `rows` rows, holding at most one chunk's worth."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in source:
        while batch.num_rows:
            take = min(rows - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == rows:
                yield _combine(pending)
                pending, held = [], 0
    if held:
        yield _combine(pending)


def _combine(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    import pyarrow as pa

    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


@dataclass(frozen=True)
class ScoreSpec:
    """What each chunk's scores hold: the identifier columns kept, and whether probabilities are wanted."""

    keep: tuple[str, ...]
    probabilities: bool
    label: str  # the input, for messages


def score_chunk(model: LoadedModel, batch: pa.RecordBatch, spec: ScoreSpec, first_row: int) -> pa.Table:
    """The identifiers of `batch` (as they are), its predictions and (when asked) class probabilities."""
    import numpy as np
    import pyarrow as pa

    frame = batch.to_pandas()
    where = f"rows {first_row}-{first_row + batch.num_rows - 1} of {spec.label} (counting from 0)"
    try:
        predictions = np.asarray(model.predict(frame))
        probabilities = model.predict_proba(frame) if spec.probabilities else None
    except ValidationError as exc:
        # The signature counts rows within the chunk; the user counts them in the input.
        message = re.sub(r"\bat row (\d+)\b", lambda m: f"at row {first_row + int(m.group(1))}", str(exc))
        raise ValidationError(f"Cannot score {where}: {message}", **exc.fields) from None
    except (ValueError, TypeError) as exc:  # the estimator refused values the signature let through
        why = str(exc).rstrip(".")
        raise ValidationError(f"Model '{model.version.version_id}' could not predict {where}: {why}. Check those "
                              "values against the model's signature (`shipyard models show`).") from None
    if predictions.size != len(frame):
        raise ValidationError(f"Model '{model.version.version_id}' returned {predictions.size} predictions for the "
                              f"{len(frame)} {where}; a model must return one prediction per row.")
    columns = {name: batch.column(name) for name in spec.keep}
    columns[PREDICTION] = pa.array(predictions.reshape(-1))
    if spec.probabilities:
        if probabilities is None:
            raise ValidationError(f"Model '{model.version.version_id}' ({model.flavor.name}) has no predict_proba; "
                                  "score without --probabilities.")
        values = np.asarray(probabilities, dtype=float).reshape(len(frame), -1)
        for name, column in zip(probability_names(model, values.shape[1]), values.T, strict=True):
            columns[name] = pa.array(column)
    return pa.table(columns)


def probability_names(model: LoadedModel, count: int) -> list[str]:
    classes = (model.signature.output.get("classes") if model.signature is not None else None) or []
    labels = [str(c) for c in classes] if len(classes) == count else [str(i) for i in range(count)]
    return [f"{PROBABILITY_PREFIX}{label}" for label in labels]


class RowGroupWriter:
    """Appends scored chunks to a Parquet file in row groups of ROW_GROUP_ROWS rows, whatever the chunks'
    sizes, holding at most one row group and one chunk."""

    def __init__(self, path: Path, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.path = path
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._writer: Any = None
        self._pending: list[pa.Table] = []
        self._held = 0

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        elif table.schema != self._writer.schema:
            table = self._conform(table)
        self._pending.append(table)
        self._held += table.num_rows
        self.rows += table.num_rows
        while self._held >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def close(self) -> None:
        if self._held:
            self._flush(self._held)
        if self._writer is not None:
            self._writer.close()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def _flush(self, rows: int) -> None:
        import pyarrow as pa

        held = pa.concat_tables(self._pending)
        self._writer.write_table(held.slice(0, rows), row_group_size=rows)
        rest = held.slice(rows)
        self._pending, self._held = ([rest] if rest.num_rows else []), rest.num_rows

    def _conform(self, table: pa.Table) -> pa.Table:
        import pyarrow as pa

        try:
            return table.cast(self._writer.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            raise ValidationError(
                f"A later chunk's scores have the types {table.schema.types} where the first chunk's had "
                f"{self._writer.schema.types} ({exc}); the model returns different types for different rows. "
                "Score with one chunk size that holds the whole table, or make the model return one type."
            ) from None


def check_columns(model: LoadedModel, schema: pa.Schema, keep: list[str], label: str) -> None:
    """Before anything is scored: the model's input columns and the identifiers asked for are in the input."""
    from shipyard.errors import did_you_mean

    names = list(schema.names)
    formats.check_column_names(names, label)
    if model.signature is not None:
        missing = [c for c in model.signature.columns if c not in names]
        if missing:
            raise ValidationError(
                f"{label} lacks the column(s) {', '.join(repr(m) for m in missing)} that model "
                f"'{model.version.version_id}' expects (its signature: {', '.join(model.signature.columns)}). "
                f"Columns of {label}: {', '.join(names)}.", missing=missing,
            )
    for column in keep:
        if column not in names:
            raise ValidationError(
                f"--keep {column!r} is not a column of {label}.{did_you_mean(column, names)} Columns: "
                f"{', '.join(names)}.", column=column,
            )
        if column == PREDICTION or column.startswith(PROBABILITY_PREFIX):
            raise ValidationError(
                f"The identifier column {column!r} clashes with the score columns ('{PREDICTION}', "
                f"'{PROBABILITY_PREFIX}CLASS'); rename it in the input before scoring.", column=column,
            )
