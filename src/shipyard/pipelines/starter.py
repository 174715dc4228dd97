"""`shipyard init --from DATA --target COLUMN`: a starter lifecycle spec written from a table file, with a
decision for every column. Everything is decided and checked from the file first (`plan_starter`); only then
is anything written (`write_starter`)."""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.context import Context
from shipyard.errors import ConfigError, NotFoundError, ValidationError, did_you_mean

#: Estimators of the starter spec by task: linear models behind imputation, one-hot encoding and scaling
#: are quick, deterministic and a sound first model on any table.
ESTIMATORS = {
    "classification": ("sklearn.linear_model.LogisticRegression", {"C": 1.0, "max_iter": 1000}),
    "regression": ("sklearn.linear_model.Ridge", {"alpha": 1.0}),
}
METRICS = {"classification": ["roc_auc", "accuracy", "f1"], "regression": ["rmse", "mae", "r2"]}
MAX_CATEGORIES = 20
#: Name parts that make a column of unique whole numbers an identifier.
_ID_WORDS = {"id", "key", "uuid", "guid", "number", "no", "nr", "code", "index", "row"}


@dataclass(frozen=True)
class Decision:
    """What the starter spec does with one column, and why (printed by `shipyard init`)."""

    column: str
    kind: str  # as profiled: numeric, boolean, categorical, text, timestamp, other
    role: str  # target, numeric, categorical, datetime or drop
    reason: str


@dataclass
class Starter:
    """A starter spec decided from a table file; nothing written yet."""

    source: Path
    name: str  # the dataset and the model
    target: str
    task: str
    rows: int
    decisions: list[Decision]
    estimator: str
    params: dict[str, Any]
    text: str = ""
    classes: list[Any] = field(default_factory=list)

    def describe_task(self) -> str:
        if self.task == "regression":
            return "regression"
        shown = ", ".join(map(str, self.classes[:10])) + (", …" if len(self.classes) > 10 else "")
        return f"{'binary' if len(self.classes) == 2 else 'multiclass'} classification ({shown})"


def plan_starter(source: Path, target: str, *, estimator: str | None = None,
                 params: Sequence[str] = ()) -> Starter:
    """Read the table, decide every column, convert and check the estimator's parameters, and render the spec."""
    from shipyard.data.formats import read_table
    from shipyard.data.profile import profile_table
    from shipyard.data.refs import check_dataset_name
    from shipyard.policy.lifecycle import estimator_class

    if not source.is_file():
        where = "is a folder" if source.is_dir() else "does not exist"
        raise NotFoundError(f"--from {source} {where}; give a table file (CSV, Parquet or JSON lines).",
                            path=str(source))
    table = read_table(source)
    columns = table.column_names
    if target not in columns:
        raise ConfigError(
            f"--target '{target}' is not a column of {source}.{did_you_mean(target, columns)} "
            f"Columns: {', '.join(columns)}."
        )
    profile = profile_table(table)["columns"]
    task, classes = _task(table, target, profile[target], source)
    decisions = [Decision(target, profile[target]["kind"], "target", _target_reason(profile[target], task))]
    decisions += [_decide(table, column, profile[column], table.num_rows) for column in columns if column != target]
    default_estimator, default_params = ESTIMATORS[task]
    path = estimator or default_estimator
    chosen = estimator_class(path, "--estimator")
    _check_fits_task(chosen, path, task, target)
    values = dict(default_params) if estimator is None else {}
    values.update(estimator_params(chosen, params))
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in source.stem.lower()).strip("-_.")
    plan = Starter(source, check_dataset_name(stem or "data"), target, task, table.num_rows, decisions, path, values,
                   classes=classes)
    plan.text = render(plan)
    _check_rendered(plan)
    return plan


