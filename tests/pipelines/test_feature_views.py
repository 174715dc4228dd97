"""The standard pipeline trained through feature views (`features.views`): the label data joined point-in-time
with two views (one from a dataset, one from a file with a transform), versioned as the training set, trained,
evaluated, registered with the views it needs; an unchanged re-run changes nothing, a re-applied view makes a new
training set and model; lineage reaches the view versions; a bad spec is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import shipyard
from shipyard.cli.main import main
from shipyard.context import open_context
from shipyard.features import get_historical
from shipyard.pipelines.lifecycle import run_standard
from shipyard.store.lineage import Node, walk

START = pd.Timestamp("2026-03-01", tz="UTC")
CUSTOMERS = 40

VIEWS = '''
import pandas as pd

from shipyard.features import FeatureView


def per_item(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(amount_per_item=df["amount"] / df["items"])


customer_stats = FeatureView("customer_stats", entities=["customer_id"], source="daily", timestamp="event_ts",
                             features={"avg_amount": "float64", "n_orders": "int64"}, ttl="30d")

last_order = FeatureView("last_order", entities=["customer_id"], source="orders.parquet", timestamp="event_ts",
                         features={"amount_per_item": "float64", "channel": "string"}, transform=per_item)
'''

SPEC = """
data:
  dataset: churn
  target: churned
features:
  views: ["customer_stats:avg_amount,n_orders", "last_order:*"]
  drop: [note]
model:
  name: churn
  estimator: sklearn.linear_model.LogisticRegression
  params: {max_iter: 500}
evaluation:
  metrics: [accuracy]
gates:
  churn:
    evaluation:
      dataset: split
      target: churned
      thresholds: {accuracy: {min: 0.6}}
"""


def _sources(root: Path) -> None:
    rng = np.random.default_rng(0)
    days = pd.date_range(START - pd.Timedelta(days=20), periods=20, freq="D")
    daily = pd.DataFrame([(c, d) for c in range(CUSTOMERS) for d in days], columns=["customer_id", "event_ts"])
    daily["avg_amount"] = daily["customer_id"] % 10 * 10.0 + rng.normal(size=len(daily))
    daily["n_orders"] = (daily["customer_id"] % 7).astype("int64")
    shipyard.data.add("daily", daily)
    orders = pd.DataFrame({"customer_id": np.arange(CUSTOMERS), "event_ts": [START - pd.Timedelta(days=2)] * CUSTOMERS,
                           "amount": np.arange(CUSTOMERS) * 3.0 + 1, "items": rng.integers(1, 4, CUSTOMERS),
                           "channel": np.where(np.arange(CUSTOMERS) % 3 == 0, "web", "store")})
    orders.to_parquet(root / "orders.parquet")


def _labels(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 240
    customers = rng.integers(0, CUSTOMERS, n)
    labels = pd.DataFrame({"customer_id": customers,
                           "event_timestamp": START + pd.to_timedelta(rng.integers(0, 72, n), unit="h"),
                           "note": ["x"] * n})
    labels["churned"] = (customers % 10 >= 5).astype(int)
    labels.loc[::40, "customer_id"] = 1000  # a customer no view knows: null features, which the model takes
    return labels.drop_duplicates(["customer_id", "event_timestamp"])  # one row per customer and time


@pytest.fixture
def project(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return _project(workspace, monkeypatch)


@pytest.fixture
def backend_project(backend_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project on each metadata store backend (SQLite, PostgreSQL)."""
    return _project(backend_workspace, monkeypatch)


