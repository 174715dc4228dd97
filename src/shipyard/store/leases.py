"""Leases in the metadata store: one holder at a time for work that several processes could do (a controller
among replicas). A lease is taken for a time and renewed before it runs out; a holder that stops renewing loses
it to the next taker. Each change of holder increments the lease's token, so a holder can check, before it acts,
that the lease is still its own (fencing)."""

from __future__ import annotations

import math
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from shipyard.errors import ValidationError
from shipyard.store.db import now_ms
from shipyard.store.tables import leases

if TYPE_CHECKING:
    from shipyard.store.db import MetadataStore


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    token: int
    expires: int  # unix ms


def holder_id() -> str:
    """This process's name as a holder: host, pid and a random part (a restarted pid is another holder)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(store: MetadataStore, actor: str, name: str, holder: str, seconds: float,
            *, now: int | None = None) -> Lease | None:
    """Take lease `name` for `seconds` if it is free, expired, or already `holder`'s (then it is renewed);
    None when another holder has it. Writers are serialised by the store, so two takers never both win."""
    _check(name, seconds)
    at = now_ms() if now is None else now
    expires = at + math.ceil(seconds * 1000)
    found = current(store, name)
    if _taken(found, holder, at):
        return None  # a waiting taker polls without writing (nor auditing) anything
    if found is not None and found.holder == holder and found.expires > at:  # held already: kept, not audited
        return renew(store, found, seconds, now=at)
    payload: dict[str, object] = {"holder": holder}
    try:
        with store.mutation(actor, "lease.acquire", "lease", name, payload) as conn:
            row = conn.execute(select(leases).where(leases.c.name == name)).first()
            if row is not None and _taken(Lease(name, row.holder, int(row.token), int(row.expires)), holder, at):
                raise _Taken  # taken between the look and the write: roll back, nothing audited
            if row is None:
                token = 1
                conn.execute(leases.insert().values(name=name, holder=holder, token=token, acquired=at,
                                                    expires=expires))
            else:
                token = int(row.token) if row.holder == holder else int(row.token) + 1
                conn.execute(leases.update().where(leases.c.name == name).values(
                    holder=holder, token=token, acquired=at if row.holder != holder else row.acquired,
                    expires=expires))
            payload["token"] = token
    except _Taken:
        return None
    return Lease(name, holder, token, expires)


class _Taken(Exception):
    pass


def _taken(lease: Lease | None, holder: str, at: int) -> bool:
    return lease is not None and lease.holder != holder and lease.expires > at


def renew(store: MetadataStore, lease: Lease, seconds: float, *, now: int | None = None) -> Lease | None:
    """Extend a lease still held (same holder and token, not taken over); None when it was lost. Renewals are
    liveness bookkeeping, not audited."""
    _check(lease.name, seconds)
    at = now_ms() if now is None else now
    expires = at + math.ceil(seconds * 1000)
    c = leases.c
    with store.unaudited() as conn:
        done = conn.execute(leases.update().where(c.name == lease.name, c.holder == lease.holder,
                                                  c.token == lease.token).values(expires=expires))
    return Lease(lease.name, lease.holder, lease.token, expires) if done.rowcount == 1 else None


@contextmanager
def kept(store: MetadataStore, lease: Lease, seconds: float) -> Iterator[None]:
    """Renew `lease` every third of `seconds` while the block runs (a long step keeps what fences it). A lost
    renewal stops the keeping; the fenced writes of the block then fail, as they must."""
    done = threading.Event()

    def keep() -> None:
        while not done.wait(seconds / 3):
            if renew(store, lease, seconds) is None:
                return

    keeper = threading.Thread(target=keep, name=f"lease {lease.name}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join()


def release(store: MetadataStore, actor: str, lease: Lease) -> bool:
    """Give the lease up now (if still held), so another taker need not wait for it to expire."""
    c = leases.c
    with store.mutation(actor, "lease.release", "lease", lease.name, {"holder": lease.holder,
                                                                       "token": lease.token}) as conn:
        done = conn.execute(leases.update().where(c.name == lease.name, c.holder == lease.holder,
                                                  c.token == lease.token).values(expires=0))
    return bool(done.rowcount == 1)


def holds(store: MetadataStore, lease: Lease, *, now: int | None = None) -> bool:
    """Whether `lease` is still this holder's and unexpired: checked before each step it fences."""
    at = now_ms() if now is None else now
    with store.read() as conn:
        row = conn.execute(select(leases).where(leases.c.name == lease.name)).first()
    return row is not None and row.holder == lease.holder and int(row.token) == lease.token and row.expires > at


def held(conn: Connection, lease: Lease, *, now: int | None = None) -> bool:
    """holds() on the caller's connection: a step fenced by the lease checks it in the transaction that acts."""
    at = now_ms() if now is None else now
    row = conn.execute(select(leases).where(leases.c.name == lease.name)).first()
    return row is not None and row.holder == lease.holder and int(row.token) == lease.token and row.expires > at


def current(store: MetadataStore, name: str) -> Lease | None:
    with store.read() as conn:
        row = conn.execute(select(leases).where(leases.c.name == name)).first()
    return None if row is None else Lease(row.name, row.holder, int(row.token), int(row.expires))


def _check(name: str, seconds: float) -> None:
    if not name or len(name) > 128:
        raise ValidationError(f"Invalid lease name {name!r}: 1 to 128 characters.", name=name)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) \
            or not 0 < seconds <= 86_400:
        raise ValidationError(f"Invalid lease duration {seconds!r}: seconds above 0 and at most a day, e.g. 30.",
                              seconds=seconds)
