"""Training through feature views: the spec's `features.views` resolved against the registry before anything runs
(each view pinned to its version, its source identified, the label data checked), and the step that joins them
point-in-time onto the label data and versions the result as the training set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.config import SPEC_FILE
from shipyard.context import Context
from shipyard.data.refs import check_dataset_name
from shipyard.errors import ConfigError, ShipyardError, did_you_mean
from shipyard.pipelines.steps import step
from shipyard.policy.lifecycle import LifecycleSpec

if TYPE_CHECKING:
    from shipyard.data.records import DatasetVersion
    from shipyard.features.registry import RegisteredView

DEFAULT_TIMESTAMP = "event_timestamp"
#: What a view feature's declared type is to the pipeline: the kinds of dataset profiles.
KINDS = {"float64": "numeric", "float32": "numeric", "int64": "numeric", "int32": "numeric", "bool": "boolean",
         "string": "categorical", "timestamp": "timestamp"}


@dataclass(frozen=True)
class ViewPlan:
    """The feature views a spec joins, resolved: what the join step takes, and what the registry records."""

    features: list[str]  # pinned references, VIEW@V:FEATURE, in the spec's order
    views: dict[str, dict[str, str]]  # per view version: its fingerprint and the source it reads now
    columns: dict[str, str]  # per joined column, the view feature's declared type
    entities: list[str]  # the entity key columns of the label data the views are joined on
    timestamp: str
    training_set: str  # the dataset the joined rows are versioned as

    def record(self) -> dict[str, Any]:
        """The model version's `details["features"]`: what serving needs to fetch for it."""
        return {"views": list(self.views), "features": list(self.features), "entities": list(self.entities),
                "timestamp": self.timestamp, "columns": dict(self.columns)}


def plan_views(ctx: Context, spec: LifecycleSpec, label: DatasetVersion) -> ViewPlan:
    """Resolve features.views against the registry and the label data version: an unknown view or feature, an
    entity key or the timestamp missing from the label data, or a feature named like a label column is a
    ConfigError naming the key path and the fix."""
    from shipyard.features.registry import get_view

    features = spec.features
    columns = [c["name"] for c in label.table_schema or []]
    timestamp = features.timestamp or DEFAULT_TIMESTAMP
    refs: list[str] = []
    given: dict[str, str] = {}  # joined column -> the key that asked for it
    types: dict[str, str] = {}
    views: dict[str, RegisteredView] = {}
    entities: list[str] = []
    for i, item in enumerate(features.views):
        key = f"features.views[{i}]"
        name, _, wanted = item.partition(":")
        try:
            view = get_view(ctx, name.strip())
        except ShipyardError as exc:
            raise ConfigError(f"{SPEC_FILE}: {key}: {exc.message}", path=key) from None
        names = list(view.features) if wanted.strip() == "*" else [w.strip() for w in wanted.split(",")]
        for feature in names:
            if feature not in view.features:
                raise ConfigError(
                    f"{SPEC_FILE}: {key}: feature view {view.version_id} has no feature '{feature}'."
                    f"{did_you_mean(feature, view.features)} Its features: {', '.join(view.features)} "
                    f"(or {view.name}:* for all of them).", path=key)
            if feature in columns:
                raise ConfigError(
                    f"{SPEC_FILE}: {key}: feature '{feature}' of view {view.version_id} would be column '{feature}', "
                    f"which dataset '{label.version_id}' (data.dataset) already has. Rename that column of the label "
                    "data, or leave the feature out of features.views.", path=key)
            if feature in given:
                raise ConfigError(
                    f"{SPEC_FILE}: {key}: feature '{feature}' of view {view.version_id} would be column '{feature}', "
                    f"which {given[feature]} already gives. Join only one of them.", path=key)
            given[feature] = key
            types[feature] = view.features[feature]
            refs.append(f"{view.version_id}:{feature}")
        for entity in view.entities:
            if entity not in columns:
                raise ConfigError(
                    f"{SPEC_FILE}: {key}: feature view {view.version_id} is keyed by '{entity}', which dataset "
                    f"'{label.version_id}' (data.dataset) does not have.{did_you_mean(entity, columns)} Columns: "
                    f"{', '.join(columns[:30])}. The label data needs each view's entity keys: add the column.",
                    path=key)
            if entity not in entities:
                entities.append(entity)
        views[view.version_id] = view
    if timestamp not in columns:
        where = "features.timestamp" if features.timestamp else "features.timestamp (default event_timestamp)"
        raise ConfigError(
            f"{SPEC_FILE}: {where}: dataset '{label.version_id}' (data.dataset) has no column '{timestamp}'."
            f"{did_you_mean(timestamp, columns)} Columns: {', '.join(columns[:30])}. Set features.timestamp to the "
            "column that holds each row's time: each feature is joined as it was then.", path="features.timestamp")
    if timestamp == spec.data.target or spec.data.target in entities:
        raise ConfigError(f"{SPEC_FILE}: data.target: '{spec.data.target}' is the join's "
                          f"{'timestamp' if timestamp == spec.data.target else 'entity key'}; name the label column.",
                          path="data.target")
    name = features.training_set or f"{label.version_id.split('@', 1)[0]}-training"
    try:
        check_dataset_name(name)
    except ShipyardError as exc:
        raise ConfigError(f"{SPEC_FILE}: features.training_set: {exc.message}", path="features.training_set") from None
    identities = {v: {"fingerprint": view.fingerprint, "source": source_identity(ctx, view)} for v, view in views.items()}
    return ViewPlan(refs, identities, types, entities, timestamp, name)


