"""Online features by name: "view:feature" references resolved to registered view versions (their entities and
TTLs) and read from the workspace's online store in one round trip, with a status per value."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.errors import NotFoundError, ValidationError, did_you_mean
from shipyard.features.historical import parse_features
from shipyard.features.online import _instant_ns, online_store
from shipyard.features.online_lookup import OnlineFeatures, Wanted, lookup
from shipyard.features.registry import RegisteredView, get_view
from shipyard.features.views import TYPES

if TYPE_CHECKING:
    import pandas as pd


def get_online(ctx: Context, features: Sequence[str] | str,
               entity_rows: pd.DataFrame | Sequence[Mapping[str, Any]], *, at: Any = None,
               full_names: bool = False) -> OnlineFeatures:
    """Each feature ("view:feature", "view@2:feature") for each entity row as the online store holds it at `at`
    (one time or one per row; default now), under the view's TTL: the value and its status, present, missing or
    expired. Columns are named as get_historical names them (the feature; VIEW__FEATURE with `full_names`), in
    the declared types."""
    refs = parse_features(features)
    if isinstance(at, str | dt.datetime):  # a bad time is named before any view is looked up
        _instant_ns(at, "the request time `at`")
    groups: dict[str, list[str]] = {}
    for ref in refs:
        groups.setdefault(ref.view, []).append(ref.feature)
    views: dict[str, RegisteredView] = {}
    for name, wanted in groups.items():
        view = get_view(ctx, name)
        for feature in wanted:
            if feature not in view.features:
                raise NotFoundError(
                    f"Feature view {view.version_id} has no feature '{feature}'.{did_you_mean(feature, view.features)}"
                    f" Its features: {', '.join(view.features)}.", view=view.version_id, feature=feature)
        views[name] = view
    by_store: dict[tuple[str, int], str] = {}
    for name, view in views.items():
        key = (view.name, view.version)
        if key in by_store:
            raise ValidationError(f"'{by_store[key]}' and '{name}' are the same view version, {view.version_id}: "
                                  "name it one way.", view=view.version_id)
        by_store[key] = name
    names = [view.name for view in views.values()]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValidationError(f"Features of two versions of view '{twice[0]}' are asked for in one read; the online "
                              "store is read per view name, so read each version separately.", view=twice[0])
    outputs = {str(ref): (f"{ref.view}__{ref.feature}" if full_names else ref.feature) for ref in refs}
    columns = list(outputs.values())
    keys = {e for view in views.values() for e in view.entities}
    repeated = sorted({c for c in columns if columns.count(c) > 1 or c in keys})
    if repeated:
        raise ValidationError(f"More than one column would be named '{repeated[0]}': pass full_names=True (columns "
                              "VIEW__FEATURE).")
    reads = [Wanted(view.name, view.version, view.entities, groups[name], view.ttl_seconds)
              for name, view in views.items()]
    with online_store(ctx) as store:
        found = lookup(store, reads, entity_rows, at=at, full_names=True)
    renamed = {f"{views[ref.view].name}:{ref.feature}": outputs[str(ref)] for ref in refs}
    values = found.values.rename(columns=renamed)
    for ref in refs:
        column = outputs[str(ref)]
        values[column] = values[column].astype(TYPES[views[ref.view].features[ref.feature]])
    status = found.status.rename(columns=renamed)[columns]
    return OnlineFeatures(values, status)
