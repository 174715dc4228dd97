"""Experiment tracking: Shipyard vs MLflow, both on a local SQLite store.

Every workload runs in a fresh worker process and a fresh directory per tool:
Shipyard workers use the project's interpreter, MLflow workers the pinned
peers virtualenv. Start-up, imports and store creation are done before the
clock starts (see ``setup()`` in the workers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracking._shared import SEARCH_FILTER, SEARCH_ORDER_BY, median, percentile
from common import (
    Context,
    Tool,
    fmt_rate,
    fmt_ratio,
    fmt_seconds,
    guard,
    mlflow_and_shipyard,
    run_workers_together,
)

NAME = "tracking"
TITLE = "Experiment tracking: Shipyard vs MLflow (SQLite)"

HERE = Path(__file__).resolve().parent
SHIPYARD_WORKER = HERE / "shipyard_workloads.py"
MLFLOW_WORKER = HERE / "mlflow_workloads.py"

MLFLOW_BATCH_CHUNK = 1000  # MLflow's maximum number of metrics per log_batch call
SHIPYARD_BATCH_CHUNK = 10_000

FULL = {"log_metric": 10_000, "log_batch": 100_000, "runs": 1_000, "writers": 8, "per_writer": 500, "repeats": 5}
QUICK = {"log_metric": 1_000, "log_batch": 10_000, "runs": 100, "writers": 8, "per_writer": 50, "repeats": 3}



# --------------------------------------------------------------------------- workloads


def _points_workload(ctx: Context, tool: Tool, workload: str, n: int, chunk: int = 0) -> dict[str, Any]:
    def go() -> dict[str, Any]:
        with ctx.workdir(f"{tool.name}-{workload}") as wd:
            args = ["--n", str(n)] + (["--chunk", str(chunk)] if chunk else [])
            r = tool.run(wd, workload, *args)
        r["points_per_s"] = r["points"] / r["seconds"]
        r["verified"] = r["stored"] == r["points"]
        return r

    return guard(ctx, f"{tool.label} {workload}", go)


def _search_workload(ctx: Context, tool: Tool, n_runs: int, repeats: int) -> dict[str, Any]:
    def go() -> dict[str, Any]:
        with ctx.workdir(f"{tool.name}-search") as wd:
            r = tool.run(wd, "runs_search", "--n", str(n_runs), "--repeats", str(repeats))
        r["runs_per_s"] = r["runs"] / r["create_seconds"]
        r["verified"] = r["rows"] == r["expected_rows"] and r["ordered"]
        return r

    return guard(ctx, f"{tool.label} runs_search", go)


def _concurrent_workload(ctx: Context, tool: Tool, writers: int, per_writer: int, durable: bool) -> dict[str, Any]:
    def go() -> dict[str, Any]:
        expected = writers * per_writer
        with ctx.workdir(f"{tool.name}-concurrent") as wd:
            tool.run(wd, "concurrent_setup")
            extra = ["--durable"] if durable else []
            arg_lists = [
                ["writer", "--workdir", str(wd), "--n", str(per_writer), "--index", str(i), *extra]
                for i in range(writers)
            ]
            parts = run_workers_together(tool.python, tool.worker, arg_lists, env=tool.env(wd), cwd=wd)
            check = tool.run(wd, "concurrent_verify", "--expected", str(expected))
        wall = max(p["t_end"] for p in parts) - min(p["t_start"] for p in parts)
        lat = [x for p in parts for x in p["latencies"]]
        samples: list[str] = []
        for p in parts:
            samples += [s for s in p["error_samples"] if s not in samples]
        return {
            "writers": writers,
            "per_writer": per_writer,
            "durable_per_call": durable,
            "seconds": wall,
            "points": expected,
            "points_per_s": expected / wall,
            "latency_p50_ms": percentile(lat, 50) * 1000,
            "latency_p99_ms": percentile(lat, 99) * 1000,
            "latency_p999_ms": percentile(lat, 99.9) * 1000,
            "slow_calls_over_100ms": sum(1 for x in lat if x > 0.1),
            "latency_max_ms": max(lat) * 1000 if lat else None,
            "start_run_median_s": median([p["start_run_seconds"] for p in parts]),
            "log_loop_median_s": median([p["log_loop_seconds"] for p in parts]),
            "end_run_median_s": median([p["end_run_seconds"] for p in parts]),
            "errors": sum(p["errors"] for p in parts),
            "error_samples": samples[:5],
            "stored": check["stored"],
            "stored_runs": check["runs"],
            "verified": check["stored"] == expected,
            "version": parts[0].get("version"),
        }

    mode = "flush per call" if durable else ("buffered" if tool.name == "shipyard" else "sync")
    return guard(ctx, f"{tool.label} concurrent ({mode})", go)


# --------------------------------------------------------------------------- suite entry points


def run(ctx: Context) -> dict[str, Any]:
    cfg = QUICK if ctx.quick else FULL
    shipyard, mlflow = mlflow_and_shipyard(ctx, SHIPYARD_WORKER, MLFLOW_WORKER)
    w: dict[str, Any] = {}

    ctx.log(f"(a) {cfg['log_metric']:,} log_metric calls in one run")
    w["log_metric"] = {t.name: _points_workload(ctx, t, "log_metric", cfg["log_metric"]) for t in (shipyard, mlflow)}

    ctx.log(f"(b) {cfg['log_batch']:,} points through the batch API")
    w["log_batch"] = {
        "shipyard": _points_workload(ctx, shipyard, "log_batch", cfg["log_batch"], SHIPYARD_BATCH_CHUNK),
        "mlflow": _points_workload(ctx, mlflow, "log_batch", cfg["log_batch"], MLFLOW_BATCH_CHUNK),
    }

    ctx.log(f"(c) {cfg['runs']:,} runs x (10 params + 10 metrics), then a filtered, ordered search")
    w["runs_search"] = {t.name: _search_workload(ctx, t, cfg["runs"], cfg["repeats"]) for t in (shipyard, mlflow)}

    ctx.log(f"(d) {cfg['writers']} processes x {cfg['per_writer']} log_metric calls on one SQLite store")
    w["concurrent"] = {
        "shipyard_buffered": _concurrent_workload(ctx, shipyard, cfg["writers"], cfg["per_writer"], durable=False),
        "shipyard_durable": _concurrent_workload(ctx, shipyard, cfg["writers"], cfg["per_writer"], durable=True),
        "mlflow": _concurrent_workload(ctx, mlflow, cfg["writers"], cfg["per_writer"], durable=False),
    }

    versions = {}
    for group in w.values():
        for key, r in group.items():
            if r.get("version"):
                versions.setdefault(key.split("_")[0], r["version"])
    return {
        "suite": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "config": {**cfg, "shipyard_batch_chunk": SHIPYARD_BATCH_CHUNK, "mlflow_batch_chunk": MLFLOW_BATCH_CHUNK},
        "versions": versions,
        "workloads": w,
        "summary": summary_rows(w, cfg),
    }


def _ratio(mlflow_s: float | None, shipyard_s: float | None) -> float | None:
    if not mlflow_s or not shipyard_s:
        return None
    return mlflow_s / shipyard_s


def _get(r: dict[str, Any], key: str) -> Any:
    return None if r.get("failed") else r.get(key)


def _check(*results: dict[str, Any]) -> str:
    if any(r.get("failed") for r in results):
        return "FAILED"
    return "ok" if all(r.get("verified") for r in results) else "MISMATCH"


def summary_rows(w: dict[str, Any], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []

    def add(label, s, m, s_time, m_time, s_rate, m_rate, unit, check, note=""):
        rows.append(
            {
                "workload": label,
                "shipyard_s": s_time,
                "mlflow_s": m_time,
                "ratio": _ratio(m_time, s_time),
                "shipyard_rate": s_rate,
                "mlflow_rate": m_rate,
                "rate_unit": unit,
                "check": check,
                "note": note,
            }
        )

    s, m = w["log_metric"]["shipyard"], w["log_metric"]["mlflow"]
    add(
        f"(a) {cfg['log_metric']:,} x log_metric, one run",
        s, m, _get(s, "seconds"), _get(m, "seconds"), _get(s, "points_per_s"), _get(m, "points_per_s"),
        "pts/s", _check(s, m), "time includes start and end of the run (final flush / commit).",
    )
    s, m = w["log_batch"]["shipyard"], w["log_batch"]["mlflow"]
    add(
        f"(b) batch API, {cfg['log_batch']:,} points",
        s, m, _get(s, "seconds"), _get(m, "seconds"), _get(s, "points_per_s"), _get(m, "points_per_s"),
        "pts/s", _check(s, m),
        f"Shipyard run.log_batch with {SHIPYARD_BATCH_CHUNK:,} points per call, "
        f"MLflow MlflowClient.log_batch with {MLFLOW_BATCH_CHUNK:,} (its maximum) per call.",
    )
    s, m = w["runs_search"]["shipyard"], w["runs_search"]["mlflow"]
    add(
        f"(c) create {cfg['runs']:,} runs, 10 params + 10 metrics",
        s, m, _get(s, "create_seconds"), _get(m, "create_seconds"), _get(s, "runs_per_s"), _get(m, "runs_per_s"),
        "runs/s", _check(s, m),
    )
    rows_note = ""
    if not s.get("failed") and not m.get("failed"):
        same = s["rows"] == m["rows"]
        rows_note = (
            f"\"{SEARCH_FILTER}\" ordered by {', '.join(SEARCH_ORDER_BY)}: rows Shipyard {s['rows']}, "
            f"MLflow {m['rows']}, expected {s['expected_rows']}" + ("" if same else " (DIFFERENT)")
        )
    add(
        f"(c) search -> DataFrame (median of {cfg['repeats']})",
        s, m, _get(s, "search_seconds"), _get(m, "search_seconds"), None, None,
        "", _check(s, m) if (s.get("rows") == m.get("rows")) else "MISMATCH", rows_note,
    )
    c = w["concurrent"]
    m = c["mlflow"]
    for key, mode in (("shipyard_buffered", "buffered"), ("shipyard_durable", "flush per call")):
        s = c[key]
        add(
            f"(d) {cfg['writers']} procs x {cfg['per_writer']}, Shipyard {mode}",
            s, m, _get(s, "seconds"), _get(m, "seconds"), _get(s, "points_per_s"), _get(m, "points_per_s"),
            "pts/s", _check(s, m),
            "" if key == "shipyard_durable" else "wall time from the common start signal until the last process has ended its run.",
        )
    return rows


def render(result: dict[str, Any], console: Any) -> None:
    """Print the summary and the concurrency details (rich if available)."""
    versions = result.get("versions", {})
    title = f"{result['title']} - Shipyard {versions.get('shipyard', '?')}, MLflow {versions.get('mlflow', '?')}"
    if result.get("quick"):
        title += " [quick]"
    headers = ["Workload", "Shipyard", "MLflow", "MLflow/Shipyard", "Shipyard rate", "MLflow rate", "Check"]
    rows = []
    notes = []
    for r in result["summary"]:
        if r["note"]:
            notes.append(f"{r['workload'].split(' ')[0]} {r['note']}")
        rows.append(
            [
                r["workload"],
                fmt_seconds(r["shipyard_s"]),
                fmt_seconds(r["mlflow_s"]),
                fmt_ratio(r["ratio"]),
                fmt_rate(r["shipyard_rate"], r["rate_unit"]) if r["rate_unit"] else "-",
                fmt_rate(r["mlflow_rate"], r["rate_unit"]) if r["rate_unit"] else "-",
                r["check"],
            ]
        )
    console.table(title, headers, rows, right_align={1, 2, 3, 4, 5})
    console.note("MLflow/Shipyard is the time ratio: > 1 means Shipyard is faster.")
    for note in notes:
        console.note(note)

    c = result["workloads"]["concurrent"]
    headers = [
        "Tool / mode", "Wall", "Throughput", "p50 / call", "p99 / call", "max / call",
        "start_run", "call loop", "end of run", "Errors", "Stored",
    ]
    rows = []
    for key, label in (
        ("shipyard_buffered", "Shipyard, buffered (default)"),
        ("shipyard_durable", "Shipyard, flush() per call"),
        ("mlflow", "MLflow, synchronous (default)"),
    ):
        r = c[key]
        if r.get("failed"):
            rows.append([label, "FAILED"] + [""] * (len(headers) - 2))
            continue
        rows.append(
            [
                label,
                fmt_seconds(r["seconds"]),
                fmt_rate(r["points_per_s"]),
                fmt_seconds(r["latency_p50_ms"] / 1000),
                fmt_seconds(r["latency_p99_ms"] / 1000),
                fmt_seconds(r["latency_max_ms"] / 1000),
                fmt_seconds(r["start_run_median_s"]),
                fmt_seconds(r["log_loop_median_s"]),
                fmt_seconds(r["end_run_median_s"]),
                str(r["errors"]),
                f"{r['stored']:,} / {r['points']:,}",
            ]
        )
    cfg = result["config"]
    console.table(
        f"(d) {cfg['writers']} concurrent processes x {cfg['per_writer']} log_metric calls, one SQLite store",
        headers,
        rows,
        right_align=set(range(1, len(headers))),
    )
    console.note("start_run / call loop / end of run: median per process of the time spent in each phase.")
    console.note(
        "SQLite settings are each tool's defaults: Shipyard WAL + synchronous=NORMAL, "
        "MLflow rollback journal + synchronous=FULL (fsync per commit)."
    )
    for key, r in c.items():
        for sample in r.get("error_samples") or []:
            console.note(f"{key} error: {sample}")