def check_no_lifecycle(spec_path: Path) -> None:
    """ConfigError when shipyard.yaml already declares a lifecycle (init --from appends one)."""
    from shipyard.policy.document import read_document

    if spec_path.is_file():
        existing = read_document(spec_path).data
        if "data" in existing or "model" in existing:
            raise ConfigError(f"{spec_path} already has a lifecycle spec (data/model); edit it instead.")


def write_starter(ctx: Context, plan: Starter) -> str:
    """Version the file, infer its contract and append the starter spec to shipyard.yaml; the data version."""
    from shipyard.config import SPEC_FILE
    from shipyard.data.checks import infer
    from shipyard.data.versions import add_version

    spec_path = ctx.workspace.root / SPEC_FILE
    check_no_lifecycle(spec_path)
    version = add_version(ctx, plan.name, plan.source, message="starter data").version
    infer(ctx, version.version_id)
    with open(spec_path, "a") as handle:
        handle.write(plan.text)
    return version.version_id


# -- the columns -------------------------------------------------------------------------------------


def _task(table: Any, target: str, stats: dict[str, Any], source: Path) -> tuple[str, list[Any]]:
    from shipyard.gates.evaluation import infer_task

    present = table.column(target).drop_null()
    if len(present) == 0:
        raise ValidationError(f"--target '{target}' has no values in {source}; choose the column to predict.",
                              column=target)
    if stats["kind"] in ("timestamp", "other"):
        raise ValidationError(
            f"--target '{target}' holds {stats['arrow_type']} values; the starter spec predicts a class or a number.",
            column=target)
    values = present.to_numpy(zero_copy_only=False)
    task = infer_task(values)
    if task == "regression":
        return task, []
    import numpy as np

    labels = np.unique(values if values.dtype.kind in "biuf" else values.astype(object))
    classes = [v.item() if hasattr(v, "item") else v for v in labels]
    if len(classes) < 2:
        raise ValidationError(
            f"--target '{target}' has one value only ({classes[0]!r}) in {source}: there is nothing to predict.",
            column=target)
    return task, classes


def _target_reason(stats: dict[str, Any], task: str) -> str:
    missing = stats.get("null_count") or 0
    reason = "predicted (regression)" if task == "regression" else "predicted (classification)"
    return reason + (f"; {missing} rows without a value are left out" if missing else "")


def _decide(table: Any, column: str, stats: dict[str, Any], rows: int) -> Decision:
    kind = stats["kind"]
    nulls = stats.get("null_count") or 0
    distinct = stats.get("distinct_count") or 0
    missing = f"; {nulls} missing" if nulls else ""

    def decision(role: str, reason: str) -> Decision:
        return Decision(column, kind, role, reason)

    if nulls == rows:
        return decision("drop", "dropped: every value is missing")
    if distinct <= 1:
        return decision("drop", "dropped: one value only, so it tells the rows apart in no way")
    if _identifier(table, column, stats, rows):
        return decision("drop", "dropped: unique per row, an identifier")
    if kind == "timestamp":
        return decision("datetime", f"expanded into year, month, day, weekday and hour{missing}")
    if kind == "boolean":
        return decision("categorical", "one-hot encoded" + (" (missing is a value of its own)" if nulls else ""))
    if kind in ("categorical", "text"):
        what = f"{distinct} distinct values" if kind == "categorical" else f"text with {distinct} distinct values"
        kept = (f"its {MAX_CATEGORIES - 1} most frequent values one-hot encoded, the rest grouped"
                if distinct > MAX_CATEGORIES else "one-hot encoded")
        return decision("categorical", f"{what}: {kept}; values not seen in training are ignored"
                        + (", missing is a value of its own" if nulls else ""))
    if kind == "numeric":
        return decision("numeric", "a number" + (f"; {nulls} missing, filled with the training median" if nulls
                                                  else ""))
    return decision("drop", f"dropped: {stats.get('arrow_type')} values are not a feature the model can take")


