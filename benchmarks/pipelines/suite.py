"""Pipeline step overhead: Shipyard vs Prefect 3, both running locally.

The same step functions (``_shared.inc``: x + 1, ``_shared.total``: sum) run
three ways: as plain Python calls (the floor), as a Shipyard pipeline
(``@shipyard.step`` / ``@shipyard.pipeline``, local executor) and as a
Prefect flow (``@flow`` calling ``@task``s, ephemeral local server). Two
shapes: a chain of n steps and a fan-in of n independent steps into one sum.

One worker process per tool: the Shipyard worker runs with the project's
interpreter, the Prefect worker with ``benchmarks/.venv-peers``. Interpreter
start-up, imports, Prefect's temporary server and a first two-step
pipeline/flow are timed on their own and are not part of any per-step
number. See ``shipyard_workloads.py`` and ``prefect_workloads.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from common import (
    REPO_ROOT,
    Context,
    WorkerError,
    _failure,
    base_env,
    fmt_ratio,
    fmt_seconds,
    guard,
    parse_result,
)

NAME = "pipelines"
TITLE = "Pipeline step overhead: Shipyard vs Prefect (local; Prefect in its ephemeral mode)"

HERE = Path(__file__).resolve().parent
SHIPYARD_WORKER = HERE / "shipyard_workloads.py"
PREFECT_WORKER = HERE / "prefect_workloads.py"

# steps: n (chain of n; fan-in of n + 1 sum); rounds: timed runs per shape / mode / variant (median reported).
FULL = {"steps": 100, "rounds": 3}
QUICK = {"steps": 20, "rounds": 1}
SHAPES = ("chain", "fanin")
#: Hard bounds per worker process (the whole process group is killed past them).
SHIPYARD_TIMEOUT_S = 240
PREFECT_TIMEOUT_S = 300
#: The Prefect worker starts no new round after this many seconds of timed rounds (fewer rounds, said so).
PREFECT_ROUNDS_BUDGET_S = 120
#: Above this per-step overhead Shipyard's run is profiled with cProfile (BENCH_PIPELINES_PROFILE=1 forces it).
PROFILE_THRESHOLD_S = 0.020
PROFILE_TIMEOUT_S = 180
#: A 1-minute load average above this at the start means other work shares the CPUs: warn about noise.
BUSY_LOAD = 0.5

#: Prefect runs locally: no API URL (so the ephemeral server), analytics off, its home in the temp folder.
PREFECT_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # Only how long the client waits for the temporary server to answer (default 20 s; a busy
    # 2-core machine can need more).
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def shipyard_env() -> dict[str, str]:
    env = base_env()
    env["SHIPYARD_USER"] = "bench"
    return env


def prefect_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in base_env().items() if not k.startswith("PREFECT_")}  # no PREFECT_API_URL
    env.update(PREFECT_SETTINGS)
    env["PREFECT_HOME"] = str(workdir / "prefect-home")
    return env


def run_bounded(python: Path, script: Path, args: list[str], *, env: dict[str, str], cwd: Path,
                timeout: float) -> dict[str, Any]:
    """Like common.run_worker, in a process group of its own, killed whole after `timeout`.

    Prefect's temporary server is a child of its worker: a plain timeout would leave it running.
    """
    cmd = [str(python), str(script), *args, "--spawned-at", repr(time.time())]
    stderr_file = cwd / f"worker-{int(time.time() * 1e6)}.stderr"
    with open(stderr_file, "w") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
        try:
            stdout, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, _ = proc.communicate()
            raise _failure(cmd, None, f"timed out after {timeout:.0f} s\n{stdout}", stderr_file) from None
    if proc.returncode != 0:
        raise _failure(cmd, proc.returncode, stdout, stderr_file)
    try:
        return parse_result(stdout)
    except WorkerError:
        raise _failure(cmd, proc.returncode, stdout, stderr_file) from None


def _worker(ctx: Context, label: str, python: Path, script: Path, args: list[str], env_for, timeout: float):
    def go() -> dict[str, Any]:
        with ctx.workdir(label.lower().replace(" ", "-")) as wd:
            return run_bounded(python, script, [*args, "--workdir", str(wd)], env=env_for(wd), cwd=wd,
                               timeout=timeout)

    return guard(ctx, label, go)


def source_state() -> dict[str, Any]:
    """The commit benchmarked and whether src/ had uncommitted changes (they are what ran)."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], check=False, cwd=REPO_ROOT, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "src").splitlines()]
    return {"commit": git("rev-parse", "HEAD") or None, "src_uncommitted_changes": changed}


