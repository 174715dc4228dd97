"""Helpers every worker of the features benchmark imports (standard library only: the Feast worker runs in the
peers' virtualenv, the Shipyard worker and the data worker in the project's)."""

from __future__ import annotations

import json
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: The one feature view both tools get: three features of a customer, valid for 7 days.
VIEW = "customer_stats"
ENTITY = "customer_id"
EVENT_TS = "event_ts"
CREATED_TS = "created_ts"
FEATURES = {"f1": "float64", "f2": "float64", "f3": "int64"}
TTL_SECONDS = 7 * 86_400
#: The label rows' timestamp column (Feast's default name for it).
LABEL_TS = "event_timestamp"

SPEC_FILE = "spec.json"
FEATURES_FILE = "features.parquet"
LABELS_FILE = "labels.parquet"
#: Entity rows of the warm-up retrieval, off the clock (imports, the source's first read).
WARMUP_LABELS = 1_000
#: Online reads made off the clock before the timed ones, per batch size.
WARMUP_READS = 20
#: Entities whose online values are written out for the agreement check.
PROBE_ENTITIES = 1_000
PROBE_BATCH = 100


def feature_refs() -> list[str]:
    return [f"{VIEW}:{name}" for name in FEATURES]


def peak_mb() -> float:
    """This process's peak resident set since start or since the last reset_peak(), in MB (VmHWM; ru_maxrss
    where /proc is missing, which a reset does not lower)."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident set now, in MB."""
    return _status_mb("VmRSS") or peak_mb()


def reset_peak() -> bool:
    """Lower the peak resident set to the current one (Linux: 5 into /proc/self/clear_refs), so that the next
    peak_mb() is the peak of what runs after; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measured(fn: Callable[[], T]) -> tuple[float, T, dict[str, Any]]:
    """Time `fn` and measure its memory: the resident set before it, its peak while `fn` ran, and the
    difference (what the call itself added on top of imports and data already loaded)."""
    before = rss_mb()
    isolated = reset_peak()
    seconds, value = timed(fn)
    peak = peak_mb()
    return seconds, value, {"rss_before_mb": before, "peak_mb": peak, "added_mb": peak - before,
                            "peak_of_call": isolated}


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def load_spec(folder: Path) -> dict[str, Any]:
    return json.loads((folder / SPEC_FILE).read_text())


def read_batches(spec: dict[str, Any], batch: int, count: int, seed: int) -> list[list[int]]:
    """`count` lists of `batch` known entity ids, drawn from a fixed seed: both tools read the same sequence."""
    rng = random.Random(seed * 1_000 + batch)
    first, entities = int(spec["first_id"]), int(spec["entities"])
    return [[first + rng.randrange(entities) for _ in range(batch)] for _ in range(count)]


def probe_ids(spec: dict[str, Any]) -> list[int]:
    rng = random.Random(7)
    first, entities = int(spec["first_id"]), int(spec["entities"])
    return rng.sample(range(first, first + entities), min(PROBE_ENTITIES, entities))


def latency_summary(seconds: list[float]) -> dict[str, Any]:
    ordered = sorted(seconds)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {"reads": len(ordered), "p50": pct(50), "p99": pct(99), "max": ordered[-1],
            "mean": statistics.fmean(ordered), "total": sum(ordered)}


def time_reads(spec: dict[str, Any], read: Callable[[list[int]], Any], reads: int) -> dict[str, Any]:
    """Per batch size (1 and 100 entities): `reads` timed calls of `read` after WARMUP_READS untimed ones, over
    the same sequence of entities for both tools."""
    out: dict[str, Any] = {}
    for batch in (1, 100):
        for ids in read_batches(spec, batch, WARMUP_READS, seed=1):
            read(ids)
        timings = []
        for ids in read_batches(spec, batch, reads, seed=2):
            t0 = time.perf_counter()
            read(ids)
            timings.append(time.perf_counter() - t0)
        out[str(batch)] = latency_summary(timings)
    return out


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write("BENCH_RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
