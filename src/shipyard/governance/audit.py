"""Reading and verifying the audit trail."""

from __future__ import annotations

from typing import Any

from shipyard.context import Context
from shipyard.errors import ValidationError
from shipyard.store import audit
from shipyard.store.audit import AuditEvent, ChainReport


def audit_log(
    ctx: Context,
    *,
    object_kind: str | None = None,
    object_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 100,
    newest_first: bool = True,
) -> list[AuditEvent]:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError(f"limit must be a positive integer, got {limit!r}.")
    with ctx.store.read() as conn:
        return audit.list_events(
            conn, object_kind=object_kind, object_id=object_id, actor=actor, action=action,
            limit=limit, newest_first=newest_first,
        )


def verify_audit(ctx: Context) -> ChainReport:
    with ctx.store.read() as conn:
        return audit.verify(conn)


def describe(report: ChainReport) -> str:
    if report.ok:
        return f"Audit chain intact: {report.events_checked} events verified."
    return (
        f"Audit chain BROKEN at event {report.broken_seq}: {report.reason}. "
        f"{report.events_checked} events before it verified."
    )


def to_json(events: list[AuditEvent]) -> list[dict[str, Any]]:
    return [e.to_dict() for e in events]
