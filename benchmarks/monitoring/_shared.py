"""Helpers both workers of the monitoring benchmark import (standard library only: the Evidently worker runs
in the peers' virtualenv, the Shipyard worker in the project's)."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: Written next to the Parquet files by the generator: column names and kinds, and which columns were shifted.
SPEC_FILE = "spec.json"
#: A slice of this many rows warms up imports and kernels before the clock starts: above 1,000 rows, so both
#: tools pick the same methods for it as for the timed run.
WARMUP_ROWS = 2_000


def peak_mb() -> float:
    """This process's peak resident set so far, in MB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def load_spec(folder: Path) -> dict[str, Any]:
    return json.loads((folder / SPEC_FILE).read_text())


def read_parquet(path: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(path)


def library_versions() -> dict[str, str]:
    """The numeric stack this process computes with (each tool's virtualenv has its own)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("numpy", "scipy", "pandas", "pyarrow"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write("BENCH_RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
