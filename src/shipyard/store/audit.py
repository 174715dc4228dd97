"""The audit trail: every mutation appends an event to a SHA-256 hash chain in its own transaction."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from shipyard.errors import IntegrityError
from shipyard.store.tables import audit_events, audit_head

GENESIS = "0" * 64
_HEAD_ID = 1
# Built once: executing prebuilt statements with parameters skips per-call statement construction.
_SELECT_HEAD = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == _HEAD_ID).with_for_update()
_INSERT_EVENT = insert(audit_events)
_UPDATE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == _HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    time: int  # milliseconds since the epoch
    actor: str
    action: str
    object_kind: str
    object_id: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChainHead:
    """The newest event's sequence number and hash (seq 0 and GENESIS for an empty chain)."""

    seq: int
    hash: str

    def __str__(self) -> str:
        # The copyable form `shipyard audit verify --expect` accepts.
        return f"{self.seq}:{self.hash}"

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "expect": str(self)}


@dataclass(frozen=True)
class ChainReport:
    """The result of walking the chain: ok, or the first broken link and why.

    `expected_hash` is the hash verify was asked to find (from a head recorded outside the
    database); `expected_seq` is where it was expected, or where it was found when only the hash
    was given."""

    ok: bool
    events_checked: int
    head_seq: int
    broken_seq: int | None = None
    reason: str | None = None
    expected_seq: int | None = None
    expected_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def canonical(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def event_hash(
    seq: int, time_ms: int, actor: str, action: str, kind: str, object_id: str, payload: str, prev: str
) -> str:
    body = canonical([seq, time_ms, actor, action, kind, object_id, payload, prev])
    return hashlib.sha256(body.encode()).hexdigest()


def lock_head(conn: Connection) -> None:
    """Take the chain's lock for the rest of the transaction (a no-op read on SQLite, whose writer
    already holds the database's write lock)."""
    conn.execute(_SELECT_HEAD)


def append(
    conn: Connection, actor: str, action: str, object_kind: str, object_id: str, payload: dict[str, Any]
) -> int:
    """Append one event inside the caller's transaction; returns its sequence number.

    The head row is read FOR UPDATE, which on PostgreSQL serialises concurrent appenders; on SQLite
    the writer already holds the database's write lock (BEGIN IMMEDIATE)."""
    head = conn.execute(_SELECT_HEAD).first()
    if head is None:
        raise IntegrityError(
            "The audit chain head record is missing, so no event can be appended. "
            "Run `shipyard audit verify` to see what was removed from the audit tables."
        )
    prev_seq, prev_hash = head.seq, head.hash
    seq = prev_seq + 1
    time_ms = time.time_ns() // 1_000_000
    body = canonical(payload)
    digest = event_hash(seq, time_ms, actor, action, object_kind, object_id, body, prev_hash)
    conn.execute(
        _INSERT_EVENT,
        {
            "seq": seq,
            "time": time_ms,
            "actor": actor,
            "action": action,
            "object_kind": object_kind,
            "object_id": object_id,
            "payload": body,
            "prev_hash": prev_hash,
            "hash": digest,
        },
    )
    conn.execute(_UPDATE_HEAD, {"new_seq": seq, "new_hash": digest})
    return seq


def list_events(
    conn: Connection,
    *,
    object_kind: str | None = None,
    object_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 100,
    newest_first: bool = True,
) -> list[AuditEvent]:
    conds = []
    if object_kind:
        conds.append(audit_events.c.object_kind == object_kind)
    if object_id:
        conds.append(audit_events.c.object_id == object_id)
    if actor:
        conds.append(audit_events.c.actor == actor)
    if action:
        conds.append(audit_events.c.action == action)
    order = audit_events.c.seq.desc() if newest_first else audit_events.c.seq.asc()
    query = select(audit_events).where(*conds).order_by(order).limit(limit)
    return [_event(row) for row in conn.execute(query)]


def _event(row: Any) -> AuditEvent:
    try:
        payload = json.loads(row.payload)
    except ValueError:
        payload = {"unparsable": row.payload}
    return AuditEvent(
        seq=row.seq,
        time=row.time,
        actor=row.actor,
        action=row.action,
        object_kind=row.object_kind,
        object_id=row.object_id,
        payload=payload,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def read_head(conn: Connection) -> ChainHead:
    """The chain's head record, without locking it."""
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == _HEAD_ID)).first()
    if head is None:
        raise IntegrityError(
            "The audit chain head record is missing. "
            "Run `shipyard audit verify` to see what was removed from the audit tables."
        )
    return ChainHead(head.seq, head.hash)