# --------------------------------------------------------------------------- suite entry points


def run(ctx: Context) -> dict[str, Any]:
    cfg = QUICK if ctx.quick else FULL
    notes: list[str] = []
    load_start = os.getloadavg()
    if load_start[0] > BUSY_LOAD:
        notes.append(f"Busy machine: 1-minute load average {load_start[0]:.2f} at the start "
                     f"(above {BUSY_LOAD}); single timings may shift by tens of percent, for either tool.")
        ctx.log(f"  warning: {notes[-1]}")
    args = ["run", "--steps", str(cfg["steps"]), "--rounds", str(cfg["rounds"]), "--shapes", ",".join(SHAPES)]
    ctx.log(f"chain of {cfg['steps']} steps and fan-in of {cfg['steps']} + 1 steps, {cfg['rounds']} round(s) each")
    w = {
        "shipyard": _worker(ctx, "Shipyard pipelines", ctx.project_python, SHIPYARD_WORKER, args,
                            lambda wd: shipyard_env(), SHIPYARD_TIMEOUT_S),
        "prefect": _worker(ctx, "Prefect flows", ctx.peers_python, PREFECT_WORKER,
                           [*args, "--budget-seconds", str(PREFECT_ROUNDS_BUDGET_S)], prefect_env, PREFECT_TIMEOUT_S),
    }

    profiles = []
    forced = os.environ.get("BENCH_PIPELINES_PROFILE") == "1"
    for shape, mode, per_step in _to_profile(w["shipyard"], forced):
        ctx.log(f"Shipyard per-step overhead {per_step * 1000:.1f} ms ({shape}, caching {mode})"
                f"{' > ' + format(PROFILE_THRESHOLD_S * 1000, '.0f') + ' ms' if per_step > PROFILE_THRESHOLD_S else ''}"
                ": profiling it")
        profiles.append(_worker(ctx, f"Shipyard profile {shape} {mode}", ctx.project_python, SHIPYARD_WORKER,
                                ["profile", "--steps", str(cfg["steps"]), "--shape", shape, "--mode", mode],
                                lambda wd: shipyard_env(), PROFILE_TIMEOUT_S))

    return {
        "suite": NAME,
        "title": TITLE,
        "quick": ctx.quick,
        "config": cfg,
        "versions": {k: r.get("version") for k, r in w.items() if not r.get("failed")},
        "source": source_state(),
        "prefect_settings": PREFECT_SETTINGS,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "workloads": w,
        "profiles": profiles,
        "profile_threshold_s": PROFILE_THRESHOLD_S,
        "summary": summary_rows(w, cfg),
        "notes": notes,
    }


def _to_profile(s: dict[str, Any], forced: bool) -> list[tuple[str, str, float]]:
    """(shape, mode, per-step overhead) to profile: every run with caching off or a first cached run above
    the threshold; when forced and none is above, the slower shape with caching off."""
    if s.get("failed"):
        return []
    runs = [(shape, mode, s["shapes"][shape][mode]["per_step_overhead_s"])
            for mode in ("off", "miss") for shape in s["shapes"]]
    chosen = [r for r in runs if r[2] > PROFILE_THRESHOLD_S]
    if forced and not chosen:
        chosen = [max((r for r in runs if r[1] == "off"), key=lambda r: r[2])]
    return chosen


def _ratio(prefect_s: float | None, shipyard_s: float | None) -> float | None:
    if not prefect_s or not shipyard_s or prefect_s <= 0 or shipyard_s <= 0:
        return None
    return prefect_s / shipyard_s


def _get(r: dict[str, Any] | None, *keys: str) -> Any:
    if not r or r.get("failed"):
        return None
    for key in keys:
        r = r.get(key) if isinstance(r, dict) else None
    return r


def _check(*parts: dict[str, Any] | None) -> str:
    present = [p for p in parts if p is not None]
    if any(p.get("failed") for p in present) or not present:
        return "FAILED"
    return "ok" if all(p.get("verified") for p in present) else "MISMATCH"