def _project(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _sources(workspace)
    (workspace / "churn_views.py").write_text(VIEWS)
    monkeypatch.syspath_prepend(str(workspace))
    assert main(["features", "apply", "churn_views.py"]) == 0
    shipyard.data.add("churn", _labels())
    spec = workspace / "shipyard.yaml"
    spec.write_text(spec.read_text() + SPEC)
    return workspace


def _upstream(node: Node) -> set[Node]:
    with open_context().store.read() as conn:
        tree = walk(conn, node, upstream=True)
    found, stack = set(), [tree]
    while stack:
        current = stack.pop()
        found.add(current.node)
        stack.extend(current.children)
    return found


def test_the_pipeline_trains_on_the_point_in_time_training_set(project: Path) -> None:
    result = run_standard(open_context())
    assert list(result.steps)[:3] == ["validate_data", "join_features", "prepare"]
    assert result.value() == {"version": "churn/1", "gates": {"evaluation": "PASS"}, "alias": "champion"}
    assert result.output("join_features") == "churn-training@1"

    expected = get_historical("churn@1", ["customer_stats:avg_amount", "customer_stats:n_orders",
                                          "last_order:amount_per_item", "last_order:channel"])
    stored = shipyard.data.load("churn-training@1")
    pd.testing.assert_frame_equal(stored, expected)  # the views' types too (n_orders Int64, channel string)

    version = shipyard.models.get("churn/1")
    assert version.dataset_version == "churn-training@1"
    assert version.details["features"] == {
        "views": ["customer_stats@1", "last_order@1"],
        "features": ["customer_stats@1:avg_amount", "customer_stats@1:n_orders", "last_order@1:amount_per_item",
                     "last_order@1:channel"],
        "entities": ["customer_id"], "timestamp": "event_timestamp",
        "columns": {"avg_amount": "float64", "n_orders": "int64", "amount_per_item": "float64", "channel": "string"},
    }
    from shipyard.governance.cards import build_card

    train = build_card(open_context(), "churn/1")["model_parameters"]["data"]["train"]
    assert train["name"] == "churn-training@1" and train["feature_views"] == ["customer_stats@1", "last_order@1"]
    assert "joined point-in-time from feature views customer_stats@1, last_order@1" in train["note"]
    inputs = [c["name"] for c in version.signature["inputs"]]  # type: ignore[index]
    assert inputs == ["avg_amount", "n_orders", "amount_per_item", "channel"]  # no key, time or dropped column
    model = shipyard.models.load("churn/1")
    unknown = expected[expected["customer_id"] == 1000]
    assert len(unknown) == 6 and unknown[inputs].isna().all().all()  # no view knows it: nulls (NA in n_orders)
    assert len(model.predict(expected[inputs])) == len(expected)  # the model takes them, as served

    upstream = _upstream(Node("model_version", "churn/1"))
    register_run = result.steps["register"].run_id
    assert register_run is not None
    assert {Node("dataset_version", "churn-training@1"), Node("feature_view", "customer_stats@1"),
            Node("feature_view", "last_order@1"), Node("dataset_version", "churn@1"),
            Node("dataset_version", "daily@1"), Node("run", register_run)} <= upstream


def _counts() -> tuple[int, int, list[str]]:
    return (len(shipyard.data.log("churn-training")), len(shipyard.models.versions("churn")),
            sorted(e.action for e in shipyard.audit_log() if e.action.startswith(("dataset.", "model.", "feature_view."))))


def test_an_unchanged_rerun_is_a_cache_hit_and_a_changed_view_makes_a_new_training_set_and_model(
        backend_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = backend_project
    ctx = open_context()
    run_standard(ctx)
    before = _counts()
    again = run_standard(ctx)
    assert again.steps["join_features"].cache == "hit" and again.steps["train"].cache == "hit"
    assert again.value()["unchanged"] is True and again.value()["version"] == "churn/1"
    assert _counts() == before  # no dataset or model version, no change to either

    # the transform changes: a new version of last_order, so a new training set and a new model
    # (a new file: this process imported the first one already)
    (project / "churn_views_2.py").write_text(VIEWS.replace('df["amount"] / df["items"]', 'df["amount"] * df["items"]'))
    assert main(["features", "apply", "churn_views_2.py"]) == 0
    assert shipyard.features.get("last_order").version == 2
    changed = run_standard(ctx)
    assert changed.steps["validate_data"].cache == "hit"
    assert changed.steps["join_features"].cache == "miss"
    assert "params changed: features" in changed.steps["join_features"].reason
    assert changed.output("join_features") == "churn-training@2"
    assert changed.value()["version"] == "churn/2" and changed.value()["alias"] == "challenger"
    version = shipyard.models.get("churn/2")
    assert version.dataset_version == "churn-training@2"
    assert version.details["features"]["views"] == ["customer_stats@1", "last_order@2"]
    assert main(["lineage", "show", "churn/2", "--json"]) == 0
    shown = capsys.readouterr().out
    assert '"last_order@2"' in shown and '"customer_stats@1"' in shown and '"last_order@1"' not in shown


def test_new_source_data_of_an_unchanged_view_misses_the_cache(project: Path) -> None:
    ctx = open_context()
    run_standard(ctx)
    orders = pd.read_parquet(project / "orders.parquet")
    orders["amount"] = orders["amount"][::-1].to_numpy()  # the file changes; the view's definition does not
    orders.to_parquet(project / "orders.parquet")
    again = run_standard(ctx)
    assert again.steps["join_features"].cache == "miss"
    assert again.output("join_features") == "churn-training@2"
    assert shipyard.features.get("last_order").version == 1


def test_the_entity_key_is_a_feature_when_the_spec_gives_it_a_role(project: Path) -> None:
    spec = project / "shipyard.yaml"
    spec.write_text(spec.read_text().replace("drop: [note]", "drop: [note]\n  categorical: [customer_id]"))
    run_standard(open_context())
    inputs = [c["name"] for c in shipyard.models.get("churn/1").signature["inputs"]]  # type: ignore[index]
    assert inputs == ["customer_id", "avg_amount", "n_orders", "amount_per_item", "channel"]


@pytest.mark.parametrize("edit, message", [
    (("customer_stats:avg_amount,n_orders", "customer_stat:avg_amount,n_orders"),
     "features.views[0]: No feature view named 'customer_stat'. Did you mean 'customer_stats'?"),
    (("customer_stats:avg_amount,n_orders", "customer_stats:avg_amont,n_orders"),
     "features.views[0]: feature view customer_stats@1 has no feature 'avg_amont'. Did you mean 'avg_amount'?"),
    (("customer_stats:avg_amount,n_orders", "customer_stats@3:avg_amount"),
     "features.views[0]: Feature view 'customer_stats' has no version 3. Versions: customer_stats@1."),
    (('"last_order:*"', '"last_order"'), "features.views[1] = 'last_order': expected VIEW:FEATURE"),
    (("drop: [note]", "drop: [note]\n  timestamp: event_time"),
     "features.timestamp: dataset 'churn@1' (data.dataset) has no column 'event_time'. Did you mean "
     "'event_timestamp'?"),
    (("categorical: []", "categorical: [chanel]"),
     "features.categorical[0]: column 'chanel' is not in dataset 'churn@1'. Did you mean 'channel'?"),
    (("categorical: []", "categorical: []\n  training_set: churn@training"),
     "features.training_set: Invalid dataset name"),
    (("target: churned", "target: churned\n  split: {holdout: churn@1}"),
     "data.split.holdout: with features.views the model trains on the training set"),
    (('views: ["customer_stats:avg_amount,n_orders", "last_order:*"]', "views: []\n  timestamp: event_timestamp"),
     "features.timestamp is set, but features.views names no feature view to join"),
])
def test_a_bad_spec_is_refused_before_anything_runs(project: Path, edit: tuple[str, str], message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    spec = project / "shipyard.yaml"
    text = spec.read_text().replace("drop: [note]", "drop: [note]\n  categorical: []")
    spec.write_text(text.replace(*edit, 1))
    assert main(["run"]) == 1
    assert message in " ".join(capsys.readouterr().err.split())
    assert not shipyard.search_runs(experiment="pipelines")  # nothing ran
    with pytest.raises(shipyard.NotFoundError):
        shipyard.data.get("churn-training")


def test_label_data_without_the_entity_key_or_with_a_feature_named_like_a_column(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipyard.data.add("churn", _labels().rename(columns={"customer_id": "customer"}))
    assert main(["run"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert ("features.views[0]: feature view customer_stats@1 is keyed by 'customer_id', which dataset 'churn@2' "
            "(data.dataset) does not have. Did you mean 'customer'?") in err
    shipyard.data.add("churn", _labels().assign(channel="web"))
    assert main(["run"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert ("features.views[1]: feature 'channel' of view last_order@1 would be column 'channel', which dataset "
            "'churn@3' (data.dataset) already has. Rename that column of the label data, or leave the feature out "
            "of features.views.") in err
    assert not shipyard.search_runs(experiment="pipelines")
    with pytest.raises(shipyard.NotFoundError):
        shipyard.models.get("churn")


def test_ci_gates_a_candidate_trained_through_the_views_without_registering_it(project: Path) -> None:
    from shipyard.pipelines.ci import run_ci

    result = run_ci(open_context())
    assert result.status == "passed", result.markdown
    assert "churn-training@1" in [v.version_id for v in shipyard.data.log("churn-training")]
    with pytest.raises(shipyard.NotFoundError):
        shipyard.models.get("churn")  # a candidate is kept with its run, not registered
