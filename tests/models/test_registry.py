"""The registry on each metadata backend: registration with signature, environment and lineage;
aliases and their history; archive; verified loading in a fresh process; signature enforcement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard
from shipyard.context import open_context
from shipyard.errors import ConflictError, GateFailed, IntegrityError, NotFoundError, ValidationError
from shipyard.models import registry


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_breast_cancer(as_frame=True, return_X_y=True)
    return x, y


def _train(x: pd.DataFrame, y: pd.Series, c: float = 1.0):  # type: ignore[no-untyped-def]
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x, y)


def test_register_from_a_run_records_everything(backend_workspace: Path, cancer) -> None:  # type: ignore[no-untyped-def]
    x, y = cancer
    shipyard.data.add("cancer", x.assign(target=y))
    with shipyard.start_run("train") as run:
        run.log_input("cancer@1")
        run.log_metric("accuracy", 0.97)
        model = _train(x, y)
        v1 = run.log_model(model, "cancer", input_example=x.head())
        v2 = run.log_model(_train(x, y, 0.1), "cancer", input_example=x.head())
    assert (v1.version_id, v2.version_id) == ("cancer/1", "cancer/2")
    assert v1.flavor == "sklearn" and v1.run_id == run.run_id and v1.dataset_version == "cancer@1"
    assert v1.metrics == {"accuracy": 0.97}
    assert [c["name"] for c in v1.signature["inputs"]] == list(x.columns)  # type: ignore[index]
    assert v1.environment["packages"]["scikit-learn"] and v1.environment["python"]
    assert v1.details["task"] == "classification"
    # the packaged model is also attached to the run
    assert {a.path for a in shipyard.get_run(run.run_id).artifacts} >= {"models/cancer/model.skops",
                                                                         "models/cancer/shipyard-model.json"}
    from shipyard.governance.lineage import walk
    from shipyard.store.lineage import Node

    upstream = walk(open_context(), Node("model_version", "cancer/1"), upstream=True)
    assert {(c.node.kind, c.relation) for c in upstream.children} == {("run", "output"), ("dataset_version", "derived")}
    loaded = shipyard.models.load("models:/cancer/1")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x))


def test_register_later_from_the_run(workspace: Path, cancer) -> None:  # type: ignore[no-untyped-def]
    x, y = cancer
    with shipyard.start_run() as run:
        assert run.log_model(_train(x, y), "later", input_example=x.head(), register=False) is None
    from shipyard.cli.main import main

    assert main(["models", "register", "later", "--run", run.run_id[:8]]) == 0
    assert shipyard.models.get("later").run_id == run.run_id
    with pytest.raises(NotFoundError, match="no logged model at 'models/other'"):
        registry.register_from_run(open_context(), "other", run.run_id)


def test_aliases_history_and_archive(backend_workspace: Path, cancer) -> None:  # type: ignore[no-untyped-def]
    x, y = cancer
    for c in (1.0, 0.5, 0.1):
        shipyard.models.register("churn", _train(x, y, c), input_example=x.head())
    shipyard.models.set_alias("churn/1", "staging", reason="first look")
    shipyard.models.set_alias("churn/3", "staging")
    with pytest.raises(GateFailed, match="moves only through promotion"):
        shipyard.models.set_alias("churn/2", "champion")
    assert shipyard.models.get("models:/churn@staging").version == 3
    assert shipyard.models.get("churn").version == 3  # latest
    moves = shipyard.models.alias_history("churn", "staging")
    assert [(m.from_version, m.to_version, m.reason) for m in moves] == [(None, 1, "first look"), (1, 3, None)]
    assert all(m.actor == "tester" for m in moves)
    with pytest.raises(ConflictError, match="still the target of alias"):
        shipyard.models.archive("churn/3")
    assert shipyard.models.archive("churn/1").status == "archived"
    with pytest.raises(ConflictError, match="archived"):
        shipyard.models.set_alias("churn/1", "staging")
    registry.delete_alias(open_context(), "churn", "staging", reason="done")
    assert [m.to_version for m in shipyard.models.alias_history("churn")][-1] is None
    actions = [e.action for e in shipyard.audit_log(object_id="churn", newest_first=False)]
    assert actions.count("model.alias_set") == 2 and "model.alias_delete" in actions
    assert shipyard.verify_audit().ok


@pytest.mark.parametrize(
    "ref, error, message",
    [
        ("models:/nope/1", NotFoundError, "No registered model named 'nope'"),
        ("models:/churm/1", NotFoundError, "Did you mean 'churn'"),
        ("models:/churn/9", NotFoundError, "Versions: churn/1"),
        ("models:/churn@champoin", NotFoundError, "has no alias 'champoin'. Aliases: staging"),
        ("models:/churn@stagng", NotFoundError, "Did you mean 'staging'"),
        ("models:/churn/0", ValidationError, "positive number"),
        ("models://churn", ValidationError, "Invalid model"),
    ],
)
def test_unknown_models_versions_and_aliases(workspace: Path, cancer, ref: str, error, message: str) -> None:  # type: ignore[no-untyped-def]
    x, y = cancer
    shipyard.models.register("churn", _train(x, y), input_example=x.head())
    shipyard.models.set_alias("churn/1", "staging")
    with pytest.raises(error, match=message):
        shipyard.models.get(ref)


def test_signature_is_enforced(workspace: Path, cancer) -> None:  # type: ignore[no-untyped-def]
    x, y = cancer
    x = x.iloc[:, :5].copy()
    x["count"] = np.arange(len(x))
    x["region"] = np.where(x["mean radius"] > 14, "north", "south")
    model = make_pipeline(__import__("sklearn.compose", fromlist=["make_column_transformer"]).make_column_transformer(
        (__import__("sklearn.preprocessing", fromlist=["OneHotEncoder"]).OneHotEncoder(), ["region"]),
        remainder=StandardScaler()), LogisticRegression(max_iter=2000)).fit(x, y)
    shipyard.models.register("sig", model, input_example=x.head(), flavor="sklearn")
    loaded = shipyard.models.load("sig")
    expected = model.predict(x)
    np.testing.assert_array_equal(loaded.predict(x.assign(extra=1)), expected)  # extra columns dropped
    np.testing.assert_array_equal(loaded.predict(x[list(reversed(x.columns))]), expected)  # any order
    np.testing.assert_array_equal(loaded.predict(x.assign(count=x["count"].astype(float))), expected)  # safe cast
    with pytest.raises(ValidationError, match="missing column.*'region'"):
        loaded.predict(x.drop(columns=["region"]))
    with pytest.raises(ValidationError, match="Column 'count'.*such as 0.5 is not a whole number"):
        loaded.predict(x.assign(count=x["count"] + 0.5))
    with pytest.raises(ValidationError, match="Column 'mean radius' has a null at row 3"):
        loaded.predict(x.assign(**{"mean radius": x["mean radius"].where(x.index != 3)}))
    with pytest.raises(ValidationError, match="Column 'count' has type object"):
        loaded.predict(x.assign(count=x["count"].astype(str).astype(object)))


class Exploding:
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("feature store unreachable")


def test_a_model_whose_predict_raises_is_not_registered(workspace: Path) -> None:
    with pytest.raises(ValidationError, match="predict failed on the input example: RuntimeError: feature store unreachable"):
        shipyard.models.register("boom", Exploding(), input_example=pd.DataFrame({"a": [1.0]}))
    with pytest.raises(NotFoundError):
        shipyard.models.get("boom")
    assert list(open_context().blobs.iter_digests()) == []  # nothing half-registered: no blob either
    with pytest.raises(ValidationError, match="input_example must be a pandas DataFrame"):
        shipyard.models.register("boom", LogisticRegression(), input_example=[[1, 2]])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Invalid model name"):
        shipyard.models.register("bad name", LogisticRegression())


def test_a_tampered_artifact_is_refused(workspace: Path, cancer) -> None:  # type: ignore[no-untyped-def]
    x, y = cancer
    v = shipyard.models.register("t", _train(x, y), input_example=x.head())
    blob = Path(open_context().blobs._path(v.artifact_digest))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte changed
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"Blob {v.artifact_digest} .* is corrupted"):
        shipyard.models.load("t/1")


LOAD_SCRIPT = """
import json, sys, pandas as pd, shipyard
frame = pd.read_json(sys.argv[1])
model = shipyard.models.load("models:/fresh@champion")
print(json.dumps({"pred": model.predict(frame).tolist(), "proba": model.predict_proba(frame)[:, 1].tolist()}))
"""


def test_registered_gated_promoted_and_loaded_in_a_fresh_process(workspace: Path, cancer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from shipyard.gates.gating import run_gates
    from shipyard.gates.promotion import promote

    x, y = cancer
    model = _train(x, y)
    shipyard.data.add("fresh-holdout", x.assign(target=y).sample(100, random_state=3))
    spec = workspace / "shipyard.yaml"
    spec.write_text(spec.read_text() + "gates:\n  fresh:\n    evaluation:\n      dataset: fresh-holdout@1\n"
                    "      target: target\n      thresholds: {roc_auc: {min: 0.9}}\n")
    shipyard.models.register("fresh", model, input_example=x.head())
    [result] = run_gates(open_context(), "fresh/1")
    assert result.status == "PASS"
    promote(open_context(), "fresh/1")
    sample = x.sample(50, random_state=1)
    sample.to_json(tmp_path / "rows.json")
    out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(tmp_path / "rows.json")], capture_output=True,
                         text=True, check=True, timeout=120)
    got = json.loads(out.stdout)
    assert got["pred"] == model.predict(sample).tolist()
    np.testing.assert_allclose(got["proba"], model.predict_proba(sample)[:, 1], rtol=1e-12)


def _sparse_frame(n: int = 80) -> tuple[pd.DataFrame, pd.Series]:
    """Features whose first rows show no null, no 'west' and a narrow range; later rows do."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 10, n),
                      "region": rng.choice(["north", "south"], n)})
    x.loc[[30, 61], "a"] = np.nan
    x.loc[50, "b"] = 99
    x.loc[70, "region"] = "west"
    return x, (x["b"] > 4).astype(int)


