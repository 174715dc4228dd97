"""Audit chain contract on SQLite and PostgreSQL: appends are atomic with their change, the chain
detects edits, deletions and reordering, and concurrent writers keep it linear."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text, update

from shipyard.errors import NotFoundError
from shipyard.store import audit
from shipyard.store.db import MetadataStore
from shipyard.store.tables import audit_events, runs


@pytest.fixture
def store(store_url: str):  # type: ignore[no-untyped-def]
    db = MetadataStore(store_url)
    yield db
    db.dispose()


def _append(store: MetadataStore, n: int, actor: str = "alice") -> None:
    for i in range(n):
        with store.mutation(actor, "thing.touch", "thing", f"t{i}", {"i": i, "note": "é"}):
            pass


def _verify(store: MetadataStore) -> audit.ChainReport:
    with store.read() as conn:
        return audit.verify(conn)


def test_chain_links_every_event(store: MetadataStore) -> None:
    _append(store, 5)
    report = _verify(store)
    assert report.ok and report.events_checked == 5 and report.head_seq == 5
    with store.read() as conn:
        events = audit.list_events(conn, newest_first=False)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:]))
    assert events[2].payload == {"i": 2, "note": "é"} and events[2].actor == "alice"


def test_failed_change_writes_no_event(store: MetadataStore) -> None:
    _append(store, 1)
    with pytest.raises(NotFoundError):
        with store.mutation("bob", "run.create", "run", "r1") as conn:
            conn.execute(insert(runs).values(run_id="r1", name="n", experiment="e", status="running", user="bob", start_time=1))
            raise NotFoundError("the change failed after writing")
    with store.read() as conn:
        assert conn.execute(select(runs)).all() == []  # the change rolled back ...
        assert [e.seq for e in audit.list_events(conn)] == [1]  # ... and so did its event
    assert _verify(store).ok


@pytest.mark.parametrize(
    "tamper, seq, reason",
    [
        (lambda c: c.execute(update(audit_events).where(audit_events.c.seq == 3).values(payload='{"i":99}')), 3, "edited"),
        (lambda c: c.execute(update(audit_events).where(audit_events.c.seq == 2).values(actor="mallory")), 2, "edited"),
        (lambda c: c.execute(delete(audit_events).where(audit_events.c.seq == 3)), 3, "missing"),
        (lambda c: c.execute(delete(audit_events).where(audit_events.c.seq == 6)), 6, "missing from the end"),
    ],
    ids=["edit-payload", "edit-actor", "delete-middle", "delete-last"],
)
def test_verify_finds_the_first_broken_link(store: MetadataStore, tamper, seq: int, reason: str) -> None:  # type: ignore[no-untyped-def]
    _append(store, 6)
    with store.engine.begin() as conn:
        tamper(conn)
    report = _verify(store)
    assert not report.ok
    assert report.broken_seq == seq
    assert reason in (report.reason or "")


def test_verify_detects_reordering(store: MetadataStore) -> None:
    _append(store, 5)
    with store.engine.begin() as conn:  # swap the content of events 2 and 4, keeping their seq
        rows = {r.seq: r for r in conn.execute(select(audit_events).where(audit_events.c.seq.in_([2, 4])))}
        for a, b in ((2, 4), (4, 2)):
            src = rows[b]
            conn.execute(
                update(audit_events).where(audit_events.c.seq == a).values(
                    time=src.time, actor=src.actor, action=src.action, object_kind=src.object_kind,
                    object_id=src.object_id, payload=src.payload, prev_hash=src.prev_hash, hash=src.hash,
                )
            )
    report = _verify(store)
    assert not report.ok and report.broken_seq == 2


def test_snapshot_read_sees_nothing_committed_after_its_first_statement(store: MetadataStore) -> None:
    _append(store, 2)
    with store.read(snapshot=True) as conn:
        first = conn.execute(select(audit_events.c.seq)).scalars().all()
        _append(store, 1)  # another connection commits meanwhile
        assert conn.execute(select(audit_events.c.seq)).scalars().all() == first == [1, 2]
        assert audit.read_head(conn).seq == 2
    with store.read() as conn:
        assert audit.read_head(conn).seq == 3


def test_verify_walks_only_up_to_the_head_it_read(store: MetadataStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even without a snapshot (READ COMMITTED on PostgreSQL), an append that commits between reading
    the head and reading the events is not reported as a break."""
    _append(store, 3)
    walk = audit._rows

    def append_then_walk(*args: Any, **kwargs: Any) -> Iterator[Any]:
        _append(store, 1)
        yield from walk(*args, **kwargs)

    monkeypatch.setattr(audit, "_rows", append_then_walk)
    report = _verify(store)
    assert report.ok, report.reason
    assert report.events_checked == 3 and report.head_seq == 3
    monkeypatch.setattr(audit, "_rows", walk)
    assert _verify(store).events_checked == 4


def test_concurrent_writers_keep_one_linear_chain(store: MetadataStore) -> None:
    errors: list[BaseException] = []

    def writer(who: str) -> None:
        try:
            _append(store, 25, actor=who)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = _verify(store)
    assert report.ok and report.events_checked == 150


def test_reopening_an_up_to_date_store_skips_alembic(store_url: str, store: MetadataStore) -> None:
    from shipyard.store.migrate import HEAD_REVISION

    with store.read() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD_REVISION
    again = MetadataStore(store_url)  # idempotent: no error, same revision
    with again.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    again.dispose()
