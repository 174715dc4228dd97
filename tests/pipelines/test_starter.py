"""`shipyard init --from FILE --target COLUMN && shipyard run` on tables of every shape, with no edits: the
starter spec's decisions, held-out evaluation, the trivial baseline, and nothing written by a failed init."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import shipyard
from shipyard.cli.main import main
from shipyard.context import open_context
from shipyard.gates.gating import latest_gates
from shipyard.store.lineage import Node, neighbours

ROWS = 300


def _features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Numbers, a category, text with many distinct values, a timestamp, a date, a boolean and two
    identifiers; missing cells in several columns (one in four, so the first rows have some)."""
    cities = [f"city {i}" for i in range(90)]
    frame = pd.DataFrame({
        "row_id": np.arange(1, n + 1),
        "ticket": [f"T-{i:05d}-{rng.integers(0, 10**6):06d}" for i in range(n)],
        "x1": rng.normal(0, 1, n),
        "x2": rng.integers(0, 50, n).astype(float),
        "plan": rng.choice(["basic", "plus", "pro"], n),
        "city": rng.choice(cities, n),
        "signed_up": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86_400, n), unit="s"),
        "renewal": (pd.Timestamp("2026-01-01")
                    + pd.to_timedelta(rng.integers(0, 200, n), unit="D")).strftime("%Y-%m-%d"),  # dates
        "member": rng.random(n) < 0.5,
        "region": rng.choice(["north", "south"], n),
    })
    plan = frame["plan"]
    frame["signal"] = frame["x1"] + 0.8 * (plan == "pro") - 0.8 * (plan == "basic") + 0.5 * frame["member"]
    for column in ("x1", "x2", "signed_up"):
        frame[column] = frame[column].mask(rng.random(n) < 0.25)
    for column in ("plan", "member", "city"):
        frame[column] = frame[column].astype(object).where(rng.random(n) > 0.25, None)
    return frame


