"""Reading and verifying the audit trail."""

from __future__ import annotations

import re
from typing import Any

from shipyard.context import Context
from shipyard.errors import ValidationError
from shipyard.store import audit
from shipyard.store.audit import AuditEvent, ChainHead, ChainReport

_EXPECT = re.compile(r"(?:([0-9]+):)?([0-9a-fA-F]{64})")


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


def audit_head(ctx: Context) -> ChainHead:
    """The newest event's sequence number and hash. Kept outside the database, it lets
    `verify_audit(expect=...)` detect a rewrite of the chain up to that event."""
    with ctx.store.read() as conn:
        return audit.read_head(conn)


def parse_expect(value: str) -> tuple[int | None, str]:
    """Split an expected head, `HASH` or `SEQ:HASH` as `shipyard audit head` prints it, into (seq, hash)."""
    match = _EXPECT.fullmatch(value.strip())
    if match is None:
        raise ValidationError(
            f"The expected audit head {value!r} is malformed: expected 64 hexadecimal characters (a SHA-256 "
            "hash), or SEQ:HASH as `shipyard audit head` prints it (e.g. 42:9f86d081…). "
            "Copy the whole value that `shipyard audit head` printed."
        )
    seq, digest = match.groups()
    return (int(seq) if seq is not None else None), digest.lower()


def verify_audit(ctx: Context, *, expect: str | None = None) -> ChainReport:
    """Walk the chain. With `expect` (`HASH` or `SEQ:HASH` from `audit_head`, kept outside the
    database), the chain must also still contain that event, unchanged."""
    expect_seq, expect_hash = parse_expect(expect) if expect is not None else (None, None)
    with ctx.store.read(snapshot=True) as conn:
        return audit.verify(conn, expect_hash=expect_hash, expect_seq=expect_seq)


def describe(report: ChainReport) -> str:
    if report.ok:
        text = f"Audit chain intact: {report.events_checked} events verified."
        if report.expected_seq == 0:
            text += " The expected head is the empty chain's, which every chain extends."
        elif report.expected_hash is not None:
            text += f" It still contains event {report.expected_seq} with the expected hash {report.expected_hash}."
        return text
    if report.broken_seq is None:
        return (
            f"Audit chain BROKEN: {report.reason}. "
            f"Its {report.events_checked} events link up among themselves, as they would after a consistent rewrite."
        )
    return (
        f"Audit chain BROKEN at event {report.broken_seq}: {report.reason}. "
        f"{report.events_checked} events before it verified."
    )


def to_json(events: list[AuditEvent]) -> list[dict[str, Any]]:
    return [e.to_dict() for e in events]
