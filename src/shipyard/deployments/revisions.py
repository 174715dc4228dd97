"""Deployments in the store: reading the revision in force (the cheap read servers poll), the history, and
the one audited way to change a deployment — a new revision, checked and written in one transaction."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import Connection, select

from shipyard.context import Context
from shipyard.deployments.records import Deployment, Revision, Route, Strategy, routes_json
from shipyard.errors import GateFailed, NotFoundError, ValidationError, did_you_mean
from shipyard.store import lineage
from shipyard.store.db import now_ms
from shipyard.store.lineage import Node
from shipyard.store.tables import deployment_revisions, deployments

DEPLOYMENT_REVISION = lineage.register_kind("deployment_revision", "a revision of a deployment: the routes it set")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")

# The revision in force, by primary keys: one indexed read.
_CURRENT = (
    select(deployments.c.revision, deployments.c.deleted, deployment_revisions.c.routes,
           deployment_revisions.c.sticky_by)
    .join(deployment_revisions, (deployment_revisions.c.deployment == deployments.c.name)
          & (deployment_revisions.c.revision == deployments.c.revision))
)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ValidationError(
            f"Invalid deployment name {name!r}: use 1-128 letters, digits, '_', '-' or '.', starting with a letter "
            "or digit (for example 'credit-api')."
        )
    return name


# -- reading -----------------------------------------------------------------------------------


def current_revision(ctx: Context, name: str) -> tuple[int, list[Route]]:
    """The revision number in force and its routes, in one indexed read: what a server polls. A deleted
    deployment has a revision with no routes."""
    from shipyard.deployments.records import routes_from_json

    with ctx.store.read() as conn:
        row = conn.execute(_CURRENT.where(deployments.c.name == name)).first()
        if row is None:
            _unknown(conn, name)
    return int(row.revision), ([] if row.deleted else routes_from_json(row.routes))


def current_routing(ctx: Context, name: str) -> tuple[int, list[Route], str | None]:
    """current_revision plus the header or input field that keeps a client on one route: what a server follows."""
    from shipyard.deployments.records import routes_from_json

    with ctx.store.read() as conn:
        row = conn.execute(_CURRENT.where(deployments.c.name == name)).first()
        if row is None:
            _unknown(conn, name)
    return int(row.revision), ([] if row.deleted else routes_from_json(row.routes)), row.sticky_by


def resolve_routes(ctx: Context, name: str) -> list[str]:
    """The model versions (NAME/V) a server serving the deployment must have loaded, primary first."""
    _, routes = current_revision(ctx, name)
    return list(dict.fromkeys(route.version_id for route in routes))


def get_deployment(ctx: Context, name: str, *, deleted_ok: bool = False) -> Deployment:
    with ctx.store.read() as conn:
        return find_deployment(conn, name, deleted_ok=deleted_ok)


def find_deployment(conn: Connection, name: str, *, deleted_ok: bool = False) -> Deployment:
    """The deployment and its revision in force, on the caller's connection."""
    row = conn.execute(select(deployments).where(deployments.c.name == name)).first()
    if row is None:
        _unknown(conn, name)
    if row.deleted and not deleted_ok:
        raise NotFoundError(
            f"Deployment '{name}' was deleted (revision {row.revision}); `shipyard deploy history {name}` shows "
            f"what it served. Create it again with `shipyard deploy create {name} --model NAME/VERSION`.",
            deployment=name,
        )
    current = conn.execute(select(deployment_revisions).where(deployment_revisions.c.deployment == name,
                                                             deployment_revisions.c.revision == row.revision)).one()
    return Deployment(row.name, int(row.revision), int(row.created), row.created_by, int(row.updated),
                      Revision.from_row(current), bool(row.deleted))


def find_revision(conn: Connection, name: str, revision: int) -> Revision | None:
    row = conn.execute(select(deployment_revisions).where(deployment_revisions.c.deployment == name,
                                                         deployment_revisions.c.revision == revision)).first()
    return Revision.from_row(row) if row is not None else None


def _unknown(conn: Connection, name: str) -> NoReturn:
    check_name(name)
    names = conn.execute(select(deployments.c.name).where(deployments.c.deleted.is_(False))).scalars().all()
    raise NotFoundError(
        f"No deployment named '{name}'.{did_you_mean(name, names)} Deployments: {', '.join(sorted(names)) or 'none yet'}"
        f". Create one with `shipyard deploy create {name} --model NAME/VERSION`.", deployment=name,
    )


def history(ctx: Context, name: str) -> list[Revision]:
    """Every revision of the deployment, newest first (also of a deleted one)."""
    with ctx.store.read() as conn:
        find_deployment(conn, check_name(name), deleted_ok=True)
        rows = conn.execute(select(deployment_revisions).where(deployment_revisions.c.deployment == name)
                            .order_by(deployment_revisions.c.revision.desc())).all()
    return [Revision.from_row(r) for r in rows]


def list_deployments(ctx: Context, *, include_deleted: bool = False) -> list[Deployment]:
    with ctx.store.read() as conn:
        query = select(deployments.c.name).order_by(deployments.c.name)
        if not include_deleted:
            query = query.where(deployments.c.deleted.is_(False))
        return [find_deployment(conn, n, deleted_ok=True) for n in conn.execute(query).scalars().all()]


