"""The skew check of a feature view: the feature values logged as served to the models trained through it,
against an offline recomputation for the same entity keys and request times."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.errors import NotFoundError, ValidationError
from shipyard.features.consistency import DEFAULT_TOLERANCE, FeatureSkew, compare

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context
    from shipyard.models.records import ModelVersion


@dataclass
class SkewReport:
    """What `features skew` found for one view."""

    view: str
    models: list[str]  # the model versions whose logged requests were compared
    rows: int
    features: list[FeatureSkew] = field(default_factory=list)

    @property
    def differing(self) -> int:
        return sum(f.differing for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {"view": self.view, "models": self.models, "rows": self.rows, "differing": self.differing,
                "features": [f.to_dict() for f in self.features]}


def readers(ctx: Context, view: str) -> list[ModelVersion]:
    """The model versions trained through feature view `view` (NAME: any version of it; NAME@V: that one)."""
    from shipyard.models.registry import list_models, list_versions

    return [v for m in list_models(ctx) for v in list_versions(ctx, str(m["name"])) if _refs(v, view)]


def _refs(version: ModelVersion, view: str) -> list[str]:
    recorded = version.details.get("features") if isinstance(version.details, dict) else None
    refs = list((recorded or {}).get("features") or [])
    return [r for r in refs if r.partition(":")[0] == view or r.partition(":")[0].partition("@")[0] == view]


def feature_skew(ctx: Context, view: str, *, model: str | None = None, since: float | dt.datetime | None = None,
                 limit: int | None = None, tolerance: float = DEFAULT_TOLERANCE) -> SkewReport:
    """Compare the served values of `view`'s features (from the prediction log of `model`, NAME/V, or of every
    model version trained through the view) with `get_historical` for the same keys at the time the server read
    them: the request's timestamp column when it gave one, else when the request was logged. `since` keeps
    requests logged from then on, `limit` the newest that many rows per model version."""
    from shipyard.features.registry import get_view
    from shipyard.models.registry import get_model_version

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError(f"Invalid limit {limit!r}: expected a positive number of rows, e.g. 1000.")
    if not 0 <= tolerance < 1:
        raise ValidationError(f"Invalid tolerance {tolerance!r}: expected a relative difference in [0, 1), e.g. 1e-9.")
    get_view(ctx, view)  # an unknown view: NotFoundError with a suggestion
    if model is not None:
        versions = [get_model_version(ctx, model)]
        if not _refs(versions[0], view):
            raise ValidationError(f"Model {versions[0].version_id} was not trained through feature view '{view}': "
                                  "it reads none of its features. Leave out --model to check every model that does.",
                                  model=model)
    else:
        versions = readers(ctx, view)
        if not versions:
            raise NotFoundError(f"No model was trained through feature view '{view}', so nothing served its features. "
                                "Train one with features.views in shipyard.yaml, serve it, then check.", view=view)
    report = SkewReport(view, [], 0)
    by_ref: dict[str, FeatureSkew] = {}
    for version in versions:
        logged = _served(ctx, version, since, limit)
        if logged is None:
            continue
        frame, at = logged
        report.models.append(version.version_id)
        report.rows += len(frame)
        refs = _refs(version, view)
        for found in compare(ctx, refs, list(version.details["features"]["entities"]), frame, at, tolerance):
            by_ref.setdefault(found.feature, FeatureSkew(found.feature)).add(found)
    if not report.models:
        raise NotFoundError(
            f"No logged predictions of {', '.join(v.version_id for v in versions)} (trained through feature view "
            f"'{view}'){' in that span' if since is not None else ''}: serve the model and send requests first.",
            view=view)
    report.features = list(by_ref.values())
    return report


def _served(ctx: Context, version: ModelVersion, since: float | dt.datetime | None,
            limit: int | None) -> tuple[pd.DataFrame, pd.Series] | None:
    """The logged rows of one model version, and per row the time its features were read at."""
    import pandas as pd

    from shipyard.serving.batches import read_predictions

    frame = read_predictions(ctx, version.model, version.version, since, last_rows=limit)
    if limit is not None:
        frame = frame.tail(limit)
    if frame.empty:
        return None
    frame = frame.reset_index(drop=True)
    at = pd.to_datetime(frame["timestamp"], utc=True)
    column = str(version.details["features"].get("timestamp") or "event_timestamp")
    if column in frame.columns:
        given = pd.to_datetime(frame[column], utc=True, format="ISO8601", errors="coerce")
        at = given.where(given.notna(), at)
    return frame, at
