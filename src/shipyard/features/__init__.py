"""The feature store: feature views declared in Python and registered with versions and lineage,
point-in-time-correct training sets, an online store (SQLite, Redis) with the same TTL rule as the offline
path, request enrichment in serving, and a skew check between what was served and what training would see.

The functions here work on the workspace found from the current folder (or `workspace=`):

    from shipyard.features import FeatureView, apply, get_historical

    stats = FeatureView("customer_stats", entities=["customer_id"], source="transactions",
                        features={"spend_30d": "float64"}, ttl="30d")
    apply([stats])
    training = get_historical(labels, ["customer_stats:spend_30d"])
    materialize()  # every view's new rows into the online store
    online = get_online(["customer_stats:spend_30d"], [{"customer_id": 42}])
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from shipyard.features.views import FeatureView

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context
    from shipyard.features.materialization import ViewLoad
    from shipyard.features.online_features import OnlineReader
    from shipyard.features.online_lookup import OnlineFeatures
    from shipyard.features.registry import ApplyResult, RegisteredView
    from shipyard.features.training import TrainingSet

__all__ = ["FeatureView", "apply", "build_training_set", "get", "get_historical", "get_online", "list_views",
           "materialize", "online_reader", "versions"]

PathLike = str | os.PathLike[str]


def _ctx(workspace: PathLike | None) -> Context:
    from shipyard.context import open_context

    return open_context(workspace)


def apply(views: Iterable[FeatureView], *, workspace: PathLike | None = None) -> list[ApplyResult]:
    """Register the views: a new version of each whose definition changed, nothing for the others."""
    from shipyard.features.registry import apply as register

    return register(_ctx(workspace), views)


def get(ref: str, *, workspace: PathLike | None = None) -> RegisteredView:
    """A registered feature view: NAME (its latest version) or NAME@V."""
    from shipyard.features.registry import get_view

    return get_view(_ctx(workspace), ref)


def list_views(*, workspace: PathLike | None = None) -> list[dict[str, object]]:
    """Every registered feature view with its latest version."""
    from shipyard.features.registry import list_views as listed

    return listed(_ctx(workspace))


def versions(name: str, *, workspace: PathLike | None = None) -> list[RegisteredView]:
    """The versions of one feature view, newest first."""
    from shipyard.features.registry import list_versions

    return list_versions(_ctx(workspace), name)


def get_historical(
    entity_df: pd.DataFrame | str,
    features: Sequence[str] | str,
    *,
    timestamp: str = "event_timestamp",
    version: int | None = None,
    full_names: bool = False,
    save_as: str | None = None,
    allow_duplicates: bool = False,
    workspace: PathLike | None = None,
) -> pd.DataFrame:
    """A point-in-time-correct frame: `entity_df` (a DataFrame with the views' entity keys and a `timestamp`
    column, or a dataset version NAME@V) with each feature ("view:feature", "view@2:feature") as it was at each
    row's time: the latest value at or before it and within the view's TTL, null when there is none.

    `version` pins the views named without a version to that version. `full_names` names the columns
    VIEW__FEATURE (with the view as written: orders@2__amount for "orders@2:amount"). `save_as` also versions
    the frame as dataset `save_as`, with lineage from the feature view versions and datasets it was made from.
    Entity rows repeating another's keys and time are an error unless `allow_duplicates`."""
    if save_as is not None:
        return build_training_set(save_as, entity_df, features, timestamp=timestamp, version=version,
                                  full_names=full_names, allow_duplicates=allow_duplicates,
                                  workspace=workspace).frame
    from shipyard.features.historical import historical

    return historical(_ctx(workspace), entity_df, features, timestamp=timestamp, version=version,
                      full_names=full_names, allow_duplicates=allow_duplicates).frame


def build_training_set(
    name: str,
    entity_df: pd.DataFrame | str,
    features: Sequence[str] | str,
    *,
    timestamp: str = "event_timestamp",
    version: int | None = None,
    full_names: bool = False,
    message: str | None = None,
    allow_duplicates: bool = False,
    workspace: PathLike | None = None,
) -> TrainingSet:
    """get_historical, versioned as the next version of dataset `name` (nothing new when unchanged)."""
    from shipyard.features.training import build

    return build(_ctx(workspace), name, entity_df, features, timestamp=timestamp, version=version,
                 full_names=full_names, message=message, allow_duplicates=allow_duplicates)


def materialize(views: Sequence[str] | str | None = None, *, start: object = None, end: object = None,
                workspace: PathLike | None = None) -> list[ViewLoad]:
    """Load views ("name": its latest version, or "name@2"; every registered view when None) into the
    workspace's online store, incrementally: each version's source rows after its watermark (after `start` on its
    first load) up to `end` (else the latest event time). Every source is read and checked before anything is
    written; each view's load is one online-store transaction, then one audit event. Nothing new: no write, no
    event."""
    from shipyard.features.materialization import materialize as load

    return load(_ctx(workspace), [views] if isinstance(views, str) else views, start=start, end=end)


def get_online(
    features: Sequence[str] | str,
    entity_rows: pd.DataFrame | Sequence[Mapping[str, object]],
    *,
    at: object = None,
    full_names: bool = False,
    workspace: PathLike | None = None,
) -> OnlineFeatures:
    """Features ("view:feature", "view@2:feature") for entity rows (a DataFrame or a list of dicts of entity keys)
    from the online store, judged at `at` (a time or one per row; default now) with each view's TTL, in one round
    trip: `.values` (entity columns, then the features in their declared types, null when not present) and
    `.status` (per value: present, missing or expired)."""
    from shipyard.features.online_features import get_online as read

    return read(_ctx(workspace), features, entity_rows, at=at, full_names=full_names)


def online_reader(*, workspace: PathLike | None = None) -> OnlineReader:
    """A reader of the workspace's online store for serving, kept for many reads: `reader.get(features, rows,
    at=None)` with rows a list of dicts of entity keys (or one dict) returns `(values, statuses)`, one dict per
    row (plain Python values, None where not present; "present", "missing" or "expired" per feature), the same
    answer as `get_online` without DataFrames. It keeps the store open and the resolved views cached (views named
    without a version are looked up again after a new version is applied in this process, or within a second of
    one applied elsewhere)."""
    from shipyard.features.online_features import online_reader as shared

    return shared(_ctx(workspace))