def _nan_tolerant(x: pd.DataFrame, y: pd.Series):  # type: ignore[no-untyped-def]
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.preprocessing import OneHotEncoder

    encode = make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["region"]), remainder="passthrough")
    return make_pipeline(encode, HistGradientBoostingClassifier(max_iter=3)).fit(x, y)


def test_the_signature_is_inferred_from_the_whole_training_frame(workspace: Path) -> None:
    x, y = _sparse_frame()
    model = _nan_tolerant(x, y)
    with shipyard.start_run() as run:
        version = run.log_model(model, "wide", input_example=x.head(20), signature_frame=x)
    inputs = {c["name"]: c for c in version.signature["inputs"]}
    assert (inputs["a"]["nullable"], inputs["b"]["nullable"], inputs["region"]["nullable"]) == (True, False, False)
    assert (inputs["b"]["minimum"], inputs["b"]["maximum"]) == (0, 99)
    assert inputs["region"]["categories"] == ["north", "south", "west"] and inputs["a"]["categories"] is None
    np.testing.assert_array_equal(shipyard.models.load("wide").predict(x), model.predict(x))  # nulls accepted

    only_frame = shipyard.models.register("whole", model, signature_frame=x)  # predicted on its first rows
    assert only_frame.signature == version.signature
    with pytest.raises(ValidationError, match="input_example has columns a, b but signature_frame has a, b, region"):
        shipyard.models.register("whole", model, input_example=x[["a", "b"]].head(), signature_frame=x)
    with pytest.raises(ValidationError, match="signature_frame must be a pandas DataFrame"):
        shipyard.models.register("whole", model, signature_frame=x.to_numpy())  # type: ignore[arg-type]


