"""Loading a registered model (or one a run logged without registering it): its artifact is verified
against the recorded digest before any flavor (pickle-based or not) reads it, and predict enforces the
signature."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.models.records import ModelVersion
from shipyard.models.registry import get_model_version

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shipyard.models.flavors.base import Flavor
    from shipyard.models.signature import Signature


class LoadedModel:
    """A model version ready to predict on DataFrames."""

    def __init__(self, version: ModelVersion, flavor: Flavor, native: Any) -> None:
        from shipyard.models.signature import Signature

        self.version = version
        self.flavor = flavor
        self.native = native
        self.signature: Signature | None = Signature.from_dict(version.signature) if version.signature else None

    def __repr__(self) -> str:
        return f"<LoadedModel {self.version.version_id} ({self.flavor.name})>"

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        from shipyard.models.signature import enforce

        return enforce(self.signature, frame) if self.signature is not None else frame

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.flavor.predict(self.native, self.prepare(frame))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None:
        return self.flavor.predict_proba(self.native, self.prepare(frame))


def fetch_artifact(ctx: Context, version: ModelVersion, folder: Path) -> Path:
    """Copy the version's artifact into `folder`, verified: a tampered blob raises IntegrityError."""
    from shipyard.models.flavors import get_flavor

    return ctx.blobs.get_file(version.artifact_digest, folder / get_flavor(version.flavor).file_name)


def load_model(ctx: Context, ref: str) -> LoadedModel:
    return load_version(ctx, get_model_version(ctx, ref))


def load_version(ctx: Context, version: ModelVersion) -> LoadedModel:
    """Load a version record, registered or not (see `logged_version`)."""
    from shipyard.models.flavors import get_flavor

    flavor = get_flavor(version.flavor)
    with tempfile.TemporaryDirectory(prefix="shipyard-load-") as tmp:
        path = fetch_artifact(ctx, version, Path(tmp))
        native = flavor.load(path, version.flavor_meta)
    return LoadedModel(version, flavor, native)


def logged_version(ctx: Context, name: str, run_id: str, *, metrics: dict[str, float] | None = None,
                   dataset_version: str | None = None, artifact_path: str | None = None) -> ModelVersion:
    """The model a run logged under `artifact_path` (default models/NAME) without registering it, as an
    unregistered version record (version 0): what gates can judge before anything enters the registry."""
    import json

    from shipyard.errors import NotFoundError
    from shipyard.models.registry import MODEL_INFO
    from shipyard.tracking.artifacts import read_artifact
    from shipyard.tracking.runs import get_run

    run = get_run(ctx, run_id)
    folder = artifact_path or f"models/{name}"
    if f"{folder}/{MODEL_INFO}" not in {a.path for a in run.artifacts}:
        raise NotFoundError(f"Run {run.run_id} has no logged model at '{folder}'; log one there with "
                            f"run.log_model(model, '{name}', register=False).", run_id=run.run_id)
    info = json.loads(read_artifact(ctx, run.run_id, f"{folder}/{MODEL_INFO}"))
    return ModelVersion(
        model=name, version=0, flavor=info["flavor"], artifact_digest=info["digest"], artifact_size=info["size"],
        flavor_meta=info.get("flavor_meta") or {}, environment=info.get("environment") or {},
        created=run.start_time, created_by=run.user, signature=info.get("signature"),
        details=info.get("details") or {}, metrics=dict(metrics or {}), run_id=run.run_id,
        dataset_version=dataset_version, description=f"not registered: logged by run {run.run_id}",
    )