def _rows(conn: Connection, last_seq: int | None, batch: int = 5000) -> Iterator[Any]:
    """Events in sequence order, up to `last_seq` (all of them when None)."""
    last = 0
    upto = [] if last_seq is None else [audit_events.c.seq <= last_seq]
    while True:
        rows = conn.execute(
            select(audit_events)
            .where(audit_events.c.seq > last, *upto)
            .order_by(audit_events.c.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(conn: Connection, *, expect_hash: str | None = None, expect_seq: int | None = None) -> ChainReport:
    """Walk the chain from the first event up to the head; report the first event that breaks it.

    Run it in a snapshot transaction (`MetadataStore.read(snapshot=True)`): the head and the events
    must come from the same moment. Events after the head are not walked either, so that an append
    committing during the walk is not mistaken for a break even in a transaction without a snapshot.

    With `expect_hash` (and optionally `expect_seq`), taken earlier from `read_head` and kept outside
    the database, the chain must still hold an event with that hash (at that seq). This catches a
    consistent rewrite, which recomputes every later hash and the head and so passes the walk alone."""
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).first()
    head_seq = head.seq if head else 0
    expected_seq, prev_hash, checked = 1, GENESIS, 0
    # seq 0 stands for the empty chain, whose hash is GENESIS: every chain still contains it.
    found_at: int | None = 0 if expect_hash == GENESIS and expect_seq in (None, 0) else None

    def report(ok: bool, seq: int | None = None, reason: str | None = None) -> ChainReport:
        at = expect_seq if expect_seq is not None else found_at
        return ChainReport(ok, checked, head_seq, seq, reason, at, expect_hash)

    def broken(seq: int | None, reason: str) -> ChainReport:
        return report(False, seq, reason)

    for row in _rows(conn, head.seq if head else None):
        if row.seq != expected_seq:
            if row.seq > expected_seq:
                return broken(expected_seq, f"event {expected_seq} is missing (next is {row.seq})")
            return broken(row.seq, f"sequence out of order: {row.seq} after {expected_seq - 1}")
        if row.prev_hash != prev_hash:
            return broken(row.seq, "its prev_hash does not match the hash of the event before it")
        digest = event_hash(
            row.seq, row.time, row.actor, row.action, row.object_kind, row.object_id, row.payload, row.prev_hash
        )
        if digest != row.hash:
            return broken(row.seq, "its content does not match its hash (the event was edited)")
        if expect_hash is not None and found_at is None:
            if row.seq == expect_seq and row.hash != expect_hash:
                return broken(
                    row.seq,
                    f"the expected hash {expect_hash} is not there; event {row.seq} has hash {row.hash} "
                    "(the chain was rewritten from this event or earlier)",
                )
            if row.hash == expect_hash and expect_seq in (None, row.seq):
                found_at = row.seq
        prev_hash, expected_seq, checked = row.hash, expected_seq + 1, checked + 1
    last_seq = expected_seq - 1
    if head is None:
        return broken(last_seq + 1, "the chain head record is missing")
    if head.seq != last_seq or head.hash != prev_hash:
        if head.seq > last_seq:
            return broken(last_seq + 1, f"events {last_seq + 1}..{head.seq} are missing from the end")
        return broken(last_seq, "the chain head does not match the last event")
    if expect_hash is not None and found_at is None:
        return broken(expect_seq, _not_found(expect_hash, expect_seq, last_seq))
    return report(True)


def _not_found(expect_hash: str, expect_seq: int | None, last_seq: int) -> str:
    """Why an intact chain lacks the expected event (a mismatch at an existing seq is reported in the walk)."""
    if expect_seq is None:
        return (
            f"no event has the expected hash {expect_hash} "
            "(the chain was rewritten, or the value comes from another store)"
        )
    if expect_seq == 0:
        return (
            f"the expected hash {expect_hash} is not there; event 0 stands for the empty chain, "
            f"whose hash is always {GENESIS}"
        )
    return (
        f"the expected hash {expect_hash} is not there; there is no event {expect_seq}, the chain ends at event "
        f"{last_seq} (events were removed from the end and the head rewritten, or the value comes from another store)"
    )
