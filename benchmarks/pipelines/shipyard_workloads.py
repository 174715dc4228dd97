"""Shipyard side of the pipeline benchmark.

Run with the project's virtualenv python. Every timed pipeline run gets a
fresh workspace (a new folder under ``--workdir``, created with
``shipyard.init_workspace`` before the clock starts). The result is printed
as one ``BENCH_RESULT {json}`` line on stdout.

Workloads:

- ``run``: for each round and each shape (``chain``: step i takes the
  previous output and returns x + 1; ``fanin``: n independent steps
  ``inc(i)`` and a final ``total`` of their outputs), times

  - ``off``: ``pipeline.run(cache=False)``, the first pipeline run of a fresh
    workspace (after a one-step warm-up pipeline, see below);
  - ``miss``: ``pipeline.run(cache=True)`` in another fresh workspace (every
    step a miss, "first run of this step");
  - ``hit``: the same call again right after (every step a hit).

  Before any clock starts, each fresh workspace runs a two-step warm-up
  pipeline ``total([inc(-1)])`` (the same step functions, another input, so
  no timed step can hit its cache): it opens the workspace's stores. The
  first warm-up of the process is timed on its own ("first pipeline in the
  process": it pays Shipyard's lazy imports), and so is ``import shipyard``.
  The plain-Python floor (the same functions called directly) is timed in
  this process too.
- ``profile``: one extra run of ``--shape`` in ``--mode`` (off / miss / hit)
  under cProfile, in a fresh workspace, after the same run unprofiled in
  another one. The runner's thread and the step threads are profiled
  separately; the result lists the functions that take the time, per step.
"""

from __future__ import annotations

import time

STARTED_AT = time.time()

import cProfile
import os
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

import _shared
from _shared import (
    WARMUP_X,
    emit,
    expected_value,
    floor,
    median,
    overhead_per_step,
    parse_args,
    step_count,
)

os.environ.setdefault("SHIPYARD_USER", "bench")

_t = time.perf_counter()
import shipyard

IMPORT_SECONDS = time.perf_counter() - _t

inc = shipyard.step(_shared.inc)
total = shipyard.step(_shared.total)


def make_pipeline(shape: str, n: int) -> Any:
    if shape == "chain":

        def chain():
            x = 0
            for _ in range(n):
                x = inc(x)
            return x

        return shipyard.pipeline(chain, name="chain")

    def fanin():
        return total([inc(i) for i in range(n)])

    return shipyard.pipeline(fanin, name="fanin")


@shipyard.pipeline(name="warmup")
def warmup():
    return total([inc(WARMUP_X)])


