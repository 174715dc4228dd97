"""Verifying the audit trail through the public API on SQLite and PostgreSQL: against a consistent
snapshot while others append, and against a head recorded outside the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.context import open_context
from shipyard.errors import IntegrityError, ValidationError
from shipyard.governance.audit import audit_head, describe
from shipyard.store import audit
from tests.tampering import rewrite_chain


def _head() -> audit.ChainHead:
    head = shipyard.audit_head()
    assert head == audit_head(open_context())  # the public call is the service's
    return head


def _touch(n: int, start: int = 0) -> None:
    store = open_context().store
    for i in range(start, start + n):
        with store.mutation("alice", "thing.touch", "thing", f"t{i}", {"i": i}):
            pass


def test_verify_ignores_an_append_that_commits_during_the_walk(
    backend_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _touch(4)
    walk = audit._rows
    appended: list[int] = []

    def append_then_walk(*args: Any, **kwargs: Any) -> Iterator[Any]:
        # verify has read the head; another connection appends and commits before the events are read.
        _touch(1, start=100)
        appended.append(1)
        yield from walk(*args, **kwargs)

    monkeypatch.setattr(audit, "_rows", append_then_walk)
    report = shipyard.verify_audit()
    assert appended == [1]
    assert report.ok, describe(report)
    assert report.events_checked == 4 and report.head_seq == 4

    monkeypatch.setattr(audit, "_rows", walk)
    after = shipyard.verify_audit()
    assert after.ok and after.events_checked == 5 and after.head_seq == 5


def test_head_names_the_newest_event(backend_workspace: Path) -> None:
    empty = _head()
    assert (empty.seq, empty.hash) == (0, audit.GENESIS)
    assert shipyard.verify_audit(expect=str(empty)).ok  # every chain starts from the empty one

    _touch(3)
    head = _head()
    [newest] = shipyard.audit_log(limit=1)
    assert (head.seq, head.hash) == (3, newest.hash)
    assert str(head) == f"3:{newest.hash}"
    assert head.to_dict() == {"seq": 3, "hash": newest.hash, "expect": f"3:{newest.hash}"}


def test_expect_detects_a_consistent_rewrite(backend_workspace: Path, store_url: str) -> None:
    _touch(2)
    early = _head()
    _touch(3, start=2)
    head = _head()
    _touch(2, start=5)  # the chain keeps growing after the head was recorded

    for value in (str(early), str(head), head.hash, head.hash.upper()):
        report = shipyard.verify_audit(expect=value)
        assert report.ok, (value, describe(report))
    found = shipyard.verify_audit(expect=head.hash)
    assert (found.expected_seq, found.expected_hash) == (5, head.hash)
    assert "still contains event 5 with the expected hash" in describe(found)

    rewrite_chain(store_url, 4, '{"i":99}')
    assert shipyard.verify_audit().ok  # walking the chain alone cannot see it

    rewritten = shipyard.verify_audit(expect=str(head))
    assert not rewritten.ok and rewritten.broken_seq == 5 and rewritten.events_checked == 4
    now_at_5 = shipyard.audit_log(limit=1, newest_first=False, object_id="t4")[0].hash
    assert head.hash in (rewritten.reason or "") and now_at_5 in (rewritten.reason or "")
    assert "BROKEN at event 5" in describe(rewritten)

    anywhere = shipyard.verify_audit(expect=head.hash)
    assert not anywhere.ok and anywhere.broken_seq is None
    assert f"no event has the expected hash {head.hash}" in (anywhere.reason or "")
    assert "BROKEN:" in describe(anywhere)

    assert shipyard.verify_audit(expect=str(early)).ok  # events before the rewrite are untouched


def test_expect_detects_events_removed_from_the_end(backend_workspace: Path, store_url: str) -> None:
    from sqlalchemy import create_engine, delete, update

    from shipyard.store.tables import audit_events, audit_head as head_table

    _touch(5)
    head = _head()
    engine = create_engine(store_url)
    with engine.begin() as conn:  # drop the last two events and point the head at event 3
        third = conn.execute(audit_events.select().where(audit_events.c.seq == 3)).one()
        conn.execute(delete(audit_events).where(audit_events.c.seq > 3))
        conn.execute(update(head_table).values(seq=3, hash=third.hash))
    engine.dispose()

    assert shipyard.verify_audit().ok
    report = shipyard.verify_audit(expect=str(head))
    assert not report.ok and report.broken_seq == head.seq == 5
    assert "there is no event 5, the chain ends at event 3" in (report.reason or "")


@pytest.mark.parametrize(
    "value",
    ["", "abc", "0" * 63, "g" * 64, "0" * 65, "x:" + "0" * 64, "-1:" + "0" * 64, "3:", "3:" + "0" * 64 + ":"],
)
def test_expect_must_be_a_hash_or_seq_and_hash(backend_workspace: Path, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        shipyard.verify_audit(expect=value)
    message = str(caught.value)
    assert repr(value) in message and "64 hexadecimal characters" in message and "SEQ:HASH" in message


def test_head_reports_a_missing_head_record(backend_workspace: Path, store_url: str) -> None:
    from sqlalchemy import create_engine, delete

    from shipyard.store.tables import audit_head as head_table

    _touch(1)
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(delete(head_table))
    engine.dispose()
    with pytest.raises(IntegrityError, match="head record is missing.*shipyard audit verify"):
        _head()
