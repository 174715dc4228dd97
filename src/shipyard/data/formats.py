"""Reading tables (CSV, Parquet, JSON lines, DataFrames) into Arrow, with errors that name the line."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ValidationError

if TYPE_CHECKING:
    import pyarrow as pa

TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def table_format(path: Path) -> str | None:
    return TABLE_FORMATS.get(path.suffix.lower())


def read_table(path: Path) -> pa.Table:
    """Read a table file; a malformed file raises ValidationError naming the file and the line."""
    import pyarrow as pa

    fmt = table_format(path)
    if fmt is None:
        raise ValidationError(
            f"Unsupported table file type '{path.suffix or path.name}' for {path}: Shipyard reads tables from "
            f"{', '.join(sorted(TABLE_FORMATS))}. To version it as an opaque file, use --kind files."
        )
    try:
        if fmt == "csv":
            return _read_csv(path)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.json as pj

        return pj.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as exc:
        raise ValidationError(_describe(path, fmt, exc)) from None


def _read_csv(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    with open(path, "rb") as handle:
        head = handle.read(4096)
    if b"\x00" in head:
        raise ValidationError(f"{path} is not a text CSV file (it contains NUL bytes). Check the file.")
    table = pcsv.read_csv(path, read_options=pcsv.ReadOptions(block_size=16 << 20))
    if any(pa.types.is_binary(f.type) for f in table.schema):  # pyarrow's fallback for invalid UTF-8
        line, problem = find_bad_csv_line(path)
        raise ValidationError(f"{path} is not a valid CSV file at line {line}: {problem}. Fix that line and add it again.")
    return table


def find_bad_csv_line(path: Path) -> tuple[int | None, str]:
    """The first line that is not UTF-8 or has a different number of fields than the header."""
    import csv

    state = {"line": 0}

    def lines() -> Any:
        with open(path, "rb") as handle:
            for raw in handle:
                state["line"] += 1
                yield raw.decode("utf-8")

    try:
        reader = csv.reader(lines())
        header = next(reader, None)
        if header is None:
            return 1, "the file is empty"
        for row in reader:
            if row and len(row) != len(header):
                return reader.line_num, f"expected {len(header)} fields like the header, found {len(row)}"
    except UnicodeDecodeError:
        return state["line"], "it is not UTF-8 text"
    except csv.Error as exc:
        return state["line"], str(exc)
    return None, "the CSV reader could not parse it"


def _describe(path: Path, fmt: str, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if fmt == "csv":
        line, problem = find_bad_csv_line(path)
        where = f" at line {line}" if line else ""
        return f"{path} is not a valid CSV file{where}: {problem} ({text}). Fix that line and add it again."
    if fmt == "jsonl":
        line = _first_bad_json_line(path)
        where = f" at line {line}" if line else ""
        return f"{path} is not valid JSON lines{where}: {text}. Fix that line and add it again."
    return f"Cannot read {path} as {fmt}: {text}. Check that the file is complete and of that format."


def _first_bad_json_line(path: Path) -> int | None:
    import json

    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                return number
            if not isinstance(value, dict):
                return number
    return None


def from_frame(frame: Any) -> pa.Table:
    import pandas as pd
    import pyarrow as pa

    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(f"Expected a pandas DataFrame, got {type(frame).__name__}.")
    if frame.columns.duplicated().any():
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise ValidationError(f"DataFrame has duplicate column names: {', '.join(dupes)}. Rename them first.")
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValidationError(f"Cannot convert the DataFrame to a table: {exc}. Give each column one type.") from None


def to_parquet_bytes(table: pa.Table) -> bytes:
    """The canonical stored form of a table: Parquet with zstd compression."""
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def schema_json(table: pa.Table) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in table.schema]
