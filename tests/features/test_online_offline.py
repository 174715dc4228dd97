"""Training and serving agree: after materialising a view's source up to its latest event time T, the online
store read at any request time t >= T gives exactly what a point-in-time training set gives for an entity row at
t (values and nulls), on SQLite and on Redis, across entities with several rows, ties on event time, unknown
entities, empty keys and values at the TTL's edges. Loading in two windows ends in the state of one load."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import shipyard.features as fs
from shipyard.context import open_context
from shipyard.features.loading import load_views
from shipyard.features.online import StoredRow, online_store
from tests.services import REDIS_URL, redis_client

T = pd.Timestamp("2026-03-01 12:00", tz="UTC")
TTL = pd.Timedelta("1h")
NS = pd.Timedelta("1ns")
KEYS = ["customer", "store"]

VIEWS = '''
from shipyard.features import FeatureView


def doubled(df):
    return df.assign(amount_x2=df["amount"] * 2)


activity = FeatureView("activity", entities=["customer", "store"], source="events.parquet", timestamp="event_ts",
                       created_timestamp="written_ts", ttl="1h",
                       features={"amount": "float64", "count": "int64", "tag": "string", "flag": "bool"})
profile = FeatureView("profile", entities=["customer", "store"], source="events.parquet", timestamp="event_ts",
                      features={"amount_x2": "float64"}, transform=doubled)
'''
FEATURES = ["activity:amount,count,tag,flag", "profile:amount_x2"]
COLUMNS = ["amount", "count", "tag", "flag", "amount_x2"]


@pytest.fixture(params=["sqlite", "redis"])
def ws(request: pytest.FixtureRequest, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A workspace with the two views applied over generated events, its online store on each backend."""
    if request.param == "redis":
        redis_client().close()  # skips (or fails) when Redis does not answer
        monkeypatch.setenv("SHIPYARD_ONLINE_URL", REDIS_URL)
        monkeypatch.setenv("SHIPYARD_ONLINE_NAMESPACE", f"test-{uuid.uuid4().hex[:12]}")
    events().to_parquet(workspace / "events.parquet", index=False)
    (workspace / "views.py").write_text(VIEWS)
    fs.apply(load_views("views.py"))
    yield workspace
    with online_store(open_context()) as store:
        store.clear()


def events() -> pd.DataFrame:
    """Entities with one to six rows each between T - 3 TTL and T, on a coarse grid so event times tie; ties
    broken by the written time (sometimes unknown) and by row order; some values empty, one row without a key."""
    rng = np.random.default_rng(11)
    rows = []
    for customer in range(40):
        store = "ab"[customer % 2]
        for _ in range(int(rng.integers(1, 7))):
            event = T - pd.Timedelta(minutes=int(rng.integers(0, 18)) * 10)
            written = None if rng.random() < 0.2 else event + pd.Timedelta(seconds=int(rng.integers(0, 3)))
            rows.append((customer, store, event, written))
    rows.append((0, "a", T, None))  # customer 0's latest event is T itself
    rows.append((1, "b", T - TTL, T))  # tied with nothing, exactly one TTL before T
    rows += [(3, "b", T, T), (3, "b", T, T - NS)]  # tied on event time: the later written wins (the first)
    rows += [(5, "b", T, T - TTL), (5, "b", T, None)]  # an unknown written time loses to any known one
    rows += [(2, "a", T - pd.Timedelta("5min"), T)] * 2  # a full tie: the later row wins
    frame = pd.DataFrame(rows, columns=["customer", "store", "event_ts", "written_ts"])
    n = len(frame)
    frame["amount"] = np.where(rng.random(n) < 0.1, np.nan, rng.normal(50, 10, n).round(2))
    frame["count"] = pd.array(rng.integers(0, 9, n), dtype="Int64")
    frame.loc[rng.random(n) < 0.1, "count"] = pd.NA
    frame["tag"] = rng.choice(["x", "y", "z"], n)
    frame["flag"] = rng.random(n) < 0.5
    frame["customer"] = frame["customer"].astype("Int64")
    frame.loc[n - 6:n - 1, "amount"] = [301.0, 302.0, 501.0, 502.0, 998.0, 999.0]
    extra = frame.iloc[[0]].assign(customer=pd.NA)  # a row without a key: left out on both paths
    return pd.concat([frame, extra], ignore_index=True)


def requests(source: pd.DataFrame) -> pd.DataFrame:
    """Entity rows at request times t >= T: T, T + 1ns, each entity's latest event + TTL - 1ns, + TTL, + TTL + 1ns
    (those not before T), T + TTL +- 1ns; and entities the source does not have."""
    latest = source.dropna(subset=["customer"]).groupby(["customer", "store"])["event_ts"].max()
    rows = []
    for (customer, store), last in latest.items():
        last = utc(last)
        times = [T, T + NS, last + TTL - NS, last + TTL, last + TTL + NS, T + TTL - NS, T + TTL + NS]
        rows += [(int(customer), store, t) for t in times if t >= T]
    rows += [(999, "a", T), (0, "b", T), (1, "a", T + TTL)]  # unknown: another customer, another store
    return pd.DataFrame(rows, columns=[*KEYS, "event_timestamp"])


