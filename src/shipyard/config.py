"""Workspace discovery and typed settings: defaults < shipyard.yaml < SHIPYARD_* environment < flags."""

from __future__ import annotations

import contextvars
import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ConfigError, WorkspaceNotFoundError
from shipyard.policy import SPEC_FILE

if TYPE_CHECKING:
    from shipyard.settings import Settings

STATE_DIR = ".shipyard"
WORKSPACE_ENV = "SHIPYARD_WORKSPACE"
USER_ENV = "SHIPYARD_USER"

DEFAULT_SPEC = """\
# Shipyard workspace settings. Every key is optional; shown here are the defaults.
# Environment variables override this file: SHIPYARD_STORE_URL, SHIPYARD_ARTIFACTS_URL, ...
store:
  url: sqlite:///.shipyard/shipyard.db      # or postgresql+psycopg://user@host:5432/db
artifacts:
  url: .shipyard/artifacts                  # or s3://bucket/prefix
  # endpoint_url: http://127.0.0.1:9000     # for MinIO, Ceph or a moto server
tracking:
  flush_interval_seconds: 2.0               # buffered metric points are committed at least this often
  flush_max_points: 5000                    # ... or when this many are waiting
  heartbeat_seconds: 30.0                   # open runs tell the store they are alive this often
  lost_after_seconds: 300.0                 # a running run silent for this long is listed as lost
online:
  url: sqlite:///.shipyard/online.db        # the online feature store; or redis://host:6379/0
"""


@dataclass(frozen=True)
class Workspace:
    """A folder holding shipyard.yaml and .shipyard/, with its resolved settings."""

    root: Path
    settings: Settings
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def store_url(self) -> str:
        return resolve_store_url(self.settings.store.url, self.root)

    @property
    def artifacts_url(self) -> str:
        return resolve_artifacts_url(self.settings.artifacts.url, self.root)


# The actor a task acts for when it was handed one (a pipeline step runs for whoever started the
# pipeline, also on a worker thread or another machine); unset, the process's user acts.
ACTING_AS: contextvars.ContextVar[str | None] = contextvars.ContextVar("shipyard_actor", default=None)


def current_actor() -> str:
    """Who is acting: the task's actor when one was handed over, else SHIPYARD_USER, else the
    operating-system user."""
    handed = ACTING_AS.get()
    if handed:
        return handed
    user = os.environ.get(USER_ENV, "").strip()
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        return f"uid-{os.getuid()}"


def find_root(start: Path | None = None) -> Path:
    """Walk up from `start` (default: the current folder) to the folder holding shipyard.yaml."""
    env = os.environ.get(WORKSPACE_ENV)
    if env and start is None:
        root = Path(env).expanduser().resolve()
        if not (root / SPEC_FILE).is_file():
            raise WorkspaceNotFoundError(
                f"{WORKSPACE_ENV}={env} is not a Shipyard workspace (no {SPEC_FILE} there). "
                f"Run `shipyard init {env}` or unset {WORKSPACE_ENV}."
            )
        return root
    if start is not None and not Path(start).is_dir():
        raise WorkspaceNotFoundError(f"Folder {start} does not exist. Check the path, or create it with `shipyard init {start}`.")
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / SPEC_FILE).is_file():
            return folder
    raise WorkspaceNotFoundError(
        f"No Shipyard workspace in {here} or any parent folder. "
        f"Run `shipyard init` to create one here, or set {WORKSPACE_ENV}."
    )


def init_workspace(path: str | os.PathLike[str] = ".") -> Path:
    """Create shipyard.yaml and .shipyard/ in `path` (kept as they are if present); return the root."""
    root = Path(path).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"Cannot create a workspace at {root}: it is a file. Choose a folder.")
    root.mkdir(parents=True, exist_ok=True)
    spec = root / SPEC_FILE
    if not spec.exists():
        tmp = spec.with_suffix(".yaml.tmp")
        tmp.write_text(DEFAULT_SPEC)
        os.replace(tmp, spec)
    for sub in ("", "artifacts", "logs"):
        (root / STATE_DIR / sub).mkdir(parents=True, exist_ok=True)
    ignore = root / STATE_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return root


def load_workspace(
    start: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Workspace:
    """Find the workspace and resolve its settings from file, environment and `overrides` (flags)."""
    from shipyard.settings import resolve_settings

    root = find_root(Path(start) if start is not None else None)
    settings, sources = resolve_settings(root / SPEC_FILE, os.environ, overrides or {})
    return Workspace(root=root, settings=settings, sources=sources)


def resolve_store_url(url: str, root: Path) -> str:
    """Make a relative SQLite path absolute against the workspace root."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rel = url[len(prefix) :]
        if rel and rel != ":memory:":
            return prefix + str((root / rel).resolve())
    return url


def resolve_artifacts_url(url: str, root: Path) -> str:
    """A bare path is a local folder, relative to the workspace root; URLs pass through."""
    if "://" in url:
        if url.startswith("file://"):
            return str((root / Path(url[len("file://") :]).expanduser()).resolve())
        return url
    return str((root / Path(url).expanduser()).resolve())

