"""Table worker of the data benchmark (project virtualenv).

Builds a table from a fixed seed (float, integer and string-category columns), times
``shipyard.data.profile.profile_table`` on it in-process (median of ``--repeats``), and writes the
same table as Parquet to ``--out`` for the CLI timing done by the driver. Prints one
``BENCH_RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shipyard.data.profile import profile_table

N_FLOAT = 8
N_INT = 6
CATEGORY_CARDINALITIES = (3, 8, 20, 50, 200, 1000)  # one string column per entry
NULL_SHARE = 0.01  # in one float and one string column


def build_table(rows: int, seed: int = 42) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    for i in range(N_FLOAT):
        values = rng.normal(loc=i * 10.0, scale=1.0 + i, size=rows)
        mask = rng.random(rows) < NULL_SHARE if i == 0 else None
        columns[f"f{i}"] = pa.array(values, mask=mask)
    for i in range(N_INT):
        high = 10 ** (i + 1)
        columns[f"i{i}"] = pa.array(rng.integers(0, high, size=rows, dtype=np.int64))
    for i, cardinality in enumerate(CATEGORY_CARDINALITIES):
        labels = pa.array([f"cat_{i}_{k:04d}" for k in range(cardinality)], type=pa.string())
        # skewed category frequencies, like real categorical data
        weights = 1.0 / np.arange(1, cardinality + 1)
        codes = rng.choice(cardinality, size=rows, p=weights / weights.sum()).astype(np.int32)
        values = pc.take(labels, pa.array(codes))
        if i == 0:
            values = pc.if_else(pa.array(rng.random(rows) < NULL_SHARE), pa.scalar(None, pa.string()), values)
        columns[f"c{i}"] = values
    return pa.table(columns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", required=True, help="where to write the table as Parquet")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    table = build_table(args.rows, args.seed)
    build_seconds = time.perf_counter() - t0
    profile_table(table.slice(0, 1000))  # warm-up: lazy imports and kernels off the clock

    timings = []
    profile = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        profile = profile_table(table)
        timings.append(time.perf_counter() - t0)
    assert profile is not None

    t0 = time.perf_counter()
    pq.write_table(table, args.out)
    write_seconds = time.perf_counter() - t0

    kinds: dict[str, int] = {}
    for col in profile["columns"].values():
        kinds[col["kind"]] = kinds.get(col["kind"], 0) + 1
    result = {
        "rows": table.num_rows,
        "columns": table.num_columns,
        "column_types": {name: str(table.schema.field(name).type) for name in table.column_names},
        "profile_kinds": kinds,
        "profiled_rows": profile["row_count"],
        "profile_seconds": statistics.median(timings),
        "profile_timings": timings,
        "build_seconds": build_seconds,
        "parquet_write_seconds": write_seconds,
        "table_bytes_in_memory": table.nbytes,
    }
    sys.stdout.write("BENCH_RESULT " + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
