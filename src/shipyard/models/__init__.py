"""The model registry: flavors, versions, signatures, environments, aliases, gates and promotion.

The functions here work on the workspace found from the current folder (or `workspace=`):

    model = shipyard.models.load("models:/credit@champion")
    model.predict(frame)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from shipyard.tracking.fluent import set_model_logger

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context
    from shipyard.models.loading import LoadedModel
    from shipyard.models.records import AliasMove, ModelVersion

PathLike = str | os.PathLike[str]


def _log_model(ctx: Context, run_id: str, model: Any, name: str, *, input_example: pd.DataFrame | None = None,
               signature_frame: pd.DataFrame | None = None, flavor: str | None = None, dataset: str | None = None,
               description: str | None = None, register: bool = True) -> ModelVersion | None:
    """What Run.log_model does: attach the model to the run and register it with the run's metrics."""
    from shipyard.models.registry import register_model
    from shipyard.tracking.runs import get_run

    metrics = get_run(ctx, run_id).metrics
    return register_model(ctx, name, model, input_example=input_example, signature_frame=signature_frame,
                          flavor=flavor, run_id=run_id, dataset_version=dataset, metrics=metrics, description=description, register=register)


set_model_logger(_log_model)


def _ctx(workspace: PathLike | None) -> Context:
    from shipyard.context import open_context

    return open_context(workspace)


def register(name: str, model: Any, *, input_example: pd.DataFrame | None = None,
             signature_frame: pd.DataFrame | None = None, flavor: str | None = None, dataset: str | None = None,
             description: str | None = None, workspace: PathLike | None = None) -> ModelVersion:
    """Register a model outside a run (inside one, prefer run.log_model, which links the run)."""
    from shipyard.models.registry import register_model

    version = register_model(_ctx(workspace), name, model, input_example=input_example,
                             signature_frame=signature_frame, flavor=flavor,
                             dataset_version=dataset, description=description)
    assert version is not None
    return version


def get(ref: str, *, workspace: PathLike | None = None) -> ModelVersion:
    """A version: "models:/credit/3", "models:/credit@champion", "credit/3" or "credit" (latest)."""
    from shipyard.models.registry import get_model_version

    return get_model_version(_ctx(workspace), ref)


def load(ref: str, *, workspace: PathLike | None = None) -> LoadedModel:
    """Load a version, its artifact verified against the registry, ready to predict on DataFrames."""
    from shipyard.models.loading import load_model

    return load_model(_ctx(workspace), ref)


def versions(name: str, *, workspace: PathLike | None = None) -> list[ModelVersion]:
    from shipyard.models.registry import list_versions

    return list_versions(_ctx(workspace), name)


def set_alias(ref: str, alias: str, *, reason: str | None = None, workspace: PathLike | None = None) -> AliasMove:
    from shipyard.models.registry import set_alias as move

    return move(_ctx(workspace), ref, alias, reason=reason)


def alias_history(name: str, alias: str | None = None, *, workspace: PathLike | None = None) -> list[AliasMove]:
    from shipyard.models.registry import alias_moves

    return alias_moves(_ctx(workspace), name, alias)


def archive(ref: str, *, workspace: PathLike | None = None) -> ModelVersion:
    from shipyard.models.registry import archive_version

    return archive_version(_ctx(workspace), ref)
