"""The online reader: entity rows given as dicts are answered without pandas, with exactly what the DataFrame
path gives (values, nulls, types, statuses), on SQLite and on Redis; its cached view definitions follow a newly
applied version, at once when applied in this process and after the recheck interval otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import shipyard.features as fs
from shipyard.context import open_context
from shipyard.features import online_features, registry
from shipyard.features.online_features import OnlineReader
from tests.features.test_online_offline import FEATURES, KEYS, NS, TTL, T, events, requests, ws  # noqa: F401

PLAIN = {"amount": float, "count": int, "tag": str, "flag": bool, "amount_x2": float}


def _no_frames(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the DataFrame path was taken")


def _request_rows() -> list[dict[str, Any]]:
    rows = requests(events())[KEYS]
    return [{"customer": int(c), "store": s} for c, s in rows.itertuples(index=False)]


@pytest.mark.parametrize("full_names", [False, True])
def test_dict_rows_give_what_the_dataframe_path_gives(ws: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                      full_names: bool) -> None:
    fs.materialize()
    rows = _request_rows()
    frame_rows = pd.DataFrame(rows)
    reader = fs.online_reader()
    seen: set[str] = set()
    for at in [T, T + TTL - NS, T + TTL + pd.Timedelta("5min"), T - pd.Timedelta("30min")]:
        by_frame = fs.get_online(FEATURES, frame_rows, at=at, full_names=full_names)  # lookup on a DataFrame
        with monkeypatch.context() as patched:
            patched.setattr(online_features, "lookup", _no_frames)
            by_dicts = fs.get_online(FEATURES, rows, at=at, full_names=full_names)
            values, statuses = reader.get(FEATURES, rows, at=at, full_names=full_names)
            pd.testing.assert_frame_equal(by_dicts.values, by_frame.values)
            pd.testing.assert_frame_equal(by_dicts.status, by_frame.status)
        columns = list(by_frame.status.columns)
        assert [list(v) for v in values] == [list(by_frame.values.columns)] * len(rows)
        assert [list(s) for s in statuses] == [columns] * len(rows)
        for i, (value, status) in enumerate(zip(values, statuses, strict=True)):
            assert {k: value[k] for k in KEYS} == rows[i]
            for column in columns:
                expected = by_frame.values[column].iloc[i]
                assert status[column] == str(by_frame.status[column].iloc[i])
                seen.add(status[column])
                if pd.isna(expected):
                    assert value[column] is None
                else:
                    assert value[column] == expected
                    assert type(value[column]) is PLAIN[column.split("__")[-1]]
    assert seen == {"present", "missing", "expired"}
    assert any(status == "present" and value is None for v, s in zip(values, statuses, strict=True)
               for value, status in zip(v.values(), s.values(), strict=False))  # a stored null stays null


def test_one_dict_and_rows_the_fast_path_cannot_take(ws: Path) -> None:  # noqa: F811
    fs.materialize()
    reader = fs.online_reader()
    one = reader.get(["activity:amount"], {"customer": 2, "store": "a"}, at=T)
    assert one.values == [{"customer": 2, "store": "a", "amount": 999.0}] and one.statuses == [{"amount": "present"}]
    # One request time per row goes through the DataFrame path, with the same answer shape.
    edge = reader.get(["activity:amount"], [{"customer": 1, "store": "b"}] * 2, at=[T + TTL, T + TTL + NS])
    assert [s["amount"] for s in edge.statuses] == ["present", "expired"]
    assert edge.values[1] == {"customer": 1, "store": "b", "amount": None}
    # Errors are those of the DataFrame path.
    with pytest.raises(Exception, match="mixes whole numbers and strings"):
        reader.get(["activity:amount"], [{"customer": 1, "store": "b"}, {"customer": "x", "store": "b"}], at=T)
    with pytest.raises(Exception, match="customer"):
        reader.get(["activity:amount"], [{"store": "b"}], at=T)


def _ttl_2h() -> fs.FeatureView:
    return fs.FeatureView("activity", entities=["customer", "store"], source="events.parquet", timestamp="event_ts",
                          created_timestamp="written_ts", ttl="2h",
                          features={"amount": "float64", "count": "int64", "tag": "string", "flag": "bool"})


def test_a_view_applied_in_this_process_is_read_at_once(ws: Path) -> None:  # noqa: F811
    fs.materialize()
    reader = fs.online_reader()
    assert fs.online_reader() is reader
    later = T + pd.Timedelta("90min")  # past version 1's TTL (1h), within version 2's (2h)
    row = {"customer": 0, "store": "a"}
    assert reader.get(["activity:amount"], row, at=later).statuses == [{"amount": "expired"}]
    assert [r.created for r in fs.apply([_ttl_2h()])] == [True]
    fs.materialize(["activity"])
    assert reader.plan(["activity:amount"], False).reads[0].version == 2
    assert reader.get(["activity:amount"], row, at=later).statuses == [{"amount": "present"}]
    assert fs.get_online(["activity:amount"], [row], at=later).status["amount"].tolist() == ["present"]
    # A pinned version stays what it names.
    assert reader.get(["activity@1:amount"], row, at=later).statuses == [{"amount": "expired"}]


def test_a_view_applied_elsewhere_is_read_after_the_recheck(ws: Path,  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fs.materialize()
    later = T + pd.Timedelta("90min")
    row = {"customer": 0, "store": "a"}
    # As if versions came from another process: this process's count of registered versions never moves.
    monkeypatch.setattr(registry, "registrations", lambda: 0)
    waiting = OnlineReader(open_context(), recheck_seconds=3600)
    eager = OnlineReader(open_context(), recheck_seconds=0)
    for reader in (waiting, eager):
        assert reader.get(["activity:amount"], row, at=later).statuses == [{"amount": "expired"}]
    fs.apply([_ttl_2h()])
    fs.materialize(["activity"])
    assert waiting.get(["activity:amount"], row, at=later).statuses == [{"amount": "expired"}]
    assert waiting.plan(["activity:amount"], False).reads[0].version == 1
    assert eager.get(["activity:amount"], row, at=later).statuses == [{"amount": "present"}]
    waiting.close()
    eager.close()
