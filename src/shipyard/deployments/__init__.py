"""Deployments: named endpoints whose routes (a primary, a canary, a shadow or A/B variants) change through
audited revisions that servers follow without restarting.

The functions here work on the workspace found from the current folder (or `workspace=`):

    shipyard.deployments.create("credit-api", "credit@champion")
    shipyard.deployments.canary("credit-api", "credit/4", percent=10)
    shipyard.deployments.promote("credit-api")      # or rollback("credit-api")
"""

from __future__ import annotations

import builtins
import os
from typing import TYPE_CHECKING

from shipyard.models.guards import register_archive_guard

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from shipyard.context import Context
    from shipyard.deployments.analysis import AnalysisPolicy
    from shipyard.deployments.records import Deployment, Revision

PathLike = str | os.PathLike[str]


def _routed(conn: Connection, model: str, version: int) -> str | None:
    from shipyard.deployments.revisions import archive_guard

    return archive_guard(conn, model, version)


register_archive_guard(_routed)  # a version a deployment routes to cannot be archived


def _ctx(workspace: PathLike | None) -> Context:
    from shipyard.context import open_context

    return open_context(workspace)


def create(name: str, model: str, *, reason: str | None = None, workspace: PathLike | None = None) -> Revision:
    """A deployment serving `model` (credit/3, or credit@champion resolved to its version now) to every request."""
    from shipyard.deployments.strategies import create as run

    return run(_ctx(workspace), name, model, reason=reason)


def canary(name: str, model: str, percent: int, *, sticky_by: str | None = None, reason: str | None = None,
           workspace: PathLike | None = None) -> Revision:
    """Send `percent` (1-100; 100 promotes) of the requests to `model`, sticky by a header or input field if given."""
    from shipyard.deployments.strategies import canary as run

    return run(_ctx(workspace), name, model, percent, sticky_by=sticky_by, reason=reason)


def shadow(name: str, model: str, *, reason: str | None = None, workspace: PathLike | None = None) -> Revision:
    """Copy every request to `model`; its answers are logged, never returned."""
    from shipyard.deployments.strategies import shadow as run

    return run(_ctx(workspace), name, model, reason=reason)


def unshadow(name: str, *, reason: str | None = None, workspace: PathLike | None = None) -> Revision:
    from shipyard.deployments.strategies import unshadow as run

    return run(_ctx(workspace), name, reason=reason)


def ab(name: str, variants: dict[str, tuple[str, int]], *, sticky_by: str | None = None, reason: str | None = None,
       workspace: PathLike | None = None) -> Revision:
    """Split the requests between variants {label: (model, weight)}, the weights summing to 100."""
    from shipyard.deployments.strategies import ab as run

    return run(_ctx(workspace), name, variants, sticky_by=sticky_by, reason=reason)


def promote(name: str, *, variant: str | None = None, reason: str | None = None,
            workspace: PathLike | None = None) -> Revision:
    """The canary (or the named A/B variant) becomes the only route."""
    from shipyard.deployments.strategies import promote as run

    return run(_ctx(workspace), name, variant=variant, reason=reason)


def rollback(name: str, *, reason: str | None = None, workspace: PathLike | None = None) -> Revision:
    """Back to the routes of the previous revision."""
    from shipyard.deployments.strategies import rollback as run

    return run(_ctx(workspace), name, reason=reason)


def delete(name: str, *, reason: str | None = None, workspace: PathLike | None = None) -> Revision:
    from shipyard.deployments.strategies import delete as run

    return run(_ctx(workspace), name, reason=reason)


def apply(name: str, *, workspace: PathLike | None = None) -> Revision:
    """Make the deployment what deploy.NAME of shipyard.yaml declares."""
    from shipyard.deployments.analysis import apply as run

    return run(_ctx(workspace), name)


def status(name: str, *, workspace: PathLike | None = None) -> Deployment:
    """The deployment and the revision in force, with its routes."""
    from shipyard.deployments.revisions import get_deployment

    return get_deployment(_ctx(workspace), name)


def history(name: str, *, workspace: PathLike | None = None) -> builtins.list[Revision]:
    """Every revision, newest first."""
    from shipyard.deployments.revisions import history as read

    return read(_ctx(workspace), name)


def policy(name: str, *, workspace: PathLike | None = None) -> AnalysisPolicy:
    """The canary analysis policy: deploy.NAME of shipyard.yaml, else the defaults."""
    from shipyard.deployments.analysis import analysis_policy

    return analysis_policy(_ctx(workspace), name)


def list(*, include_deleted: bool = False, workspace: PathLike | None = None) -> builtins.list[Deployment]:  # noqa: A001
    """The deployments, by name."""
    from shipyard.deployments.revisions import list_deployments

    return list_deployments(_ctx(workspace), include_deleted=include_deleted)
