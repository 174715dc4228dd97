"""Materialising registered views: incremental loads with a watermark per view version, one audit event per load
recorded after the online write (none when nothing is new), every source checked before anything is written, bad
input refused with the fix, and the CLI (`features materialize`, `features get --online`)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import shipyard
import shipyard.features as fs
from shipyard.context import open_context
from shipyard.errors import BackendError, NotFoundError, ValidationError
from shipyard.features import online
from shipyard.features.loading import load_views
from shipyard.features.online import online_store
from shipyard.store.audit import list_events
from shipyard.store.db import MetadataStore
from tests.cli.helpers import cli, cli_json, fails

VIEWS = '''
from shipyard.features import FeatureView

spend = FeatureView("spend", entities=["customer_id"], source="orders", timestamp="event_ts",
                    features={"amount": "float64", "orders": "int64"}, ttl="2d")
visits = FeatureView("visits", entities=["customer_id"], source="visits.parquet", timestamp="event_ts",
                     features={"pages": "int64", "last_page": "string"})
'''
DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2026-01-01", tz="UTC")


@pytest.fixture
def views_ws(backend_workspace: Path) -> Path:
    """Two applied views (a dataset source, a Parquet file) in a workspace on each metadata store."""
    workspace = backend_workspace
    orders = pd.DataFrame({"customer_id": [1, 1, 2, 3], "event_ts": [T0, T0 + 2 * DAY, T0 + DAY, T0 + 2 * DAY],
                           "amount": [10.0, 30.0, 8.0, 5.0], "orders": [1, 3, 2, 1]})
    shipyard.data.add("orders", orders)
    pd.DataFrame({"customer_id": [1, 2], "event_ts": [T0, T0 + DAY], "pages": [3, 4],
                  "last_page": ["home", "cart"]}).to_parquet(workspace / "visits.parquet")
    (workspace / "views.py").write_text(VIEWS)
    fs.apply(load_views("views.py"))
    return workspace


def events(view: str = "spend@1") -> list[dict[str, Any]]:
    ctx = open_context()
    with ctx.store.read() as conn:
        return [e.payload for e in list_events(conn, object_kind="feature_view", object_id=view,
                                               action="feature_view.materialize", newest_first=False)]


def watermark(view: str, version: int = 1) -> pd.Timestamp | None:
    with online_store(open_context()) as store:
        return store.watermark(view, version)


def test_loads_are_incremental_and_each_is_one_audit_event(views_ws: Path) -> None:
    first = fs.materialize("spend", end=T0 + DAY)
    assert [f.to_dict() for f in first] == [{
        "view": "spend@1", "rows_read": 4, "rows_skipped": 0, "rows_in_window": 2, "written": 2,
        "watermark_before": None, "watermark": (T0 + DAY).isoformat(), "changed": True}]
    online_now = fs.get_online(["spend:amount"], [{"customer_id": 1}, {"customer_id": 2}, {"customer_id": 3}],
                               at=T0 + DAY)
    assert online_now.values["amount"].tolist()[:2] == [10.0, 8.0]
    assert online_now.status["amount"].astype(str).tolist() == ["present", "present", "missing"]
    [second] = fs.materialize(["spend@1"])
    assert (second.loaded.rows_in_window, second.loaded.written) == (2, 2)
    assert second.to_dict()["watermark"] == (T0 + 2 * DAY).isoformat()
    [again] = fs.materialize("spend")
    assert again.changed is False and again.loaded.written == 0
    recorded = events()
    assert [(e["rows_in_window"], e["written"], e["watermark"]) for e in recorded] == [
        (2, 2, (T0 + DAY).isoformat()), (2, 2, (T0 + 2 * DAY).isoformat())]
    assert recorded[0]["end"] == (T0 + DAY).isoformat() and recorded[0]["store"] == "sqlite"
    later = fs.get_online(["spend:amount,orders"], [{"customer_id": 1}], at=T0 + 4 * DAY)
    assert later.values["amount"].tolist() == [30.0] and later.values["orders"].dtype == "Int64"
    assert fs.get_online(["spend:amount"], [{"customer_id": 1}], at=T0 + 4 * DAY + pd.Timedelta("1ns")
                         ).status["amount"].astype(str).tolist() == ["expired"]


def test_every_view_by_default_and_new_source_rows_on_the_next_run(views_ws: Path) -> None:
    loads = fs.materialize()
    assert [(r.view.version_id, r.loaded.written) for r in loads] == [("spend@1", 3), ("visits@1", 2)]
    pd.DataFrame({"customer_id": [1, 2, 3], "event_ts": [T0, T0 + DAY, T0 + 3 * DAY], "pages": [3, 4, 9],
                  "last_page": ["home", "cart", "pay"]}).to_parquet(views_ws / "visits.parquet")
    [spend, visits] = fs.materialize()
    assert spend.changed is False and (visits.loaded.rows_in_window, visits.loaded.written) == (1, 1)
    got = fs.get_online(["visits:pages,last_page", "spend:amount"], [{"customer_id": 3}], at=T0 + 3 * DAY)
    assert got.values[["pages", "last_page", "amount"]].iloc[0].tolist() == [9, "pay", 5.0]
    assert str(got.values["last_page"].dtype) == "string"
    assert len(events("visits@1")) == 2 and len(events("spend@1")) == 1


def test_a_source_missing_a_column_stops_every_view_before_any_write(views_ws: Path) -> None:
    pd.DataFrame({"customer_id": [1], "event_ts": [T0], "page": [3], "last_page": ["x"]}).to_parquet(
        views_ws / "visits.parquet")
    with pytest.raises(ValidationError, match="no column 'pages'.*Did you mean 'page'"):
        fs.materialize()
    assert watermark("spend") is None and watermark("visits") is None
    assert events() == [] and events("visits@1") == []


@pytest.mark.parametrize(("call", "error", "fragment"), [
    (lambda: fs.materialize("spnd"), NotFoundError, "Did you mean 'spend'"),
    (lambda: fs.materialize("spend@9"), NotFoundError, "no version 9"),
    (lambda: fs.materialize(["spend", "spend@1"]), ValidationError, "spend@1 is named twice"),
    (lambda: fs.materialize(start="2026-02-01", end="2026-01-01"), ValidationError, "is after --end"),
    (lambda: fs.materialize(end="soon"), ValidationError, "'soon'"),
    (lambda: fs.get_online(["spend:amont"], [{"customer_id": 1}]), NotFoundError, "Did you mean 'amount'"),
    (lambda: fs.get_online(["spend:amount", "visits:amount"], [{"customer_id": 1}]), NotFoundError, "visits@1"),
    (lambda: fs.get_online(["spend:orders", "spend@1:amount"], [{"customer_id": 1}]), ValidationError,
     "same view version"),
])
def test_bad_input_is_refused_with_nothing_written(views_ws: Path, call: Any, error: type[Exception],
                                                  fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        call()
    assert watermark("spend") is None and events() == []


def test_a_view_never_loaded_is_named_when_read(views_ws: Path) -> None:
    fs.materialize("spend")
    with pytest.raises(NotFoundError, match="holds nothing for view 'visits' version 1: materialise it first"):
        fs.get_online(["spend:amount", "visits:pages"], [{"customer_id": 1}])


def test_a_failed_online_write_records_no_event(views_ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> int:
        raise BackendError("the online store went away")

    with monkeypatch.context() as patch, pytest.raises(BackendError, match="went away"):
        patch.setattr(online.OnlineStore, "_write", broken)
        fs.materialize("spend")
    assert watermark("spend") is None and events() == []


def test_a_load_whose_event_failed_says_so_and_the_next_run_records_it(views_ws: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    original = MetadataStore.mutation

    def no_audit(self: MetadataStore, actor: str, action: str, *args: Any) -> AbstractContextManager[Any]:
        if action == "feature_view.materialize":
            raise BackendError("the metadata store is read-only")
        return original(self, actor, action, *args)

    with monkeypatch.context() as patch, pytest.raises(
            BackendError, match=r"spend@1 was loaded into the online store .*3 rows written.*read-only"):
        patch.setattr(MetadataStore, "mutation", no_audit)
        fs.materialize("spend")
    assert watermark("spend") == T0 + 2 * DAY and events() == []
    [late] = fs.materialize("spend")
    assert late.changed is False and late.unrecorded is True
    [event] = events()
    assert event["unrecorded"] is True and event["watermark"] == (T0 + 2 * DAY).isoformat()
    assert fs.materialize("spend")[0].unrecorded is False and len(events()) == 1


def test_cli_materialize_and_get_online(views_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loads = cli_json(capsys, "features", "materialize", "spend", "--end", "2026-01-02")
    assert [(r["view"], r["written"], r["watermark"]) for r in loads] == [("spend@1", 2, "2026-01-02T00:00:00+00:00")]
    code, out, _ = cli(capsys, "features", "materialize")
    assert code == 0 and "spend@1" in out and "visits@1" in out and "loaded" in out
    code, out, _ = cli(capsys, "features", "materialize", "spend")
    assert code == 0 and "nothing new" in out
    got = cli_json(capsys, "features", "get", "--online", "--entities", '[{"customer_id": 1}, {"customer_id": 7}]',
                   "--features", "spend:amount,orders", "--features", "visits:last_page", "--at", "2026-01-03")
    assert got["rows"] == [
        {"entities": {"customer_id": 1}, "values": {"amount": 30.0, "orders": 3, "last_page": "home"},
         "status": {"amount": "present", "orders": "present", "last_page": "present"}},
        {"entities": {"customer_id": 7}, "values": {"amount": None, "orders": None, "last_page": None},
         "status": {"amount": "missing", "orders": "missing", "last_page": "missing"}}]
    pd.DataFrame({"customer_id": [2]}).to_csv(views_ws / "who.csv", index=False)
    code, out, _ = cli(capsys, "features", "get", "--online", "--entities", "who.csv", "--features", "spend:amount",
                       "--at", "2026-01-10", "--full-names", "-o", "online.parquet")
    assert code == 0 and "(expired)" in out
    saved = pd.read_parquet(views_ws / "online.parquet")
    assert saved.columns.tolist() == ["customer_id", "spend__amount", "spend__amount__status"]
    assert saved["spend__amount__status"].tolist() == ["expired"]
    assert "--at" in fails(capsys, "features", "get", "--entities", "who.csv", "--features", "spend:amount",
                           "--at", "2026-01-10", "-o", "x.csv")
    assert "not valid JSON" in fails(capsys, "features", "get", "--online", "--entities", "[{customer_id: 1}]",
                                     "--features", "spend:amount")
    assert json.loads(cli(capsys, "features", "materialize", "--json")[1])[0]["changed"] is False
