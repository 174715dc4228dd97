"""Feature store: Shipyard's feature store vs Feast (local file offline store, SQLite online store).

On the same generated data (``data.py``: 1,000,000 feature rows, 20 per customer for 50,000 customers, three
features, a created timestamp and about 5% corrections sharing an event time; 100,000 label rows at random
times plus planted edge cases), each tool in processes of its own:

(a) historical retrieval: the point-in-time join of the label rows with a 7-day TTL, timed after a warm-up on
    1,000 label rows; memory: the worker's resident set before the call, its peak during the call (the peak is
    reset just before it, so the warm-up does not count), and the difference, which is what the call itself
    needed on top of imports and the loaded label rows. Both answers are checked against a reference
    computed with pandas.merge_asof under the documented rule, and against each other.
(b) materialisation of the whole table into the SQLite online store: time, source rows/s and customers/s.
(c) online reads of 1 and of 100 customers, the same sequence of reads for both tools: p50, p99.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from common import Context, base_env, fmt_ratio, fmt_seconds, guard, run_worker
from features._shared import WARMUP_READS
from serving.suite import shipyard_src

NAME = "features"
TITLE = "Feature store: Shipyard vs Feast (file offline store, SQLite online store)"

HERE = Path(__file__).resolve().parent
DATA_WORKER = HERE / "data.py"
SHIPYARD_WORKER = HERE / "shipyard_worker.py"
FEAST_WORKER = HERE / "feast_worker.py"

FULL = {"feature_rows": 1_000_000, "label_rows": 100_000, "reads": 1_000}
QUICK = {"feature_rows": 100_000, "label_rows": 10_000, "reads": 200}
#: A 1-minute load average above this at the start means other work shares the CPUs: warn about noise.
BUSY_LOAD = 0.5
WORKER_TIMEOUT = 3600


def shipyard_env(workspace: Path) -> dict[str, str]:
    env = base_env()
    env.update(PYTHONPATH=str(shipyard_src()), SHIPYARD_USER="bench", SHIPYARD_WORKSPACE=str(workspace))
    return env


def feast_env() -> dict[str, str]:
    env = base_env()
    env["FEAST_USAGE"] = "False"  # no usage reporting, in case the installed version still has it
    return env


def run(ctx: Context) -> dict[str, Any]:
    cfg = dict(QUICK if ctx.quick else FULL)
    cfg.update({k: v for k, v in ctx.params.items() if k in cfg and v})
    notes: list[str] = []
    load_start = os.getloadavg()
    if load_start[0] > BUSY_LOAD:
        notes.append(f"Busy machine: 1-minute load average {load_start[0]:.2f} at the start on {os.cpu_count()} "
                     "CPUs, so expect more noise than usual.")
        ctx.log("  " + notes[-1])
    out: dict[str, Any] = {"suite": NAME, "title": TITLE, "quick": ctx.quick, "config": cfg, "notes": notes,
                           "shipyard_src": str(shipyard_src())}
    with ctx.workdir("features") as wd:
        folder, repo, workspace = wd / "data", wd / "feast-repo", wd / "shipyard-ws"
        workspace.mkdir()

        def data(*args: str) -> dict[str, Any]:
            return run_worker(ctx.project_python, DATA_WORKER, list(args), env=base_env(), cwd=wd,
                              timeout=WORKER_TIMEOUT)

        def feast(command: str) -> dict[str, Any]:
            return run_worker(ctx.peers_python, FEAST_WORKER, [command, "--folder", str(folder), "--repo", str(repo),
                                                               "--reads", str(cfg["reads"])],
                              env=feast_env(), cwd=wd, timeout=WORKER_TIMEOUT)

        def shipyard(command: str) -> dict[str, Any]:
            return run_worker(ctx.project_python, SHIPYARD_WORKER,
                              [command, "--folder", str(folder), "--reads", str(cfg["reads"])],
                              env=shipyard_env(workspace), cwd=wd, timeout=WORKER_TIMEOUT)

        rows, labels = f"{cfg['feature_rows']:,}", f"{cfg['label_rows']:,}"
        gen = guard(ctx, f"generate {rows} feature rows and {labels} label rows",
                    lambda: data("generate", "--folder", str(folder), "--feature-rows", str(cfg["feature_rows"]),
                                 "--label-rows", str(cfg["label_rows"])))
        if gen.get("failed"):
            return {**out, "failed": True, "error": gen["error"]}
        out["spec"] = gen
        steps = {"setup": "apply the feature view", "historical": f"historical retrieval, {labels} label rows",
                 "materialize": f"materialize {rows} rows", "online": f"online reads, {cfg['reads']:,} per size"}
        for tool, call in (("feast", feast), ("shipyard", shipyard)):
            label = "Feast" if tool == "feast" else "Shipyard"
            out[tool] = {}
            for step, what in steps.items():
                result = guard(ctx, f"{label}: {what}", lambda: call(step))
                out[tool][step] = result
                if result.get("failed") or result.get("unavailable"):
                    break
        out["agreement"] = guard(ctx, "check both answers", lambda: data("compare", "--folder", str(folder)))
    out["load_average"] = {"start": load_start, "end": os.getloadavg()}
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def _step(result: dict[str, Any], tool: str, step: str) -> dict[str, Any] | None:
    """One tool's result for a step when it succeeded, else None."""
    r = result.get(tool, {}).get(step)
    return r if r and not r.get("failed") and not r.get("unavailable") else None


