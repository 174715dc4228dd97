"""MLflow side of the model registry benchmark.

Run with ``benchmarks/.venv-peers/bin/python`` (see ``setup_peers.sh``). The
driver sets ``MLFLOW_TRACKING_URI=sqlite:///<workdir>/mlflow.db`` (tracking
and model registry in the same SQLite file) and turns telemetry off; the
experiment's artifact location is a folder inside ``--workdir``. The result
is printed as one ``BENCH_RESULT {json}`` line on stdout.

Workloads:

- ``log_register``: inside a run, ``mlflow.sklearn.log_model(model,
  name="model", input_example=X.head(), registered_model_name="bc")``.
  ``--variant infer`` leaves the pip requirements to MLflow, which infers
  them (it loads the saved model in a subprocess to see what it imports);
  ``--variant explicit`` passes ``pip_requirements=[...]`` (the same packages,
  pinned to the installed versions), which skips the inference. The first
  call is timed on its own (cold), then ``--n`` more calls, each in a new run.
- ``serve``: registers one version (untimed, explicit requirements), sets
  the ``champion`` alias (``--n`` times), loads ``models:/bc@champion``
  with ``mlflow.pyfunc.load_model`` and with ``mlflow.sklearn.load_model``
  (``--n`` + 1 times each), then single-row and batch predicts through the
  pyfunc model vs the raw scikit-learn model.
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

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
from mlflow.tracking import MlflowClient

#: The packages MLflow infers for this model, pinned to what is installed (variant "explicit").
EXPLICIT_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")


def explicit_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{dist}=={version(dist)}" for dist in EXPLICIT_PACKAGES]


def _tracking_uri(workdir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workdir / 'mlflow.db'}"


def _experiment(client: MlflowClient, workdir: Path, name: str) -> str:
    """Create (or get) an experiment whose artifacts live inside ``workdir``."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=(workdir / "mlartifacts" / name).as_uri())


def setup(workdir: Path) -> tuple[MlflowClient, str]:
    """Open the store (schema migrations) and run one tracking run, off the clock."""
    mlflow.set_tracking_uri(_tracking_uri(workdir))
    client = MlflowClient()
    warm_id = _experiment(client, workdir, WARMUP_EXPERIMENT)
    with mlflow.start_run(experiment_id=warm_id, run_name="warmup"):
        mlflow.log_param("warm", "1")
        mlflow.log_metric("warm", 1.0, step=0)
    exp_id = _experiment(client, workdir, EXPERIMENT)
    mlflow.set_experiment(experiment_id=exp_id)
    return client, exp_id


def log_and_register(exp_id: str, model, example, requirements):
    """One log+register, timed from start_run to the end of the run; returns (total s, log_model s, info)."""
    t0 = time.perf_counter()
    with mlflow.start_run(experiment_id=exp_id, run_name="log-model"):
        t1 = time.perf_counter()
        info = mlflow.sklearn.log_model(model, name="model", input_example=example,
                                        registered_model_name=MODEL_NAME, pip_requirements=requirements)
        t2 = time.perf_counter()
    return time.perf_counter() - t0, t2 - t1, info


def _requirements_file(workdir: Path, info) -> list[str]:
    """requirements.txt of a logged model (what MLflow inferred or was given)."""
    found = sorted((workdir / "mlartifacts").rglob("requirements.txt"))
    for path in found:
        if info.model_id and info.model_id in str(path):
            return path.read_text().split()
    return found[-1].read_text().split() if found else []


