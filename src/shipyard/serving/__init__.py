"""Serving: registered models behind HTTP (the Open Inference Protocol V2 and MLflow-compatible routes), the
prediction log the server writes and the ground truth (feedback) that comes back for it.

The server is `shipyard.serving.app.create_app` (it needs the `serve` extra: starlette, uvicorn,
prometheus-client). The functions here work on the workspace found from the current folder (or `workspace=`)
and need no server:

    shipyard.serving.record_feedback("credit", "3f2a…", "yes")
    shipyard.serving.predictions("credit")          # the prediction log, one row per predicted row
    shipyard.serving.feedback_report("credit")      # matched / unmatched feedback
    shipyard.serving.feature_skew("customer_stats")  # served feature values against get_historical
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context
    from shipyard.serving.feedback import FeedbackReport
    from shipyard.serving.skew import SkewReport

PathLike = str | os.PathLike[str]


def _ctx(workspace: PathLike | None) -> Context:
    from shipyard.context import open_context

    return open_context(workspace)


def record_feedback(model: str, request_id: str, value: Any, *, row: int | None = None,
                    workspace: PathLike | None = None) -> int:
    """Record the true value for a served request (the id the server returned in X-Request-Id); `row` for one
    row of a request of several. Kept even when no logged request has that id yet (it is then unmatched)."""
    from shipyard.serving.feedback import FeedbackItem
    from shipyard.serving.feedback import record_feedback as record

    return record(_ctx(workspace), model, [FeedbackItem(request_id, value, row)])


def feedback_report(model: str, *, workspace: PathLike | None = None) -> FeedbackReport:
    from shipyard.serving.feedback import feedback_report as report

    return report(_ctx(workspace), model)


def predictions(model: str, version: int | None = None, *, since: float | dt.datetime | None = None,
                with_feedback: bool = False, workspace: PathLike | None = None) -> pd.DataFrame:
    """The prediction log of a model (one version, or all), one row per predicted row, oldest first; with
    `with_feedback`, only the rows that have feedback, joined to it."""
    ctx = _ctx(workspace)
    if with_feedback:
        from shipyard.serving.feedback import joined_feedback

        return joined_feedback(ctx, model, version)
    from shipyard.serving.batches import read_predictions

    return read_predictions(ctx, model, version, since)


def feature_skew(view: str, *, model: str | None = None, since: float | dt.datetime | None = None,
                 limit: int | None = None, tolerance: float = 1e-9,
                 workspace: PathLike | None = None) -> SkewReport:
    """Compare the values of feature view `view`'s features served to the models trained through it (or to
    `model`, NAME/V), as the prediction log recorded them, with `get_historical` for the same entity keys at the
    times the server read them (the request's timestamp column, else when it was served): per feature the rows
    compared, matches, mismatches, served-null and offline-null counts, with examples. Floats match within
    `tolerance` (relative), other values exactly. `since` (unix seconds or a datetime) and `limit` (the newest
    rows per model version) narrow the log read."""
    from shipyard.serving.skew import feature_skew as compare

    return compare(_ctx(workspace), view, model=model, since=since, limit=limit, tolerance=tolerance)