def _state(result: dict[str, Any], tool: str) -> str | None:
    """Why a tool has no figures: unavailable (the reason is printed once, above the tables), or the step that
    failed."""
    for step, r in result.get(tool, {}).items():
        if r.get("unavailable"):
            return "not available"
        if r.get("failed"):
            return f"FAILED at {step}: {r['error'].strip().splitlines()[-1]}"
    return None


def render(result: dict[str, Any], console: Any) -> None:
    if result.get("failed"):
        console.note(f"FAIL: {result['error']}")
        return
    spec = result["spec"]
    for tool in ("feast", "shipyard"):
        step = next(iter(result.get(tool, {}).values()), {})
        if step.get("unavailable"):
            console.note(f"{'Feast' if tool == 'feast' else 'Shipyard'} side not available: {step['unavailable']}")
    version = (_step(result, "feast", "setup") or {}).get("version", "?")
    quick = " [quick]" if result.get("quick") else ""
    fs, ss = _step(result, "feast", "historical"), _step(result, "shipyard", "historical")
    agreement = result.get("agreement") or {}
    checks = agreement.get("historical", {}) if not agreement.get("failed") else {}
    rows = []
    for label, tool, r in (("Feast " + version, "feast", fs), ("Shipyard", "shipyard", ss)):
        if r is None:
            rows.append([label, "-", "-", "-", "-", "-", "-", "-", "-", _state(result, tool) or "-"])
            continue
        c = checks.get(tool)
        check = "-" if c is None else (f"{c['missing_rows']:,} rows missing, {c['mismatches']:,} values differ"
                                       if c["missing_rows"] or c["mismatches"] or c["extra_rows"] else "ok")
        time_ratio = mem_ratio = added_ratio = None
        if tool == "feast" and ss is not None:
            time_ratio, mem_ratio = _ratio(fs["seconds"], ss["seconds"]), _ratio(fs["peak_mb"], ss["peak_mb"])
            added_ratio = _ratio(fs["added_mb"], ss["added_mb"])
        rows.append([label, fmt_seconds(r["seconds"]), _mb(r["rss_before_mb"]), _mb(r["peak_mb"]), _mb(r["added_mb"]),
                     f"{r['rows']:,}", fmt_ratio(time_ratio), fmt_ratio(mem_ratio), fmt_ratio(added_ratio), check])
    console.table(f"(a) Historical retrieval: {spec['feature_rows']:,} feature rows x {spec['label_rows']:,} label "
                  f"rows, TTL 7 days{quick}",
                  ["Tool", "Time", "RSS before", "Peak RSS", "Added by the call", "Rows returned",
                   "Time Feast/Shipyard", "Peak Feast/Shipyard", "Added Feast/Shipyard", "Against the rule"], rows,
                  right_align={1, 2, 3, 4, 5, 6, 7, 8})
    console.note("Time: the retrieval alone (Feast: get_historical_features(...).to_df(); Shipyard: get_historical), "
                 "after a warm-up on 1,000 label rows. RSS before: the worker's resident set before the call (imports "
                 "and the loaded label rows); Peak RSS: its peak during the call; Added: the difference. A ratio > 1 "
                 "means Shipyard is faster or smaller.")
    _render_agreement(result, console)

    rows = []
    fm, sm = _step(result, "feast", "materialize"), _step(result, "shipyard", "materialize")
    for label, tool, r in (("Feast " + version, "feast", fm), ("Shipyard", "shipyard", sm)):
        if r is None:
            rows.append([label, "-", "-", "-", "-", "-", "-", _state(result, tool) or "-"])
            continue
        ratio = _ratio(fm["seconds"], sm["seconds"]) if tool == "feast" and sm else None
        written = r.get("entities_written")
        rows.append([label, f"{r['source_rows']:,}", "-" if written is None else f"{written:,}",
                     fmt_seconds(r["seconds"]), f"{r['source_rows'] / r['seconds']:,.0f}",
                     f"{r['entities'] / r['seconds']:,.0f}", _mb(r["peak_mb"]), fmt_ratio(ratio)])
    console.table(f"(b) Materialisation into SQLite{quick}",
                  ["Tool", "Source rows", "Customers in the store", "Time", "Source rows/s", "Customers/s",
                   "Peak RSS", "Time Feast/Shipyard"], rows, right_align={1, 2, 3, 4, 5, 6, 7})
    console.note("The latest row of every customer, from the whole Parquet table, written to the SQLite online "
                 "store (Feast: materialize(start, end) over all the data, one SQLite row per customer and "
                 "feature; Shipyard: materialize()), after a warm-up that loads a window ending before the data.")

    rows = []
    fo, so = _step(result, "feast", "online"), _step(result, "shipyard", "online")
    for batch in ("1", "100"):
        for label, tool, r in (("Feast " + version, "feast", fo), ("Shipyard", "shipyard", so)):
            if r is None:
                rows.append([batch, label, "-", "-", "-", "-", "-", "-", _state(result, tool) or "-"])
                continue
            lat = r["latency"][batch]
            p50 = p99 = None
            if tool == "feast" and so is not None:
                p50 = _ratio(lat["p50"], so["latency"][batch]["p50"])
                p99 = _ratio(lat["p99"], so["latency"][batch]["p99"])
            rows.append([batch, label, f"{lat['reads']:,}", fmt_seconds(lat["p50"]), fmt_seconds(lat["p99"]),
                         fmt_seconds(lat["max"]), f"{lat['reads'] / lat['total']:,.0f}", fmt_ratio(p50),
                         fmt_ratio(p99)])
    console.table(f"(c) Online reads from SQLite{quick}",
                  ["Customers per read", "Tool", "Reads", "p50", "p99", "Max", "Reads/s", "p50 Feast/Shipyard",
                   "p99 Feast/Shipyard"], rows, right_align={0, 2, 3, 4, 5, 6, 7, 8})
    console.note("In-process calls (Feast: get_online_features(...).to_dict() on one FeatureStore; Shipyard: "
                 "reader.get(...) on one online_reader(), turned into a dict of columns), the same "
                 f"sequence of random customers for both, after {WARMUP_READS} warm-up reads per size.")
    _render_online_agreement(result, console)
    for note in result.get("notes", []):
        console.note(note)


