"""What a deployment is made of: routes (a role, a label, a model version and a weight) and revisions."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

Role = Literal["primary", "canary", "shadow", "variant"]
Strategy = Literal["single", "canary", "shadow", "ab", "deleted"]
ROLES: tuple[str, ...] = ("primary", "canary", "shadow", "variant")


@dataclass(frozen=True)
class Route:
    """Where a share of the traffic goes. `weight` is a percentage of the requests (a shadow has 0: it gets
    a copy of every request and never answers)."""

    role: Role
    label: str
    model: str
    version: int
    weight: int

    @property
    def version_id(self) -> str:
        return f"{self.model}/{self.version}"

    @property
    def answers(self) -> bool:
        return self.role != "shadow"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "version_id": self.version_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Route:
        return cls(data["role"], data["label"], data["model"], int(data["version"]), int(data["weight"]))


def routes_json(routes: list[Route]) -> str:
    return json.dumps([{k: v for k, v in r.to_dict().items() if k != "version_id"} for r in routes])


def routes_from_json(text: str) -> list[Route]:
    return [Route.from_dict(r) for r in json.loads(text)]


@dataclass
class Revision:
    """One change of a deployment: the routes in force from then on, why, and by whom. `restores` names
    the revision a rollback went back to; `analysis` holds an automated decision with its numbers."""

    deployment: str
    revision: int
    strategy: Strategy
    routes: list[Route]
    sticky_by: str | None
    reason: str | None
    actor: str
    created: int
    restores: int | None = None
    analysis: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        """The lineage id of the revision: NAME/REVISION."""
        return f"{self.deployment}/{self.revision}"

    def route(self, role: str) -> Route | None:
        return next((r for r in self.routes if r.role == role), None)

    @property
    def primary(self) -> Route | None:
        return self.route("primary")

    @property
    def canary(self) -> Route | None:
        return self.route("canary")

    @property
    def shadow(self) -> Route | None:
        return self.route("shadow")

    @property
    def variants(self) -> list[Route]:
        return [r for r in self.routes if r.role == "variant"]

    def to_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "revision": self.revision, "strategy": self.strategy,
                "routes": [r.to_dict() for r in self.routes], "sticky_by": self.sticky_by, "reason": self.reason,
                "actor": self.actor, "created": self.created, "restores": self.restores, "analysis": self.analysis}

    @classmethod
    def from_row(cls, row: Any) -> Revision:
        return cls(row.deployment, int(row.revision), row.strategy, routes_from_json(row.routes), row.sticky_by,
                   row.reason, row.actor, int(row.created), row.restores,
                   json.loads(row.analysis) if row.analysis else None)


@dataclass
class Deployment:
    """A named endpoint and the revision in force."""

    name: str
    revision: int
    created: int
    created_by: str
    updated: int
    current: Revision
    deleted: bool = False

    @property
    def strategy(self) -> Strategy:
        return self.current.strategy

    @property
    def routes(self) -> list[Route]:
        return self.current.routes

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "revision": self.revision, "created": self.created, "created_by": self.created_by,
                "updated": self.updated, "deleted": self.deleted, "strategy": self.strategy,
                "current": self.current.to_dict()}
