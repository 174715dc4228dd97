"""Point-in-time-correct retrieval: get_historical agrees with a brute-force reference on random data (ties, TTL
edges to the nanosecond, unsorted rows, missing and null keys, two views, two entity columns), and bad input gets
one clear error naming the value."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shipyard
from shipyard.context import open_context
from shipyard.errors import IntegrityError, NotFoundError, ValidationError
from shipyard.features import FeatureView, apply, build_training_set, get_historical
from shipyard.store.lineage import Node, neighbours

BASE = pd.Timestamp("2026-03-01", tz="UTC")
MINUTE = pd.Timedelta(minutes=1)
NS = pd.Timedelta(1, "ns")
TTL = 3 * 60  # the orders view's TTL, in seconds

ORDERS = FeatureView("orders", entities=["customer_id"], source="orders.parquet", timestamp="event_ts",
                     created_timestamp="created_ts", features={"amount": "float64", "seq": "int64"}, ttl="3m")
VISITS = FeatureView("visits", entities=["customer_id", "store"], source="visits.parquet", timestamp="event_ts",
                     features={"count": "int64"})


def write_orders(root: Path, rows: list[tuple[int | None, int, int | None]]) -> None:
    """(customer, event minute, created minute or None); row i has amount i + 0.5 and seq i."""
    pd.DataFrame({
        "customer_id": pd.array([r[0] for r in rows], dtype="Int64"),
        "event_ts": pd.Series([BASE + r[1] * MINUTE for r in rows], dtype="datetime64[ns, UTC]"),
        "created_ts": pd.Series([BASE + r[2] * MINUTE if r[2] is not None else pd.NaT for r in rows],
                                dtype="datetime64[ns, UTC]"),
        "amount": [i + 0.5 for i in range(len(rows))], "seq": list(range(len(rows))),
        "unused": ["x"] * len(rows),
    }).to_parquet(root / "orders.parquet")


def write_visits(root: Path, rows: list[tuple[int, str, int]]) -> None:
    pd.DataFrame({
        "customer_id": pd.array([r[0] for r in rows], dtype="int64"), "store": [r[1] for r in rows],
        "event_ts": pd.Series([BASE + r[2] * MINUTE for r in rows], dtype="datetime64[ns, UTC]"),
        "count": list(range(len(rows))),
    }).to_parquet(root / "visits.parquet")


def reference(entities: pd.DataFrame, orders: list[tuple[int | None, int, int | None]],
              visits: list[tuple[int, str, int]]) -> dict[str, list[Any]]:
    """Per entity row, by brute force: among the source rows of its keys at or before its time and within the
    TTL, the one with the latest event time, then the latest created time (unknown lowest), then the last."""
    out: dict[str, list[Any]] = {"amount": [], "seq": [], "count": []}
    for customer, store, at in zip(entities["customer_id"], entities["store"], entities["event_timestamp"]):
        best = None
        for i, (c, minute, created) in enumerate(orders):
            event = BASE + minute * MINUTE
            if c is not None and c == customer and at is not pd.NaT and event <= at and (at - event) <= pd.Timedelta(seconds=TTL):
                rank = (event, created if created is not None else -10**9, i)
                best = max(best, rank) if best is not None else rank
        out["amount"].append(best[2] + 0.5 if best else np.nan)
        out["seq"].append(best[2] if best else pd.NA)
        best = None
        for i, (c, s, minute) in enumerate(visits):
            event = BASE + minute * MINUTE
            if c == customer and s == store and at is not pd.NaT and event <= at:
                best = max(best, (event, i)) if best is not None else (event, i)
        out["count"].append(best[1] if best else pd.NA)
    return out


order_rows = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 2)), st.integers(0, 6),
                                st.one_of(st.none(), st.integers(0, 2))), min_size=1, max_size=25)
visit_rows = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["x", "y"]), st.integers(0, 6)), min_size=1,
                      max_size=15)
# Entity times on whole minutes, or one nanosecond either side: with source events on whole minutes and a TTL of
# three minutes, that puts rows exactly at the TTL, one nanosecond over it, at an event and just before it.
entity_rows = st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["x", "y", "z"]), st.integers(-1, 9),
                                 st.sampled_from([-1, 0, 1, None])), min_size=1, max_size=20)  # None: no time


def unchanged(df: pd.DataFrame) -> pd.DataFrame:
    return df


@pytest.mark.parametrize("read", ["in place", "through pandas"])
def test_matches_a_brute_force_reference(workspace: Path, read: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways of reading a source: a Parquet file DuckDB joins in place, and (with a transform) pandas."""
    write_orders(workspace, [(1, 0, None)])
    write_visits(workspace, [(1, "x", 0)])
    views = [ORDERS, VISITS] if read == "in place" else \
        [dataclasses.replace(v, transform=unchanged) for v in (ORDERS, VISITS)]
    apply(views)
    joins = _count_in_place_joins(monkeypatch)

    @settings(max_examples=100, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(orders=order_rows, visits=visit_rows, rows=entity_rows)
    def check(orders: list[tuple[int | None, int, int | None]], visits: list[tuple[int, str, int]],
              rows: list[tuple[int, str, int, int | None]]) -> None:
        write_orders(workspace, orders)
        write_visits(workspace, visits)
        entities = pd.DataFrame({
            "label": [i % 2 for i in range(len(rows))],
            "customer_id": [r[0] for r in rows], "store": [r[1] for r in rows],
            "event_timestamp": pd.array([BASE + r[2] * MINUTE + r[3] * NS if r[3] is not None else pd.NaT
                                         for r in rows], dtype="datetime64[ns, UTC]"),
        })
        entities.index = [f"r{(len(rows) - i) % 4}" for i in range(len(rows))]  # its own index, repeating: kept
        got = get_historical(entities, ["orders:amount", "visits:count", "orders:seq"], allow_duplicates=True)
        assert list(got.columns) == ["label", "customer_id", "store", "event_timestamp", "amount", "count", "seq"]
        pd.testing.assert_frame_equal(got[list(entities.columns)], entities)
        expected = reference(entities, orders, visits)
        matched.append(sum(pd.notna(expected["amount"])) + sum(pd.notna(expected["count"])))
        pd.testing.assert_series_equal(got["amount"], pd.Series(expected["amount"], index=entities.index,
                                                                 dtype="float64", name="amount"))
        assert got["seq"].dtype == "Int64" and got["count"].dtype == "Int64"
        assert got["seq"].tolist() == pd.array(expected["seq"], dtype="Int64").tolist()
        assert got["count"].tolist() == pd.array(expected["count"], dtype="Int64").tolist()

    matched: list[int] = []
    check()
    assert sum(matched) > 50  # the examples do exercise matches, not only misses
    assert (joins[0] > 0) == (read == "in place")


def _count_in_place_joins(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the in-place join (element 0), which still runs."""
    from shipyard.features import parquet_asof

    calls = [0]
    real = parquet_asof.join

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(parquet_asof, "join", counted)
    return calls


def _entities(*rows: tuple[int, pd.Timestamp]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [r[0] for r in rows], "event_timestamp": [r[1] for r in rows]})


def test_ttl_edges_and_never_a_later_value(workspace: Path) -> None:
    write_orders(workspace, [(1, 0, None)])
    write_visits(workspace, [(1, "x", 0)])
    apply([ORDERS])
    ttl = pd.Timedelta(seconds=TTL)
    got = get_historical(_entities((1, BASE - NS), (1, BASE), (1, BASE + ttl), (1, BASE + ttl + NS)),
                         ["orders:amount"])
    assert got["amount"].tolist()[1:3] == [0.5, 0.5]
    assert got["amount"].isna().tolist() == [True, False, False, True]


def test_ties_go_to_the_later_created_time_then_the_later_row(workspace: Path) -> None:
    # rows 0-2 share customer and event time: row 1 has the latest created time although row 2 comes later
    write_orders(workspace, [(1, 0, 1), (1, 0, 2), (1, 0, None), (2, 0, 1), (2, 0, 1)])
    write_visits(workspace, [(1, "x", 0), (1, "x", 0)])
    apply([ORDERS, VISITS])
    entities = _entities((1, BASE), (2, BASE))
    entities["store"] = "x"
    got = get_historical(entities, ["orders:seq", "visits:count"])
    assert got["seq"].tolist() == [1, 4]  # created 2 beats 1 and unknown; equal created: the later row
    assert got["count"].iloc[0] == 1 and got["count"].isna().iloc[1]  # no created timestamp: the later row


def test_timezones_are_converted_and_naive_times_are_utc(workspace: Path) -> None:
    write_orders(workspace, [(1, 60, None)])
    apply([ORDERS])
    paris = dt.timezone(dt.timedelta(hours=1))
    aware = _entities((1, (BASE + 60 * MINUTE).tz_convert(paris)), (1, (BASE + 59 * MINUTE).tz_convert(paris)))
    assert get_historical(aware, ["orders:seq"])["seq"].isna().tolist() == [False, True]
    naive = _entities((1, (BASE + 60 * MINUTE).tz_localize(None)))
    assert get_historical(naive, ["orders:seq"])["seq"].tolist() == [0]


def test_a_training_set_is_a_dataset_version_with_its_lineage(workspace: Path) -> None:
    shipyard.data.add("orders-src", pd.read_parquet(_orders_file(workspace)))
    shipyard.data.add("labels", _entities((1, BASE + MINUTE), (3, BASE)).assign(label=[1, 0]))
    view = FeatureView("orders_ds", entities=["customer_id"], source="orders-src", timestamp="event_ts",
                       features={"seq": "int64"})
    apply([view])
    frame = get_historical("labels@1", ["orders_ds:seq"], save_as="training")
    assert frame["seq"].iloc[0] == 0 and frame["seq"].isna().tolist() == [False, True]
    built = build_training_set("training", "labels@1", ["orders_ds:seq"])
    assert (built.version.version_id, built.created) == ("training@1", False)  # same content: no new version
    assert shipyard.data.load("training@1")["seq"].tolist()[0] == 0
    with open_context().store.read() as conn:
        upstream = {node for node, _ in neighbours(conn, Node("dataset_version", "training@1"), upstream=True)}
    assert upstream == {Node("feature_view", "orders_ds@1"), Node("dataset_version", "orders-src@1"),
                        Node("dataset_version", "labels@1")}


def _orders_file(root: Path) -> Path:
    write_orders(root, [(1, 0, None), (2, 5, None)])
    return root / "orders.parquet"


def test_a_pinned_version_reads_that_definition(workspace: Path) -> None:
    write_orders(workspace, [(1, 0, None)])
    apply([ORDERS])
    apply([FeatureView("orders", entities=["customer_id"], source="orders.parquet", timestamp="event_ts",
                       features={"amount": "float64", "seq": "int64"}, ttl="1m")])
    late = _entities((1, BASE + 2 * MINUTE))
    assert get_historical(late, ["orders:seq"])["seq"].isna().all()  # orders@2: a one-minute TTL
    assert get_historical(late, ["orders@1:seq"])["seq"].tolist() == [0]
    assert get_historical(late, ["orders:seq"], version=1)["seq"].tolist() == [0]
    both = get_historical(late, ["orders@1:seq", "orders@2:seq"], full_names=True)
    assert list(both.columns[-2:]) == ["orders@1__seq", "orders@2__seq"]
    assert both["orders@1__seq"].tolist() == [0] and both["orders@2__seq"].isna().all()


# ---- bad input -----------------------------------------------------------------------------------------------

def _prepared(root: Path) -> pd.DataFrame:
    write_orders(root, [(1, 0, None), (2, 1, 0)])
    write_visits(root, [(1, "x", 0)])
    apply([ORDERS, VISITS])
    return _entities((1, BASE), (2, BASE + MINUTE)).assign(store="x")


@pytest.mark.parametrize(("change", "features", "error", "fragment"), [
    (lambda e: e.rename(columns={"event_timestamp": "event_time"}), ["orders:seq"], ValidationError,
     "no timestamp column 'event_timestamp'. Did you mean 'event_time'?"),
    (lambda e: e.assign(event_timestamp=["2026-03-01", "soon"]), ["orders:seq"], ValidationError,
     "must hold timestamps"),
    (lambda e: e.assign(event_timestamp=[pd.Timestamp("2026-03-01"), pd.Timestamp("2026-03-01", tz="UTC")]),
     ["orders:seq"], ValidationError, "mixes timezone-aware and naive"),
    (lambda e: e, ["ordres:seq"], NotFoundError, "No feature view named 'ordres'. Did you mean 'orders'?"),
    (lambda e: e, ["orders:sq"], NotFoundError, "has no feature 'sq'. Did you mean 'seq'?"),
    (lambda e: e, ["orders:seq", "orders:seq"], ValidationError, "requested twice"),
    (lambda e: e, ["seq"], ValidationError, "expected VIEW:FEATURE"),
    (lambda e: e, ["orders@9:seq"], NotFoundError, "no version 9"),
    (lambda e: e.assign(customer_id=["1", "2"]), ["orders:seq"], ValidationError,
     "Entity key 'customer_id' is string in the entity data (e.g. '1') but integer in the source"),
    (lambda e: e.drop(columns=["store"]), ["visits:count"], ValidationError,
     "no column 'store', an entity key of feature view visits@1"),
    (lambda e: e.assign(seq=1), ["orders:seq"], ValidationError, "full_names=True"),
])
def test_bad_input_gets_a_clear_error(workspace: Path, change: Any, features: list[str], error: type[Exception],
                                      fragment: str) -> None:
    entities = change(_prepared(workspace))
    with pytest.raises(error) as caught:
        get_historical(entities, features)
    assert fragment in str(caught.value)


def test_entity_rows_repeating_keys_and_time_are_refused_unless_allowed(workspace: Path) -> None:
    entities = _prepared(workspace)
    berlin = dt.timezone(dt.timedelta(hours=1))
    # row 2 is row 0 again (its time written in another zone); row 3 differs from row 1 in the visits key only
    rows = pd.concat([entities, entities.assign(event_timestamp=entities["event_timestamp"].dt.tz_convert(berlin),
                                                store=["x", "y"])], ignore_index=True)
    assert get_historical(rows, ["orders:seq"], allow_duplicates=True)["seq"].tolist() == [0, 1, 0, 1]
    for features in (["orders:seq"], ["visits:count"], ["orders:seq", "visits:count"]):
        with pytest.raises(ValidationError) as caught:
            get_historical(rows, features)
        keys = "customer_id=1" + (", store='x'" if "visits:count" in features else "")
        assert f"the rows at positions 0 and 2 ({keys} at 2026-03-01T00:00:00+00:00)" in str(caught.value)
        assert "drop_duplicates" in str(caught.value) and "allow_duplicates=True" in str(caught.value)
    apart = rows.drop(index=2)  # rows 1 and 3 (now at 1 and 2) differ in the visits key only
    assert get_historical(apart, ["visits:count"])["count"].notna().tolist() == [True, False, False]
    with pytest.raises(ValidationError, match="the rows at positions 1 and 2 \\(customer_id=2 at"):
        get_historical(apart, ["orders:seq"])
    with pytest.raises(ValidationError, match="share their entity keys and time"):
        build_training_set("training", rows, ["orders:seq"])
    with open_context().store.read() as conn:
        assert not neighbours(conn, Node("dataset_version", "training@1"), upstream=True)  # nothing was saved


def test_a_source_that_lost_a_column_or_changed_its_type_is_named(workspace: Path) -> None:
    entities = _prepared(workspace)
    pd.read_parquet(workspace / "orders.parquet").drop(columns=["seq"]).to_parquet(workspace / "orders.parquet")
    with pytest.raises(ValidationError, match="orders.parquet of feature view orders@1 has no column 'seq'"):
        get_historical(entities, ["orders:seq"])
    assert get_historical(entities, ["orders:amount"])["amount"].tolist() == [0.5, 1.5]  # only what is read
    pd.read_parquet(workspace / "orders.parquet").assign(amount=["a", "b"]).to_parquet(workspace / "orders.parquet")
    with pytest.raises(ValidationError, match="'amount' of view orders@1 is declared float64, but its source column "
                                              "holds string values such as 'a'"):
        get_historical(entities, ["orders:amount"])


def broken(df: pd.DataFrame) -> pd.DataFrame:
    raise KeyError("no_such_column")


def not_a_frame(df: pd.DataFrame) -> Any:
    return df.to_dict()


def test_a_failing_transform_is_named(workspace: Path) -> None:
    entities = _prepared(workspace)
    apply([FeatureView("bad", entities=["customer_id"], source="orders.parquet", timestamp="event_ts",
                       features={"seq": "int64"}, transform=broken),
           FeatureView("odd", entities=["customer_id"], source="orders.parquet", timestamp="event_ts",
                       features={"seq": "int64"}, transform=not_a_frame)])
    with pytest.raises(ValidationError, match="The transform of feature view bad@1 failed: KeyError"):
        get_historical(entities, ["bad:seq"])
    with pytest.raises(ValidationError, match="returned dict; it must return a DataFrame"):
        get_historical(entities, ["odd:seq"])


def test_empty_sources_null_keys_and_whole_float_keys(workspace: Path) -> None:
    write_orders(workspace, [])
    write_visits(workspace, [(1, "x", 0)])
    apply([ORDERS, VISITS])
    entities = _entities((1, BASE + MINUTE)).assign(store="x")
    assert get_historical(entities, ["orders:seq"])["seq"].isna().all()  # an empty source: nulls
    assert get_historical(entities.iloc[:0], ["visits:count"]).shape == (0, 4)  # no entity rows: none back
    assert get_historical(entities.assign(customer_id=[None]), ["visits:count"])["count"].isna().all()
    assert get_historical(entities.assign(customer_id=[1.0]), ["visits:count"])["count"].tolist() == [0]


def test_a_csv_source_reads_its_timestamps_as_utc(workspace: Path) -> None:
    (workspace / "rates.csv").write_text("customer_id,event_ts,rate,note\n1,2026-03-01T00:00:00Z,0.5,a\n"
                                         "1,2026-03-01T02:00:00+01:00,0.7,b\n2,2026-03-01T00:00:00+00:00,0.9,c\n")
    (workspace / "naive.csv").write_text("customer_id,event_ts,rate\n2,2026-03-01T00:00:00,0.9\n")
    (workspace / "mixed.csv").write_text("customer_id,event_ts,rate\n1,2026-03-01T00:00:00Z,0.5\n"
                                         "2,2026-03-01T00:00:00,0.9\n")
    apply([FeatureView(name, entities=["customer_id"], source=f"{name}.csv", features={"rate": "float64"})
           for name in ("rates", "naive", "mixed")])
    # 02:00+01:00 is 01:00 UTC; a naive time is taken as UTC
    got = get_historical(_entities((1, BASE + 30 * MINUTE), (1, BASE + 60 * MINUTE), (2, BASE)),
                         ["rates:rate", "naive:rate"], full_names=True)
    assert got["rates__rate"].tolist() == [0.5, 0.7, 0.9] and got["naive__rate"].tolist()[2] == 0.9
    with pytest.raises(ValidationError, match="'event_ts' of feature view mixed@1 must hold timestamps"):
        get_historical(_entities((1, BASE)), ["mixed:rate"])


def test_sources_whose_schema_settles_their_types_are_read_in_place_and_agree_with_pandas(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Parquet file and a dataset version are joined in place; a key stored as floats and an integer feature
    stored as floats need their values looked at, so pandas reads them; all give the same training set."""
    write_orders(workspace, [(1, 0, 1), (1, 0, 2), (1, 1, None), (2, 0, 1), (None, 1, 1), (3, 2, None)])
    frame = pd.read_parquet(workspace / "orders.parquet")
    shipyard.data.add("orders-src", frame)
    frame.astype({"customer_id": "float64"}).to_parquet(workspace / "float_keys.parquet")
    frame.astype({"seq": "float64"}).to_parquet(workspace / "float_seq.parquet")
    sources = {"orders.parquet": True, "orders-src": True, "float_keys.parquet": False, "float_seq.parquet": False}
    apply([dataclasses.replace(ORDERS, name=f"v{i}", source=source) for i, source in enumerate(sources)])
    entities = _entities((1, BASE), (1, BASE + MINUTE), (2, BASE + 5 * MINUTE), (3, BASE + 2 * MINUTE), (4, BASE))
    answers = []
    for i, in_place in enumerate(sources.values()):
        joins = _count_in_place_joins(monkeypatch)
        answers.append(get_historical(entities, [f"v{i}:seq", "amount"]))
        assert joins[0] == int(in_place)
    assert answers[0]["seq"].fillna(-1).tolist() == [1, 2, -1, 5, -1]  # customer 2: past the TTL
    assert answers[0]["amount"].tolist()[:2] == [1.5, 2.5]
    for other in answers[1:]:
        pd.testing.assert_frame_equal(other, answers[0])


def test_a_dataset_source_changed_on_disk_is_refused_rather_than_read(workspace: Path) -> None:
    write_orders(workspace, [(1, 0, 1)])
    version = shipyard.data.add("orders-src", pd.read_parquet(workspace / "orders.parquet"))
    apply([dataclasses.replace(ORDERS, source="orders-src")])
    path = open_context().blobs.local_path(str(version.version.table_digest))
    assert path is not None
    path.write_bytes(path.read_bytes()[:-8] + b"PAR1PAR1")
    with pytest.raises(IntegrityError):
        get_historical(_entities((1, BASE)), ["orders:seq"])


def test_the_in_place_join_agrees_with_pandas_on_every_column_type(workspace: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys of text, whole numbers of several widths and timestamps; naive and millisecond source times;
    features of every declared type with missing values: the same answer read in place and through pandas."""
    rng = np.random.default_rng(3)
    n = 400
    day = pd.Timestamp("2026-03-01")
    frame = pd.DataFrame({
        "name": rng.choice(["ann", "bob", "cy", None], n),
        "shard": rng.integers(0, 3, n).astype("uint8"),
        "opened": pd.Series(day + pd.to_timedelta(rng.integers(0, 2, n), unit="D")).astype("datetime64[ms]"),
        "ts": pd.Series(day + pd.to_timedelta(rng.integers(0, 600, n), unit="min")).astype("datetime64[ms]"),
        "score": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "count": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(-5, 5, n)), dtype="Int32"),
        "flag": pd.array(np.where(rng.random(n) < 0.1, None, rng.random(n) < 0.5), dtype="boolean"),
        "label": rng.choice(["x", "y", None], n),
        "seen": pd.Series(day + pd.to_timedelta(rng.integers(0, 9, n), unit="h")).dt.tz_localize("UTC"),
    })
    frame.to_parquet(workspace / "odd.parquet")
    features = {"score": "float64", "count": "int32", "flag": "bool", "label": "string", "seen": "timestamp"}
    odd = FeatureView("odd", entities=["name", "shard", "opened"], source="odd.parquet", timestamp="ts",
                      features=features, ttl="2h")
    apply([odd, dataclasses.replace(odd, name="odd_pandas", transform=unchanged)])
    entities = frame[["name", "shard", "opened"]].sample(300, random_state=1, replace=True).reset_index(drop=True)
    entities["shard"] = entities["shard"].astype("int64")
    entities["opened"] = entities["opened"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")
    entities["event_timestamp"] = (day + pd.to_timedelta(rng.integers(-30, 700, 300), unit="min")).tz_localize("UTC")
    entities = entities.drop_duplicates(["name", "shard", "opened", "event_timestamp"])
    joins = _count_in_place_joins(monkeypatch)
    in_place = get_historical(entities, [f"odd:{f}" for f in features])
    assert joins[0] == 1
    through_pandas = get_historical(entities, [f"odd_pandas:{f}" for f in features])
    assert joins[0] == 1
    pd.testing.assert_frame_equal(in_place, through_pandas)
    assert 30 < in_place["score"].notna().sum() < len(entities)  # matches, misses and expiries all happen
