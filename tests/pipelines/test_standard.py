"""The standard training pipeline from shipyard.yaml, and the errors of its spec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import shipyard
from shipyard.cli.main import main
from shipyard.errors import ConfigError

SPEC = """
data:
  dataset: credit
  target: default
  schema: schemas/credit.yaml
features:
  drop: [customer_id]
  categorical: [region, sex]
  scale: true
model:
  name: credit
  estimator: sklearn.linear_model.LogisticRegression
  params: {max_iter: 1000}
  sweep:
    params: {C: [0.01, 1.0]}
evaluation:
  metrics: [roc_auc, accuracy]
gates:
  credit:
    evaluation:
      dataset: credit@latest
      target: default
      thresholds: {roc_auc: {min: 0.7}}
"""


def _credit(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"customer_id": np.arange(n), "income": rng.normal(50, 15, n),
                          "age": rng.integers(18, 80, n), "region": rng.choice(["north", "south", "east"], n),
                          "sex": rng.choice(["f", "m"], n)})
    frame["default"] = ((frame["income"] < 45) ^ (rng.random(n) < 0.1)).astype(int)
    return frame


@pytest.fixture
def spec(workspace: Path) -> Path:
    shipyard.data.add("credit", _credit(), key=["customer_id"])
    shipyard.data.infer_schema("credit@1")
    path = workspace / "shipyard.yaml"
    path.write_text(path.read_text() + SPEC)
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    code = main(["run", "--json", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else {}), err


def test_standard_pipeline_trains_gates_registers_and_caches(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, first, _ = _run(capsys)
    assert code == 0
    steps = first["steps"]
    assert list(steps)[:3] == ["validate_data", "prepare", "train"] and "select" in steps
    assert first["outcome"] == {"version": "credit/1", "gates": {"evaluation": "PASS"}, "alias": "champion"}
    version = shipyard.models.get("models:/credit@champion")
    assert version.dataset_version == "credit@1" and version.metrics["roc_auc"] > 0.7

    code, second, _ = _run(capsys)
    cached = {k: v["cache"] for k, v in second["steps"].items()}
    assert all(cached[k] == "hit" for k in cached if k not in ("register", "gate_and_promote"))
    assert second["outcome"]["version"] == "credit/1" and second["outcome"].get("unchanged")

    shipyard.data.add("credit", _credit(seed=1))  # new data: everything downstream of it runs again
    code, third, err = _run(capsys)
    assert code == 0, err
    assert third["steps"]["validate_data"]["reason"] == "params changed: version: 'credit@1' → 'credit@2'"
    assert third["outcome"]["version"] == "credit/2" and third["outcome"]["alias"] == "challenger"


def test_bad_data_stops_the_pipeline_before_training(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _credit()
    bad.loc[:50, "region"] = "atlantis"  # unseen categories: an error in the contract
    shipyard.data.add("credit", bad)
    code, _, err = _run(capsys)
    assert code == 1 and "failed at step 'validate_data'" in err and "atlantis" in err
    with pytest.raises(shipyard.NotFoundError):
        shipyard.models.get("credit")  # nothing registered


@pytest.mark.parametrize(
    "edit, message",
    [
        (("  estimator: sklearn", "  estimatr: sklearn"), "unknown key model.estimatr (value 'sklearn.linear_model.LogisticRegression'). Did you mean 'estimator'"),
        (("sklearn.linear_model.LogisticRegression", "sklearn.linear_model.LogisticRegresion"),
         "cannot be imported. Did you mean 'LogisticRegression'"),
        (("categorical: [region, sex]", "categorical: [region, sexx]"),
         "features.categorical[1]: column 'sexx' is not in dataset 'credit@1'. Did you mean 'sex'"),
        (("  dataset: credit\n", "  dataset: credt\n"), "No dataset named 'credt'"),
        (("metrics: [roc_auc, accuracy]", "metrics: [roc_auc, acuracy]"), "evaluation.metrics[1]"),
        # estimator parameters are checked before anything runs, against the estimator's own constraints
        (("params: {max_iter: 1000}", "params: {max_itr: 1000}"),
         "model.params.max_itr: LogisticRegression has no parameter 'max_itr'. Did you mean 'max_iter'?"),
        (("params: {max_iter: 1000}", "params: {max_iter: -5}"),
         "model.params.max_iter = -5: The 'max_iter' parameter of LogisticRegression must be an int in the range "
         "[0, inf). Got -5 instead."),
        (("params: {C: [0.01, 1.0]}", "params: {C: [0.01, -1.0]}"), "model.sweep.params.C[1] = -1.0: The 'C'"),
        (("categorical: [region, sex]", "categorical: [region]"),
         "column 'sex' of dataset 'credit@1' holds categorical values, which the model cannot take as numbers: "
         "add it to features.categorical, or to features.drop."),
        (("categorical: [region, sex]", "categorical: [region, sex, default]"),
         "features.categorical[2]: 'default' is the target (data.target); it is not a feature."),
    ],
)
def test_spec_errors_name_the_key(spec: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str],
                                  message: str) -> None:
    spec.write_text(spec.read_text().replace(*edit, 1))
    code, _, err = _run(capsys)
    assert code == 1 and message in " ".join(err.split()), err
    assert not shipyard.search_runs(experiment="pipelines")  # nothing ran


def test_a_workspace_without_a_spec(workspace: Path) -> None:
    from shipyard.context import open_context
    from shipyard.pipelines.lifecycle import run_standard

    with pytest.raises(ConfigError, match="no data or model section"):
        run_standard(open_context())


def test_init_from_a_data_file_then_ci_passes_and_blocks_bad_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    _credit().to_csv(root / "credit.csv", index=False)
    assert main(["init", "--from", "credit.csv", "--target", "default", "--ci", "github"]) == 0
    out = capsys.readouterr().out
    assert "wrote a classification spec for model 'credit'" in out
    assert (root / ".github" / "workflows" / "shipyard.yml").read_text().count("shipyard ci") == 1
    spec = (root / "shipyard.yaml").read_text()
    assert "drop: [customer_id]" in spec and "categorical: [region, sex]" in spec

    assert main(["ci", "--report", "report.md"]) == 0
    report = (root / "report.md").read_text()
    assert report.startswith("# Shipyard model CI") and "**Passed**: the candidate for 'credit'" in report
    assert "| roc_auc |" in report and "| evaluation | PASS |" in report
    with pytest.raises(shipyard.NotFoundError):
        shipyard.models.get("models:/credit")  # CI registers nothing, and promotes nothing

    bad = _credit(seed=3)
    bad.loc[:100, "region"] = "atlantis"
    shipyard.data.add("credit", bad)
    capsys.readouterr()
    assert main(["ci", "--report", "report.md"]) == 1
    report = (root / "report.md").read_text()
    assert "**Failed** at step `validate_data`" in report and "unseen_category" in report
    assert main(["init", "--from", "credit.csv", "--target", "defualt"]) == 1
    assert "already has a lifecycle spec" in capsys.readouterr().err


def test_init_from_names_a_missing_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    _credit().to_csv(tmp_path / "credit.csv", index=False)
    assert main(["init", "--from", "credit.csv", "--target", "defualt"]) == 1
    assert "Did you mean 'default'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["credit.csv"]  # nothing was written, not even a workspace
    assert main(["init", "--from", "credit.csv"]) == 1
