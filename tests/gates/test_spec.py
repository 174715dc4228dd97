"""The gates: section of shipyard.yaml: the documented example loads; mistakes name the key path and a fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from shipyard.errors import ConfigError
from shipyard.policy.gates import GateSpec, check_columns, higher_is_better, load_gate_spec

EXAMPLE = """
gates:
  credit:
    evaluation:
      dataset: credit-holdout@latest
      target: default
      task: classification
      positive_label: 1
      thresholds:
        roc_auc: {min: 0.75}
        log_loss: {max: 0.6}
      against_champion:
        roc_auc: {max_drop: 0.01}
        log_loss: {max_rise: 0.05, relative: true}
    behavioural:
      cases:
        - {input: {age: 30, income: 50000}, expected: 0}
      invariance:
        - {column: name, set: "Alex", tolerance: 0.0, output: label}
      directional:
        - {column: income, multiply: 1.5, direction: decrease, output: proba}
      slices:
        - {name: young, where: {age: {max: 30}}, metric: accuracy, min: 0.8}
        - {where: {region: {in: [north, south]}, sex: {equals: F}}, metric: recall, min: 0.7}
    fairness:
      sensitive: sex
      positive_label: 1
      demographic_parity_difference: {max: 0.1}
      demographic_parity_ratio: {min: 0.8}
      equalized_odds_difference: {max: 0.15}
    infrastructure:
      latency_p50_ms: 20
      latency_p99_ms: 100
      throughput_rows_per_s: 1000
      peak_memory_mb: 1024
