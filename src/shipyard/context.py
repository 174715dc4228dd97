"""The handles a service call works with. `Stores` are process-wide (the metadata database, the blob
store, and the backends chosen by name in the settings); a `Context` is per call: the stores, who is
acting, the workspace and its policy. A server builds one Context per request with the caller as actor."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.config import Workspace, current_actor, load_workspace

if TYPE_CHECKING:
    from shipyard.policy import Policy
    from shipyard.store.blobs import BlobStore
    from shipyard.store.db import MetadataStore


@dataclass
class Stores:
    """The process-wide backends of one workspace configuration, opened once and shared by every call."""

    metadata: MetadataStore
    workspace: Workspace
    _blobs: BlobStore | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None:
            from shipyard.store.blobs import BlobStore

            settings = self.workspace.settings.artifacts
            with self._lock:
                if self._blobs is None:
                    self._blobs = BlobStore(
                        self.workspace.artifacts_url, endpoint_url=settings.endpoint_url, options=settings.options
                    )
        return self._blobs

    def close(self) -> None:
        self.metadata.dispose()

    def after_fork(self) -> None:
        """In a forked child: forget the parent's pooled database connections (without closing them under the
        parent) and its blob-store client (an S3 client refuses to work in a forked process)."""
        self.metadata.engine.dispose(close=False)
        self._lock = threading.Lock()  # a new one: another thread of the parent may have held the old one
        self._blobs = None


@dataclass(frozen=True)
class Context:
    """One call's view: the stores, the actor its audit events name, the workspace and its policy."""

    stores: Stores
    actor: str
    workspace: Workspace
    policy: Policy

    @property
    def store(self) -> MetadataStore:
        return self.stores.metadata

    @property
    def blobs(self) -> BlobStore:
        return self.stores.blobs

    def acting_as(self, actor: str) -> Context:
        """The same stores and workspace, with another actor (a server's authenticated caller)."""
        return Context(self.stores, check_actor(actor), self.workspace, self.policy)


def check_actor(actor: object) -> str:
    from shipyard.errors import ValidationError

    if not isinstance(actor, str) or not actor.strip() or len(actor) > 250:
        raise ValidationError(f"Invalid actor {actor!r}: give a user name of 1-250 characters.")
    return actor.strip()


_lock = threading.Lock()
_stores: dict[tuple[Any, ...], Stores] = {}
_stores_pid = os.getpid()


def open_stores(workspace: Workspace) -> Stores:
    """The stores for a workspace's settings, opened once per process (a forked child opens its own)."""
    from shipyard.store.db import MetadataStore

    global _stores_pid
    key = (str(workspace.root), workspace.settings.model_dump_json())
    with _lock:
        if _stores_pid != os.getpid():  # a forked child must not share its parent's connections
            _stores.clear()
            _stores_pid = os.getpid()
        stores = _stores.get(key)
        if stores is None:
            metadata = MetadataStore(workspace.store_url, busy_timeout_ms=workspace.settings.store.busy_timeout_ms)
            stores = _stores[key] = Stores(metadata, workspace)
        return stores


def open_context(
    start: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    actor: str | None = None,
) -> Context:
    """A context for the workspace found from `start` (or the current folder), acting as `actor`
    (default: SHIPYARD_USER, else the operating-system user)."""
    from shipyard.policy import Policy

    workspace = load_workspace(start, overrides)
    return Context(open_stores(workspace), check_actor(actor) if actor is not None else current_actor(),
                   workspace, Policy(workspace.root))


def close_all() -> None:
    """Dispose every open store (tests, and code that switches workspaces)."""
    with _lock:
        for stores in _stores.values():
            stores.close()
        _stores.clear()
