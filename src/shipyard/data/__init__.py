"""Datasets: versions, profiles, validation and lineage.

The functions here work on the workspace found from the current folder (or `workspace=`):

    shipyard.data.add("credit", "data/credit.csv", message="March extract")
    frame = shipyard.data.load("credit@latest")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.context import Context
    from shipyard.data.compare import VersionDiff
    from shipyard.data.records import AddResult, DatasetVersion, StatusReport
    from shipyard.data.validation import ValidationReport

PathLike = str | os.PathLike[str]


def _ctx(workspace: PathLike | None) -> Context:
    from shipyard.context import open_context

    return open_context(workspace)


def add(
    name: str,
    source: PathLike | pd.DataFrame,
    *,
    message: str | None = None,
    kind: str = "auto",
    key: Sequence[str] | None = None,
    parents: Sequence[str] = (),
    workspace: PathLike | None = None,
) -> AddResult:
    """Snapshot a file, a folder or a table (path or DataFrame) as the next version of `name`."""
    from shipyard.data.versions import add_version

    return add_version(_ctx(workspace), name, source, message=message, kind=kind, key=key, parents=parents)


def get(ref: str, *, workspace: PathLike | None = None) -> DatasetVersion:
    from shipyard.data.versions import get_version

    return get_version(_ctx(workspace), ref)


def log(name: str, *, workspace: PathLike | None = None) -> list[DatasetVersion]:
    """The versions of a dataset, newest first."""
    from shipyard.data.versions import list_versions

    return list_versions(_ctx(workspace), name)


def load(ref: str, *, workspace: PathLike | None = None) -> pd.DataFrame:
    """A table version as a pandas DataFrame, e.g. load("credit@3")."""
    from shipyard.data.workspace_files import load as load_frame

    return load_frame(_ctx(workspace), ref)


def status(name: str, path: PathLike, *, workspace: PathLike | None = None) -> StatusReport:
    from shipyard.data.workspace_files import status as folder_status

    return folder_status(_ctx(workspace), name, path)


def checkout(ref: str, dest: PathLike, *, force: bool = False, workspace: PathLike | None = None) -> list[Any]:
    from shipyard.data.workspace_files import checkout as write_files

    return write_files(_ctx(workspace), ref, dest, force=force)


def diff(ref_a: str, ref_b: str, *, key: list[str] | None = None, workspace: PathLike | None = None) -> VersionDiff:
    from shipyard.data.compare import diff_versions

    return diff_versions(_ctx(workspace), ref_a, ref_b, key=key)


def infer_schema(ref: str, *, output: PathLike | None = None, key: list[str] | None = None,
                 workspace: PathLike | None = None) -> Any:
    """Infer a schema contract from a version; writes schemas/NAME.yaml and returns its path."""
    from shipyard.data.checks import infer

    return infer(_ctx(workspace), ref, output=output, key=key)


def validate(ref: str, *, schema: PathLike | None = None, reference: str | None = None,
             workspace: PathLike | None = None) -> ValidationReport:
    """Validate a version against its schema contract and a reference profile; the result is kept."""
    from shipyard.data.checks import validate as check

    return check(_ctx(workspace), ref, schema_file=schema, reference=reference)[0]