"""

COLUMNS = ["age", "income", "name", "sex", "region", "default"]


def example() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(EXAMPLE)["gates"]["credit"])


def load(data: Any) -> GateSpec:
    return load_gate_spec(data, source="shipyard.yaml", model="credit")


def test_documented_example_loads() -> None:
    spec = load(example())
    assert spec.model == "credit" and spec.path == "gates.credit"
    assert spec.configured == ["evaluation", "behavioural", "fairness", "infrastructure"]
    assert spec.task == "classification" and spec.positive_label == 1
    assert spec.evaluation is not None and spec.behavioural is not None and spec.fairness is not None
    assert spec.evaluation.thresholds["roc_auc"].min == 0.75
    change = spec.evaluation.against_champion["log_loss"]
    assert (change.max_rise, change.relative, change.limit) == (0.05, True, 0.05)
    assert spec.behavioural.invariance[0].describe() == "setting name to 'Alex'"
    assert spec.behavioural.directional[0].describe() == "multiplying income by 1.5"
    young, unnamed = spec.behavioural.slices
    assert young.label == "young" and young.condition == "age <= 30"
    assert unnamed.label == "region in ['north', 'south'] and sex == 'F'"
    assert spec.infrastructure is not None and spec.infrastructure.latency_p99_ms == 100
    check_columns(spec, COLUMNS, "credit@2")
    again = load(spec.model_dump(by_alias=True, exclude_none=True))
    assert again == spec


def test_empty_and_partial_sections() -> None:
    assert load(None).configured == []
    spec = load({"evaluation": {"dataset": "d@1", "target": "y", "thresholds": {"rmse": {"max": 3}}}})
    assert spec.configured == ["evaluation"] and spec.task == "regression"
    assert load({"infrastructure": {"latency_p99_ms": 50}}).task is None
    assert [higher_is_better(m) for m in ("roc_auc", "log_loss", "rmse", "mae", "r2")] == [
        True, False, False, False, True]


def edit(path: str, value: Any, *, delete: bool = False) -> dict[str, Any]:
    """The example with the value at a dotted path (list indexes as numbers) replaced or deleted."""
    data = example()
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if delete:
        del node[key]
    else:
        node[key] = value
    return data


def rename(path: str, new: str) -> dict[str, Any]:
    data = example()
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[new] = node.pop(last)
    return data


@pytest.mark.parametrize(("data", "message"), [
    (rename("fairness.sensitive", "sensitve"),
     "shipyard.yaml: unknown key gates.credit.fairness.sensitve (value 'sex'). Did you mean 'sensitive'? Known "
     "keys there: sensitive, positive_label, demographic_parity_difference, demographic_parity_ratio, "
     "equalized_odds_difference."),
    (rename("evaluation.thresholds.roc_auc", "roc_acu"),
     "shipyard.yaml: unknown metric gates.credit.evaluation.thresholds.roc_acu. Did you mean 'roc_auc'? Known "
     "metrics there: accuracy, precision, recall, f1, roc_auc, log_loss, rmse, mae, r2."),
    (rename("evaluation.against_champion.log_loss", "logloss"),
     "unknown metric gates.credit.evaluation.against_champion.logloss. Did you mean 'log_loss'?"),
    (edit("behavioural.slices.0.metric", "acuracy"),
     "shipyard.yaml: gates.credit.behavioural.slices[0].metric = 'acuracy': Input should be 'accuracy', "),
    (edit("behavioural.slices.0.metric", "acuracy"), "Did you mean 'accuracy'?"),
    (rename("behavioural.slices.1.where.region.in", "inn"),
     "unknown key gates.credit.behavioural.slices[1].where.region.inn (value ['north', 'south']). Did you mean "
     "'in'? Known keys there: min, max, equals, in."),
    (rename("behavioural", "behavioral"), "unknown key gates.credit.behavioral. Did you mean 'behavioural'?"),
    (edit("evaluation.task", "clasification"),
     "gates.credit.evaluation.task = 'clasification': Input should be 'classification' or 'regression'. Did "
     "you mean 'classification'?"),
    (edit("evaluation.thresholds.roc_auc.min", "high"),
     "gates.credit.evaluation.thresholds.roc_auc.min = 'high': expected a finite number."),
    (edit("evaluation.thresholds.roc_auc", {}), "gates.credit.evaluation.thresholds.roc_auc: give min, max or both."),
    (edit("evaluation.thresholds.log_loss", {"min": 0.9, "max": 0.6}),
     "gates.credit.evaluation.thresholds.log_loss: min 0.9 is greater than max 0.6."),
    (edit("evaluation.target", None, delete=True), "shipyard.yaml: gates.credit.evaluation.target: Field required."),
    (edit("behavioural.invariance.0.add", 1),
     "gates.credit.behavioural.invariance[0]: give exactly one of set, add or multiply (got set, add)."),
    (edit("behavioural.directional.0.direction", "down"),
     "gates.credit.behavioural.directional[0].direction = 'down': Input should be 'increase' or 'decrease'."),
    (edit("fairness.positive_label", [1]),
     "gates.credit.fairness.positive_label = [1]: expected a single value (a number, a string or a boolean)."),
    (edit("infrastructure.latency_p50_ms", -5),
     "gates.credit.infrastructure.latency_p50_ms = -5: Input should be greater than 0."),
    (edit("evaluation.thresholds.rmse", {"max": 3}),
     "shipyard.yaml: gates.credit.evaluation.thresholds.rmse: 'rmse' is not a classification metric. "
     "Classification metrics: accuracy, precision, recall, f1, roc_auc, log_loss."),
    (edit("evaluation.against_champion.roc_auc", {"max_rise": 0.01}),
     "gates.credit.evaluation.against_champion.roc_auc.max_rise: roc_auc is higher-is-better, so limit its fall "
     "with max_drop."),
    (edit("evaluation.against_champion.log_loss", {"max_drop": 0.01}),
     "against_champion.log_loss.max_drop: log_loss is lower-is-better, so limit its rise with max_rise."),
    (edit("evaluation.against_champion.log_loss", {"relative": True}),
     "gates.credit.evaluation.against_champion.log_loss: give exactly one of max_drop"),
    (edit("evaluation", None, delete=True),
     "gates.credit.behavioural runs on the evaluation data: add gates.credit.evaluation with dataset and target."),
    ([1, 2], "shipyard.yaml: 'gates.credit' must be a mapping of gates (evaluation, behavioural, fairness, "
             "infrastructure); got list [1, 2]."),
])
def test_mistakes_name_the_key_path_the_value_and_a_fix(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(data)
    assert message in str(caught.value)


def test_every_mistake_is_reported_at_once() -> None:
    data = rename("fairness.sensitive", "sensitve")
    data["evaluation"]["thresholds"]["recal"] = {"min": 1}
    with pytest.raises(ConfigError) as caught:
        load(data)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2  # no "sensitive: Field required" on top of the typo
    assert "thresholds.recal" in lines[0] and "Did you mean 'recall'?" in lines[0]
    assert "fairness.sensitve" in lines[1]


def test_mixed_tasks_without_a_declared_task() -> None:
    data = edit("evaluation.task", None, delete=True)
    data["evaluation"]["thresholds"]["rmse"] = {"max": 3}
    mixed = (r"gates.credit: the gates mix classification and regression metrics: .*"
             r"evaluation.thresholds.rmse \(regression\).*Set gates.credit.evaluation.task")
    with pytest.raises(ConfigError, match=mixed):
        load(data)


def test_check_columns_names_the_gate_and_suggests_the_column() -> None:
    data = edit("fairness.sensitive", "sexx")
    data["behavioural"]["slices"][0]["where"] = {"agee": {"max": 30}}
    spec = load(data)
    with pytest.raises(ConfigError) as caught:
        check_columns(spec, COLUMNS, "credit@2")
    lines = str(caught.value).splitlines()
    assert lines == [
        "gates.credit.behavioural.slices[0].where.agee: column 'agee' is not in dataset 'credit@2'. Did you mean "
        "'age'? Columns: age, income, name, sex, region, default.",
        "gates.credit.fairness.sensitive: column 'sexx' is not in dataset 'credit@2'. Did you mean 'sex'? "
        "Columns: age, income, name, sex, region, default.",
    ]
    with pytest.raises(ConfigError, match=r"gates.credit.evaluation.target: column 'default' is not in dataset"):
        check_columns(load(example()), [c for c in COLUMNS if c != "default"], "credit@3")
