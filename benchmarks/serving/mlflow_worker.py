"""MLflow side of the serving benchmark: log and register the model that ``mlflow models serve`` reads.

Run with ``benchmarks/.venv-peers/bin/python``; the driver sets
``MLFLOW_TRACKING_URI=sqlite:///<workdir>/mlflow.db`` and turns telemetry
off. Trains the same model as the Shipyard worker, logs it with
``mlflow.sklearn.log_model(..., input_example=X.head(5),
registered_model_name="serving-bench")`` and times the pyfunc model's
one-row ``predict`` next to raw scikit-learn. Prints one
``BENCH_RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from _shared import (
    EXPERIMENT,
    MODEL_NAME,
    dataset,
    digest,
    emit,
    floor,
    library_versions,
    model_digest,
    request_frames,
    train,
)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def main() -> None:
    parser = argparse.ArgumentParser(description="serving benchmark: MLflow setup")
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    os.chdir(workdir)

    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn

    mlflow.set_experiment(experiment_name=EXPERIMENT)
    X, y = dataset()
    model = train(X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(5),
                                        registered_model_name=MODEL_NAME)
    uri = f"models:/{MODEL_NAME}/{info.registered_model_version}"
    pyfunc = mlflow.pyfunc.load_model(uri)
    singles, batches = request_frames(X)
    emit({
        "version": mlflow.__version__,
        "model_uri": uri,
        "model_digest": model_digest(model),
        "expected": {"single": digest(model.predict(singles[0])), "batch": digest(model.predict(batches[0]))},
        "pyfunc_same_predictions": digest(pyfunc.predict(batches[0])) == digest(model.predict(batches[0])),
        "raw_predict": floor(model.predict, singles),
        "pyfunc_predict": floor(pyfunc.predict, singles),
        "libraries": library_versions(),
    })


if __name__ == "__main__":
    main()