def _identifier(table: Any, column: str, stats: dict[str, Any], rows: int) -> bool:
    """Unique per row: text always; whole numbers when named like an identifier or numbered 1, 2, 3, …"""
    import pyarrow as pa

    if stats.get("null_count") or stats.get("distinct_count") != rows or rows < 2:
        return False
    if stats["kind"] in ("categorical", "text"):
        return True
    if not pa.types.is_integer(table.schema.field(column).type):
        return False
    words = {w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", column).lower()) if w}
    named = bool(words & _ID_WORDS) or column.lower().endswith("id")
    low, high = stats.get("min"), stats.get("max")
    numbered = low is not None and high is not None and high - low + 1 == rows
    return named or numbered


# -- the estimator's parameters ------------------------------------------------------------------------


def _check_fits_task(estimator: Any, path: str, task: str, target: str) -> None:
    """A scikit-learn classifier for a classification target, a regressor for a regression one."""
    from sklearn.base import is_classifier, is_regressor

    try:
        instance = estimator()
    except Exception:  # noqa: BLE001 - an estimator that needs arguments is checked when the spec is loaded
        return
    kind = "classifier" if is_classifier(instance) else "regressor" if is_regressor(instance) else None
    wanted = "classifier" if task == "classification" else "regressor"
    if kind is not None and kind != wanted:
        raise ValidationError(f"--estimator {path} is a {kind}, but --target '{target}' makes this a {task}; "
                              f"choose a {wanted}.", param="estimator")


def estimator_params(estimator: Any, items: Sequence[str]) -> dict[str, Any]:
    """`--param NAME=VALUE` items as values the estimator takes: the type of the parameter's default when the
    text reads as one (`C=1` is 1.0), else the value the text reads as (JSON, True/False/None), else the text,
    whichever its parameter constraints accept first. A bad name or value is a ValidationError naming it."""
    from shipyard.policy.lifecycle import estimator_parameters, parameter_problem

    declared = estimator_parameters(estimator)
    title = getattr(estimator, "__name__", str(estimator))
    found: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValidationError(f"--param {item!r} must look like NAME=VALUE, e.g. --param max_iter=500.")
        if declared is not None and name not in declared:
            raise ValidationError(
                f"--param {name}: {title} has no parameter '{name}'.{did_you_mean(name, list(declared))} "
                f"Parameters: {', '.join(declared)}.", param=name)
        default = declared.get(name, inspect.Parameter.empty) if declared is not None else inspect.Parameter.empty
        typed: Any = _MISSING
        refused: ValidationError | None = None
        try:
            typed = _typed(name, text, default, title)
        except ValidationError as exc:
            refused = exc
        read = _read(text)
        candidates = [c for c in (typed, read, text) if c is not _MISSING]
        accepted = [c for c in candidates if parameter_problem(estimator, name, c) is None]
        if not accepted or (refused is not None and not hasattr(estimator, "_parameter_constraints")):
            if refused is not None:
                raise refused
            raise ValidationError(f"--param {name}={text}: {parameter_problem(estimator, name, read)}", param=name)
        found[name] = accepted[0]
    return found


_MISSING = object()


def _read(text: str) -> Any:
    """The value the text reads as: JSON (numbers, true/false/null, lists), Python's True/False/None, else text."""
    try:
        return json.loads(text)
    except ValueError:
        return {"True": True, "False": False, "None": None}.get(text, text)


def _typed(name: str, text: str, default: Any, title: str) -> Any:
    """The text as the type of the parameter's default (None stays None); ValidationError when it is not one."""
    declared = type(default) if type(default) in (bool, int, float, str) else None
    if declared is str:
        return None if text in ("None", "null") else text
    value = _read(text)
    if value is None or declared is None:
        return value

    def refuse(expected: str, example: str) -> ValidationError:
        return ValidationError(f"--param {name}={text}: {title}'s {name} is {expected} (default {default!r}); "
                               f"e.g. --param {name}={example}.", param=name)

    if declared is bool:
        if isinstance(value, bool):
            return value
        raise refuse("true or false", "true")
    if isinstance(value, bool):
        raise refuse("a whole number" if declared is int else "a number", str(default))
    if declared is int:
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        raise refuse("a whole number", str(default))
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(text)  # inf, nan
    except ValueError:
        raise refuse("a number", str(default)) from None


# -- the spec ----------------------------------------------------------------------------------------


def render(plan: Starter) -> str:
    """The starter spec as YAML with comments (column names quoted where YAML needs it)."""
    by_role: dict[str, list[str]] = {}
    for d in plan.decisions:
        by_role.setdefault(d.role, []).append(d.column)
    classification = plan.task == "classification"
    baseline = "always predicting the most frequent class" if classification else "always predicting the mean"
    alternative = ("sklearn.ensemble.HistGradientBoostingClassifier" if classification
                   else "sklearn.ensemble.HistGradientBoostingRegressor")
    name, target = plan.name, _yaml(plan.target)

    def listed(role: str) -> str:
        return "[" + ", ".join(_yaml(c) for c in by_role.get(role, [])) + "]"

    params = "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in plan.params.items()) + "}"
    lines = [
        "",
        f"# The lifecycle of model '{name}', written by `shipyard init --from {plan.source.name}`; edit freely.",
        "# `shipyard run` trains it, evaluates it on held-out rows, registers and gates it (docs/pipelines.md).",
        "data:",
        f"  dataset: {name}    # versioned from {plan.source.name}; `shipyard data add {name} FILE` adds new data",
        f"  target: {target}",
        f"  schema: schemas/{name}.yaml    # the data contract checked before training",
        f"  split: {{test_size: 0.2, random_state: 42, stratify: {'true' if classification else 'false'}}}"
        f"    # the held-out rows are versioned as {name}-holdout",
        "features:",
        f"  drop: {listed('drop')}    # see what `shipyard init` said about each column",
        f"  categorical: {listed('categorical')}    # one-hot encoded; unseen values are ignored",
        f"  datetime: {listed('datetime')}    # expanded into year, month, day, weekday and hour",
        f"  max_categories: {MAX_CATEGORIES}    # per categorical column: the most frequent values, the rest grouped",
        "  impute: true    # missing numbers become the median of the training rows",
        "  scale: true",
        "model:",
        f"  name: {name}",
        f"  estimator: {plan.estimator}    # or e.g. {alternative}",
        f"  params: {params}",
        "evaluation:",
        f"  metrics: [{', '.join(METRICS[plan.task])}]",
        "promote: {enabled: true}",
        "gates:",
        f"  {name}:",
        "    evaluation:",
        "      dataset: split    # the rows the split held out: the model never trained on them",
        f"      target: {target}",
        f"      task: {plan.task}",
        f"      beat_baseline: true    # fail unless it beats {baseline} of the training rows",
        f"      # thresholds: {{{'roc_auc: {min: 0.7}' if classification else 'r2: {min: 0.5}'}}}"
        "    # add limits once you know what is good enough",
        "",
    ]
    return "\n".join(lines)


def _yaml(value: Any) -> str:
    """A YAML flow scalar that reads back as `value`."""
    import yaml

    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", value):
        try:
            if yaml.safe_load(f"[{value}]") == [value]:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)


def _check_rendered(plan: Starter) -> None:
    """The rendered spec validates and reads back as decided (a guard against quoting mistakes)."""
    import yaml

    from shipyard.policy.gates import load_gate_spec
    from shipyard.policy.lifecycle import load_lifecycle

    data = yaml.safe_load(plan.text)
    spec = load_lifecycle(data, source="the starter spec")
    load_gate_spec(data["gates"][plan.name], source="the starter spec", model=plan.name)
    decided = [d.column for d in plan.decisions if d.role in ("drop", "categorical", "datetime")]
    written = [*spec.features.drop, *spec.features.categorical, *spec.features.datetime]
    assert sorted(decided) == sorted(written) and spec.data.target == plan.target, "the starter spec misquotes a name"
