"""Shipyard side of the serving benchmark: prepare the workspace that ``shipyard serve`` reads.

Run with the project's virtualenv python, ``SHIPYARD_WORKSPACE`` pointing at
``--workdir``. Creates the workspace, trains the model, registers it with
``run.log_model`` (version 1 of ``serving-bench``), writes the request bodies
both servers get into ``--bodies``, and times the in-process floor: raw
scikit-learn ``predict`` on a one-row DataFrame, and the loaded model's
``predict``. Prints one ``BENCH_RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

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
    write_bodies,
)

os.environ.setdefault("SHIPYARD_USER", "bench")


def quiet(fn: Any, *args: Any) -> Any:
    """Call without warnings (scikit-learn warns that a numpy array has no feature names)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description="serving benchmark: Shipyard setup")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--bodies", required=True, help="folder for the request bodies")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    os.environ["SHIPYARD_WORKSPACE"] = str(workdir)
    os.chdir(workdir)

    import shipyard

    shipyard.init_workspace(workdir)
    X, y = dataset()
    model = train(X, y)
    with shipyard.start_run(name="serving-bench", experiment=EXPERIMENT) as run:
        version = run.log_model(model, MODEL_NAME, input_example=X.head(5))
    ref = f"{MODEL_NAME}/{version.version}"

    singles, batches = request_frames(X)
    bodies = write_bodies(Path(args.bodies), singles, batches)
    loaded = shipyard.models.load(ref)
    expected = {"single": digest(model.predict(singles[0])), "batch": digest(model.predict(batches[0]))}
    same = (digest(loaded.predict(singles[0])) == expected["single"]
            and digest(loaded.predict(batches[0])) == expected["batch"])
    emit({
        "version": shipyard.__version__,
        "ref": ref,
        "model_digest": model_digest(model),
        "bodies": bodies,
        "expected": expected,
        "loaded_same_predictions": same,
        "raw_predict": floor(model.predict, singles),
        "loaded_predict": floor(loaded.predict, singles),
        "raw_predict_numpy": floor(lambda a: quiet(model.predict, a), [f.to_numpy() for f in singles]),
        "libraries": library_versions(),
    })


if __name__ == "__main__":
    main()
