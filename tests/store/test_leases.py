"""Leases: one holder at a time on both stores, taken over only after expiry, fenced by their token, with
takers racing for a free lease forced to interleave (both look, then both write): exactly one wins."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import shipyard
from shipyard.context import open_context
from shipyard.errors import ValidationError
from shipyard.store import leases

T = 1_900_000_000_000  # a fixed "now" (ms), so expiry is decided by the test, not by the clock


def test_one_holder_expiry_takeover_and_fencing(backend_workspace: Path) -> None:
    store = open_context().store
    first = leases.acquire(store, "a", "controller", "host:1:a", 30, now=T)
    assert first is not None and first.token == 1
    assert leases.acquire(store, "b", "controller", "host:2:b", 30, now=T + 1_000) is None  # held
    head = shipyard.audit_head()
    assert leases.acquire(store, "b", "controller", "host:2:b", 30, now=T + 2_000) is None
    assert shipyard.audit_head() == head  # waiting writes nothing
    renewed = leases.renew(store, first, 30, now=T + 20_000)
    assert renewed is not None and renewed.expires == T + 50_000
    assert leases.acquire(store, "b", "controller", "host:2:b", 30, now=T + 40_000) is None  # renewed in time
    second = leases.acquire(store, "b", "controller", "host:2:b", 30, now=T + 50_001)  # expired: taken over
    assert second is not None and second.token == 2
    assert leases.renew(store, renewed, 30, now=T + 50_002) is None  # the old holder is fenced off
    assert not leases.holds(store, renewed, now=T + 50_002) and leases.holds(store, second, now=T + 50_002)
    assert leases.release(store, "b", second) and not leases.holds(store, second, now=T + 50_003)
    third = leases.acquire(store, "a", "controller", "host:1:a", 30, now=T + 50_004)  # released: free at once
    assert third is not None and third.token == 3
    actions = [e.action for e in shipyard.audit_log(object_id="controller", newest_first=False)]
    assert actions == ["lease.acquire", "lease.acquire", "lease.release", "lease.acquire"]


def test_two_takers_of_a_free_lease_race_and_one_wins(backend_workspace: Path, monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    store = open_context().store
    looked = threading.Barrier(2)
    real = leases.current

    def look_together(*args: object, **kwargs: object) -> leases.Lease | None:
        found = real(*args, **kwargs)  # type: ignore[arg-type]
        looked.wait(timeout=30)  # both have seen the lease free before either writes
        return found

    monkeypatch.setattr(leases, "current", look_together)
    won: list[leases.Lease | None] = []
    takers = [threading.Thread(target=lambda h=h: won.append(leases.acquire(store, h, "controller", h, 30, now=T)))
              for h in ("host:1:a", "host:2:b")]
    for taker in takers:
        taker.start()
    for taker in takers:
        taker.join(60)
    assert len(won) == 2 and len([w for w in won if w is not None]) == 1
    winner = next(w for w in won if w is not None)
    assert real(store, "controller") == winner


def test_bad_leases_are_refused(workspace: Path) -> None:
    store = open_context().store
    for name, seconds, message in (("", 30, "Invalid lease name ''"), ("x", 0, "Invalid lease duration 0"),
                                   ("x", float("inf"), "Invalid lease duration inf"),
                                   ("x", 90_000, "Invalid lease duration 90000")):
        with pytest.raises(ValidationError, match=message):
            leases.acquire(store, "a", name, "h", seconds)
    assert leases.current(store, "x") is None
