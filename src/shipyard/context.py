"""The handles a service call works with: the workspace, its metadata store, its blob store, the actor."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.config import Workspace, current_actor, load_workspace

if TYPE_CHECKING:
    from shipyard.store.blobs import BlobStore
    from shipyard.store.db import MetadataStore


@dataclass
class Context:
    workspace: Workspace
    store: MetadataStore
    _blobs: BlobStore | None = field(default=None, repr=False)

    @property
    def actor(self) -> str:
        return current_actor()

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None:
            from shipyard.store.blobs import BlobStore

            settings = self.workspace.settings.artifacts
            self._blobs = BlobStore(
                self.workspace.artifacts_url,
                endpoint_url=settings.endpoint_url,
                options=settings.options,
            )
        return self._blobs

    def close(self) -> None:
        self.store.dispose()


_lock = threading.Lock()
_cache: dict[tuple[Any, ...], Context] = {}
_cache_pid = os.getpid()


def open_context(
    start: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Context:
    """The context for the workspace found from `start` (or the current folder), opened once per process."""
    from shipyard.store.db import MetadataStore

    global _cache_pid
    workspace = load_workspace(start, overrides)
    key = (str(workspace.root), workspace.settings.model_dump_json())
    with _lock:
        if _cache_pid != os.getpid():  # a forked child must not share its parent's connections
            _cache.clear()
            _cache_pid = os.getpid()
        ctx = _cache.get(key)
        if ctx is None:
            store = MetadataStore(workspace.store_url, busy_timeout_ms=workspace.settings.store.busy_timeout_ms)
            ctx = _cache[key] = Context(workspace, store)
        return ctx


def close_all() -> None:
    """Dispose every cached context (tests, and code that switches workspaces)."""
    with _lock:
        for ctx in _cache.values():
            ctx.close()
        _cache.clear()