def routed_to(conn: Connection, model: str, version: int) -> list[tuple[str, int, Route]]:
    """(deployment, revision, route) of every live deployment whose revision in force routes to the version."""
    from shipyard.deployments.records import routes_from_json

    rows = conn.execute(select(deployments.c.name, deployments.c.revision, deployment_revisions.c.routes)
                        .join(deployment_revisions, (deployment_revisions.c.deployment == deployments.c.name)
                              & (deployment_revisions.c.revision == deployments.c.revision))
                        .where(deployments.c.deleted.is_(False))
                        .where(deployment_revisions.c.routes.contains(json.dumps(model)))).all()
    return [(r.name, int(r.revision), route) for r in rows for route in routes_from_json(r.routes)
            if route.model == model and route.version == version]


def archive_guard(conn: Connection, model: str, version: int) -> str | None:
    """Why a routed version may not be archived: the deployments that route to it."""
    found = routed_to(conn, model, version)
    if not found:
        return None
    where = ", ".join(f"deployment '{name}' (revision {revision}, {route.role} '{route.label}')"
                      for name, revision, route in found)
    return (f"{where} routes traffic to it. Move the deployment off it first (`shipyard deploy promote`, "
            f"`rollback`, `shadow --off` or `delete`)")


# -- changing ----------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a change sets: the next revision's strategy and routes, and which routes must pass the gates."""

    strategy: Strategy
    routes: list[Route]
    reason: str
    sticky_by: str | None = None
    restores: int | None = None
    analysis: dict[str, Any] | None = None
    check_gates: bool = True  # a rollback returns to routes that were allowed; it checks only that they exist


class NothingToDo(Exception):
    """Raised by a plan when the deployment already is as asked: nothing is written, nothing audited."""


def change(ctx: Context, name: str, action: str, plan: Callable[[Connection, Deployment | None], Plan],
           *, create: bool = False) -> Revision:
    """Write the next revision of `name` as `plan` decides from the revision in force, in one audited
    transaction with its lineage: the check and the change commit together, or nothing does.

    `create`: the deployment may not exist yet (or be deleted); otherwise it must exist."""
    check_name(name)
    payload: dict[str, Any] = {}
    try:
        with ctx.store.mutation(ctx.actor, action, "deployment", name, payload) as conn:
            row = conn.execute(select(deployments.c.name).where(deployments.c.name == name)).first()
            current = find_deployment(conn, name, deleted_ok=True) if row is not None else None
            if not create and (current is None or current.deleted):
                find_deployment(conn, name)  # raises: unknown, or deleted
            live = current if current is not None and not current.deleted else None
            planned = plan(conn, live)
            _check_routes(conn, ctx, name, planned, live)
            number = (current.revision if current is not None else 0) + 1
            now = now_ms()
            if current is None:
                conn.execute(deployments.insert(), {"name": name, "revision": number, "deleted": False, "created": now,
                                                    "created_by": ctx.actor, "updated": now})
            else:
                conn.execute(deployments.update().where(deployments.c.name == name).values(
                    revision=number, deleted=planned.strategy == "deleted", updated=now))
            conn.execute(deployment_revisions.insert(), {
                "deployment": name, "revision": number, "strategy": planned.strategy,
                "routes": routes_json(planned.routes), "sticky_by": planned.sticky_by, "restores": planned.restores,
                "reason": planned.reason, "actor": ctx.actor, "created": now,
                "analysis": json.dumps(planned.analysis, allow_nan=False) if planned.analysis is not None else None,
            })
            revision_id = f"{name}/{number}"
            lineage.add_edges(conn, [(Node("model_version", r.version_id), Node(DEPLOYMENT_REVISION, revision_id),
                                      "input") for r in planned.routes])
            payload.update({"revision": number, "strategy": planned.strategy,
                            "routes": [r.to_dict() for r in planned.routes], "reason": planned.reason})
            if planned.restores is not None:
                payload["restores"] = planned.restores
            if planned.analysis is not None:
                payload["analysis"] = planned.analysis
    except NothingToDo:
        return get_deployment(ctx, name).current
    return get_deployment(ctx, name, deleted_ok=True).current


def _check_routes(conn: Connection, ctx: Context, name: str, plan: Plan, current: Deployment | None) -> None:
    """Every version exists and is active; a version that starts answering traffic passed its gates (or has
    waivers) and reviews. A shadow may take any active version: it never answers."""
    from shipyard.gates.promotion import promotion_state
    from shipyard.models.registry import find_version

    answering = {r.version_id for r in current.routes if r.answers} if current is not None else set()
    for route in plan.routes:
        version = find_version(conn, route.version_id)
        if version.status == "archived":
            raise ValidationError(
                f"{route.version_id} is archived, so deployment '{name}' cannot route to it. Choose an active "
                f"version (`shipyard models versions {route.model}`).", version=route.version_id,
            )
        if not plan.check_gates or not route.answers or route.version_id in answering:
            continue
        state = promotion_state(conn, ctx, route.version_id)
        if not state.allowed:
            raise GateFailed(
                f"Refusing to route {route.label} traffic of deployment '{name}' to {route.version_id}; it may not "
                "serve yet:\n  - " + "\n  - ".join(state.problems)
                + f"\nRun its gates (`shipyard models gate {route.version_id}`) or waive a failed one (`shipyard models "
                f"waive {route.version_id} --gate NAME --reason \"…\"`); a shadow takes any version "
                f"(`shipyard deploy shadow {name} --model {route.version_id}`).",
                deployment=name, version=route.version_id, problems=state.problems,
            )