def summary_rows(w: dict[str, Any], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    s, p = w["shipyard"], w["prefect"]

    def add(label: str, s_val: float | None, p_val: float | None, check: str, ratio: bool = True,
            section: str = "") -> None:
        rows.append({"workload": label, "shipyard_s": s_val, "prefect_s": p_val,
                     "ratio": _ratio(p_val, s_val) if ratio else None, "check": check, "section": section})

    n = cfg["steps"]
    for shape in SHAPES:
        ss = _get(s, "shapes", shape)
        ps = _get(p, "shapes", shape)
        steps = (ss or ps or {}).get("steps", n)
        title = f"chain of {n}" if shape == "chain" else f"fan-in {n} -> 1 ({steps} steps)"
        failed_s = s if s.get("failed") else None
        failed_p = p if p.get("failed") else None
        best = (ps or {}).get("best", "direct")
        other = "submit" if best == "direct" else "direct"
        how = {"direct": "direct task calls", "submit": ".submit() + futures"}
        pb = _get(ps, "variants", best)
        po = _get(ps, "variants", other)
        s_off, s_miss, s_hit = _get(ss, "off"), _get(ss, "miss"), _get(ss, "hit")
        add(f"{title}: (1) floor, plain Python calls", _get(ss, "floor", "seconds"), _get(ps, "floor", "seconds"),
            _check(failed_s or _get(ss, "floor"), failed_p or _get(ps, "floor")), ratio=False, section=shape)
        add(f"{title}: (2)/(4) run, caching off (Prefect: {how[best]}, its best)", _get(s_off, "seconds"),
            _get(pb, "seconds"), _check(failed_s or s_off, failed_p or pb), section=shape)
        add(f"{title}:   per-step overhead, (total - floor) / {steps}", _get(s_off, "per_step_overhead_s"),
            _get(pb, "per_step_overhead_s"), _check(failed_s or s_off, failed_p or pb), section=shape)
        add(f"{title}: (4) Prefect, {how[other]}", None, _get(po, "seconds"), _check(failed_p or po),
            ratio=False, section=shape)
        add(f"{title}: (4) until every step/task run is recorded (Shipyard: on return)",
            _get(s_off, "seconds"), _get(pb, "recorded_seconds"), _check(failed_s or s_off, failed_p or pb),
            section=shape)
        add(f"{title}: (4) Prefect, inside the flow body only (its {steps} task calls), per task", None,
            _get(pb, "body_per_step_s"), _check(failed_p or pb), ratio=False, section=shape)
        add(f"{title}: (3) caching on, first run (all misses)", _get(s_miss, "seconds"), None,
            _check(failed_s or s_miss), ratio=False, section=shape)
        add(f"{title}:   per-step overhead, (total - floor) / {steps}", _get(s_miss, "per_step_overhead_s"), None,
            _check(failed_s or s_miss), ratio=False, section=shape)
        add(f"{title}: (3) caching on, fully cached re-run (all hits)", _get(s_hit, "seconds"), None,
            _check(failed_s or s_hit), ratio=False, section=shape)
        add(f"{title}:   per-step overhead, (total - floor) / {steps}", _get(s_hit, "per_step_overhead_s"), None,
            _check(failed_s or s_hit), ratio=False, section=shape)

    small_s, small_p = _get(s, "small"), _get(p, "small")
    add("2-step pipeline / flow, the sum of one inc(-1): fixed cost of one run", _get(small_s, "seconds"),
        _get(small_p, "seconds"), _check(s if s.get("failed") else small_s, p if p.get("failed") else small_p),
        section="fixed")
    st_s, st_p = _get(s, "startup"), _get(p, "startup")
    ok_s = s if s.get("failed") else {"verified": True}
    ok_p = p if p.get("failed") else {"verified": True}
    add("start-up: interpreter (spawn to the worker's first line)", _get(st_s, "interpreter_seconds"),
        _get(st_p, "interpreter_seconds"), _check(ok_s, ok_p), section="startup")
    add("start-up: import shipyard / import prefect", _get(st_s, "import_seconds"), _get(st_p, "import_seconds"),
        _check(ok_s, ok_p), section="startup")
    add("start-up: Prefect temporary server (ephemeral API) start", None, _get(st_p, "server_start_seconds"),
        _check(ok_p), ratio=False, section="startup")
    add("start-up: first pipeline / flow in the process (2 steps)", _get(st_s, "first_pipeline_seconds"),
        _get(st_p, "first_flow_seconds"), _check(ok_s, ok_p), section="startup")
    return rows


def render(result: dict[str, Any], console: Any) -> None:
    versions = result.get("versions", {})
    cfg = result["config"]
    title = (f"{result['title']} - Shipyard {versions.get('shipyard', '?')}, Prefect {versions.get('prefect', '?')}"
             f", n = {cfg['steps']}, median of {cfg['rounds']}")
    if result.get("quick"):
        title += " [quick]"
    headers = ["Workload", "Shipyard", "Prefect", "Prefect/Shipyard", "Check"]
    rows = [[r["workload"], fmt_seconds(r["shipyard_s"]), fmt_seconds(r["prefect_s"]), fmt_ratio(r["ratio"]),
             r["check"]] for r in result["summary"]]
    console.table(title, headers, rows, right_align={1, 2, 3})
    console.note("Prefect/Shipyard is the time ratio: > 1 means Shipyard is faster. Start-up rows are not part of "
                 "any per-step number.")
    w = result["workloads"]
    s, p = w["shipyard"], w["prefect"]
    if not s.get("failed"):
        console.note(f"Shipyard: local executor (threads), a fresh workspace per timed run; "
                     f"first 2-step pipeline of the process {fmt_seconds(s['startup']['first_pipeline_seconds'])} "
                     f"(store creation, lazy imports).")
    if not p.get("failed"):
        parts = []
        for shape in SHAPES:
            sp = p["shapes"].get(shape)
            if sp:
                v = sp["variants"]
                parts.append(f"{shape}: direct {fmt_seconds(v['direct']['seconds'])}, "
                             f"submit {fmt_seconds(v['submit']['seconds'])} (best: {sp['best']})")
        console.note("Prefect variants: " + "; ".join(parts) + ". Default ThreadPoolTaskRunner for .submit; "
                     "no result persistence or caching (defaults).")
        if p.get("rounds_done", p["rounds"]) < p["rounds"]:
            console.note(f"Prefect: only {p['rounds_done']} of {p['rounds']} rounds ran within the time budget "
                         f"({PREFECT_ROUNDS_BUDGET_S} s); its medians are over those.")
        small = p.get("small", {})
        if small.get("seconds"):
            console.note(f"Prefect: a 2-task flow takes {fmt_seconds(small['seconds'])}: at its end the flow "
                         "joins its heartbeat thread, which sleeps in 1 s steps, so a flow's wall time rounds up "
                         "to about the next whole second after its start.")
    profiles = result.get("profiles") or []
    for prof in profiles:
        if not prof.get("failed"):
            _render_profile(prof, console)
    if not profiles and not s.get("failed"):
        console.note(f"Shipyard per-step overhead is below {result['profile_threshold_s'] * 1000:.0f} ms: not "
                     "profiled (BENCH_PIPELINES_PROFILE=1 forces it).")
    for note in result.get("notes", []):
        console.note(note)
    src = result.get("source", {})
    if src.get("src_uncommitted_changes"):
        console.note(f"src/ had uncommitted changes at run time ({len(src['src_uncommitted_changes'])} files); "
                     f"commit {str(src.get('commit'))[:10]}.")
    for key, r in list(w.items()) + [(f"profile {i + 1}", pr) for i, pr in enumerate(profiles)]:
        if r.get("failed"):
            console.note(f"{key} failed: {r['error'].splitlines()[0]}")


def _render_profile(prof: dict[str, Any], console: Any) -> None:
    title = (f"Where Shipyard's time goes: {prof['shape']} of {prof['n']}, mode {prof['mode']} - unprofiled "
             f"{fmt_seconds(prof['unprofiled_seconds'])} "
             f"({prof['unprofiled_per_step_overhead_s'] * 1000:.2f} ms/step), under cProfile "
             f"{fmt_seconds(prof['profiled_seconds'])}")
    rows = []
    for group, label in (("runner_thread", "runner thread"), ("step_threads", "step threads")):
        g = prof.get(group, {})
        if not g.get("available"):
            continue
        for area, v in g["self_time_by_area"].items():
            if v["per_step_ms"] >= 0.05:
                rows.append([label, f"self time: {area}", f"{v['per_step_ms']:.2f}", "-"])
        for f in g["functions"][:10 if group == "runner_thread" else 5]:
            rows.append([label, f["function"], f"{f['cumulative_per_step_ms']:.2f}", str(f["calls"])])
    console.table(title, ["Thread", "Function / area", "ms per step (cumulative)", "Calls"], rows, right_align={2, 3})
    console.note("cProfile slows Python code more than system calls; the shares matter, not the absolute numbers. "
                 "Step threads run beside the runner thread; in a chain the runner waits for them (lock acquire).")
