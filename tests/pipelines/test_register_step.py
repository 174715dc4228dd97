"""The standard pipeline's register step: an unchanged re-run registers nothing, for every tree ensemble
(whose re-serialised bytes would differ from the stored ones), since a step can take the stored reference
of an input; and the signature is inferred from the whole training frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard
from shipyard.cli.main import main
from shipyard.context import open_context
from shipyard.errors import ValidationError
from shipyard.pipelines.lifecycle import run_standard
from shipyard.pipelines.materialize import Stored

CLASSIFIER = {"target": "label", "metric": "accuracy", "threshold": "{accuracy: {min: 0.0}}"}
REGRESSOR = {"target": "amount", "metric": "rmse", "threshold": "{rmse: {max: 1000000.0}}"}
TREES = "{n_estimators: 3, max_depth: 3, random_state: 0}"

ESTIMATORS = [
    ("sklearn.ensemble.RandomForestClassifier", TREES, CLASSIFIER),
    ("sklearn.ensemble.RandomForestRegressor", TREES, REGRESSOR),
    ("sklearn.ensemble.ExtraTreesClassifier", TREES, CLASSIFIER),
    ("sklearn.ensemble.ExtraTreesRegressor", TREES, REGRESSOR),
    ("sklearn.ensemble.GradientBoostingClassifier", TREES, CLASSIFIER),
    ("sklearn.ensemble.GradientBoostingRegressor", TREES, REGRESSOR),
    ("sklearn.ensemble.HistGradientBoostingClassifier", "{max_iter: 3, max_depth: 3, random_state: 0}", CLASSIFIER),
    ("sklearn.ensemble.HistGradientBoostingRegressor", "{max_iter: 3, max_depth: 3, random_state: 0}", REGRESSOR),
    ("xgboost.XGBClassifier", "{n_estimators: 3, max_depth: 2, random_state: 0, n_jobs: 1}", CLASSIFIER),
    ("xgboost.XGBRegressor", "{n_estimators: 3, max_depth: 2, random_state: 0, n_jobs: 1}", REGRESSOR),
    ("lightgbm.LGBMClassifier", "{n_estimators: 3, min_child_samples: 5, verbose: -1, n_jobs: 1}", CLASSIFIER),
    ("lightgbm.LGBMRegressor", "{n_estimators: 3, min_child_samples: 5, verbose: -1, n_jobs: 1}", REGRESSOR),
]


def _frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.integers(0, 5, n)})
    frame["label"] = (frame["a"] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    frame["amount"] = 3 * frame["a"] - frame["b"] + rng.normal(scale=0.1, size=n)
    return frame


def _spec(workspace: Path, estimator: str, params: str, task: dict[str, str], sweep: str = "",
          split: str = "", features: str = "") -> None:
    other = "amount" if task["target"] == "label" else "label"
    lines = [
        f"data: {{dataset: tiny, target: {task['target']}{split}}}",
        f"features: {{drop: [{other}]{features}}}",
        "model:",
        "  name: tiny",
        f"  estimator: {estimator}",
        f"  params: {params}",
        *([f"  sweep: {{params: {sweep}}}"] if sweep else []),
        f"evaluation: {{metrics: [{task['metric']}]}}",
        "gates:",
        "  tiny:",
        "    evaluation:",
        "      dataset: tiny@latest",
        f"      target: {task['target']}",
        f"      thresholds: {task['threshold']}",
    ]
    path = workspace / "shipyard.yaml"
    path.write_text(path.read_text() + "\n" + "\n".join(lines) + "\n")


def _model_events() -> list[str]:
    return sorted(e.action for e in shipyard.audit_log() if e.action.startswith("model."))


@pytest.mark.parametrize("estimator, params, task", ESTIMATORS, ids=[e[0].rsplit(".", 1)[1] for e in ESTIMATORS])
def test_an_unchanged_rerun_registers_nothing(workspace: Path, estimator: str, params: str,
                                              task: dict[str, str]) -> None:
    shipyard.data.add("tiny", _frame())
    _spec(workspace, estimator, params, task)
    ctx = open_context()

    first = run_standard(ctx)
    assert first.value() == {"version": "tiny/1", "gates": {"evaluation": "PASS"}, "alias": "champion"}
    version = shipyard.models.get("tiny/1")
    assert version.artifact_digest == first.steps["train"].outputs[0]["digest"]  # the bytes train stored
    second = run_standard(ctx)
    assert second.steps["train"].cache == "hit"
    assert second.output("register") == {"version": "tiny/1", "unchanged": True, "message": "unchanged: already tiny/1"}
    assert second.value() == {"version": "tiny/1", "gates": {"evaluation": "PASS"}, "alias": "champion",
                              "unchanged": True}
    assert [v.version_id for v in shipyard.models.versions("tiny")] == ["tiny/1"]
    assert [(m.alias, m.to_version) for m in shipyard.models.alias_history("tiny")] == [("champion", 1)]
    assert _model_events() == ["model.alias_set", "model.gate", "model.register"]  # those of the first run only


def test_the_run_command_says_unchanged(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipyard.data.add("tiny", _frame())
    _spec(workspace, *ESTIMATORS[0])
    assert main(["run"]) == 0
    assert "Registered tiny/1 (gates: evaluation PASS); it is now champion." in " ".join(capsys.readouterr().out.split())
    assert main(["run"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "unchanged: already tiny/1 (gates: evaluation PASS); it is champion. Nothing was registered." in out
    shipyard.data.add("tiny", _frame(seed=1))  # new data: a new version, which takes challenger
    assert main(["run"]) == 0
    assert "Registered tiny/2" in " ".join(capsys.readouterr().out.split())
    assert shipyard.models.get("tiny@challenger").version == 2


def test_a_sweep_registers_the_bytes_its_train_step_stored(workspace: Path) -> None:
    shipyard.data.add("tiny", _frame())
    _spec(workspace, "sklearn.ensemble.RandomForestClassifier", "{n_estimators: 3, random_state: 0}", CLASSIFIER,
          sweep="{max_depth: [2, 3]}")
    ctx = open_context()
    first = run_standard(ctx)
    trained = {first.steps[n].outputs[0]["digest"] for n in ("train", "train_2")}
    assert first.steps["select"].outputs[0]["digest"] in trained
    assert shipyard.models.get("tiny/1").artifact_digest in trained
    assert run_standard(ctx).value()["unchanged"] is True
    assert len(shipyard.models.versions("tiny")) == 1


def test_a_rerun_gates_a_version_whose_first_run_stopped_before_its_gates(workspace: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.gates import gating

    shipyard.data.add("tiny", _frame())
    _spec(workspace, *ESTIMATORS[0])
    ctx = open_context()
    with monkeypatch.context() as patch:
        patch.setattr(gating, "run_gates", lambda *args, **kwargs: 1 / 0)  # the run stops after registering
        with pytest.raises(shipyard.ShipyardError, match="failed at step 'gate_and_promote'"):
            run_standard(ctx)
    assert shipyard.models.get("tiny").aliases == [] and gating.latest_gates(ctx, "tiny/1") == {}
    again = run_standard(ctx)
    assert again.value() == {"version": "tiny/1", "gates": {"evaluation": "PASS"}, "alias": "champion",
                             "unchanged": True, "promoted": True}


def test_a_model_the_step_outputs_pickled_is_saved_once_by_its_flavor(workspace: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "house_models.py").write_text(
        "from sklearn.linear_model import LogisticRegression\n\n\nclass HouseLogistic(LogisticRegression):\n"
        "    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    shipyard.data.add("tiny", _frame())
    # no preparation step, so the bare estimator is the step's output: a class of no library outputs know
    _spec(workspace, "house_models.HouseLogistic", "{max_iter: 200}", CLASSIFIER, features=", impute: false")
    ctx = open_context()
    first = run_standard(ctx)
    assert first.steps["train"].outputs[0]["kind"] == "pickle"  # not a library the outputs recognise
    assert shipyard.models.get("tiny/1").flavor == "sklearn"
    assert run_standard(ctx).value()["unchanged"] is True
    assert len(shipyard.models.versions("tiny")) == 1


def test_the_signature_comes_from_the_whole_training_frame(workspace: Path) -> None:
    frame = _frame()
    frame.loc[[40, 75, 110], "a"] = np.nan  # the first 20 training rows have no null; later ones do
    shipyard.data.add("tiny", frame)
    _spec(workspace, "sklearn.ensemble.HistGradientBoostingClassifier", "{max_iter: 3, random_state: 0}", CLASSIFIER,
          split=", split: {holdout: tiny@latest}")  # trained on the rows in their order
    result = run_standard(open_context())
    assert result.value()["gates"] == {"evaluation": "PASS"}  # its own gate predicts on rows with nulls
    inputs = {c["name"]: c for c in shipyard.models.get("tiny/1").signature["inputs"]}  # type: ignore[index]
    assert (inputs["a"]["nullable"], inputs["b"]["nullable"]) == (True, False)
    assert (inputs["a"]["minimum"], inputs["a"]["maximum"]) == (frame["a"].min(), frame["a"].max())
    assert (inputs["c"]["minimum"], inputs["c"]["maximum"]) == (0, 4)
    features = frame.drop(columns=["label", "amount"])
    predicted = shipyard.models.load("tiny/1").predict(features)  # rows like its training rows are accepted
    assert len(predicted) == len(frame)


# -- a step that takes the stored reference of its input ----------------------------------------

FLOW = '''
from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier

import shipyard
from shipyard.pipelines.materialize import Stored


@shipyard.step
def fit(depth: int):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    return RandomForestClassifier(n_estimators=3, max_depth=depth, random_state=0).fit(x, x[:, 0] > 0)


@shipyard.step
def pick(models: list[Stored]) -> Stored:
    return models[-1]


@shipyard.step
def where(model: Stored) -> dict:
    return {"digest": model.digest, "kind": model.kind, "classes": model.meta["classes"]}


@shipyard.step
def depth(model) -> int:
    return model.max_depth


@shipyard.pipeline
def flow():
    best = pick([fit(2), fit(3)])
    return where(best), depth(best)
'''


def test_a_stored_parameter_gets_the_reference_and_a_returned_one_is_passed_on(workspace: Path,
                                                                               tmp_path: Path) -> None:
    from shipyard.pipelines.loader import load_pipeline

    (tmp_path / "stored_flow.py").write_text(FLOW)
    flow = load_pipeline(f"{tmp_path / 'stored_flow.py'}:flow")
    result = flow.run()
    fitted = result.steps["fit_2"].outputs[0]
    assert result.steps["pick"].outputs[0] == fitted  # passed on, not stored again
    found, depth = result.value()
    assert found == {"digest": fitted["digest"], "kind": "model:sklearn", "classes": [False, True]}
    assert depth == 3  # an unannotated parameter still gets the loaded value
    assert all(step.cache == "hit" for step in flow.run().steps.values())


def test_an_unresolvable_stored_annotation_is_refused_when_traced(workspace: Path) -> None:
    def body(model: Any) -> str:
        return "unused"

    body.__annotations__["model"] = "Storedd | Stored"  # Stored is not importable where the step lives
    bad = shipyard.step(body)
    source = shipyard.step(lambda: 1)

    @shipyard.pipeline
    def flow() -> Any:
        return bad(source())

    with pytest.raises(ValidationError, match=r"Step 'body' annotates parameter 'model' as 'Storedd \| Stored', which "
                                              r"cannot be resolved \(NameError.*from shipyard.pipelines.materialize import Stored"):
        flow.run()


def test_a_returned_reference_to_a_missing_blob_is_an_error(workspace: Path) -> None:
    from shipyard.pipelines.materialize import store_value

    missing = "0" * 64
    with pytest.raises(shipyard.NotFoundError, match=f"returned the stored output {missing}, which is not in the blob store"):
        store_value(open_context().blobs, Stored(missing, "json", 2))
