"""The monitoring benchmark's table: 15 numeric columns of varied distributions and 5 categorical ones of
3-20 categories, a reference and a current sample of the same size, with a shift planted in 4 numeric
columns (half a standard deviation) and 1 categorical column (its category shares reversed).

Generated from fixed seeds in the project's virtualenv and written once as Parquet; each tool reads the
files in its own process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from _shared import SPEC_FILE

Draw = Callable[[np.random.Generator, int], np.ndarray]

#: name -> how to draw n values; integer columns stay integers.
NUMERIC: dict[str, Draw] = {
    "normal": lambda r, n: r.normal(0.0, 1.0, n),
    "normal_wide": lambda r, n: r.normal(50.0, 10.0, n),
    "lognormal": lambda r, n: r.lognormal(0.0, 0.75, n),
    "exponential": lambda r, n: r.exponential(2.0, n),
    "uniform": lambda r, n: r.uniform(0.0, 100.0, n),
    "gamma": lambda r, n: r.gamma(2.0, 3.0, n),
    "beta": lambda r, n: r.beta(2.0, 5.0, n),
    "student_t": lambda r, n: r.standard_t(5.0, n),
    "bimodal": lambda r, n: np.where(r.random(n) < 0.6, r.normal(-2.0, 1.0, n), r.normal(3.0, 0.5, n)),
    "poisson": lambda r, n: r.poisson(4.0, n).astype(np.int64),
    "age": lambda r, n: r.integers(18, 81, n, dtype=np.int64),
    "income": lambda r, n: r.lognormal(10.5, 0.5, n),
    "weibull": lambda r, n: r.weibull(1.5, n),
    "chisquare": lambda r, n: r.chisquare(3.0, n),
    "laplace": lambda r, n: r.laplace(0.0, 2.0, n),
}
#: name -> number of categories (skewed shares: weight 1/k for the k-th category).
CATEGORICAL: dict[str, int] = {"cat3": 3, "cat5": 5, "cat8": 8, "cat12": 12, "cat20": 20}
SHIFTED_NUMERIC = ("normal", "lognormal", "gamma", "age")
SHIFT_SD = 0.5
SHIFTED_CATEGORICAL = ("cat8",)
REFERENCE_SEED, CURRENT_SEED = 1, 2


def _categories(rng: np.random.Generator, name: str, k: int, n: int, reverse: bool) -> pa.Array:
    weights = 1.0 / np.arange(1, k + 1)
    if reverse:
        weights = weights[::-1]
    codes = rng.choice(k, size=n, p=weights / weights.sum())
    labels = pa.array([f"{name}_{i:02d}" for i in range(k)], pa.string())
    return labels.take(pa.array(codes))


def build(rows: int, seed: int, shifted: bool) -> pa.Table:
    """One sample; with `shifted`, the planted shifts are applied (the current data)."""
    rng = np.random.default_rng(seed)
    sd_rng = np.random.default_rng(0)  # the shift's size comes from the distribution, not from this sample
    columns: dict[str, pa.Array] = {}
    for name, draw in NUMERIC.items():
        values = draw(rng, rows)
        if shifted and name in SHIFTED_NUMERIC:
            shift = SHIFT_SD * float(np.std(draw(sd_rng, 200_000)))
            values = values + (round(shift) if values.dtype.kind == "i" else shift)
        columns[name] = pa.array(values)
    for name, k in CATEGORICAL.items():
        columns[name] = _categories(rng, name, k, rows, shifted and name in SHIFTED_CATEGORICAL)
    return pa.table(columns)


def write(folder: Path, rows: int) -> dict[str, Any]:
    """reference.parquet, current.parquet and spec.json in `folder`; returns the spec."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for label, seed, shifted in (("reference", REFERENCE_SEED, False), ("current", CURRENT_SEED, True)):
        path = folder / f"{label}.parquet"
        pq.write_table(build(rows, seed, shifted), path)
        sizes[label] = path.stat().st_size
    spec = {"rows": rows, "numeric": list(NUMERIC), "categorical": list(CATEGORICAL),
            "shifted": [*SHIFTED_NUMERIC, *SHIFTED_CATEGORICAL], "shift_sd": SHIFT_SD, "parquet_bytes": sizes}
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2))
    return spec
