"""The runtime playbooks: a latency spike (the prediction log's latency over time against the infrastructure
gate's measurement) and a dependency mismatch (the recorded environment against this one)."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

from shipyard.control.doctor import CheckResult, Status, worst

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context
    from shipyard.models.records import ModelVersion
    from shipyard.monitoring.windows import Window

#: Served latency may reach this many times the gate's p99, plus LATENCY_SLACK_MS for the server's own work
#: (decoding, batching, logging), before it is a spike.
LATENCY_FACTOR = 3.0
LATENCY_SLACK_MS = 25.0
#: At most this many time buckets; a bucket's p99 needs some requests to mean anything.
MAX_BUCKETS = 12
MIN_BUCKET_REQUESTS = 5


def latency_check(ctx: Context, version: ModelVersion, window: Window) -> CheckResult:
    from shipyard.gates.gating import latest_gates

    check = CheckResult("latency_spike", "PASS", "")
    requests = _requests(window.frame)
    check.looked_at = [f"latency of {len(requests)} requests in the prediction log"]
    gate = latest_gates(ctx, version.version_id).get("infrastructure")
    measured = dict(gate.result.get("metrics") or {}) if gate is not None else {}
    baseline: dict[str, Any] = {k: measured[k] for k in ("latency_p50_ms", "latency_p99_ms", "batch_rows",
                                               "throughput_rows_per_s") if measured.get(k) is not None}
    check.evidence = {"model_size_bytes": version.artifact_size, "gate": baseline or None}
    if requests.empty:
        check.status, check.summary = "WARN", "insufficient data: the window holds no request"
        return check
    import numpy as np

    latency = requests["latency_ms"].to_numpy(float)
    span = max(float((requests["timestamp"].iloc[-1] - requests["timestamp"].iloc[0]).total_seconds()), 1.0)
    observed = {"p50_ms": float(np.percentile(latency, 50)), "p99_ms": float(np.percentile(latency, 99)),
                "requests": len(requests), "errors": int(requests["failed"].sum()),
                "rows_per_request_mean": float(requests["rows"].mean()),
                "rows_per_request_max": int(requests["rows"].max()), "requests_per_s": len(requests) / span}
    buckets = _buckets(requests)
    check.evidence.update(observed=observed, buckets=buckets)
    check.findings.append(f"served p50 {observed['p50_ms']:.3g} ms, p99 {observed['p99_ms']:.3g} ms over "
                          f"{len(requests)} requests ({observed['requests_per_s']:.3g}/s, "
                          f"{observed['rows_per_request_mean']:.3g} rows per request on average, at most "
                          f"{observed['rows_per_request_max']}); model size {version.artifact_size / 1e6:.3g} MB")
    statuses: list[Status] = []
    judged = [b for b in buckets if b["requests"] >= MIN_BUCKET_REQUESTS]
    if "latency_p99_ms" in baseline:
        gate_p99 = float(baseline["latency_p99_ms"])
        limit = LATENCY_FACTOR * gate_p99 + LATENCY_SLACK_MS
        check.looked_at.append(f"the infrastructure gate's measurement of {version.version_id} "
                               f"(p99 {gate_p99:.3g} ms on single rows)")
        check.evidence["limit_ms"] = limit
        slow = [b for b in judged if b["p50_ms"] > limit]
        if observed["p99_ms"] > limit or slow:
            statuses.append("FAIL")
            where = f"; in {len(slow)} of {len(judged)} time buckets even the p50 is above it" if slow else ""
            check.findings.append(f"latency spike: served p99 {observed['p99_ms']:.3g} ms against the gate's "
                                  f"{gate_p99:.3g} ms (limit {LATENCY_FACTOR:g} × + {LATENCY_SLACK_MS:g} ms = "
                                  f"{limit:.3g} ms){where}")
            batch = baseline.get("batch_rows")
            if observed["rows_per_request_mean"] > 1 and batch is not None:
                check.findings.append(f"requests carry {observed['rows_per_request_mean']:.3g} rows on average; the "
                                      f"gate timed single rows and batches of {batch}")
    else:
        statuses.append("WARN")
        what = (f"the infrastructure gate of {version.version_id} ({gate.status}) measured no latency"
                if gate is not None else f"no infrastructure gate result for {version.version_id}")
        check.findings.append(f"{what}: latency is compared over time only (run `shipyard models gate "
                              f"{version.version_id} --only infrastructure`)")
        if len(judged) >= 2:
            typical = float(np.median([b["p99_ms"] for b in judged]))
            limit = LATENCY_FACTOR * typical + LATENCY_SLACK_MS
            spikes = [b for b in judged if b["p99_ms"] > limit]
            check.evidence["limit_ms"] = limit
            if spikes:
                statuses.append("FAIL")
                check.findings.append(f"latency spike: p99 above {limit:.3g} ms (3 × the typical bucket's "
                                      f"{typical:.3g} ms + {LATENCY_SLACK_MS:g}) in {len(spikes)} of {len(judged)} "
                                      f"time buckets, from {spikes[0]['start']}")
    if len(requests) < MIN_BUCKET_REQUESTS:
        statuses.append("WARN")
        check.findings.append(f"insufficient data: {len(requests)} requests, {MIN_BUCKET_REQUESTS} needed for a p99")
    check.status = worst(statuses)
    if check.status == "FAIL":
        check.summary = next(f for f in check.findings if f.startswith("latency spike"))
    elif check.status == "WARN":
        check.summary = check.findings[-1]
    else:
        check.summary = (f"p99 {observed['p99_ms']:.3g} ms is within the limit of {check.evidence['limit_ms']:.3g} ms "
                         "set by the gate's measurement")
    return check


def _requests(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per request: its arrival time, latency, rows and whether it failed, oldest first."""
    import pandas as pd

    if frame.empty or "latency_ms" not in frame.columns:
        return pd.DataFrame({"timestamp": pd.Series(dtype="datetime64[ns, UTC]"), "latency_ms": [], "rows": [],
                             "failed": []})
    failed = frame["error"].notna() if "error" in frame.columns else pd.Series(False, index=frame.index)
    grouped = frame.assign(failed=failed).groupby("request_id", sort=False)
    requests = grouped.agg(timestamp=("timestamp", "first"), latency_ms=("latency_ms", "first"),
                           rows=("row", "size"), failed=("failed", "any"))
    return requests.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _buckets(requests: pd.DataFrame) -> list[dict[str, Any]]:
    """p50 and p99 latency, requests and rows per equal time bucket (at most MAX_BUCKETS, about 20 requests each)."""
    import numpy as np

    from shipyard.monitoring.windows import iso

    start = requests["timestamp"].iloc[0].timestamp()
    end = requests["timestamp"].iloc[-1].timestamp()
    count = max(1, min(MAX_BUCKETS, len(requests) // 20))
    width = max((end - start) / count, 1e-9)
    seconds = requests["timestamp"].map(lambda t: t.timestamp()).to_numpy(float)
    index = np.minimum(((seconds - start) / width).astype(int), count - 1)
    out = []
    for i in range(count):
        chosen = requests[index == i]
        if chosen.empty:
            continue
        latency = chosen["latency_ms"].to_numpy(float)
        out.append({"start": iso(start + i * width), "seconds": width, "requests": len(chosen),
                    "rows": int(chosen["rows"].sum()), "p50_ms": float(np.percentile(latency, 50)),
                    "p99_ms": float(np.percentile(latency, 99)),
                    "rows_per_request": float(chosen["rows"].mean())})
    return out


# -- the dependency-mismatch playbook --------------------------------------------------------------------------

def installed_version(package: str) -> str | None:
    """The version of `package` installed here, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def python_version() -> str:
    return platform.python_version()


def _parts(text: str) -> tuple[str, str, str]:
    import re

    numbers = [re.match(r"\d*", p).group(0) or p for p in text.split(".")]  # type: ignore[union-attr]
    numbers += ["0"] * (3 - len(numbers))
    return numbers[0], numbers[1], ".".join(numbers[2:])


def dependency_check(version: ModelVersion) -> CheckResult:
    """FAIL on another major or minor version (or an absent one) of a package the flavor needs, or of Python;
    WARN on patch differences and on absent packages the flavor does not need."""
    from shipyard.errors import NotFoundError
    from shipyard.models.flavors import get_flavor

    check = CheckResult("dependency_mismatch", "PASS", "")
    recorded = version.environment or {}
    packages: dict[str, str] = dict(recorded.get("packages") or {})
    check.looked_at = [f"the environment recorded with {version.version_id} ({len(packages)} packages, "
                       f"Python {recorded.get('python', '?')})", "the versions installed in this environment"]
    try:
        needed = set(get_flavor(version.flavor).packages)
    except NotFoundError:
        needed = set(packages)
        check.findings.append(f"flavor {version.flavor!r} is not installed here: every recorded package is "
                              "treated as needed")
    if not packages and not recorded.get("python"):
        check.status, check.summary = "WARN", f"{version.version_id} recorded no environment to compare"
        return check
    rows: list[dict[str, Any]] = []
    statuses: list[Status] = []
    wanted_python, running_python = recorded.get("python"), python_version()
    if wanted_python:
        status = _compare(str(wanted_python), running_python, True)
        rows.append({"package": "python", "recorded": wanted_python, "running": running_python, "needed": True,
                     "status": status})
    for package, wanted in sorted(packages.items()):
        running = installed_version(package)
        rows.append({"package": package, "recorded": wanted, "running": running, "needed": package in needed,
                     "status": _compare(str(wanted), running, package in needed)})
    for row in rows:
        statuses.append(row["status"])
        if row["status"] == "PASS":
            continue
        now = f"{row['running']} runs here" if row["running"] is not None else "it is not installed here"
        kind = "needed by the flavor" if row["needed"] else "optional"
        check.findings.append(f"{row['package']} {row['recorded']} was recorded ({kind}) but {now}")
    check.evidence = {"flavor": version.flavor, "packages": rows}
    check.status = worst(statuses)
    differing = [r["package"] for r in rows if r["status"] == check.status]
    check.summary = {"PASS": f"Python and the {len(packages)} recorded packages run at their recorded versions",
                     "WARN": f"patch-level or optional differences: {', '.join(differing)}",
                     "FAIL": f"another major or minor version of {', '.join(differing)} runs here"}[check.status]
    return check


def _compare(recorded: str, running: str | None, needed: bool) -> Status:
    if running is None:
        return "FAIL" if needed else "WARN"
    if recorded == running:
        return "PASS"
    if _parts(recorded)[:2] != _parts(running)[:2]:
        return "FAIL" if needed else "WARN"
    return "WARN"
