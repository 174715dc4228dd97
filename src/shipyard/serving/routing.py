"""Serving a deployment: which loaded version answers a request, and following the deployment's revisions.

A `RouteTable` is one revision's routes with their loaded models. It is never changed: a new revision makes a
new table, and the server swaps the one reference it reads (a single assignment), so a request that chose its
route before the swap finishes on it and the next one sees the new table whole.

A `Follower` polls the deployment's revision counter (one indexed read) every `poll_seconds` on a thread of its
own; when the routes change it loads any version it does not have yet, then swaps the table. Two servers on one
store therefore agree within a poll interval plus the time to load a new version; a rollback to a version
still loaded takes effect within one poll interval (polls start on a fixed schedule) plus one read."""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.context import Context
    from shipyard.deployments.records import Route
    from shipyard.models.loading import LoadedModel

log = logging.getLogger("shipyard.serving")

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Chosen:
    route: Route
    model: LoadedModel


@dataclass(frozen=True)
class RouteTable:
    deployment: str
    revision: int
    routes: tuple[Route, ...]
    sticky_by: str | None
    answering: tuple[tuple[float, Chosen], ...]  # (cumulative weight up to 100, route)
    shadows: tuple[Chosen, ...]

    @classmethod
    def build(cls, deployment: str, revision: int, routes: list[Route], sticky_by: str | None,
              models: dict[str, LoadedModel]) -> RouteTable:
        answering, shadows, upto = [], [], 0.0
        for route in routes:
            chosen = Chosen(route, models[route.version_id])
            if route.answers:
                upto += route.weight
                answering.append((upto, chosen))
            else:
                shadows.append(chosen)
        return cls(deployment, revision, tuple(routes), sticky_by, tuple(answering), tuple(shadows))

    @property
    def primary(self) -> Chosen | None:
        return next((c for _, c in self.answering if c.route.role == "primary"), None) or (
            self.answering[0][1] if self.answering else None)

    def choose(self, key: str | None) -> Chosen:
        """The answering route for a request: by the hash of its key (the same key, the same route, as long as
        the weights stay), or at random without one."""
        if not self.answering:
            from shipyard.errors import NotFoundError

            raise NotFoundError(f"Deployment '{self.deployment}' has no routes (revision {self.revision}: "
                                "deleted?); create it again or serve another.")
        point = position(key) if key is not None else random.random() * 100.0  # noqa: S311 - not security
        total = self.answering[-1][0]
        point = point * total / 100.0
        for upto, chosen in self.answering:
            if point < upto:
                return chosen
        return self.answering[-1][1]


def position(key: str) -> float:
    """A key's place in [0, 100): uniform over keys, the same in every process and run."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100.0


@dataclass
class Follower:
    """Keeps `table` equal to the deployment's revision in force; `load(ref)` loads a version not yet held."""

    ctx: Context
    deployment: str
    models: dict[str, LoadedModel]  # version id (credit/3) -> loaded model, shared with the app's Served
    load: Callable[[str], LoadedModel]
    poll_seconds: float = POLL_SECONDS
    table: RouteTable | None = None
    on_change: Callable[[RouteTable], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Read the revision in force; when its routes differ from the table's, load what is missing and swap.
        True when the table changed."""
        from shipyard.deployments.revisions import current_routing

        revision, routes, sticky_by = current_routing(self.ctx, self.deployment)
        table = self.table
        if table is not None and tuple(routes) == table.routes and sticky_by == table.sticky_by:
            return False
        for route in routes:
            if route.version_id not in self.models:
                self.models[route.version_id] = self.load(route.version_id)
        new = RouteTable.build(self.deployment, revision, routes, sticky_by, self.models)
        self.table = new  # the swap: one assignment, read whole by every request after it
        if self.on_change is not None:
            self.on_change(new)
        log.info("Deployment %s: revision %d in force (%s)", self.deployment, revision,
                 ", ".join(f"{r.label}={r.version_id}:{r.weight}%" if r.answers else f"shadow={r.version_id}"
                           for r in routes) or "no routes")
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shipyard-deployment", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        import time

        due = time.monotonic() + self.poll_seconds  # polls start on a fixed schedule, however long a read takes
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due = max(due + self.poll_seconds, time.monotonic())
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the store may be away for a while; keep serving the last table
                log.exception("Could not follow deployment %s; serving revision %s until it can",
                              self.deployment, self.table.revision if self.table else "none")
