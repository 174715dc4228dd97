"""Figures of the online store on each backend, printed (run with -s): read latency p50/p99 for 1 and 100
entities, raw and through `lookup`, and write throughput. Times are reported, never asserted (this machine is
shared); what is asserted is that every timed read returned the values written."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from shipyard.features.online import OnlineStore
from shipyard.features.online_lookup import PRESENT, Wanted, lookup
from tests.features.test_online_contract import kind, namespace, store  # noqa: F401 (fixtures)

ROWS = 20_000
READS = 300
T0 = pd.Timestamp("2026-03-01 12:00", tz="UTC")


def _percentiles(samples: list[float]) -> str:
    p50, p99 = np.percentile(np.array(samples) * 1000, [50, 99])
    return f"p50 {p50:.3f} ms, p99 {p99:.3f} ms"


def _timed(call: Callable[[], None]) -> list[float]:
    call()  # warm: connection, statement cache
    samples = []
    for _ in range(READS):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def test_online_store_figures(store: OnlineStore, kind: str) -> None:  # noqa: F811 (fixture)
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"customer": np.arange(ROWS), "event_timestamp": [T0] * ROWS,
                          "total": rng.normal(size=ROWS), "count": rng.integers(0, 100, ROWS),
                          "segment": rng.choice(["a", "b", "c"], ROWS), "active": rng.random(ROWS) > 0.5,
                          "last_seen": T0 - pd.to_timedelta(rng.integers(0, 10**6, ROWS), unit="s")})
    start = time.perf_counter()
    assert store.write("spend", 1, ["customer"], frame) == ROWS
    write_seconds = time.perf_counter() - start

    one = [("spend", 1, (int(k),)) for k in rng.integers(0, ROWS, 1)]
    hundred = [("spend", 1, (int(k),)) for k in rng.integers(0, ROWS, 100)]
    results: dict[str, list[float]] = {}

    def read(requests: list[tuple[str, int, tuple[int]]]) -> Callable[[], None]:
        def call() -> None:
            assert all(r is not None for r in store.read(requests))
        return call

    wanted = [Wanted("spend", 1, ["customer"], ["total", "count", "segment", "active", "last_seen"], 86400)]

    def enrich(ids: list[int]) -> Callable[[], None]:
        rows = [{"customer": i} for i in ids]

        def call() -> None:
            assert (lookup(store, wanted, rows, at=T0).status == PRESENT).all().all()
        return call

    results["read 1 entity"] = _timed(read(one))
    results["read 100 entities"] = _timed(read(hundred))
    results["lookup 1 entity"] = _timed(enrich([k[0] for _, _, k in one]))
    results["lookup 100 entities"] = _timed(enrich([k[0] for _, _, k in hundred]))
    print(f"\n[{kind}] write {ROWS} rows x 5 features: {write_seconds:.2f} s ({ROWS / write_seconds:,.0f} rows/s)")
    for name, samples in results.items():
        print(f"[{kind}] {name}: {_percentiles(samples)}")
