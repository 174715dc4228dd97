"""`shipyard features list|show|apply|get`, end to end on a workspace, with --json and as tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import shipyard
from tests.cli.helpers import cli, cli_json

VIEWS = '''
from shipyard.features import FeatureView


def per_order(df):
    return df.assign(avg_amount=df["amount"] / df["orders"])


spend = FeatureView("spend", entities=["customer_id"], source="orders", timestamp="event_ts",
                    features={"amount": "float64", "orders": "int64"}, ttl="2d", description="What customers spent")
averages = FeatureView("averages", entities=["customer_id"], source="orders.parquet", timestamp="event_ts",
                       features={"avg_amount": "float64"}, transform=per_order)
'''


@pytest.fixture
def features_ws(workspace: Path) -> Path:
    orders = pd.DataFrame({"customer_id": [1, 1, 2], "event_ts": pd.to_datetime(["2026-01-01", "2026-01-03",
                                                                                "2026-01-02"]),
                           "amount": [10.0, 30.0, 8.0], "orders": [1, 3, 2]})
    shipyard.data.add("orders", orders)
    orders.to_parquet(workspace / "orders.parquet")
    (workspace / "views.py").write_text(VIEWS)
    pd.DataFrame({"customer_id": [2, 1, 3], "event_timestamp": ["2026-01-05T00:00:00", "2026-01-04T00:00:00",
                                                               "2026-01-04T00:00:00"],
                  "label": [0, 1, 1]}).to_csv(workspace / "labels.csv", index=False)
    return workspace


def test_apply_list_show(features_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    applied = cli_json(capsys, "features", "apply", "views.py")
    assert [(r["version_id"], r["created"]) for r in applied] == [("spend@1", True), ("averages@1", True)]
    assert [r["created"] for r in cli_json(capsys, "features", "apply", "views")] == [False, False]
    listed = cli_json(capsys, "features", "list")
    assert [(v["name"], v["versions"], v["latest"]["ttl"]) for v in listed] == [("averages", 1, "never"),
                                                                                  ("spend", 1, "2d")]
    shown = cli_json(capsys, "features", "show", "spend@1")
    assert shown["features"] == {"amount": "float64", "orders": "int64"} and shown["versions"] == [1]
    assert shown["description"] == "What customers spent" and shown["source"] == "orders"
    code, out, _ = cli(capsys, "features", "show", "averages")
    assert code == 0 and "per_order in" in out and "avg_amount" in out
    code, out, _ = cli(capsys, "features", "list")
    assert code == 0 and "spend@1" in out and "averages@1" in out


def test_get_writes_a_training_set_and_versions_it(features_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "features", "apply", "views.py")
    summary = cli_json(capsys, "features", "get", "--entities", "labels.csv", "--features", "spend:amount,orders",
                       "--features", "averages:avg_amount", "-o", "out/train.parquet", "--save-as", "train")
    assert summary["rows"] == 3 and summary["dataset_version"] == "train@1" and summary["created"] is True
    assert summary["matched"] == {"amount": 1, "orders": 1, "avg_amount": 2}
    frame = pd.read_parquet(features_ws / "out" / "train.parquet")
    assert list(frame.columns) == ["customer_id", "event_timestamp", "label", "amount", "orders", "avg_amount"]
    # customer 2 on the 5th: its value of the 2nd is three days old, past spend's TTL of two days
    assert frame["amount"].isna().tolist() == [True, False, True] and frame["amount"].iloc[1] == 30.0
    assert frame["avg_amount"].tolist()[:2] == [4.0, 10.0]
    assert shipyard.data.load("train@1").shape == (3, 6)
    code, out, _ = cli(capsys, "features", "get", "--entities", "train@1", "--features", "spend:orders",
                       "--full-names", "--timestamp", "event_timestamp", "-o", "again.csv")
    assert code == 0 and "rows with a value: spend__orders 1/3" in out
    assert pd.read_csv(features_ws / "again.csv")["spend__orders"].tolist()[1] == 3
    lineage = json.loads(cli(capsys, "lineage", "show", "train@1", "--json")[1])
    assert {(c["kind"], c["id"]) for c in lineage["children"]} == {("feature_view", "spend@1"),
                                                                   ("feature_view", "averages@1"),
                                                                   ("dataset_version", "orders@1")}
