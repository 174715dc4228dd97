"""Model registry: Shipyard vs MLflow, both on a local SQLite store with local artifacts.

Every workload runs in a fresh worker process and a fresh directory per tool:
Shipyard workers use the project's interpreter, MLflow workers the pinned
peers virtualenv. Both train the same scikit-learn LogisticRegression on the
bundled breast cancer data (fixed seed) before any clock starts; start-up,
imports and store creation are off the clock too (see ``setup()`` in the
workers).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from common import Context, Tool, fmt_ratio, fmt_seconds, guard, mlflow_and_shipyard

from registry._shared import ALIAS, MODEL_NAME

NAME = "registry"
TITLE = "Model registry: Shipyard vs MLflow (SQLite, local artifacts)"

HERE = Path(__file__).resolve().parent
SHIPYARD_WORKER = HERE / "shipyard_workloads.py"
MLFLOW_WORKER = HERE / "mlflow_workloads.py"

# n: timed log+register calls, alias moves and loads (median reported; one more untimed-or-separate first call);
# rows: one-row predicts per round; rounds: alternating raw / wrapped passes (median round reported).
FULL = {"n": 10, "rows": 2_000, "rounds": 3, "batch_rows": 10_000, "batch_repeats": 5}
QUICK = {"n": 3, "rows": 200, "rounds": 2, "batch_rows": 1_000, "batch_repeats": 3}
#: A 1-minute load average above this at the start means other work shares the CPUs: warn about noise.
BUSY_LOAD = 0.5



def _workload(ctx: Context, tool: Tool, workload: str, label: str, *args: str) -> dict[str, Any]:
    def go() -> dict[str, Any]:
        with ctx.workdir(f"{tool.name}-{workload}") as wd:
            return tool.run(wd, workload, *args)

    return guard(ctx, f"{tool.label} {label}", go)


# --------------------------------------------------------------------------- suite entry points


def run(ctx: Context) -> dict[str, Any]:
    cfg = QUICK if ctx.quick else FULL
    shipyard, mlflow = mlflow_and_shipyard(ctx, SHIPYARD_WORKER, MLFLOW_WORKER)
    notes: list[str] = []
    load_start = os.getloadavg()
    if load_start[0] > BUSY_LOAD:
        notes.append(f"Busy machine: 1-minute load average {load_start[0]:.2f} at the start "
                     f"(above {BUSY_LOAD}); single timings may shift by tens of percent, for either tool.")
        ctx.log(f"  warning: {notes[-1]}")
    n = str(cfg["n"])
    w: dict[str, Any] = {}

    ctx.log(f"(a) log + register a scikit-learn model: 1 cold call, then {cfg['n']} more")
    w["log_register"] = {
        "shipyard": _workload(ctx, shipyard, "log_register", "log_model", "--n", n),
        "mlflow_infer": _workload(ctx, mlflow, "log_register", "log_model (pip requirements inferred)",
                                  "--n", n, "--variant", "infer"),
        "mlflow_explicit": _workload(ctx, mlflow, "log_register", "log_model (pip_requirements given)",
                                     "--n", n, "--variant", "explicit"),
    }

    ctx.log(f"(b)-(d) alias + load x {cfg['n']}, {cfg['rows']:,} one-row predicts x {cfg['rounds']} rounds, "
            f"{cfg['batch_rows']:,}-row predict x {cfg['batch_repeats']}")
    serve_args = ["--n", n, "--rows", str(cfg["rows"]), "--rounds", str(cfg["rounds"]),
                  "--batch-rows", str(cfg["batch_rows"]), "--batch-repeats", str(cfg["batch_repeats"])]
    w["serve"] = {t.name: _workload(ctx, t, "serve", "alias / load / predict", *serve_args) for t in (shipyard, mlflow)}

    versions: dict[str, Any] = {}
    libraries: dict[str, Any] = {}
    for group in w.values():
        for key, r in group.items():
            if r.get("failed"):
                continue
            tool = key.split("_")[0]
            versions.setdefault(tool, r.get("version"))
            libraries.setdefault(tool, r.get("libraries"))
    if len(libraries) == 2 and libraries["shipyard"] != libraries["mlflow"]:
        notes.append(f"Library versions differ between the two virtualenvs: Shipyard side {libraries['shipyard']}, "
                     f"MLflow side {libraries['mlflow']}.")
    return {
        "suite": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "config": cfg,
        "versions": versions,
        "libraries": libraries,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "workloads": w,
        "summary": summary_rows(w, cfg),
        "notes": notes,
    }


def _ratio(mlflow_s: float | None, shipyard_s: float | None) -> float | None:
    if not mlflow_s or not shipyard_s or mlflow_s <= 0 or shipyard_s <= 0:
        return None
    return mlflow_s / shipyard_s


def _get(r: dict[str, Any], *keys: str) -> Any:
    if r.get("failed"):
        return None
    for key in keys:
        r = r.get(key) if isinstance(r, dict) else None
    return r


def _check(*results: dict[str, Any]) -> str:
    if any(r.get("failed") for r in results):
        return "FAILED"
    return "ok" if all(r.get("verified") for r in results) else "MISMATCH"


def summary_rows(w: dict[str, Any], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(label: str, s_time: float | None, m_time: float | None, check: str, note: str = "") -> None:
        rows.append({"workload": label, "shipyard_s": s_time, "mlflow_s": m_time, "ratio": _ratio(m_time, s_time),
                     "check": check, "note": note})

    n = cfg["n"]
    lr = w["log_register"]
    s = lr["shipyard"]
    for key, how in (("mlflow_infer", "MLflow infers pip reqs"), ("mlflow_explicit", "MLflow pip_requirements=[...]")):
        m = lr[key]
        add(f"(a) log + register, warm, median of {n} ({how})", _get(s, "seconds"), _get(m, "seconds"), _check(s, m))
    for key, how in (("mlflow_infer", "MLflow infers pip reqs"), ("mlflow_explicit", "MLflow pip_requirements=[...]")):
        m = lr[key]
        add(f"(a) first log + register in the process, cold ({how})", _get(s, "cold_seconds"),
            _get(m, "cold_seconds"), _check(s, m))

    sv = w["serve"]
    s, m = sv["shipyard"], sv["mlflow"]
    same_model = (not s.get("failed") and not m.get("failed") and s["model_digest"] == m["model_digest"]
                  and s["batch"]["raw_digest"] == m["batch"]["raw_digest"])
    check = _check(s, m) if (same_model or s.get("failed") or m.get("failed")) else "MISMATCH"
    add(f"(b) move alias '{ALIAS}', median of {n}", _get(s, "alias_seconds"), _get(m, "alias_seconds"), check,
        "Shipyard promote(ctx, 'bc/1') (gated; no gates configured), MLflow set_registered_model_alias.")
    add(f"(b) load models:/{MODEL_NAME}@{ALIAS}, median of {n} (MLflow pyfunc.load_model)",
        _get(s, "load_seconds"), _get(m, "load_seconds"), check)
    add(f"(b) load models:/{MODEL_NAME}@{ALIAS}, median of {n} (MLflow sklearn.load_model)",
        _get(s, "load_seconds"), _get(m, "native_load_seconds"), check)

    rows_n = f"{cfg['rows']:,}"
    add(f"(c) one-row predict, raw scikit-learn, per call ({rows_n} calls)",
        _get(s, "single_row", "raw_per_call_s"), _get(m, "single_row", "raw_per_call_s"), check,
        "raw scikit-learn is timed in each tool's own process, alternating with the wrapper; "
        "the overhead is wrapper - raw of the same process.")
    add("(c) one-row predict, loaded model (signature enforced), per call",
        _get(s, "single_row", "wrapped_per_call_s"), _get(m, "single_row", "wrapped_per_call_s"), check)
    add("(c) one-row predict, overhead over raw, per call",
        _get(s, "single_row", "overhead_per_call_s"), _get(m, "single_row", "overhead_per_call_s"), check)
    batch_n = f"{cfg['batch_rows']:,}"
    add(f"(d) {batch_n}-row predict, raw scikit-learn", _get(s, "batch", "raw_s"), _get(m, "batch", "raw_s"), check)
    add(f"(d) {batch_n}-row predict, loaded model", _get(s, "batch", "wrapped_s"), _get(m, "batch", "wrapped_s"),
        check)
    add(f"(d) {batch_n}-row predict, overhead over raw", _get(s, "batch", "overhead_s"),
        _get(m, "batch", "overhead_s"), check)
    return rows


def render(result: dict[str, Any], console: Any) -> None:
    versions = result.get("versions", {})
    title = f"{result['title']} - Shipyard {versions.get('shipyard', '?')}, MLflow {versions.get('mlflow', '?')}"
    if result.get("quick"):
        title += " [quick]"
    headers = ["Workload", "Shipyard", "MLflow", "MLflow/Shipyard", "Check"]
    rows, notes = [], []
    for r in result["summary"]:
        if r["note"]:
            notes.append(f"{r['workload'].split(' ')[0]} {r['note']}")
        rows.append([r["workload"], fmt_seconds(r["shipyard_s"]), fmt_seconds(r["mlflow_s"]), fmt_ratio(r["ratio"]),
                     r["check"]])
    console.table(title, headers, rows, right_align={1, 2, 3})
    console.note("MLflow/Shipyard is the time ratio: > 1 means Shipyard is faster (for the overhead rows: the ratio "
                 "of the overheads).")
    for note in notes:
        console.note(note)

    w = result["workloads"]
    lr = w["log_register"]
    infer = lr.get("mlflow_infer", {})
    if not infer.get("failed") and infer.get("stored_requirements"):
        console.note("(a) MLflow inferred requirements: " + ", ".join(infer["stored_requirements"]))
    explicit = lr.get("mlflow_explicit", {})
    if not explicit.get("failed") and explicit.get("pip_requirements_given"):
        console.note("(a) MLflow explicit pip_requirements: " + ", ".join(explicit["pip_requirements_given"]))
    s = lr.get("shipyard", {})
    if not s.get("failed"):
        console.note(f"(a) Shipyard run.log_model: median {fmt_seconds(s['log_model_seconds'])} inside a run "
                     f"(the rest is start/end of the run); MLflow log_model alone: "
                     + ", ".join(f"{k.split('_')[1]} {fmt_seconds(lr[k]['log_model_seconds'])}"
                                 for k in ("mlflow_infer", "mlflow_explicit") if not lr[k].get("failed")))
    sv = w["serve"]
    firsts = []
    for key, label in (("shipyard", "Shipyard"), ("mlflow", "MLflow pyfunc")):
        r = sv.get(key, {})
        if not r.get("failed"):
            firsts.append(f"{label} {fmt_seconds(r['first_load_seconds'])}")
    m = sv.get("mlflow", {})
    if not m.get("failed"):
        firsts.append(f"MLflow sklearn {fmt_seconds(m['first_native_load_seconds'])}")
    if firsts:
        console.note("(b) first load in the process: " + ", ".join(firsts))
    libs = result.get("libraries", {})
    if libs.get("shipyard") and libs.get("shipyard") == libs.get("mlflow"):
        console.note("Libraries (same on both sides): " + ", ".join(f"{k} {v}" for k, v in libs["shipyard"].items()))
    for note in result.get("notes", []):
        console.note(note)
    for group in w.values():
        for key, r in group.items():
            if r.get("failed"):
                console.note(f"{key} failed: {r['error'].splitlines()[0]}")
