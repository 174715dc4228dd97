"""Column sketches: what the drift scores need of a reference column (exact values or quantiles, the standard
deviation, deciles, complete category counts), kept small enough to store and reuse instead of the data."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from shipyard.errors import ValidationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SMALL_REFERENCE = 1_000  # rows: at most this many, a statistical test; more, a distance
NUMERIC_MIN_DISTINCT = 6  # "more than 5 distinct values"
#: A large numeric column keeps its TAIL lowest and highest values exactly and this many evenly spaced
#: quantiles of the rest, each weighing what it stands for. The Wasserstein distance against them differs from
#: the exact one by about 1e-4 of the spread within the middle (the tails, where heavy-tailed data
#: spreads most, are exact): below 1e-3 reference standard deviations on normal, lognormal, bimodal and
#: Pareto data.
QUANTILES = 10_000
TAIL = 1_000
#: Numeric columns with at most this many distinct values also keep their counts (chisquare on request).
COUNTS_MAX_DISTINCT = 1_000
FORMAT = 2  # of to_bytes; a stored sketch of another format is built again
#: Text with more distinct values than half its rows (and than this many) is an identifier or free text.
CATEGORY_MAX_DISTINCT = 50
IDENTIFIER_MIN_ROWS = 50
#: Kinds the drift engine does not compare unless a method is asked for: time moves on, ids are unique.
NOT_COMPARED = {"timestamp": "a timestamp column: time moves on, so it is not compared (compare what is derived "
                             "from it, or give it a method)",
                "identifier": "mostly unique values (an identifier or free text): not compared (give it a method "
                              "to compare it anyway)"}


def kind_from(distinct: int, numeric: bool, count: int = 0, temporal: bool = False) -> str:
    """numeric (numbers with more than 5 distinct values), binary (two values), categorical; or one of the
    kinds not compared by default: timestamp, and identifier (text whose values are mostly unique: ids, free
    text)."""
    if temporal:
        return "timestamp"
    if distinct == 2:
        return "binary"
    if not numeric and count >= IDENTIFIER_MIN_ROWS and distinct > max(CATEGORY_MAX_DISTINCT, count / 2):
        return "identifier"
    return "numeric" if numeric and distinct >= NUMERIC_MIN_DISTINCT else "categorical"


def is_temporal(values: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_datetime64_any_dtype(values))


def is_numeric(values: pd.Series) -> bool:
    """Numbers, not booleans: what KS, Wasserstein and the deciles apply to."""
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))


def string_counts(values: pd.Series) -> tuple[pd.Series, int]:
    """(counts per category as text, how the drift engine names categories; the number of distinct values).
    Counted before the values become text, so that a million numbers are not formatted one by one."""
    counted = values.value_counts(dropna=True)
    distinct = len(counted)
    labels = counted.index.astype(str)
    if labels.has_duplicates:  # 1 and "1" are one category once they are text
        return counted.groupby(labels).sum(), distinct
    counted.index = labels
    return counted, distinct


class ReferenceSide(Protocol):
    """One reference column as the scores see it: an exact series or a sketch."""

    @property
    def kind(self) -> str: ...

    @property
    def count(self) -> int: ...  # non-null values

    @property
    def numeric(self) -> bool: ...

    @property
    def distinct(self) -> int: ...

    def exact_values(self) -> np.ndarray | None: ...  # every value (KS needs them), or None

    def atoms(self) -> np.ndarray: ...  # sorted points standing for the distribution

    def weights(self) -> np.ndarray | None: ...  # the share of the rows each atom stands for; None: equal

    def spread(self) -> float: ...  # the population standard deviation

    def category_counts(self) -> pd.Series | None: ...  # complete counts by text label, or None

    def deciles(self) -> tuple[np.ndarray, np.ndarray]: ...  # (unique inner decile edges, counts per bin)


@dataclass
class ColumnSketch:
    kind: str
    count: int
    nulls: int
    numeric: bool
    distinct: int
    minimum: float | None = None
    maximum: float | None = None
    std: float | None = None
    values: np.ndarray | None = None  # sorted, every value: at most QUANTILES + 2 * TAIL of them
    quantiles: np.ndarray | None = None  # else the TAIL extremes of each side and QUANTILES between them
    tail: int = 0
    edges: np.ndarray | None = None  # the unique inner deciles
    decile_counts: np.ndarray | None = None
    categories: list[str] | None = None  # complete counts, when kept
    counts: np.ndarray | None = None

    def exact_values(self) -> np.ndarray | None:
        return self.values

    def atoms(self) -> np.ndarray:
        found = self.values if self.values is not None else self.quantiles
        assert found is not None, "numeric sketches keep values or quantiles"
        return found

    def weights(self) -> np.ndarray | None:
        import numpy as np

        if self.quantiles is None:
            return None
        middle = len(self.quantiles) - 2 * self.tail
        inner = 1 - 2 * self.tail / self.count
        tail = np.full(self.tail, 1 / self.count)
        return np.concatenate([tail, np.full(middle, inner / middle), tail])

    def spread(self) -> float:
        return float(self.std or 0.0)

    def category_counts(self) -> pd.Series | None:
        import pandas as pd

        if self.categories is None or self.counts is None:
            return None
        return pd.Series(self.counts, index=pd.Index(self.categories, dtype=object), dtype="float64")

    def deciles(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.edges is not None and self.decile_counts is not None
        return self.edges, self.decile_counts


def sketch_series(values: pd.Series, *, quantiles: int = QUANTILES) -> ColumnSketch:
    """The sketch of one column (nulls counted, then dropped)."""
    import numpy as np

    present = values.dropna()
    numeric = is_numeric(present)
    sketch = ColumnSketch("categorical", len(present), int(len(values) - len(present)), numeric, 0)
    if is_temporal(present):  # not compared by default: no counts of every instant
        sketch.kind, sketch.distinct = "timestamp", int(present.nunique())
        return sketch
    if numeric and len(present):
        x = np.sort(present.to_numpy(dtype=float))
        sketch.distinct = int(np.count_nonzero(x[1:] != x[:-1])) + 1
        sketch.minimum, sketch.maximum, sketch.std = float(x[0]), float(x[-1]), float(np.std(x))
        if len(x) <= quantiles + 2 * TAIL:  # every value takes no more room, and is exact
            sketch.values = x
        else:
            n, sketch.tail = len(x), TAIL
            middle = TAIL / n + (np.arange(quantiles) + 0.5) / quantiles * (1 - 2 * TAIL / n)
            sketch.quantiles = np.concatenate([x[:TAIL], sorted_quantiles(x, middle), x[-TAIL:]])
        # np.quantile itself, so that the edges are the data's to the last bit (values sitting on them).
        sketch.edges = np.unique(np.quantile(x, np.linspace(0, 1, 11)[1:-1]))
        # Bin j holds edges[j-1] <= v < edges[j], as searchsorted(edges, v, side="right") places v.
        below = np.searchsorted(x, sketch.edges, side="left")
        sketch.decile_counts = np.diff(np.concatenate([[0], below, [len(x)]])).astype(np.int64)
    if not numeric or sketch.distinct <= COUNTS_MAX_DISTINCT:
        counted, distinct = string_counts(present)
        if not numeric:
            sketch.distinct = distinct
        sketch.categories = [str(c) for c in counted.index]
        sketch.counts = counted.to_numpy(dtype=np.int64)
    sketch.kind = kind_from(sketch.distinct, numeric, sketch.count)
    if sketch.kind == "identifier":  # the counts of unique values would be the whole column again
        sketch.categories, sketch.counts = None, None
    return sketch


def sorted_quantiles(x: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """np.quantile's linear interpolation on already sorted values, without sorting again."""
    import numpy as np

    position = probabilities * (len(x) - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, len(x) - 1)
    fraction = position - low
    return np.asarray(x[low] + (x[high] - x[low]) * fraction, dtype=float)


