"""`shipyard init --from DATA --target COLUMN`: a working starter spec written from a data file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.context import Context
from shipyard.errors import ConfigError, did_you_mean

STARTER = """
# The lifecycle of model '{model}', written by `shipyard init --from {source}`. Edit freely;
# `shipyard run` trains, evaluates, registers and gates it (see docs/pipelines.md).
data:
  dataset: {dataset}                 # versioned from {source}; `shipyard data add {dataset} FILE` adds new data
  target: {target}
  schema: schemas/{dataset}.yaml     # the data contract checked before training
  split: {{test_size: 0.2, random_state: 42, stratify: {stratify}}}
features:
  drop: [{drop}]
  categorical: [{categorical}]
  scale: false
model:
  name: {model}
  estimator: {estimator}
  params: {{n_estimators: 200, random_state: 0}}
evaluation:
  metrics: [{metrics}]
promote: {{enabled: true}}
gates:
  {model}:
    evaluation:
      dataset: {dataset}@latest       # better: a held-out dataset version
      target: {target}
      thresholds: {{{threshold}}}
"""


def write_starter(ctx: Context, source: Path, target: str) -> dict[str, Any]:
    """Version the file, infer its contract, and append a starter lifecycle spec to shipyard.yaml."""
    from shipyard.config import SPEC_FILE
    from shipyard.data.checks import infer
    from shipyard.data.refs import check_dataset_name
    from shipyard.data.versions import add_version
    from shipyard.policy.document import read_document

    spec_path = ctx.workspace.root / SPEC_FILE
    existing = read_document(spec_path).data
    if "data" in existing or "model" in existing:
        raise ConfigError(f"{spec_path} already has a lifecycle spec (data/model); edit it instead.")
    from shipyard.data.formats import read_table

    name = check_dataset_name("".join(c if c.isalnum() or c in "-_" else "-" for c in source.stem.lower()) or "data")
    columns = read_table(source).column_names  # checked before anything is written
    if target not in columns:
        raise ConfigError(
            f"--target '{target}' is not a column of {source}.{did_you_mean(target, columns)} "
            f"Columns: {', '.join(columns)}."
        )
    version = add_version(ctx, name, source, message="starter data").version
    profile = (version.profile or {}).get("columns", {})
    rows = version.row_count or 1
    drop = [c for c, stats in profile.items()
            if c != target and "id" in c.lower().split("_") and stats.get("distinct_count") == rows]
    categorical = [c for c, stats in profile.items()
                   if c != target and c not in drop and stats.get("kind") in ("categorical", "boolean", "text")]
    classification = profile.get(target, {}).get("distinct_count", 0) <= 20 or profile.get(target, {}).get("kind") != "numeric"
    infer(ctx, version.version_id)
    values = {
        "model": name, "source": source.name, "dataset": name, "target": target, "drop": ", ".join(drop),
        "categorical": ", ".join(categorical), "stratify": "true" if classification else "false",
        "estimator": "sklearn.ensemble.RandomForestClassifier" if classification
        else "sklearn.ensemble.RandomForestRegressor",
        "metrics": "roc_auc, accuracy, f1" if classification else "rmse, mae, r2",
        "threshold": "accuracy: {min: 0.5}" if classification else "r2: {min: 0.0}",
    }
    with open(spec_path, "a") as handle:
        handle.write(STARTER.format(**values))
    return {"dataset": version.version_id, "task": "classification" if classification else "regression", **values}