def w_log_register(args) -> dict:
    workdir = Path(args.workdir)
    client, exp_id = setup(workdir)
    X, y = dataset()
    model = train(X, y)
    example = X.head(EXAMPLE_ROWS)
    if args.variant not in ("infer", "explicit"):
        raise SystemExit(f"unknown variant {args.variant!r}: infer or explicit")
    requirements = explicit_requirements() if args.variant == "explicit" else None

    cold_total, cold_log, first = log_and_register(exp_id, model, example, requirements)
    totals, log_calls = [], []
    last = first
    for _ in range(args.n):
        total, log_s, last = log_and_register(exp_id, model, example, requirements)
        totals.append(total)
        log_calls.append(log_s)

    versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    linked = sum(1 for v in versions if v.run_id)
    return {
        "n": args.n,
        "variant": args.variant,
        "pip_requirements_given": requirements,
        "cold_seconds": cold_total,
        "cold_log_model_seconds": cold_log,
        "timings": totals,
        "log_model_timings": log_calls,
        "seconds": median(totals),
        "log_model_seconds": median(log_calls),
        "first_version": f"{MODEL_NAME}/{first.registered_model_version}",
        "last_version": f"{MODEL_NAME}/{last.registered_model_version}",
        "stored_versions": len(versions),
        "expected_versions": args.n + 1,
        "versions_linked_to_runs": linked,
        "verified": len(versions) == args.n + 1 and linked == args.n + 1,
        "stored_requirements": _requirements_file(workdir, last),
        "model_digest": model_digest(model),
    }


def w_serve(args) -> dict:
    workdir = Path(args.workdir)
    client, exp_id = setup(workdir)
    X, y = dataset()
    model = train(X, y)
    _, _, info = log_and_register(exp_id, model, X.head(EXAMPLE_ROWS), explicit_requirements())
    number = str(info.registered_model_version)

    # (b) set the alias.
    alias_times = [
        timed(lambda: client.set_registered_model_alias(MODEL_NAME, ALIAS, number))[0] for _ in range(args.n)
    ]
    by_alias = client.get_model_version_by_alias(MODEL_NAME, ALIAS).version

    # (b) load by alias, as a pyfunc model and as the native scikit-learn model.
    uri = f"models:/{MODEL_NAME}@{ALIAS}"
    first_load, loaded = timed(lambda: mlflow.pyfunc.load_model(uri))
    loads = []
    for _ in range(args.n):
        t, loaded = timed(lambda: mlflow.pyfunc.load_model(uri))
        loads.append(t)
    first_native, native = timed(lambda: mlflow.sklearn.load_model(uri))
    native_loads = []
    for _ in range(args.n):
        t, native = timed(lambda: mlflow.sklearn.load_model(uri))
        native_loads.append(t)

    # (c) single-row predicts, (d) batch predict: raw scikit-learn vs the pyfunc model (schema enforced).
    frames = single_rows(X, args.rows)
    single = compare_single_rows(model.predict, loaded.predict, frames, args.rounds)
    big = compare_batch(model.predict, loaded.predict, batch(X, args.batch_rows), args.batch_repeats)
    native_same = digest(native.predict(X)) == digest(model.predict(X))

    return {
        "n": args.n,
        "alias_call": f"MlflowClient().set_registered_model_alias('bc', 'champion', '{number}')",
        "alias_timings": alias_times,
        "alias_seconds": median(alias_times),
        "load_call": f"mlflow.pyfunc.load_model({uri!r})",
        "first_load_seconds": first_load,
        "load_timings": loads,
        "load_seconds": median(loads),
        "native_load_call": f"mlflow.sklearn.load_model({uri!r})",
        "first_native_load_seconds": first_native,
        "native_load_timings": native_loads,
        "native_load_seconds": median(native_loads),
        "loaded_version": int(by_alias),
        "signature_enforced": loaded.metadata.get_input_schema() is not None,
        "single_row": single,
        "batch": big,
        "model_digest": model_digest(model),
        "example_digest": digest(model.predict(X.head(EXAMPLE_ROWS))),
        "verified": int(by_alias) == 1 and single["same_predictions"] and big["same_predictions"] and native_same,
    }


WORKLOADS = {"log_register": w_log_register, "serve": w_serve}


def main() -> int:
    args = parse_args()
    result = WORKLOADS[args.workload](args)
    result.update(tool="mlflow", version=mlflow.__version__, workload=args.workload, libraries=library_versions())
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