_ARRAYS = ("values", "quantiles", "edges", "decile_counts", "counts")
_SCALARS = ("kind", "count", "nulls", "numeric", "distinct", "minimum", "maximum", "std", "tail", "categories")


@dataclass
class ReferenceSketch:
    columns: dict[str, ColumnSketch]
    rows: int
    source: str  # profile (nothing read) | data (read for this call) | sketch (a stored sketch, nothing read)
    version_id: str | None = None
    read_columns: list[str] = field(default_factory=list)  # the columns that came from the data

    def to_bytes(self) -> bytes:
        """An .npz archive (no pickles): the arrays, and the rest as JSON."""
        import numpy as np

        arrays: dict[str, Any] = {}
        described = []
        for i, (name, column) in enumerate(self.columns.items()):
            described.append({"name": name, **{k: getattr(column, k) for k in _SCALARS}})
            for key in _ARRAYS:
                if getattr(column, key) is not None:
                    arrays[f"{i}.{key}"] = getattr(column, key)
        meta = {"format": FORMAT, "rows": self.rows, "source": self.source, "version_id": self.version_id,
                "read_columns": self.read_columns, "columns": described}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        out = io.BytesIO()
        np.savez_compressed(out, **arrays)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceSketch:
        import numpy as np

        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                meta = json.loads(archive["meta"].tobytes().decode())
                if meta.get("format") != FORMAT:
                    raise ValidationError(f"The reference sketch has format {meta.get('format')!r}; this version "
                                          f"reads format {FORMAT}. Build the sketch again.")
                columns = {}
                for i, described in enumerate(meta["columns"]):
                    name = described.pop("name")
                    arrays = {key: archive[f"{i}.{key}"] for key in _ARRAYS if f"{i}.{key}" in archive.files}
                    columns[name] = ColumnSketch(**described, **arrays)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise ValidationError(f"These bytes are not a reference sketch ({exc}). Build the sketch again.") \
                from exc
        return cls(columns, meta["rows"], meta["source"], meta["version_id"], meta["read_columns"])

    def subset(self, names: list[str]) -> ReferenceSketch:
        return ReferenceSketch({n: self.columns[n] for n in names}, self.rows, self.source, self.version_id,
                               [n for n in self.read_columns if n in names])
