"""Reading tables (CSV, Parquet, JSON lines, DataFrames) into Arrow, with errors that name the line."""

from __future__ import annotations

import codecs
import io
from collections import Counter
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
            table = _read_csv(path)
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            import pyarrow.json as pj

            table = pj.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as exc:
        raise ValidationError(_describe(path, fmt, exc), path=str(path)) from None
    check_column_names(table.column_names, f"{path}")
    return table


def check_column_names(names: list[str], source: str) -> None:
    """Refuse duplicated column names: one of them would be lost from the profile and the stored table
    could not be loaded back."""
    counts = Counter(names)
    dupes = [name for name, count in counts.items() if count > 1]
    if dupes:
        shown = ", ".join(f"{name!r} ({counts[name]} times)" for name in dupes)
        raise ValidationError(
            f"{source} has duplicate column names: {shown}. Give each column a unique name and add it again.",
            duplicated=dupes,
        )


#: Byte-order marks and the encodings they announce; UTF-32 first, as its little-endian mark begins
#: with UTF-16's. UTF-8 (with or without its mark) is pyarrow's default.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def _encoding(head: bytes) -> str:
    return next((name for bom, name in _BOMS if head.startswith(bom)), "utf8")


def _read_csv(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    with open(path, "rb") as handle:
        head = handle.read(4096)
    encoding = _encoding(head)
    if encoding == "utf8" and b"\x00" in head:
        raise ValidationError(_nul_message(path, head), path=str(path))
    options = pcsv.ReadOptions(block_size=16 << 20, encoding=encoding)
    table = pcsv.read_csv(path, read_options=options)
    try:
        table.column_names  # noqa: B018 - pyarrow decodes the names here: a header that is not UTF-8 fails
    except UnicodeDecodeError:
        raise ValidationError(_not_utf8(path, 1), path=str(path), line=1) from None
    if any(pa.types.is_binary(f.type) for f in table.schema):  # pyarrow's fallback for undecodable text
        line, problem = find_bad_csv_line(path, encoding)
        if problem == NOT_TEXT:
            raise ValidationError(_not_utf8(path, line, encoding), path=str(path), line=line)
        raise ValidationError(f"{path} is not a valid CSV file at line {line}: {problem}. Fix that line and add it again.",
                              path=str(path), line=line)
    return table


NOT_TEXT = "it is not UTF-8 text"


def _not_utf8(path: Path, line: int | None, encoding: str = "utf8") -> str:
    if encoding != "utf8":
        return (f"{path} announces {encoding.upper()} with its byte-order mark, but is not valid "
                f"{encoding.upper()} throughout. Save it again in one encoding (UTF-8 is best) and add it again.")
    return (f"{path} is not a valid CSV file at line {line}: {NOT_TEXT}. Shipyard reads CSV files as UTF-8 (or "
            f"UTF-16/UTF-32 with a byte-order mark); save it as UTF-8, e.g. `iconv -f LATIN1 -t UTF-8 {path.name} "
            f"> {path.stem}-utf8.csv` for a Latin-1 file, and add that file.")


def _nul_message(path: Path, head: bytes) -> str:
    """NUL bytes without a byte-order mark: UTF-16 without its mark (every other byte NUL), or binary data."""
    even, odd = head[0::2], head[1::2]
    guess = None
    if odd and odd.count(0) > 0.8 * len(odd):
        guess = "UTF-16LE"
    elif even and even.count(0) > 0.8 * len(even):
        guess = "UTF-16BE"
    if guess:
        return (f"{path} looks like {guess} text without a byte-order mark, which cannot be read reliably. Save it "
                f"as UTF-8, e.g. `iconv -f {guess} -t UTF-8 {path.name} > {path.stem}-utf8.csv`, and add that file.")
    return (f"{path} is not a text CSV file (it contains NUL bytes). Check that it is a CSV file; to version it as "
            "an opaque file, use --kind files.")


def find_bad_csv_line(path: Path, encoding: str = "utf8") -> tuple[int | None, str]:
    """The first line that does not decode or has a different number of fields than the header."""
    import csv

    state = {"line": 0}

    def lines() -> Any:
        if encoding != "utf8":  # UTF-16/32, announced by its byte-order mark: read as text
            with open(path, encoding=encoding, newline="") as text:
                for line in text:
                    state["line"] += 1
                    yield line
            return
        with open(path, "rb") as handle:
            for raw in handle:
                state["line"] += 1
                yield raw.decode("utf-8-sig" if state["line"] == 1 else "utf-8")

    try:
        reader = csv.reader(lines())
        header = next(reader, None)
        if header is None:
            return 1, "the file is empty"
        for row in reader:
            if row and len(row) != len(header):
                return reader.line_num, f"expected {len(header)} fields like the header, found {len(row)}"
    except UnicodeDecodeError:
        return (state["line"] if encoding == "utf8" else None), NOT_TEXT
    except csv.Error as exc:
        return state["line"], str(exc)
    return None, "the CSV reader could not parse it"


def _describe(path: Path, fmt: str, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if fmt == "csv":
        with open(path, "rb") as handle:
            encoding = _encoding(handle.read(4))
        line, problem = find_bad_csv_line(path, encoding)
        if problem == NOT_TEXT:
            return _not_utf8(path, line, encoding)
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

    if isinstance(frame, pa.Table):  # kept as it is: its columns keep their types with missing values
        check_column_names(frame.column_names, "The table")
        return frame
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(f"Expected a pandas DataFrame or a pyarrow Table, got {type(frame).__name__}.")
    check_column_names([str(c) for c in frame.columns], "The DataFrame")
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
