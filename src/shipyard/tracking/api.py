"""Module-level read and admin calls of the Python API, on the workspace found from the current folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.tracking.records import MetricPoint, RunPage, RunRecord

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context

PathLike = str | os.PathLike[str]


def _ctx(workspace: PathLike | None) -> Context:
    from shipyard.context import open_context

    return open_context(workspace)


def search_runs(
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    *,
    max_results: int = 1000,
    page_token: str | None = None,
    experiment: str | Sequence[str] | None = None,
    include_deleted: bool = False,
    top_level: bool = False,
    output: Literal["runs", "pandas"] = "runs",
    workspace: PathLike | None = None,
) -> RunPage | pd.DataFrame:
    """Search runs, e.g. search_runs("metrics.auc > 0.9 and params.model = 'rf'", ["metrics.auc DESC"]);
    top_level=True leaves out nested runs (a pipeline's step runs)."""
    from shipyard.tracking import search

    return search.search_runs(
        _ctx(workspace), filter, order_by, max_results=max_results, page_token=page_token,
        experiment=experiment, include_deleted=include_deleted, top_level=top_level,
        output=output,
    )


def get_run(run_id: str, *, workspace: PathLike | None = None) -> RunRecord:
    from shipyard.tracking import runs

    return runs.get_run(_ctx(workspace), run_id)


def get_metric_history(
    run_id: str, key: str, *, max_points: int | None = None, workspace: PathLike | None = None
) -> list[MetricPoint]:
    from shipyard.tracking import runs

    return runs.get_metric_history(_ctx(workspace), run_id, key, max_points=max_points)


def delete_run(run_id: str, *, purge: bool = False, workspace: PathLike | None = None) -> str:
    from shipyard.tracking import runs

    return runs.delete_run(_ctx(workspace), run_id, purge=purge)


def download_artifact(run_id: str, path: str, dest: PathLike, *, workspace: PathLike | None = None) -> Path:
    from shipyard.tracking import artifacts

    return artifacts.download_artifact(_ctx(workspace), run_id, path, dest)