def utc(stamp: object) -> pd.Timestamp:
    found = pd.Timestamp(stamp)  # type: ignore[arg-type]
    return found.tz_localize("UTC") if found.tzinfo is None else found.tz_convert("UTC")


def expected_status(source: pd.DataFrame, entity_rows: pd.DataFrame) -> list[str]:
    latest = source.dropna(subset=["customer"]).groupby(["customer", "store"])["event_ts"].max()
    out = []
    for customer, store, at in entity_rows[[*KEYS, "event_timestamp"]].itertuples(index=False):
        last = latest.get((customer, store))
        out.append("missing" if last is None else
                   "present" if at - utc(last) <= TTL else "expired")
    return out


def assert_online_is_offline(entity_rows: pd.DataFrame) -> pd.DataFrame:
    offline = fs.get_historical(entity_rows, FEATURES, allow_duplicates=True)  # request times may repeat
    online = fs.get_online(FEATURES, entity_rows[KEYS], at=entity_rows["event_timestamp"])
    assert list(online.values.columns) == [*KEYS, *COLUMNS]
    for column in COLUMNS:
        pd.testing.assert_series_equal(online.values[column].reset_index(drop=True),
                                       offline[column].reset_index(drop=True), check_names=False)
    return online.status


def test_online_reads_equal_training_rows_at_every_time_after_the_load(ws: Path) -> None:
    source = pd.read_parquet(ws / "events.parquet")
    [activity, profile] = fs.materialize()
    assert activity.to_dict()["watermark"] == T.isoformat() == profile.to_dict()["watermark"]
    assert activity.rows_read == len(source) and activity.rows_skipped == 1
    entity_rows = requests(source)
    status = assert_online_is_offline(entity_rows)
    expected = expected_status(source, entity_rows)
    assert status["amount"].astype(str).tolist() == expected
    assert {"present", "expired", "missing"} <= set(expected)
    assert (status["amount_x2"].astype(str) == np.where(np.array(expected) == "missing", "missing", "present")).all()
    # Ties at one event time: the later row of a full tie, the later written time, a known written time.
    tied = fs.get_online(["activity:amount"], [{"customer": c, "store": s} for c, s in [(2, "a"), (3, "b"), (5, "b")]],
                         at=T)
    assert tied.values["amount"].tolist() == [999.0, 301.0, 501.0]
    # The TTL edge itself is inclusive, one nanosecond after it is expired.
    edge = fs.get_online(["activity:amount"], [{"customer": 1, "store": "b"}] * 2, at=[T + TTL, T + TTL + NS])
    assert edge.status["amount"].astype(str).tolist() == ["present", "expired"]


def test_two_windows_end_in_the_state_of_one_load(ws: Path) -> None:
    source = pd.read_parquet(ws / "events.parquet")
    middle = T - pd.Timedelta("75min")
    first = fs.materialize(["activity"], end=middle)[0]
    second = fs.materialize(["activity"])[0]
    assert first.loaded.rows_in_window > 0 and second.loaded.rows_in_window > 0
    assert first.loaded.rows_in_window + second.loaded.rows_in_window == len(source) - 1
    assert fs.materialize(["activity"])[0].changed is False
    entity_rows = requests(source)
    twice = fs.get_online(["activity:amount,count,tag,flag"], entity_rows[KEYS], at=T).values
    with online_store(open_context()) as store:
        rows_twice = store.read([("activity", 1, k) for k in entity_rows[KEYS].itertuples(index=False, name=None)
                                 if k[0] != 999 and k != (0, "b") and k != (1, "a")])
        watermark_twice = store.watermark("activity", 1)
        store.drop("activity")
    once = fs.materialize(["activity"])[0]
    assert once.loaded.watermark_before is None and once.loaded.rows_in_window == len(source) - 1
    pd.testing.assert_frame_equal(fs.get_online(["activity:amount,count,tag,flag"], entity_rows[KEYS], at=T).values,
                                  twice)
    with online_store(open_context()) as store:
        rows_once = store.read([("activity", 1, k) for k in entity_rows[KEYS].itertuples(index=False, name=None)
                                if k[0] != 999 and k != (0, "b") and k != (1, "a")])
        assert store.watermark("activity", 1) == watermark_twice == T
    assert [stored(r) for r in rows_once] == [stored(r) for r in rows_twice]
    fs.materialize(["profile"], end=middle)
    fs.materialize(["profile"])
    assert_online_is_offline(entity_rows)


def stored(row: StoredRow | None) -> object:
    return None if row is None else (row.event_ns, row.created_ns, json.dumps(row.values, default=str))
