"""The online store contract: every backend (SQLite always, Redis when its server answers) keeps the latest row
per entity key, answers a read in one round trip, judges values with the shared TTL rule, round-trips value
types, materialises incrementally with its watermark moved in the same transaction as the rows, and refuses
bad input with a message naming the fix."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import ConflictError, NotFoundError, ValidationError
from shipyard.features import online
from shipyard.features.online import OnlineStore, materialize_frame, open_online_store, online_store
from shipyard.features.online_lookup import EXPIRED, MISSING, PRESENT, Wanted, lookup
from shipyard.features.online_redis import RedisOnlineStore
from shipyard.features.online_sqlite import SQLiteOnlineStore
from shipyard.features.timing import live
from tests.services import REDIS_URL, redis_client

T0 = pd.Timestamp("2026-03-01 12:00", tz="UTC")
SRC = Path(__file__).resolve().parents[2] / "src"


def open_store(kind: str, where: Path, namespace: str) -> OnlineStore:
    if kind == "sqlite":
        return SQLiteOnlineStore(where / "online.db")
    return RedisOnlineStore(REDIS_URL, namespace=namespace, client=redis_client())


@pytest.fixture(params=["sqlite", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(kind: str, tmp_path: Path, namespace: str) -> Iterator[OnlineStore]:
    opened = open_store(kind, tmp_path, namespace)
    yield opened
    opened.clear()
    opened.close()


@pytest.fixture
def other(kind: str, tmp_path: Path, namespace: str, store: OnlineStore) -> Iterator[OnlineStore]:
    """A second handle on the same store (another connection), as another process would have."""
    opened = open_store(kind, tmp_path, namespace)
    yield opened
    opened.close()


def rows(ids: list[Any], times: list[Any], **features: list[Any]) -> pd.DataFrame:
    return pd.DataFrame({"customer": ids, "event_timestamp": times, **features})


@contextmanager
def round_trips(store: OnlineStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records each request the store sends: SQL statements on SQLite, packed command writes on Redis."""
    sent: list[str] = []
    if isinstance(store, SQLiteOnlineStore):
        conn = store._conn()
        conn.set_trace_callback(sent.append)
        try:
            yield sent
        finally:
            conn.set_trace_callback(None)
        return
    import redis.connection

    store.views()  # the connection's handshake happens before counting
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append("packet")
        original(self, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
        yield sent


# -- the upsert keeps the latest row -------------------------------------------------------------------


def test_an_older_row_never_overwrites_a_newer_one(store: OnlineStore) -> None:
    assert store.write("spend", 1, ["customer"], rows([1, 2], [T0, T0], total=[10.0, 20.0])) == 2
    # An incremental load arriving late: older rows for both keys, a newer one for neither.
    assert store.write("spend", 1, ["customer"], rows([1, 2], [T0 - pd.Timedelta("1h")] * 2, total=[1.0, 2.0])) == 0
    assert [r.values["total"] if r else None for r in store.read([("spend", 1, (1,)), ("spend", 1, (2,))])] == [
        10.0, 20.0]
    assert store.write("spend", 1, ["customer"], rows([2], [T0 + pd.Timedelta("1s")], total=[21.0])) == 1
    got = store.read([("spend", 1, (1,)), ("spend", 1, (2,))])
    assert [r.values["total"] for r in got if r] == [10.0, 21.0]
    assert got[1] is not None and got[1].event_time == T0 + pd.Timedelta("1s")


def test_within_a_frame_the_latest_by_event_then_created_then_row_order_wins(store: OnlineStore) -> None:
    frame = pd.DataFrame({
        "customer": [1, 1, 2, 2, 3, 3, 4],
        "event_timestamp": [T0, T0 - pd.Timedelta("1ns"), T0, T0, T0, T0, T0],
        "created": [T0, T0 + pd.Timedelta("1h"), T0 + pd.Timedelta("2s"), T0 + pd.Timedelta("1s"), T0, T0, None],
        "total": [1.0, 99.0, 2.0, 98.0, 97.0, 3.0, 4.0],
    })
    assert store.write("spend", 1, ["customer"], frame, created_timestamp="created") == 4
    got = store.read([("spend", 1, (i,)) for i in (1, 2, 3, 4)])
    # 1: the later event wins over a later created time; 2: on equal events the later created time wins;
    # 3: equal in both, the later row wins; 4: no created time.
    assert [r.values["total"] for r in got if r] == [1.0, 2.0, 3.0, 4.0]
    assert got[1] is not None and got[1].created_ns == (T0 + pd.Timedelta("2s")).value
    assert got[3] is not None and got[3].created_ns is None


def test_across_writes_ties_go_to_the_created_time_then_to_the_later_write(store: OnlineStore) -> None:
    def write(total: float, created: pd.Timestamp | None) -> int:
        frame = rows([1], [T0], total=[total])
        if created is None:
            return store.write("spend", 1, ["customer"], frame)
        return store.write("spend", 1, ["customer"], frame.assign(created=[created]), created_timestamp="created")

    assert write(1.0, T0 + pd.Timedelta("1min")) == 1
    assert write(2.0, T0) == 0  # same event, created earlier: an older correction
    assert write(3.0, None) == 0  # no created time counts as older than any
    assert write(4.0, T0 + pd.Timedelta("1min")) == 1  # an exact tie: the later write wins
    assert write(5.0, T0 + pd.Timedelta("2min")) == 1
    [row] = store.read([("spend", 1, (1,))])
    assert row is not None and row.values == {"total": 5.0}


# -- one round trip per read ---------------------------------------------------------------------------


def test_a_read_of_many_views_and_entities_is_one_round_trip(store: OnlineStore,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ids = list(range(100))
    store.write("spend", 1, ["customer"], rows(ids, [T0] * 100, total=[float(i) for i in ids]))
    store.write("visits", 3, ["customer"], rows(ids[:50], [T0] * 50, count=ids[:50]))
    store.write("region", 1, ["customer"], rows(ids, [T0] * 100, name=[f"r{i % 7}" for i in ids]))
    requests = [(v, n, (i,)) for v, n in (("spend", 1), ("visits", 3), ("region", 1)) for i in ids]
    with round_trips(store, monkeypatch) as sent:
        got = store.read(requests)
    assert len(sent) == 1, sent
    assert sum(r is not None for r in got) == 250

    wanted = [Wanted("spend", 1, ["customer"], ["total"], 3600), Wanted("visits", 3, ["customer"], ["count"]),
              Wanted("region", 1, ["customer"], ["name"], 60)]
    with round_trips(store, monkeypatch) as sent:
        result = lookup(store, wanted, pd.DataFrame({"customer": ids + [1000]}), at=T0 + pd.Timedelta("30s"))
    assert len(sent) == 1, sent
    assert list(result.values.columns) == ["customer", "total", "count", "name"]
    assert result.values["total"].iloc[:100].tolist() == [float(i) for i in ids]
    assert result.status["count"].tolist() == [PRESENT] * 50 + [MISSING] * 51
    assert pd.isna(result.values["name"].iloc[100]) and result.status["name"].iloc[100] == MISSING

    with round_trips(store, monkeypatch) as sent:
        single = lookup(store, wanted, [{"customer": 7}], at=T0)
    assert len(sent) == 1, sent
    assert single.values.iloc[0].tolist() == [7, 7.0, 7, "r0"]


# -- the TTL rule, at its boundaries -------------------------------------------------------------------


def test_ttl_statuses_at_the_boundary_follow_the_shared_rule(store: OnlineStore) -> None:
    store.write("spend", 1, ["customer"], rows([1], [T0], total=[5.0]))
    ttl = 60
    at = [T0 + pd.Timedelta(seconds=ttl),  # exactly the TTL old: still valid (inclusive)
          T0 + pd.Timedelta(seconds=ttl) + pd.Timedelta("1ns"),
          T0 + pd.Timedelta(seconds=ttl) + pd.Timedelta("1us"),
          T0,  # the same instant: valid
          T0 - pd.Timedelta("1ns"),  # the value is from after the request: never served
          T0 + pd.Timedelta("30s")]
    result = lookup(store, [Wanted("spend", 1, ["customer"], ["total"], ttl)], [{"customer": 1}] * len(at), at=at)
    expected = [PRESENT, EXPIRED, EXPIRED, PRESENT, EXPIRED, PRESENT]
    assert result.status["total"].tolist() == expected
    rule = live(np.array([T0.value] * len(at), dtype="datetime64[ns]"),
                np.array([a.value for a in at], dtype="datetime64[ns]"), ttl)
    assert [PRESENT if ok else EXPIRED for ok in rule] == expected
    # Expired values are null, as the offline join gives them.
    assert [None if math.isnan(v) else v for v in result.values["total"]] == [5.0, None, None, 5.0, None, 5.0]

    forever = lookup(store, [Wanted("spend", 1, ["customer"], ["total"], None)], [{"customer": 1}] * 2,
                     at=[T0 + pd.Timedelta(days=3650), T0 - pd.Timedelta("1ns")])
    assert forever.status["total"].tolist() == [PRESENT, EXPIRED]
    at_once = lookup(store, [Wanted("spend", 1, ["customer"], ["total"], 0)], [{"customer": 1}] * 2,
                     at=[T0, T0 + pd.Timedelta("1ns")])
    assert at_once.status["total"].tolist() == [PRESENT, EXPIRED]


def test_request_times_may_be_naive_or_in_any_zone(store: OnlineStore) -> None:
    store.write("spend", 1, ["customer"], rows([1], [T0], total=[5.0]))
    wanted = [Wanted("spend", 1, ["customer"], ["total"], 60)]
    naive = lookup(store, wanted, [{"customer": 1}], at=T0.tz_localize(None) + pd.Timedelta("60s"))
    zoned = lookup(store, wanted, [{"customer": 1}], at=(T0 + pd.Timedelta("61s")).tz_convert("America/New_York"))
    assert naive.status["total"].tolist() == [PRESENT] and zoned.status["total"].tolist() == [EXPIRED]
    now = lookup(store, wanted, [{"customer": 1}])  # default: now, long after T0's minute
    assert now.status["total"].tolist() == [EXPIRED]


def test_missing_entities_and_multiple_entity_columns(store: OnlineStore) -> None:
    frame = pd.DataFrame({"customer": [1, 1, 2], "merchant": ["a", "b", "a"],
                          "event_timestamp": [T0] * 3, "spent": [1.0, 2.0, 3.0]})
    store.write("pair", 1, ["customer", "merchant"], frame)
    entity_rows = pd.DataFrame({"merchant": ["b", "a", "b", "c"], "customer": [1, 2, 2, 1]}, index=[10, 11, 12, 13])
    result = lookup(store, [Wanted("pair", 1, ["customer", "merchant"], ["spent"], 3600)], entity_rows, at=T0)
    assert result.status["spent"].tolist() == [PRESENT, PRESENT, MISSING, MISSING]
    assert result.values["spent"].iloc[:2].tolist() == [2.0, 3.0] and result.values["spent"].iloc[2:].isna().all()
    assert result.values[["merchant", "customer"]].values.tolist() == [["b", 1], ["a", 2], ["b", 2], ["c", 1]]
    assert result.values.index.tolist() == result.status.index.tolist() == [10, 11, 12, 13]
    [row, same] = store.read([("pair", 1, (1, "b")), ("pair", "1", (np.int64(1), "b"))])
    assert row is not None and row.values == {"spent": 2.0} and same == row


def test_many_views_in_one_lookup_and_full_names(store: OnlineStore) -> None:
    store.write("spend", 1, ["customer"], rows([1], [T0], total=[5.0]))
    store.write("refunds", 1, ["customer"], rows([1], [T0 - pd.Timedelta("2h")], total=[1.0]))
    store.write("merchant", 2, ["merchant"], pd.DataFrame({"merchant": ["m"], "event_timestamp": [T0], "risk": [0.5]}))
    wanted = [Wanted("spend", 1, ["customer"], ["total"], 3600), Wanted("refunds", 1, ["customer"], ["total"], 3600),
              Wanted("merchant", 2, ["merchant"], ["risk"])]
    with pytest.raises(ValidationError, match="More than one column would be named total.*full_names=True"):
        lookup(store, wanted, [{"customer": 1, "merchant": "m"}], at=T0)
    with pytest.raises(ValidationError, match="More than one column would be named merchant"):
        lookup(store, [Wanted("merchant", 2, ["merchant"], ["risk"]), Wanted("spend", 1, ["customer"], ["total"])]
               + [Wanted("names", 1, ["customer"], ["merchant"])], [{"customer": 1, "merchant": "m"}], at=T0)
    result = lookup(store, wanted, [{"customer": 1, "merchant": "m"}], at=T0, full_names=True)
    assert list(result.values.columns) == ["customer", "merchant", "spend:total", "refunds:total", "merchant:risk"]
    assert result.status.iloc[0].tolist() == [PRESENT, EXPIRED, PRESENT]
    assert result.values["spend:total"].iloc[0] == 5.0 and pd.isna(result.values["refunds:total"].iloc[0])
    assert result.values["merchant:risk"].iloc[0] == 0.5


# -- values keep their types ---------------------------------------------------------------------------


def test_value_types_round_trip(store: OnlineStore) -> None:
    when = pd.Timestamp("2025-06-30 23:59:59.123456789", tz="Europe/Paris")
    frame = pd.DataFrame({
        "customer": ["ä-1", "b", "c"],
        "event_timestamp": [T0] * 3,
        "count": [0, -(2**62), 2**62],
        "score": [float("nan"), float("inf"), -0.25],
        "name": ["", "naïve ✓", None],
        "flag": [True, False, True],
        "seen": [when, when, pd.NaT],
        "naive_seen": pd.to_datetime(["2025-01-01 00:00:00.000001", "2025-01-01 00:00:00", "2025-01-02 00:00:00"],
                                     format="ISO8601"),
        "anything": [None, 1, "x"],
        "vector": [[1.5, 2.0], [], None],
        "maybe": pd.array([1, None, 3], dtype="Int64"),
    })
    store.write("typed", 1, ["customer"], frame)
    got = store.read([("typed", 1, (k,)) for k in ("ä-1", "b", "c")])
    values = [r.values for r in got if r is not None]
    assert len(values) == 3
    assert [v["count"] for v in values] == [0, -(2**62), 2**62] and all(type(v["count"]) is int for v in values)
    assert math.isnan(values[0]["score"]) and values[1]["score"] == math.inf and values[2]["score"] == -0.25
    assert [v["name"] for v in values] == ["", "naïve ✓", None]
    assert [v["flag"] for v in values] == [True, False, True] and all(type(v["flag"]) is bool for v in values)
    assert values[0]["seen"] == when and values[0]["seen"].tz is not None and str(values[0]["seen"].tz) == "UTC"
    assert values[0]["seen"].value == when.value and values[2]["seen"] is None
    assert values[0]["naive_seen"] == pd.Timestamp("2025-01-01 00:00:00.000001", tz="UTC")
    assert [v["anything"] for v in values] == [None, 1, "x"]
    assert [v["vector"] for v in values] == [[1.5, 2.0], [], None]
    assert [v["maybe"] for v in values] == [1, None, 3]

    result = lookup(store, [Wanted("typed", 1, ["customer"], ["count", "flag", "seen", "name"])],
                    [{"customer": "b"}, {"customer": "ä-1"}], at=T0)
    assert str(result.values["count"].dtype) == "int64" and result.values["count"].tolist() == [-(2**62), 0]
    assert result.values["flag"].dtype == bool and str(result.values["seen"].dtype) == "datetime64[ns, UTC]"
    assert result.values["seen"].tolist() == [when, when]


# -- materialisation -----------------------------------------------------------------------------------


def history() -> pd.DataFrame:
    days = [T0 + pd.Timedelta(days=d) for d in range(4)]
    return pd.DataFrame({"customer": [1, 2, 1, 2, 1, 2, 1, 2], "event_timestamp": [d for d in days for _ in (1, 2)],
                         "total": [float(i) for i in range(8)]})


def test_incremental_materialisation_moves_the_watermark(store: OnlineStore) -> None:
    frame = history()
    first = materialize_frame(store, "spend", 1, ["customer"], frame, end=T0 + pd.Timedelta(days=1))
    assert (first.rows_in_window, first.written, first.watermark_before) == (4, 2, None)
    assert first.watermark_after == store.watermark("spend", 1) == T0 + pd.Timedelta(days=1)
    assert [r.values["total"] for r in store.read([("spend", 1, (1,)), ("spend", 1, (2,))]) if r] == [2.0, 3.0]

    # The next load takes only rows after the watermark; without `end`, up to the latest row loaded.
    second = materialize_frame(store, "spend", 1, ["customer"], frame)
    assert (second.rows_in_window, second.written) == (4, 2)
    assert second.watermark_after == T0 + pd.Timedelta(days=3)
    assert [r.values["total"] for r in store.read([("spend", 1, (1,)), ("spend", 1, (2,))]) if r] == [6.0, 7.0]

    # Nothing new: nothing changes, not even the watermark.
    again = materialize_frame(store, "spend", 1, ["customer"], frame)
    assert (again.rows_in_window, again.written, again.watermark_after) == (0, 0, second.watermark_after)
    # A late row behind the watermark is not loaded by an incremental run...
    late = pd.DataFrame({"customer": [3], "event_timestamp": [T0], "total": [9.0]})
    assert materialize_frame(store, "spend", 1, ["customer"], late).rows_in_window == 0
    assert store.read([("spend", 1, (3,))]) == [None]
    # ... but is after moving the watermark back; the latest-wins rule keeps the newer rows of others.
    store.set_watermark("spend", 1, None)
    reload = materialize_frame(store, "spend", 1, ["customer"], pd.concat([frame, late]))
    assert (reload.rows_in_window, reload.written) == (9, 3)
    got = store.read([("spend", 1, (1,)), ("spend", 1, (2,)), ("spend", 1, (3,))])
    assert [r.values["total"] for r in got if r] == [6.0, 7.0, 9.0]


def test_materialisation_starts_after_start_and_an_empty_window_still_moves_the_watermark(
        store: OnlineStore) -> None:
    frame = history()
    done = materialize_frame(store, "spend", 1, ["customer"], frame, start=T0 + pd.Timedelta(days=2),
                             end=T0 + pd.Timedelta(days=10))
    assert (done.rows_in_window, done.watermark_after) == (2, T0 + pd.Timedelta(days=10))
    quiet = materialize_frame(store, "spend", 1, ["customer"], frame, end=T0 + pd.Timedelta(days=11))
    assert (quiet.rows_in_window, quiet.written) == (0, 0)
    assert store.watermark("spend", 1) == T0 + pd.Timedelta(days=11)


def fail_after(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Make the next write fail after `count` rows reached the backend."""
    original = online._Prepared.rows

    def failing(self: Any) -> Iterator[online.EncodedRow]:
        for i, row in enumerate(original(self)):
            if i == count:
                raise RuntimeError("the load was interrupted")
            yield row

    monkeypatch.setattr(online._Prepared, "rows", failing)


def test_an_interrupted_load_leaves_the_old_state(store: OnlineStore, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = history()
    materialize_frame(store, "spend", 1, ["customer"], frame, end=T0)
    before = store.read([("spend", 1, (1,)), ("spend", 1, (2,))])
    many = pd.DataFrame({"customer": list(range(1, 201)), "event_timestamp": [T0 + pd.Timedelta("1h")] * 200,
                         "total": [100.0] * 200})
    with monkeypatch.context() as patch:
        fail_after(patch, 150)
        with pytest.raises(RuntimeError, match="interrupted"):
            materialize_frame(store, "spend", 1, ["customer"], many)
    assert store.read([("spend", 1, (1,)), ("spend", 1, (2,))]) == before
    assert store.read([("spend", 1, (i,)) for i in range(3, 201)]) == [None] * 198
    assert store.watermark("spend", 1) == T0
    done = materialize_frame(store, "spend", 1, ["customer"], many)
    assert (done.written, done.watermark_after) == (200, T0 + pd.Timedelta("1h"))


def test_a_killed_loader_leaves_the_old_state_and_readers_see_it_meanwhile(kind: str, tmp_path: Path, namespace: str,
                                              store: OnlineStore) -> None:
    materialize_frame(store, "spend", 1, ["customer"], history(), end=T0)
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import os, time, pandas as pd
        from shipyard.features import online
        from tests.features.test_online_contract import open_store, T0
        from pathlib import Path
        store = open_store({kind!r}, Path({str(tmp_path)!r}), {namespace!r})
        original = online._Prepared.rows
        def stalled(self):
            for i, row in enumerate(original(self)):
                if i == 100:
                    Path({str(ready)!r}).write_text("x")
                    time.sleep(600)  # killed here, in the middle of the load
                yield row
        online._Prepared.rows = stalled
        many = pd.DataFrame({{"customer": list(range(1, 201)), "event_timestamp": [T0 + pd.Timedelta("1h")] * 200,
                             "total": [100.0] * 200}})
        online.materialize_frame(store, "spend", 1, ["customer"], many)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(SRC.parent)])}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        for _ in range(600):
            if ready.exists() or proc.poll() is not None:
                break
            try:
                proc.wait(0.1)
            except subprocess.TimeoutExpired:
                pass
        assert ready.exists(), "the loader did not reach the middle of its load"
        # While the load is open, readers go on seeing the old state (on SQLite: without waiting for its lock).
        assert [r.values["total"] for r in store.read([("spend", 1, (1,)), ("spend", 1, (3,))]) if r] == [0.0]
        assert store.watermark("spend", 1) == T0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert store.watermark("spend", 1) == T0
    assert [r.values["total"] for r in store.read([("spend", 1, (1,)), ("spend", 1, (2,))]) if r] == [0.0, 1.0]
    assert store.read([("spend", 1, (3,))]) == [None]
    assert materialize_frame(store, "spend", 1, ["customer"], history()).written == 2


def test_a_load_that_lost_a_race_for_the_watermark_changes_nothing(store: OnlineStore, other: OnlineStore,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    materialize_frame(store, "spend", 1, ["customer"], history(), end=T0)
    original = store.info

    def then_another_load(view: str, version: int | str) -> Any:
        found = original(view, version)
        other.set_watermark("spend", 1, T0 + pd.Timedelta(days=1))  # lands between our read and our write
        return found

    monkeypatch.setattr(store, "info", then_another_load)
    with pytest.raises(ConflictError, match="Another load moved the watermark.*run it again"):
        materialize_frame(store, "spend", 1, ["customer"], history())
    monkeypatch.undo()
    assert store.watermark("spend", 1) == T0 + pd.Timedelta(days=1)
    assert [r.values["total"] for r in store.read([("spend", 1, (1,))]) if r] == [0.0]


# -- versions, dropping, listing -----------------------------------------------------------------------


def test_versions_are_separate_and_drop_removes_them(store: OnlineStore) -> None:
    store.write("spend", 1, ["customer"], rows([1, 2], [T0, T0], total=[1.0, 2.0]))
    store.write("spend", 2, ["customer"], rows([1], [T0], total=[10.0]))
    store.write("visits", 1, ["customer"], rows([1], [T0], count=[3]))
    assert [(i.view, i.version, i.features) for i in store.views()] == [
        ("spend", "1", ("total",)), ("spend", "2", ("total",)), ("visits", "1", ("count",))]
    assert [r.values["total"] for r in store.read([("spend", 1, (1,)), ("spend", 2, (1,))]) if r] == [1.0, 10.0]
    assert store.read([("spend", 2, (2,))]) == [None]
    assert store.drop("spend", 1) == 2
    with pytest.raises(NotFoundError, match="holds nothing for view 'spend' version 1.*spend version 2"):
        store.read([("spend", 1, (1,))])
    assert store.drop("spend") == 1
    assert [(i.view, i.version) for i in store.views()] == [("visits", "1")]


# -- bad input -----------------------------------------------------------------------------------------


def test_bad_keys_are_refused_with_the_fix(store: OnlineStore) -> None:
    store.write("spend", 1, ["customer"], rows([1], [T0], total=[1.0]))
    wanted = [Wanted("spend", 1, ["customer"], ["total"])]
    with pytest.raises(ValidationError, match=r"keyed by customer holding whole numbers \(int\).*strings.*astype"):
        lookup(store, wanted, [{"customer": "1"}], at=T0)
    with pytest.raises(ValidationError, match=r"keyed by customer holding whole numbers"):
        store.read([("spend", 1, ("1",))])
    with pytest.raises(ValidationError, match=r"decimal numbers.*astype\('int64'\)"):
        lookup(store, wanted, [{"customer": 1.0}], at=T0)
    with pytest.raises(ValidationError, match="give 1 key values"):
        store.read([("spend", 1, (1, 2))])
    with pytest.raises(ValidationError, match="neither a whole number nor a string"):
        store.read([("spend", 1, (1.5,))])
    with pytest.raises(ValidationError, match="must be a tuple"):
        store.read([("spend", 1, 1)])  # type: ignore[list-item]
    with pytest.raises(ValidationError,
                       match=r"holds whole numbers \(int\) in the online store; these rows give strings"):
        store.write("spend", 1, ["customer"], rows(["a"], [T0], total=[1.0]))
    with pytest.raises(ValidationError, match="mixes whole numbers and strings"):
        store.write("spend", 1, ["customer"], rows([1, "a"], [T0, T0], total=[1.0, 2.0]))
    with pytest.raises(ValidationError, match=r"empty keys \(rows \[1\]\)"):
        store.write("spend", 1, ["customer"], rows([1, None], [T0, T0], total=[1.0, 2.0]))
    with pytest.raises(ValidationError, match="holds booleans"):
        store.write("spend", 1, ["customer"], rows([True], [T0], total=[1.0]))
    with pytest.raises(ValidationError, match="is keyed by customer in the online store; these rows are keyed by"):
        store.write("spend", 1, ["customer", "merchant"], rows([1], [T0], merchant=["m"], total=[1.0]))


def test_unknown_views_features_and_columns_are_named(store: OnlineStore) -> None:
    store.write("spend", 1, ["customer"], rows([1], [T0], total=[1.0]))
    with pytest.raises(NotFoundError, match="holds nothing for view 'spnd' version 1: materialise it first"):
        lookup(store, [Wanted("spnd", 1, ["customer"], ["total"])], [{"customer": 1}])
    with pytest.raises(NotFoundError, match="holds nothing for view 'spend' version 7"):
        store.read([("spend", 7, (1,))])
    with pytest.raises(ValidationError, match="has no feature 'totl'.*Did you mean 'total'"):
        lookup(store, [Wanted("spend", 1, ["customer"], ["totl"])], [{"customer": 1}])
    with pytest.raises(ValidationError, match="No column 'customer' in the entity rows. Did you mean 'custmer'"):
        lookup(store, [Wanted("spend", 1, ["customer"], ["total"])], [{"custmer": 1}])
    with pytest.raises(ValidationError, match="No column 'customer' in the rows for view 'spend'"):
        store.write("spend", 1, ["customer"], pd.DataFrame({"id": [1], "event_timestamp": [T0], "total": [1.0]}))
    with pytest.raises(ValidationError, match="No column 'ts' in the rows for view 'spend'"):
        store.write("spend", 1, ["customer"], rows([1], [T0], total=[1.0]), timestamp="ts")
    with pytest.raises(ValidationError, match="Invalid view name 'a b'"):
        store.write("a b", 1, ["customer"], rows([1], [T0], total=[1.0]))
    with pytest.raises(ValidationError, match="no feature columns"):
        store.write("spend", 1, ["customer"], rows([1], [T0]))
    with pytest.raises(NotFoundError, match="no watermark to set"):
        store.set_watermark("never", 1, T0)


def test_bad_times_and_values_are_refused(store: OnlineStore) -> None:
    mixed = pd.Series([T0, pd.Timestamp("2026-03-01 12:00")], dtype=object)
    with pytest.raises(ValidationError, match="mixes timezone-aware and naive timestamps"):
        store.write("spend", 1, ["customer"], rows([1, 2], mixed, total=[1.0, 2.0]))
    with pytest.raises(ValidationError, match="must hold timestamps.*pandas.to_datetime"):
        store.write("spend", 1, ["customer"], rows([1], ["2026-03-01"], total=[1.0]))
    with pytest.raises(ValidationError, match="2 empty event times"):
        store.write("spend", 1, ["customer"], rows([1, 2], [pd.NaT, pd.NaT], total=[1.0, 2.0]))
    with pytest.raises(ValidationError, match=r"spend.total holds \{'a': 1\} \(dict\); online values must be"):
        store.write("spend", 1, ["customer"], rows([1], [T0], total=[{"a": 1}]))
    store.write("spend", 1, ["customer"], rows([1], [T0], total=[1.0]))
    wanted = [Wanted("spend", 1, ["customer"], ["total"], 60)]
    with pytest.raises(ValidationError, match="mixes timezone-aware and naive"):
        lookup(store, wanted, [{"customer": 1}] * 2, at=[T0, T0.tz_localize(None)])
    with pytest.raises(ValidationError, match="gives 1 request times for 2 entity rows"):
        lookup(store, wanted, [{"customer": 1}] * 2, at=[T0])
    with pytest.raises(ValidationError, match="TTL of view 'spend' must be a number of seconds >= 0"):
        lookup(store, [Wanted("spend", 1, ["customer"], ["total"], -1)], [{"customer": 1}])
    assert store.read([("spend", 1, (1,))])[0] is not None  # the refused writes left nothing behind
    assert [i.features for i in store.views()] == [("total",)]


def test_an_empty_request_is_an_empty_answer(store: OnlineStore) -> None:
    store.write("spend", 1, ["customer"], rows([1], [T0], total=[1.0]))
    result = lookup(store, [Wanted("spend", 1, ["customer"], ["total"])], [], at=T0)
    assert list(result.values.columns) == ["customer", "total"] and len(result.values) == 0
    assert store.read([]) == []


# -- opening the workspace's store ---------------------------------------------------------------------


def test_the_workspace_store_is_a_sqlite_file_by_default(workspace: Path) -> None:
    from shipyard.context import open_context

    with online_store(open_context()) as store:
        assert isinstance(store, SQLiteOnlineStore)
        assert store.path == workspace / ".shipyard" / "online.db"
        store.write("spend", 1, ["customer"], rows([1], [T0], total=[1.0]))
    with open_online_store("sqlite:///.shipyard/online.db", root=workspace) as again:
        assert again.read([("spend", 1, (1,))])[0] is not None
        conn = again._conn() if isinstance(again, SQLiteOnlineStore) else None
        assert conn is not None and conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(ValidationError, match="Unknown online store URL"):
        open_online_store("mysql://x")


def test_the_workspace_redis_store_is_namespaced(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.context import open_context

    client = redis_client()
    monkeypatch.setenv("SHIPYARD_ONLINE_URL", REDIS_URL)
    with online_store(open_context()) as by_store_id:
        assert isinstance(by_store_id, RedisOnlineStore) and len(by_store_id.namespace) == 32
    name = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SHIPYARD_ONLINE_NAMESPACE", name)
    with online_store(open_context()) as store, open_store("redis", workspace, f"{name}-other") as neighbour:
        assert isinstance(store, RedisOnlineStore) and store.prefix == f"shipyard:{name}:"
        store.write("spend", 1, ["customer"], rows([1], [T0], total=[1.0]))
        neighbour.write("spend", 1, ["customer"], rows([1], [T0], total=[2.0]))
        assert [r.values["total"] for r in store.read([("spend", 1, (1,))]) if r] == [1.0]
        store.clear()
        assert client.keys(f"shipyard:{name}:*") == [] and neighbour.views() != []
        neighbour.clear()
    client.close()


def test_a_redis_write_redoes_its_check_when_another_writer_changed_the_view(
        tmp_path: Path, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store("redis", tmp_path, namespace)
    other = open_store("redis", tmp_path, namespace)
    try:
        store.write("spend", 1, ["customer"], rows([1], [T0], total=[1.0]))
        original = online._merge_info
        calls: list[int] = []

        def with_a_writer_in_between(*args: Any) -> online.ViewInfo:
            calls.append(1)
            if len(calls) == 1:  # between this writer's read of the info and its EXEC
                other.write("spend", 1, ["customer"], rows([2], [T0], extra=["x"]))
            return original(*args)

        monkeypatch.setattr(online, "_merge_info", with_a_writer_in_between)
        assert store.write("spend", 1, ["customer"], rows([3], [T0], total=[3.0])) == 1
        # This writer's check, the other writer's, then this writer's again: WATCH refused its first EXEC.
        assert len(calls) == 3
        [info] = store.views()
        assert info.features == ("total", "extra")
        assert [r.values for r in store.read([("spend", 1, (i,)) for i in (1, 2, 3)]) if r] == [
            {"total": 1.0}, {"extra": "x"}, {"total": 3.0}]
    finally:
        store.clear()
        store.close()
        other.close()
