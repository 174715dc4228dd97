"""What someone with write access to the database can do to the audit trail, for tests to detect."""

from __future__ import annotations

from sqlalchemy import create_engine, select, update

from shipyard.store.audit import event_hash
from shipyard.store.tables import audit_events, audit_head


def rewrite_chain(url: str, seq: int, payload: str) -> None:
    """Give event `seq` a new payload and recompute its hash, every later event's link and hash, and
    the head: a consistent rewrite that walking the chain alone cannot tell from the original."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            before = conn.execute(select(audit_events.c.hash).where(audit_events.c.seq == seq - 1)).scalar()
            prev = before if before is not None else "0" * 64
            rows = conn.execute(select(audit_events).where(audit_events.c.seq >= seq).order_by(audit_events.c.seq))
            for row in rows.all():
                body = payload if row.seq == seq else row.payload
                digest = event_hash(
                    row.seq, row.time, row.actor, row.action, row.object_kind, row.object_id, body, prev
                )
                conn.execute(
                    update(audit_events)
                    .where(audit_events.c.seq == row.seq)
                    .values(payload=body, prev_hash=prev, hash=digest)
                )
                prev = digest
            conn.execute(update(audit_head).values(hash=prev))
    finally:
        engine.dispose()