class Workspaces:
    """Fresh workspaces under the worker's directory, one per timed run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0
        self.first_warmup: dict[str, float] | None = None

    def fresh(self, label: str) -> Path:
        self.count += 1
        path = Path(tempfile.mkdtemp(prefix=f"{self.count:02d}-{label}-", dir=self.root))
        t0 = time.perf_counter()
        shipyard.init_workspace(path)
        t1 = time.perf_counter()
        result = warmup.run(cache=False, workspace=path)
        t2 = time.perf_counter()
        if result.value() != WARMUP_X + 1:
            raise RuntimeError(f"warm-up pipeline returned {result.value()!r}")
        if self.first_warmup is None:
            self.first_warmup = {"init_workspace_seconds": t1 - t0, "first_pipeline_seconds": t2 - t1}
        return path


def check_run(result: Any, shape: str, n: int, cache: str, workspace: Path, finished_step_runs: int) -> dict[str, Any]:
    """What the run returned and recorded, read back after the clock stopped."""
    steps = list(result.steps.values())
    value = result.value()
    stored = shipyard.search_runs(
        f"tags.shipyard.kind = 'step' and tags.shipyard.pipeline = '{result.name}' and status = 'finished'",
        experiment="pipelines", max_results=1000, workspace=workspace,
    )
    caches = sorted({s.cache for s in steps})
    ok = (value == expected_value(shape, n) and len(steps) == step_count(shape, n)
          and all(s.status == "finished" and s.run_id for s in steps) and caches == [cache]
          and result.status == "finished" and len(stored) == finished_step_runs)
    return {"value": value, "steps": len(steps), "cache": caches, "status": result.status,
            "stored_step_runs": len(stored), "expected_step_runs": finished_step_runs, "verified": ok}


def timed_run(pipe: Any, workspace: Path, cache: bool) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = pipe.run(cache=cache, workspace=workspace)
    return time.perf_counter() - t0, result


def w_run(args) -> dict[str, Any]:
    root = Path(args.workdir)
    n = args.steps
    shapes = [s for s in args.shapes.split(",") if s]
    spaces = Workspaces(root)
    floors = {shape: floor(shape, n) for shape in shapes}
    pipes = {shape: make_pipeline(shape, n) for shape in shapes}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s: {"off": [], "miss": [], "hit": []} for s in shapes}
    small: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        ws = spaces.fresh("small")
        seconds, result = timed_run(warmup, ws, cache=False)
        small.append({"round": rnd, "seconds": seconds, **check_run(result, "small", n, "off", ws, 4)})
        for shape in shapes:
            pipe, steps = pipes[shape], step_count(shape, n)
            ws = spaces.fresh(f"{shape}-off")
            seconds, result = timed_run(pipe, ws, cache=False)
            runs[shape]["off"].append({"round": rnd, "seconds": seconds, **check_run(result, shape, n, "off", ws, steps)})
            ws = spaces.fresh(f"{shape}-cache")
            seconds, result = timed_run(pipe, ws, cache=True)
            runs[shape]["miss"].append({"round": rnd, "seconds": seconds,
                                        **check_run(result, shape, n, "miss", ws, steps)})
            seconds, result = timed_run(pipe, ws, cache=True)
            runs[shape]["hit"].append({"round": rnd, "seconds": seconds,
                                       **check_run(result, shape, n, "hit", ws, 2 * steps)})
    shapes_out = {}
    for shape in shapes:
        steps, floor_s = step_count(shape, n), floors[shape]["seconds"]
        modes = {}
        for mode, rows in runs[shape].items():
            seconds = median([r["seconds"] for r in rows])
            modes[mode] = {"seconds": seconds, "timings": [r["seconds"] for r in rows],
                           "per_step_overhead_s": overhead_per_step(seconds, floor_s, steps),
                           "verified": all(r["verified"] for r in rows), "runs": rows}
        shapes_out[shape] = {"steps": steps, "floor": floors[shape], **modes}
    return {
        "n": n,
        "rounds": args.rounds,
        "small": {"steps": step_count("small", n), "seconds": median([r["seconds"] for r in small]),
                  "timings": [r["seconds"] for r in small], "verified": all(r["verified"] for r in small),
                  "runs": small},
        "shapes": shapes_out,
        "startup": {"import_seconds": IMPORT_SECONDS, **(spaces.first_warmup or {})},
        "verified": all(m["verified"] for s in shapes_out.values() for m in (s["off"], s["miss"], s["hit"]))
                    and all(r["verified"] for r in small),
    }


# --------------------------------------------------------------------------- profile


AREAS = (
    ("fsync (blob store, os.fsync)", lambda f, name: "posix.fsync" in name),
    ("SQLite (sqlite3 C calls)", lambda f, name: "sqlite3" in name),
    ("waiting for step threads (lock acquire)", lambda f, name: "_thread.lock" in name and "acquire" in name),
    ("SQLAlchemy (Python)", lambda f, name: "/sqlalchemy/" in f),
    ("Shipyard code", lambda f, name: "/shipyard/" in f and "site-packages" not in f),
    ("pydantic", lambda f, name: "/pydantic" in f),
)


def _label(key: tuple[str, int, str]) -> str:
    file, line, name = key
    if file == "~":
        return name
    for marker in ("/src/", "/site-packages/", "/lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker == "/lib/python3.":
                file = file.split("/", 1)[1] if "/" in file else file
            break
    return f"{file}:{line}({name})"


def summarize(stats: pstats.Stats | None, steps: int, top: int) -> dict[str, Any]:
    if stats is None:
        return {"available": False}
    entries = stats.stats  # type: ignore[attr-defined]
    areas: dict[str, float] = {label: 0.0 for label, _ in AREAS}
    areas["other (stdlib, json, hashlib, ...)"] = 0.0
    total_self = 0.0
    for (file, line, name), (_cc, _nc, tt, _ct, _callers) in entries.items():
        total_self += tt
        for label, match in AREAS:
            if match(file, name):
                areas[label] += tt
                break
        else:
            areas["other (stdlib, json, hashlib, ...)"] += tt

    def interesting(key: tuple[str, int, str]) -> bool:
        file, _, name = key
        if file == "~":
            return any(m(file, name) for label, m in AREAS[:3])
        return "/shipyard/" in file and "site-packages" not in file

    rows = sorted(((k, v) for k, v in entries.items() if interesting(k)), key=lambda kv: -kv[1][3])[:top]
    by_self = sorted(entries.items(), key=lambda kv: -kv[1][2])[:top]
    return {
        "available": True,
        "total_seconds": total_self,
        "per_step_ms": 1000 * total_self / steps,
        "self_time_by_area": {k: {"seconds": v, "per_step_ms": 1000 * v / steps}
                              for k, v in sorted(areas.items(), key=lambda kv: -kv[1])},
        "functions": [
            {"function": _label(k), "calls": nc, "cumulative_s": ct, "self_s": tt,
             "cumulative_per_step_ms": 1000 * ct / steps}
            for k, (_cc, nc, tt, ct, _callers) in rows
        ],
        "self_time_top": [
            {"function": _label(k), "calls": nc, "self_s": tt, "self_per_step_ms": 1000 * tt / steps}
            for k, (_cc, nc, tt, ct, _callers) in by_self
        ],
    }


def prepare(pipe: Any, spaces: Workspaces, label: str, mode: str) -> Path:
    ws = spaces.fresh(label)
    if mode == "hit":
        pipe.run(cache=True, workspace=ws)
    return ws


def w_profile(args) -> dict[str, Any]:
    from shipyard.pipelines import executors

    n, shape, mode = args.steps, args.shape, args.mode
    steps = step_count(shape, n)
    pipe = make_pipeline(shape, n)
    spaces = Workspaces(Path(args.workdir))
    cache = mode != "off"
    floor_s = floor(shape, n)["seconds"]

    ws = prepare(pipe, spaces, f"{shape}-{mode}-plain", mode)
    plain_s, _ = timed_run(pipe, ws, cache)

    # Step bodies run in executor threads; cProfile sees only the thread that enabled it, so each
    # call of executors.execute gets its own profiler (in its own thread), merged afterwards.
    ws = prepare(pipe, spaces, f"{shape}-{mode}-profiled", mode)
    thread_profiles: list[cProfile.Profile] = []
    original = getattr(executors, "execute", None)
    if original is not None:
        def profiled_execute(task):
            prof = cProfile.Profile()
            thread_profiles.append(prof)
            return prof.runcall(original, task)

        executors.execute = profiled_execute
    main = cProfile.Profile()
    t0 = time.perf_counter()
    main.enable()
    result = pipe.run(cache=cache, workspace=ws)
    main.disable()
    profiled_s = time.perf_counter() - t0
    if original is not None:
        executors.execute = original
    check = check_run(result, shape, n, mode, ws, steps * (2 if mode == "hit" else 1))
    thread_stats = pstats.Stats(*thread_profiles) if thread_profiles else None
    return {
        "shape": shape,
        "mode": mode,
        "n": n,
        "steps": steps,
        "unprofiled_seconds": plain_s,
        "unprofiled_per_step_overhead_s": overhead_per_step(plain_s, floor_s, steps),
        "profiled_seconds": profiled_s,
        "runner_thread": summarize(pstats.Stats(main), steps, args.top),
        "step_threads": summarize(thread_stats, steps, max(8, args.top // 2)),
        "step_threads_note": ("" if original is not None else
                              "shipyard.pipelines.executors.execute not found: step threads not profiled"),
        "verified": check["verified"],
    }


def print_profile(r: dict[str, Any]) -> None:
    print(f"{r['shape']} x {r['n']}, {r['mode']}: unprofiled {r['unprofiled_seconds']:.3f} s "
          f"({1000 * r['unprofiled_per_step_overhead_s']:.2f} ms/step), profiled {r['profiled_seconds']:.3f} s",
          file=sys.stderr)
    for group in ("runner_thread", "step_threads"):
        s = r[group]
        if not s.get("available"):
            continue
        print(f"\n[{group}] {s['total_seconds']:.3f} s self time, {s['per_step_ms']:.2f} ms/step", file=sys.stderr)
        for area, v in s["self_time_by_area"].items():
            print(f"  {v['per_step_ms']:7.2f} ms/step  {area}", file=sys.stderr)
        print("  cumulative ms/step  calls  function", file=sys.stderr)
        for f in s["functions"]:
            print(f"  {f['cumulative_per_step_ms']:8.2f}  {f['calls']:6d}  {f['function']}", file=sys.stderr)
        print("  self ms/step  calls  function", file=sys.stderr)
        for f in s["self_time_top"]:
            print(f"  {f['self_per_step_ms']:8.2f}  {f['calls']:6d}  {f['function']}", file=sys.stderr)


def main() -> int:
    args = parse_args()
    if args.workload == "profile":
        result = w_profile(args)
        print_profile(result)
    else:
        result = w_run(args)
        if args.spawned_at is not None:
            result["startup"]["interpreter_seconds"] = STARTED_AT - args.spawned_at
    result.update(tool="shipyard", version=getattr(shipyard, "__version__", "?"), workload=args.workload,
                  python=sys.version.split()[0])
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