def test_many_distinct_values_record_no_categories(workspace: Path) -> None:
    from shipyard.models.signature import MAX_CATEGORIES, infer_signature

    frame = pd.DataFrame({"id": [f"c{i}" for i in range(MAX_CATEGORIES + 1)],
                          "flag": pd.Categorical(["x", "y"] * ((MAX_CATEGORIES + 1) // 2) + ["x"]),
                          "ratio": [np.inf] + [0.5] * MAX_CATEGORIES})
    inputs = {c.name: c for c in infer_signature(frame).inputs}
    assert inputs["id"].categories is None and inputs["flag"].categories == ["x", "y"]
    assert (inputs["ratio"].minimum, inputs["ratio"].maximum) == (0.5, 0.5)  # the finite range


def test_an_artifact_already_registered_is_not_registered_again(backend_workspace: Path, cancer) -> None:  # type: ignore[no-untyped-def]
    from shipyard.models.records import Artifact

    x, y = cancer
    ctx = open_context()
    model = _train(x, y)
    stored = registry.store_artifact(ctx, model)
    first = registry.register_artifact(ctx, "same", model, stored, input_example=x.head())
    again = registry.register_artifact(ctx, "same", model, stored, input_example=x.head())
    assert (first.created, again.created) == (True, False) and again.version.version_id == "same/1"
    assert [e.action for e in shipyard.audit_log(object_id="same")] == ["model.register"]  # nothing written
    assert registry.register_artifact(ctx, "other", model, stored).created  # another model may hold it too

    tenth = _train(x, y, 0.1)
    assert registry.register_artifact(ctx, "same", tenth, registry.store_artifact(ctx, tenth)).version.version == 2
    shipyard.models.archive("same/1")
    assert registry.register_artifact(ctx, "same", model, stored).version.version_id == "same/1"
    with pytest.raises(NotFoundError, match="is not in the blob store; nothing was registered"):
        registry.register_artifact(ctx, "same", model, Artifact("sklearn", "0" * 64, 1, {}))
