"""Monitoring: Shipyard's drift engine vs Evidently 0.7's DataDriftPreset, and monitoring straight from the
prediction log.

(a) A table of 20 columns (15 numeric of varied distributions, 5 categorical of 3-20 categories), reference
    and current of the same size (100k and 1M rows), with a shift planted in 4 numeric columns (half a
    standard deviation) and 1 categorical column (its shares reversed). Written once as Parquet; each tool
    reads it in a process of its own, so that process's ru_maxrss is the tool's peak memory. Timed: the drift
    computation alone, after a warm-up on 2,000 rows (the Parquet load is reported apart). Both tools use
    their defaults, which for a reference above 1,000 rows are the same: the Wasserstein distance over the
    reference's standard deviation (numeric) and the Jensen-Shannon distance (categorical), drift at >= 0.1.
    The per-column verdicts must be the same and the scores agree within SCORE_TOLERANCE.
(b) The largest size's current table logged as predictions (requests of 5,000 rows, one stored batch each,
    as the server's writer flushes them), then, in a fresh process, ``read_predictions`` of the whole window
    and ``dataset_drift`` of its features against the reference, timed apart and together.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from common import Context, base_env, fmt_ratio, fmt_seconds, guard, run_worker
from serving.suite import shipyard_src

NAME = "monitoring"
TITLE = "Monitoring: Shipyard drift engine vs Evidently (DataDriftPreset)"

HERE = Path(__file__).resolve().parent
SHIPYARD_WORKER = HERE / "shipyard_worker.py"
EVIDENTLY_WORKER = HERE / "evidently_worker.py"

# sizes: rows of reference and of current; repeats: timed runs per tool and size, in one process (the median
# is reported; Evidently at 1M rows takes a minute or more a run); log_requests x rows_per_request: the
# prediction-log window (the largest size's current table).
FULL: dict[str, Any] = {"sizes": [100_000, 1_000_000],
                        "repeats": {"shipyard": {"100000": 5, "1000000": 3}, "evidently": {"100000": 3, "1000000": 1}},
                        "log_requests": 200, "rows_per_request": 5_000}
QUICK: dict[str, Any] = {"sizes": [100_000], "repeats": {"shipyard": {"100000": 3}, "evidently": {"100000": 1}},
                         "log_requests": 20, "rows_per_request": 5_000}
#: Largest |Shipyard - Evidently| a column's score may differ by (both compute it with scipy on the same data).
SCORE_TOLERANCE = 1e-9
#: A 1-minute load average above this at the start means other work shares the CPUs: warn about noise.
BUSY_LOAD = 0.5
WORKER_TIMEOUT = 3600  # Evidently at 1M rows takes minutes


def shipyard_env() -> dict[str, str]:
    """The project's interpreter, importing Shipyard from this checkout's src (not whichever is installed), or
    the tree BENCH_SHIPYARD_SRC names."""
    env = base_env()
    env.update(PYTHONPATH=str(shipyard_src()), SHIPYARD_USER="bench")
    return env


def evidently_env() -> dict[str, str]:
    env = base_env()
    env["DO_NOT_TRACK"] = "1"  # Evidently's telemetry off
    return env


def _shipyard(ctx: Context, wd: Path, *args: str) -> dict[str, Any]:
    return run_worker(ctx.project_python, SHIPYARD_WORKER, list(args), env=shipyard_env(), cwd=wd,
                      timeout=WORKER_TIMEOUT)


def _evidently(ctx: Context, wd: Path, *args: str) -> dict[str, Any]:
    return run_worker(ctx.peers_python, EVIDENTLY_WORKER, list(args), env=evidently_env(), cwd=wd,
                      timeout=WORKER_TIMEOUT)


def compare(shipyard: dict[str, Any], evidently: dict[str, Any], planted: list[str]) -> dict[str, Any]:
    """Per-column agreement of two drift results: methods, verdicts, the largest score difference per method."""
    s_cols, e_cols = shipyard["columns"], evidently["columns"]
    failures: list[str] = []
    if set(s_cols) != set(e_cols):
        failures.append(f"columns differ: only Shipyard {sorted(set(s_cols) - set(e_cols))}, "
                        f"only Evidently {sorted(set(e_cols) - set(s_cols))}")
    max_diff: dict[str, float] = {}
    for name in sorted(set(s_cols) & set(e_cols)):
        s, e = s_cols[name], e_cols[name]
        if s["method"] != e["method"]:
            failures.append(f"{name}: method {s['method']} (Shipyard) vs {e['method']} (Evidently)")
            continue
        if s["drifted"] != e["drifted"]:
            failures.append(f"{name}: drifted {s['drifted']} (Shipyard) vs {e['drifted']} (Evidently)")
        if s["threshold"] != e["threshold"]:
            failures.append(f"{name}: threshold {s['threshold']} (Shipyard) vs {e['threshold']} (Evidently)")
        if s["score"] is None or e["score"] is None:
            failures.append(f"{name}: no score (Shipyard {s['score']}, Evidently {e['score']})")
            continue
        diff = abs(float(s["score"]) - float(e["score"]))
        max_diff[s["method"]] = max(max_diff.get(s["method"], 0.0), diff)
        if diff > SCORE_TOLERANCE:
            failures.append(f"{name}: {s['method']} score {s['score']:.12g} (Shipyard) vs {e['score']:.12g} "
                            f"(Evidently), |diff| {diff:.3g} > {SCORE_TOLERANCE:g}")
    drifted = sorted(n for n, c in s_cols.items() if c["drifted"])
    counted = evidently.get("drifted_columns_count") or {}
    if counted and int(counted["count"]) != sum(1 for c in e_cols.values() if c["drifted"]):
        failures.append(f"Evidently's DriftedColumnsCount says {counted['count']:.0f}, its columns "
                        f"{sum(1 for c in e_cols.values() if c['drifted'])}")
    if shipyard.get("dataset_drifted") != evidently.get("dataset_drifted"):
        failures.append(f"table verdict: {shipyard.get('dataset_drifted')} (Shipyard) vs "
                        f"{evidently.get('dataset_drifted')} (Evidently)")
    if drifted != sorted(planted):
        failures.append(f"Shipyard finds drift in {drifted}, the shift was planted in {sorted(planted)}")
    return {"columns": len(s_cols), "methods": sorted({c["method"] for c in s_cols.values()}),
            "max_abs_diff": max_diff, "drifted": drifted, "planted": sorted(planted), "failures": failures,
            "ok": not failures}


def compare_log(log: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    """The window read back from the log holds the same rows as the current file: the same report is due."""
    failures = []
    if log.get("rows") != files.get("rows"):
        failures.append(f"window of {log.get('rows')} rows, current file of {files.get('rows')}")
    for name, c in files["columns"].items():
        w = log["columns"].get(name)
        if w is None:
            failures.append(f"{name}: missing from the window's report")
        elif w["drifted"] != c["drifted"] or w["method"] != c["method"] or \
                abs(float(w["score"]) - float(c["score"])) > SCORE_TOLERANCE:
            failures.append(f"{name}: {w['method']} {w['score']} drifted={w['drifted']} from the log, "
                            f"{c['method']} {c['score']} drifted={c['drifted']} from the file")
    return {"failures": failures, "ok": not failures}


def run_size(ctx: Context, rows: int, repeats: dict[str, int], log_cfg: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": rows, "repeats": repeats}
    with ctx.workdir(f"monitoring-{rows}") as wd:
        folder = wd / "table"
        gen = guard(ctx, f"generate 2 x {rows:,} rows", lambda: _shipyard(ctx, wd, "generate", "--folder",
                                                                           str(folder), "--rows", str(rows)))
        if gen.get("failed"):
            return {**out, "failed": True, "error": gen["error"]}
        out["spec"] = gen["spec"]
        drift_args = ("drift", "--folder", str(folder), "--repeats")
        out["shipyard"] = guard(ctx, f"Shipyard dataset_drift, {rows:,} rows, {repeats['shipyard']} run(s)",
                                lambda: _shipyard(ctx, wd, *drift_args, str(repeats["shipyard"])))
        out["evidently"] = guard(ctx, f"Evidently DataDriftPreset, {rows:,} rows, {repeats['evidently']} run(s)",
                                 lambda: _evidently(ctx, wd, *drift_args, str(repeats["evidently"])))
        if not out["shipyard"].get("failed") and not out["evidently"].get("failed"):
            out["agreement"] = compare(out["shipyard"], out["evidently"], gen["spec"]["shifted"])
        if log_cfg is not None:
            out["prediction_log"] = run_log(ctx, wd, folder, log_cfg, out["shipyard"])
    return out


def run_log(ctx: Context, wd: Path, folder: Path, cfg: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    workspace = wd / "ws"
    requests, per_request = cfg["log_requests"], cfg["rows_per_request"]
    rows = requests * per_request
    written = guard(ctx, f"log {rows:,} predictions ({requests} requests x {per_request:,} rows)",
                    lambda: _shipyard(ctx, wd, "log-write", "--workspace", str(workspace), "--folder", str(folder),
                                      "--requests", str(requests), "--rows-per-request", str(per_request)))
    if written.get("failed"):
        return {"write": written}
    monitored = guard(ctx, f"read_predictions + dataset_drift, {rows:,} rows",
                      lambda: _shipyard(ctx, wd, "log-monitor", "--workspace", str(workspace), "--folder",
                                        str(folder), "--version", str(written["version"]), "--requests",
                                        str(requests)))
    out = {"write": written, "monitor": monitored}
    if not monitored.get("failed") and not files.get("failed"):
        out["agreement"] = compare_log(monitored, files)
    out["monitor_runs"] = [
        guard(ctx, f"shipyard monitor run over {rows:,} logged rows ({which})",
              lambda: _shipyard(ctx, wd, "monitor-run", "--workspace", str(workspace)))
        for which in ("first: the reference read and sketched", "again: the sketch from the store")]
    return out


def run(ctx: Context) -> dict[str, Any]:
    cfg: dict[str, Any] = dict(QUICK if ctx.quick else FULL)
    notes: list[str] = []
    load_start = os.getloadavg()
    if load_start[0] > BUSY_LOAD:
        notes.append(f"Busy machine: 1-minute load average {load_start[0]:.2f} at the start on {os.cpu_count()} "
                     "CPUs, so expect more noise than usual.")
        ctx.log("  " + notes[-1])
    sizes = []
    largest = max(cfg["sizes"])
    for rows in cfg["sizes"]:
        log_cfg = cfg if rows == largest else None
        ctx.log(f"(a) {rows:,} rows x 20 columns" + (" (b) and the prediction log" if log_cfg else ""))
        repeats = {tool: int(per_size[str(rows)]) for tool, per_size in cfg["repeats"].items()}
        sizes.append(run_size(ctx, rows, repeats, log_cfg))
    versions = {"evidently": next((s["evidently"].get("version") for s in sizes
                                   if not s.get("evidently", {}).get("failed") and "evidently" in s), None)}
    return {"suite": NAME, "title": TITLE, "quick": ctx.quick, "config": cfg, "versions": versions,
            "notes": notes, "load_average": {"start": load_start, "end": os.getloadavg()}, "sizes": sizes,
            "score_tolerance": SCORE_TOLERANCE, "shipyard_src": str(shipyard_src())}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def render(result: dict[str, Any], console: Any) -> None:
    version = result.get("versions", {}).get("evidently") or "?"
    title = f"{result['title']} - Evidently {version}" + (" [quick]" if result.get("quick") else "")
    rows: list[list[str]] = []
    fails: list[str] = []
    for size in result["sizes"]:
        n = f"{size['rows']:,}"
        if size.get("failed"):
            fails.append(f"FAIL {n} rows: {size['error'].splitlines()[0]}")
            continue
        s, e = size["shipyard"], size["evidently"]
        for label, r in (("Shipyard", s), ("Evidently", e)):
            if r.get("failed"):
                fails.append(f"FAIL {n} rows, {label}: {r['error'].strip().splitlines()[-1]}")
                rows.append([n, label, "-", "-", "-", "-", "-", "-", "-"])
                continue
            time_ratio = mem_ratio = None
            if label == "Evidently" and not s.get("failed"):
                time_ratio, mem_ratio = _ratio(e["seconds"], s["seconds"]), _ratio(e["peak_mb"], s["peak_mb"])
            rows.append([n, label, fmt_seconds(r["load_seconds"]), fmt_seconds(r["seconds"]), str(len(r["timings"])),
                         _mb(r["peak_mb"]), _mb(r["peak_mb_after_load"]), fmt_ratio(time_ratio), fmt_ratio(mem_ratio)])
    console.table(title, ["Rows (each side)", "Tool", "Load Parquet", "Drift", "Runs", "Peak RSS", "RSS after load",
                          "Time Evidently/Shipyard", "Memory Evidently/Shipyard"], rows,
                  right_align={0, 2, 3, 4, 5, 6, 7, 8})
    console.note("Drift: wall time of the drift computation on the loaded frames (median of the runs, after a "
                 "warm-up on 2,000 rows; Evidently's includes Dataset.from_pandas). Peak RSS: the worker process's "
                 "ru_maxrss, load included. A ratio > 1 means Shipyard is faster or smaller.")

    agree_rows = []
    for size in result["sizes"]:
        a = size.get("agreement")
        if a is None:
            continue
        diffs = ", ".join(f"{m} {d:.1e}" for m, d in sorted(a["max_abs_diff"].items()))
        agree_rows.append([f"{size['rows']:,}", str(a["columns"]), diffs, ", ".join(a["drifted"]),
                           "ok" if a["ok"] else "FAIL"])
        fails.extend(f"FAIL {size['rows']:,} rows: {f}" for f in a["failures"])
    if agree_rows:
        console.table("Per-column agreement (same methods, thresholds and verdicts; scores within "
                      f"{result['score_tolerance']:g})", ["Rows", "Columns", "Max |Shipyard - Evidently| per method",
                                                           "Drifted columns", "Check"], agree_rows, right_align={1})

    log_rows = []
    for size in result["sizes"]:
        log = size.get("prediction_log")
        if log is None:
            continue
        w, m = log["write"], log.get("monitor", {"failed": True, "error": "not run"})
        if w.get("failed") or m.get("failed"):
            fails.append(f"FAIL prediction log: {(w if w.get('failed') else m)['error'].strip().splitlines()[-1]}")
            continue
        check = log.get("agreement", {"ok": False, "failures": ["no file-based report to compare with"]})
        fails.extend(f"FAIL prediction log: {f}" for f in check["failures"])
        log_rows.append([f"{m['rows']:,}", f"{w['batches']:,}", fmt_seconds(w["write_seconds"]),
                         fmt_seconds(m["read_seconds"]), fmt_seconds(m["drift_seconds"]),
                         fmt_seconds(m["total_seconds"]), _mb(m.get("peak_mb_after_read")), _mb(m["peak_mb"]),
                         f"{m['reference_rows']:,}",
                         "ok: same report as from the file" if check["ok"] else "FAIL"])
    if log_rows:
        console.table("Monitoring a window straight from the prediction log (Shipyard)",
                      ["Window rows", "Batches", "Write (untimed setup)", "read_predictions", "dataset_drift",
                       "Read + drift", "Peak RSS after read", "Peak RSS", "Reference rows", "Check"], log_rows,
                      right_align={0, 1, 2, 3, 4, 5, 6, 7, 8})
        console.note("read_predictions(ctx, model, version) of every logged row (all columns, probabilities "
                     "included), then dataset_drift(reference, window[features]) in a fresh process; peak RSS "
                     "includes the reference (loaded first).")
    run_rows = []
    for size in result["sizes"]:
        for i, run in enumerate((size.get("prediction_log") or {}).get("monitor_runs") or []):
            if run.get("failed"):
                fails.append(f"FAIL monitor run: {run['error'].strip().splitlines()[-1]}")
                continue
            run_rows.append([f"{run['rows']:,}", "first" if i == 0 else "again", str(run["reference_source"]),
                             fmt_seconds(run["seconds"]), _mb(run["peak_mb"]), run["status"],
                             ", ".join(run["drifted_columns"] or []) or "-"])
    if run_rows:
        console.table("shipyard monitor run over the logged window (each in a fresh process)",
                      ["Window rows", "Run", "Reference from", "Time", "Peak RSS", "Status", "Drifted columns"],
                      run_rows, right_align={0, 3, 4})
        console.note("The whole monitor: the window read from the log, drift of its features against the "
                     "reference's sketch (read from the dataset version on the first run, from the store after), "
                     "prediction drift, health, the stored report and its alerts.")
    for note in result.get("notes", []):
        console.note(note)
    for line in fails:
        console.note(line)
