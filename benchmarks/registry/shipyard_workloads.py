"""Shipyard side of the model registry benchmark.

Run with the project's virtualenv python. The driver points
``SHIPYARD_WORKSPACE`` at a fresh ``--workdir`` per workload (the workspace is
created here with ``shipyard.init_workspace``). The result is printed as one
``BENCH_RESULT {json}`` line on stdout.

Workloads:

- ``log_register``: inside a run, ``run.log_model(model, "bc", input_example=X.head())``
  (packages the model with skops, attaches it to the run and registers the
  next version of "bc"). The first call is timed on its own (cold), then
  ``--n`` more calls, each in a new run.
- ``serve``: registers one version (untimed), promotes it to ``champion``
  (``--n`` times), loads ``models:/bc@champion`` (``--n`` + 1 times), then
  single-row and batch predicts through the loaded model vs the raw
  scikit-learn model.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from _shared import (
    ALIAS,
    EXAMPLE_ROWS,
    EXPERIMENT,
    MODEL_NAME,
    WARMUP_EXPERIMENT,
    batch,
    compare_batch,
    compare_single_rows,
    dataset,
    digest,
    emit,
    library_versions,
    median,
    model_digest,
    parse_args,
    single_rows,
    timed,
    train,
)

os.environ.setdefault("SHIPYARD_USER", "bench")

import shipyard


def setup(workdir: Path) -> None:
    """Create the workspace and run one tracking run, so store creation is off the clock."""
    os.environ["SHIPYARD_WORKSPACE"] = str(workdir)
    os.chdir(workdir)
    if not (workdir / "shipyard.yaml").exists():
        shipyard.init_workspace(workdir)
    with shipyard.start_run(name="warmup", experiment=WARMUP_EXPERIMENT) as run:
        run.log_param("warm", "1")
        run.log_metric("warm", 1.0, step=0)


def log_and_register(model, example):
    """One log+register, timed from start_run to the end of the run; returns (total s, log_model s, version)."""
    t0 = time.perf_counter()
    with shipyard.start_run(name="log-model", experiment=EXPERIMENT) as run:
        t1 = time.perf_counter()
        version = run.log_model(model, MODEL_NAME, input_example=example)
        t2 = time.perf_counter()
    return time.perf_counter() - t0, t2 - t1, version


def w_log_register(args) -> dict:
    workdir = Path(args.workdir)
    setup(workdir)
    X, y = dataset()
    model = train(X, y)
    example = X.head(EXAMPLE_ROWS)

    cold_total, cold_log, first = log_and_register(model, example)
    totals, log_calls = [], []
    last = first
    for _ in range(args.n):
        total, log_s, last = log_and_register(model, example)
        totals.append(total)
        log_calls.append(log_s)

    versions = shipyard.models.versions(MODEL_NAME)
    linked = sum(1 for v in versions if v.run_id)
    return {
        "n": args.n,
        "cold_seconds": cold_total,
        "cold_log_model_seconds": cold_log,
        "timings": totals,
        "log_model_timings": log_calls,
        "seconds": median(totals),
        "log_model_seconds": median(log_calls),
        "first_version": first.version_id,
        "last_version": last.version_id,
        "stored_versions": len(versions),
        "expected_versions": args.n + 1,
        "versions_linked_to_runs": linked,
        "verified": len(versions) == args.n + 1 and linked == args.n + 1,
        "artifact_bytes": int(last.artifact_size),
        "model_digest": model_digest(model),
    }


def w_serve(args) -> dict:
    from shipyard.context import open_context
    from shipyard.gates.promotion import promote

    workdir = Path(args.workdir)
    setup(workdir)
    X, y = dataset()
    model = train(X, y)
    with shipyard.start_run(name="log-model", experiment=EXPERIMENT) as run:
        version = run.log_model(model, MODEL_NAME, input_example=X.head(EXAMPLE_ROWS))
    ref = version.version_id  # "bc/1"
    ctx = open_context()

    # (b) move the serving alias (gated promotion; no gates are configured, so it is allowed).
    alias_times = [timed(lambda: promote(ctx, ref, ALIAS))[0] for _ in range(args.n)]

    # (b) load by alias: the first load on its own, then --n loads.
    uri = f"models:/{MODEL_NAME}@{ALIAS}"
    first_load, loaded = timed(lambda: shipyard.models.load(uri))
    loads = []
    for _ in range(args.n):
        t, loaded = timed(lambda: shipyard.models.load(uri))
        loads.append(t)
    loaded_version = loaded.version.version

    # (c) single-row predicts, (d) batch predict: raw scikit-learn vs the loaded model (signature enforced).
    frames = single_rows(X, args.rows)
    single = compare_single_rows(model.predict, loaded.predict, frames, args.rounds)
    big = compare_batch(model.predict, loaded.predict, batch(X, args.batch_rows), args.batch_repeats)

    return {
        "n": args.n,
        "alias_call": "shipyard.gates.promotion.promote(ctx, 'bc/1', 'champion')",
        "alias_timings": alias_times,
        "alias_seconds": median(alias_times),
        "load_call": f"shipyard.models.load({uri!r})",
        "first_load_seconds": first_load,
        "load_timings": loads,
        "load_seconds": median(loads),
        "loaded_version": loaded_version,
        "signature_enforced": loaded.signature is not None,
        "single_row": single,
        "batch": big,
        "model_digest": model_digest(model),
        "example_digest": digest(model.predict(X.head(EXAMPLE_ROWS))),
        "verified": loaded_version == 1 and single["same_predictions"] and big["same_predictions"],
    }


WORKLOADS = {"log_register": w_log_register, "serve": w_serve}


def main() -> int:
    args = parse_args()
    result = WORKLOADS[args.workload](args)
    result.update(tool="shipyard", version=getattr(shipyard, "__version__", "?"), workload=args.workload,
                  libraries=library_versions())
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
