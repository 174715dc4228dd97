"""Loading a registered model: its artifact is verified against the registry's digest before any
flavor (pickle-based or not) reads it, and predict enforces the signature."""

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
    from shipyard.models.flavors import get_flavor

    version = get_model_version(ctx, ref)
    flavor = get_flavor(version.flavor)
    with tempfile.TemporaryDirectory(prefix="shipyard-load-") as tmp:
        path = fetch_artifact(ctx, version, Path(tmp))
        native = flavor.load(path, version.flavor_meta)
    return LoadedModel(version, flavor, native)