def _binary(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = _features(rng, ROWS)
    frame["churned"] = np.where(frame.pop("signal") + rng.normal(0, 0.3, ROWS) > 0, "yes", "no")
    return frame


def _multiclass(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = _features(rng, ROWS)
    frame["tier"] = np.digitize(frame.pop("signal") + rng.normal(0, 0.3, ROWS), [-0.6, 0.6])
    return frame


def _regression(seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = _features(rng, ROWS)
    frame["spend"] = 100 + 30 * frame.pop("signal") + 0.5 * frame["x2"].fillna(25) + rng.normal(0, 5, ROWS)
    return frame


CASES = {
    "binary": (_binary, "churned", "classification", "accuracy"),
    "multiclass": (_multiclass, "tier", "classification", "accuracy"),
    "regression": (_regression, "spend", "regression", "rmse"),
}
DECIDED = {"row_id": "drop", "ticket": "drop", "x1": "numeric", "x2": "numeric", "plan": "categorical",
           "city": "categorical", "signed_up": "datetime", "renewal": "datetime", "member": "categorical",
           "region": "categorical"}


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


@pytest.mark.parametrize("case", list(CASES))
def test_init_from_any_table_then_run_promotes_a_champion_gated_on_held_out_rows(
        case: str, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make, target, task, headline = CASES[case]
    data = make()
    data.to_csv(project / "table.csv", index=False)

    code, out, err = _cli(capsys, "init", "--from", "table.csv", "--target", target)
    assert code == 0, err
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    assert set(lines) == {*DECIDED, target}  # a decision printed for every column
    assert "unique per row, an identifier" in lines["row_id"] and "identifier" in lines["ticket"]
    assert "year, month, day, weekday and hour" in lines["signed_up"] and "year, month" in lines["renewal"]
    assert "missing, filled with the training median" in lines["x1"]
    assert "text with" in lines["city"] and "the rest grouped" in lines["city"]
    assert f"wrote a {task} spec for model 'table'" in " ".join(out.split())
    spec = yaml.safe_load((project / "shipyard.yaml").read_text())
    features = spec["features"]
    assert {c: r for r in ("drop", "categorical", "datetime") for c in features[r]} == \
        {c: r for c, r in DECIDED.items() if r != "numeric"}
    gate = spec["gates"]["table"]["evaluation"]
    assert gate["dataset"] == "split" and gate["beat_baseline"] is True and gate["task"] == task

    code, out, err = _cli(capsys, "run", "--json")
    assert code == 0, err
    outcome = json.loads(out)["outcome"]
    assert outcome == {"version": "table/1", "gates": {"evaluation": "PASS"}, "alias": "champion"}

    # The gate numbers come from the rows the split held out, versioned and linked to the training data.
    ctx = open_context()
    version = shipyard.models.get("table@champion")
    result = latest_gates(ctx, "table/1")["evaluation"].result
    assert (result["dataset"], result["dataset_source"]) == ("table-holdout@1", "split")
    holdout = shipyard.data.load("table-holdout@1")
    assert len(holdout) == result["evidence"]["rows"] == ROWS // 5
    assert int(version.metrics["training_rows"]) + len(holdout) == ROWS
    assert list(holdout.columns) == list(data.columns)  # the raw rows, identifiers and all
    assert set(holdout["ticket"]) < set(data["ticket"])
    assert version.metrics[headline] == pytest.approx(result["metrics"][headline])  # the same held-out rows
    with ctx.store.read() as conn:
        parents = neighbours(conn, Node("dataset_version", "table-holdout@1"), upstream=True)
    assert parents == [(Node("dataset_version", "table@1"), "derived")]
    beat = next(c for c in result["checks"] if c["name"] == f"beat_baseline.{headline}")
    assert beat["status"] == "PASS" and "beats the trivial baseline's" in beat["message"]
    assert beat["details"]["baseline_rows"] == ROWS - len(holdout)

    # The card says where its numbers come from and how many rows the model trained on.
    from shipyard.governance.cards import build_card

    card = build_card(ctx, "table/1")
    train, evaluated = card["model_parameters"]["data"]["train"], card["model_parameters"]["data"]["eval"]
    assert (train["name"], train["row_count"], train["dataset_rows"]) == ("table@1", ROWS - len(holdout), ROWS)
    assert evaluated["name"] == "table-holdout@1" and evaluated["row_count"] == len(holdout)
    assert "never trained on" in evaluated["note"] and "never trained on" in card["quantitative_analysis"]["data"]
    assert {m["dataset"] for m in card["quantitative_analysis"]["performance_metrics"]} == {"table-holdout@1"}

    code, out, err = _cli(capsys, "run")
    assert code == 0, err
    assert "unchanged: already table/1 (gates: evaluation PASS); it is champion. Nothing was registered." in " ".join(out.split())
    assert [v.version_id for v in shipyard.models.versions("table")] == ["table/1"]
    assert [v.version_id for v in shipyard.data.log("table-holdout")] == ["table-holdout@1"]

    # By hand, `dataset: split` finds the same held-out rows through lineage.
    from shipyard.gates.gating import run_gates

    assert {r.gate: r.status for r in run_gates(ctx, "table/1")} == {"evaluation": "PASS"}
    assert latest_gates(ctx, "table/1")["evaluation"].result["dataset"] == "table-holdout@1"


def test_the_projects_own_credit_table_trains_without_edits(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from shipyard.synthetic import credit

    credit(2000).to_csv(project / "credit.csv", index=False)
    code, out, err = _cli(capsys, "init", "--from", "credit.csv", "--target", "default")
    assert code == 0, err
    spec = yaml.safe_load((project / "shipyard.yaml").read_text())
    assert spec["features"]["datetime"] == ["applied_at"] and spec["features"]["drop"] == ["application_id"]
    code, out, err = _cli(capsys, "run", "--json")
    assert code == 0, err
    assert json.loads(out)["outcome"]["gates"] == {"evaluation": "PASS"}
    check = next(c for c in latest_gates(open_context(), "credit/1")["evaluation"].result["checks"]
                 if c["name"] == "beat_baseline.accuracy")
    assert "always predicting 0, the most frequent class of the 1600 training rows" in check["message"]


def _nothing_written(project: Path) -> None:
    assert sorted(p.name for p in project.iterdir()) == ["table.csv"]


@pytest.mark.parametrize("args, message", [
    (["--from", "missing.csv", "--target", "churned"], "--from missing.csv does not exist"),
    (["--from", "table.csv", "--target", "churn"],
     "--target 'churn' is not a column of table.csv. Did you mean 'churned'?"),
    (["--from", "table.csv", "--target", "churned", "--ci", "gitlab"], "Unknown CI system 'gitlab'"),
    (["--target", "churned"], "--from and --target go together"),
    (["--param", "C=2"], "use them with --from and --target"),
    (["--from", "table.csv", "--target", "churned", "--param", "max_iter=abc"],
     "--param max_iter=abc: LogisticRegression's max_iter is a whole number (default 100)"),
    (["--from", "table.csv", "--target", "churned", "--param", "C=-1"],
     "--param C=-1: The 'C' parameter of LogisticRegression must be a float in the range (0.0, inf]. Got -1 instead"),
    (["--from", "table.csv", "--target", "churned", "--param", "mx_iter=5"],
     "LogisticRegression has no parameter 'mx_iter'. Did you mean 'max_iter'?"),
    (["--from", "table.csv", "--target", "churned", "--estimator", "sklearn.ensemble.RandomForestClasifier"],
     "cannot be imported. Did you mean 'RandomForestClassifier'?"),
    (["--from", "table.csv", "--target", "churned", "--estimator", "sklearn.linear_model.Ridge"],
     "--estimator sklearn.linear_model.Ridge is a regressor, but --target 'churned' makes this a classification"),
    (["--from", "table.csv", "--target", "region"], None),  # a valid target: the control case
])
def test_a_failed_init_writes_nothing(project: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                      message: str | None) -> None:
    _binary().to_csv(project / "table.csv", index=False)
    code, out, err = _cli(capsys, "init", *args)
    if message is None:
        assert code == 0, err
        assert (project / "shipyard.yaml").is_file()
        return
    assert code == 1 and "Traceback" not in out + err
    assert message in " ".join(err.split()), err
    assert "Initialised" not in out
    _nothing_written(project)


def test_param_values_take_the_type_the_estimator_declares(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _binary().to_csv(project / "table.csv", index=False)
    code, _, err = _cli(capsys, "init", "--from", "table.csv", "--target", "churned", "--estimator",
                        "sklearn.ensemble.RandomForestClassifier", "--param", "n_estimators=20",
                        "--param", "max_depth=4", "--param", "max_features=0.5", "--param", "bootstrap=false",
                        "--param", "class_weight=balanced")
    assert code == 0, err
    model = yaml.safe_load((project / "shipyard.yaml").read_text())["model"]
    assert model == {"name": "table", "estimator": "sklearn.ensemble.RandomForestClassifier",
                     "params": {"n_estimators": 20, "max_depth": 4, "max_features": 0.5, "bootstrap": False,
                                "class_weight": "balanced"}}
    assert type(model["params"]["n_estimators"]) is int and type(model["params"]["max_features"]) is float


def test_awkward_column_names_are_quoted_and_a_constant_column_dropped(project: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, ROWS)
    pd.DataFrame({"amount, in $": x, "yes": rng.choice(["a", "b"], ROWS), "null": 1.0, "# of items": x * 2,
                  "label: final": np.where(x > 0, "high", "low")}).to_csv(project / "table.csv", index=False)
    code, out, err = _cli(capsys, "init", "--from", "table.csv", "--target", "label: final")
    assert code == 0, err
    assert "one value only" in out
    spec = yaml.safe_load((project / "shipyard.yaml").read_text())
    assert spec["data"]["target"] == "label: final" and spec["features"]["categorical"] == ["yes"]
    assert spec["features"]["drop"] == ["null"]
    code, out, err = _cli(capsys, "run", "--json")
    assert code == 0, err
    assert json.loads(out)["outcome"]["alias"] == "champion"


def test_the_documented_lifecycle_spec_validates_against_the_credit_table() -> None:
    from shipyard.data.formats import from_frame
    from shipyard.data.profile import profile_table
    from shipyard.policy.gates import check_columns as check_gate_columns
    from shipyard.policy.gates import load_gate_spec
    from shipyard.policy.lifecycle import check_columns, load_lifecycle
    from shipyard.synthetic import credit

    text = (Path(__file__).resolve().parents[2] / "docs" / "pipelines.md").read_text()
    [example] = [block for block in text.split("```yaml\n")[1:] if block.startswith("data:")]
    spec = yaml.safe_load(example.split("```", 1)[0])
    lifecycle = load_lifecycle(spec)
    gates = load_gate_spec(spec["gates"]["credit"], model="credit")
    assert gates.evaluation is not None and gates.evaluation.dataset == "split"
    table = from_frame(credit(200))
    kinds = {name: stats["kind"] for name, stats in profile_table(table)["columns"].items()}
    check_columns(lifecycle, table.column_names, "credit@1", kinds=kinds)
    check_gate_columns(gates, table.column_names, "credit-holdout@1")