def source_identity(ctx: Context, view: RegisteredView) -> str:
    """What a view version reads now: its source's dataset version, or a file by its SHA-256 (through the stat
    cache), so that new source data misses the join step's cache even when the view's definition is unchanged."""
    from shipyard.data.statcache import FileStat, cached_digest
    from shipyard.data.versions import stat_cache
    from shipyard.features.sources import locate
    from shipyard.store.blobs import hash_file

    source = locate(ctx, view.definition["source"])
    if source.dataset_version is not None:
        return source.dataset_version
    assert source.path is not None
    st = os.stat(source.path)
    stat = FileStat(str(source.path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    cache = stat_cache(ctx)
    try:
        digest = cached_digest(cache.lookup(stat.path), stat)
        if digest is None:
            digest, _ = hash_file(source.path)
            cache.store([(stat, digest)])
    finally:
        cache.close()
    return f"file:{digest}"


def training_spec(spec: LifecycleSpec, plan: ViewPlan) -> LifecycleSpec:
    """The spec the rest of the pipeline trains with: the entity keys and the timestamp dropped unless the spec
    gives them a role (features.categorical or features.datetime), view features of type string one-hot encoded
    and of type timestamp taken as dates unless the spec places them itself."""
    features = spec.features
    placed = {*features.drop, *features.categorical, *features.datetime}
    drop = [*features.drop, *(c for c in [*plan.entities, plan.timestamp] if c not in placed)]
    categorical = [*features.categorical, *(c for c, t in plan.columns.items() if t == "string" and c not in placed)]
    datetime = [*features.datetime, *(c for c, t in plan.columns.items() if t == "timestamp" and c not in placed)]
    update = {"drop": drop, "categorical": categorical, "datetime": datetime}
    return spec.model_copy(update={"features": features.model_copy(update=update)})


@step
def join_features(version: str, checked: dict[str, Any], features: list[str], views: dict[str, dict[str, str]],
                  timestamp: str, name: str, workspace: str) -> str:
    """The point-in-time training set of the label data version: each pinned feature as it was at each row's time,
    versioned as dataset `name` with lineage from the view versions, their sources and the label data (nothing new
    when unchanged). `views` (each version's fingerprint and source) is here for the cache key."""
    from shipyard.context import open_context
    from shipyard.features.training import build

    ctx = open_context(workspace)
    built = build(ctx, name, version, features, timestamp=timestamp,
                  message=f"{version} joined with {', '.join(views)} by the standard pipeline")
    return built.version.version_id