def _render_agreement(result: dict[str, Any], console: Any) -> None:
    agreement = result.get("agreement") or {}
    if agreement.get("failed"):
        console.note(f"FAIL check: {agreement['error'].strip().splitlines()[-1]}")
        return
    checks = agreement.get("historical", {})
    if not checks:
        return
    rows = []
    for tool, c in checks.items():
        label = "Feast" if tool == "feast" else "Shipyard"
        kinds = "; ".join(f"{k}: {v:,}" for k, v in c["mismatch_kinds"].items() if v) or "-"
        rows.append([label, f"{c['rows']:,}", f"{c['missing_rows']:,}", f"{c['missing_rows_null_by_rule']:,}",
                     f"{c['extra_rows']:,}", f"{c['mismatches']:,}", f"{c['tied_mismatches']:,}", kinds])
    console.table(f"Answers against the rule ({agreement['label_rows']:,} label rows; the rule gives nulls to "
                  f"{agreement['reference_null_rows']:,} and resolves {agreement['reference_tied_rows']:,} through a "
                  "tie of event times)",
                  ["Tool", "Rows", "Missing", "of them null by the rule", "Extra", "Values differ",
                   "of them ties", "Kinds"], rows, right_align={1, 2, 3, 4, 5, 6})
    both = agreement.get("feast_vs_shipyard")
    if both:
        console.note(f"Feast vs Shipyard: {both['mismatches']:,} rows with different values, {both['only_feast']:,} "
                     f"rows only in Feast's answer, {both['only_shipyard']:,} only in Shipyard's.")
    for tool, c in checks.items():
        label = "Feast" if tool == "feast" else "Shipyard"
        other = {k: v for k, v in c.get("other_value_rows", {}).items() if v}
        if other:
            console.note(f"{label}, rows with another value: the row taken has " +
                         "; ".join(f"{k}: {v:,}" for k, v in other.items()))
        bounds = c.get("bounds", {})
        if bounds:
            console.note(f"{label}, bounds of the rule (label rows whose latest earlier feature row is that old: "
                         "answered with values / rows): " +
                         ", ".join(f"{k} {b['with_values']:,}/{b['rows']:,}" for k, b in bounds.items()))
        if c["missing_by_case"]:
            console.note(f"{label}, missing rows by planted case: " +
                         ", ".join(f"{k} {v:,}" for k, v in sorted(c["missing_by_case"].items())))
    console.note("The rule: per label row, the customer's feature row with the latest event time <= the label's "
                 "time (a tie of event times goes to the latest created time), if the label's time minus its "
                 "event time is <= the TTL; else nulls, and the label row is kept.")


def _render_online_agreement(result: dict[str, Any], console: Any) -> None:
    online = (result.get("agreement") or {}).get("online", {})
    for tool, c in online.items():
        label = "Feast" if tool == "feast" else "Shipyard"
        console.note(f"{label} online values of {c['entities']:,} customers: {c['latest_value']:,} the latest "
                     f"value, {c['null']:,} null, {c['other']:,} another value; {c['expired_at_read']:,} of these "
                     f"latest values were older than the TTL when read ({c['latest_value_though_expired']:,} "
                     f"returned all the same, {c['null_and_expired']:,} as null); {c['null_though_valid']:,} "
                     "null though valid.")
