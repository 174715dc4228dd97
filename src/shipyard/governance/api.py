"""The audit trail in the public Python API, on the workspace found from the current folder."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.context import Context

PathLike = str | os.PathLike[str]


def _ctx(workspace: PathLike | None) -> Context:
    from shipyard.context import open_context

    return open_context(workspace)


def audit_log(**filters: Any) -> list[Any]:
    from shipyard.governance import audit

    workspace = filters.pop("workspace", None)
    return audit.audit_log(_ctx(workspace), **filters)


def audit_head(*, workspace: PathLike | None = None) -> Any:
    """The newest audit event's sequence number and hash; `str()` of it is the `SEQ:HASH` that
    `verify_audit(expect=...)` takes. Keep it outside the database."""
    from shipyard.governance import audit

    return audit.audit_head(_ctx(workspace))


def verify_audit(*, expect: str | None = None, workspace: PathLike | None = None) -> Any:
    """Walk the audit chain; with `expect` (`SEQ:HASH` or `HASH`, as `shipyard audit head` prints it and
    kept outside the database) the chain must also still contain that event, unchanged."""
    from shipyard.governance import audit

    return audit.verify_audit(_ctx(workspace), expect=expect)
