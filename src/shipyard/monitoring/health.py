"""Operational health of a window of the prediction log: throughput, latency percentiles and error rate, per
request (a request of many rows counts once)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.monitoring.windows import Window


@dataclass
class Health:
    requests: int
    rows: int
    errors: int  # failed requests
    span_seconds: float | None  # the time window asked for, or a count window's first request to its last
    throughput_rps: float | None
    p50_ms: float | None
    p99_ms: float | None
    error_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def health(window: Window, *, failures_logged: bool = True) -> Health:
    """`failures_logged` False: failed requests are not in this log (only deployments log them), so the error
    rate is not measured rather than 0."""
    import numpy as np

    frame = window.frame
    if frame.empty:
        return Health(0, 0, 0, window.size if window.kind == "time" else None,
                      0.0 if window.kind == "time" else None, None, None, None)
    per_request = frame.drop_duplicates("request_id")
    failed = per_request["error"].notna() if "error" in per_request.columns else None
    errors = int(failed.sum()) if failed is not None else 0
    latencies = per_request["latency_ms"].to_numpy(dtype=float)
    requests = len(per_request)
    # Throughput over the window asked for (a window of an hour whose traffic stopped after ten minutes is a
    # sixth as busy); a window of the newest N rows spans its first request to its last.
    if window.kind == "time":
        span: float | None = window.size
    else:
        first, last = per_request["timestamp"].min(), per_request["timestamp"].max()
        span = (last - first).total_seconds() or None
    return Health(
        requests=requests, rows=len(frame), errors=errors, span_seconds=span,
        throughput_rps=requests / span if span else None,
        p50_ms=float(np.percentile(latencies, 50)), p99_ms=float(np.percentile(latencies, 99)),
        error_rate=errors / requests if failures_logged else None,
    )
