"""`shipyard run`: the standard training pipeline of the workspace's shipyard.yaml."""

from __future__ import annotations

from typing import Any

from shipyard.config import SPEC_FILE
from shipyard.context import Context
from shipyard.errors import ConfigError
from shipyard.pipelines.runner import PipelineResult, run_pipeline
from shipyard.policy.lifecycle import LifecycleSpec, check_columns


def lifecycle_spec(ctx: Context) -> LifecycleSpec:
    return ctx.policy.lifecycle()


def run_standard(ctx: Context, *, executor: str | None = None, use_cache: bool = True,
                 promote: bool | None = None, candidate: bool = False, on_change: Any = None,
                 data: str | None = None) -> PipelineResult:
    """Run the spec's pipeline; `promote=False` overrides the spec (register and gate only); `candidate`
    gates the trained model without registering it (CI's default); `data` names the version of the spec's
    dataset to train on instead of data.dataset (e.g. credit@4)."""
    from shipyard.data.refs import parse_ref
    from shipyard.data.versions import get_version
    from shipyard.pipelines.standard import build_pipeline

    spec = lifecycle_spec(ctx)
    if data is not None and parse_ref(data).dataset != parse_ref(spec.data.dataset).dataset:
        raise ConfigError(f"{data} is not a version of {SPEC_FILE}'s data.dataset {spec.data.dataset!r}; the "
                          "standard pipeline trains on versions of that dataset.")
    version = get_version(ctx, data or spec.data.dataset)
    if version.kind != "table":
        raise ConfigError(f"{SPEC_FILE}: data.dataset = {spec.data.dataset!r} is a set of files; training needs a table.")
    kinds = {name: str(stats.get("kind")) for name, stats in ((version.profile or {}).get("columns") or {}).items()}
    columns = [c["name"] for c in version.table_schema or []]
    plan = None
    if spec.features.views:  # the label data, with the views' features joined on: what the model trains on
        from shipyard.pipelines.training_sets import KINDS, plan_views, training_spec

        plan = plan_views(ctx, spec, version)
        spec = training_spec(spec, plan)
        columns += list(plan.columns)
        kinds.update({column: KINDS[kind] for column, kind in plan.columns.items()})
    check_columns(spec, columns, version.version_id, kinds=kinds)
    if spec.data.split.holdout:
        get_version(ctx, spec.data.split.holdout)  # fails early, naming what exists
    if promote is not None:
        spec = spec.model_copy(update={"promote": spec.promote.model_copy(update={"enabled": promote})})
    pipeline = build_pipeline(spec, version=version.version_id, workspace=str(ctx.workspace.root), candidate=candidate,
                              views=plan)
    return run_pipeline(ctx, pipeline, {}, executor=executor, use_cache=use_cache, on_change=on_change)
