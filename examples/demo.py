"""The Shipyard demo, end to end on the embedded defaults (SQLite, a local artifact folder):

1. generate a realistic credit-risk table (with a sensitive attribute and a timestamp), version it and
   a held-out set, and infer the data contract;
2. declare the model's lifecycle in shipyard.yaml: features, a hyper-parameter sweep, evaluation,
   gates (evaluation, behavioural, fairness, infrastructure) and governance;
3. `shipyard run`: validate → prepare → sweep → evaluate → register → gates → champion;
4. run it again: every step is a cache hit and nothing new is registered;
5. write the champion's model card and production-readiness report.

Run it with `make demo` (or `python examples/demo.py DIR` to put the workspace elsewhere)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import shipyard
from shipyard.cli.main import main as shipyard_cli
from shipyard.synthetic import credit

WORKSPACE = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "demo-workspace"

LIFECYCLE = """
# The lifecycle of the credit model: data, features, model, evaluation, gates, governance.
data:
  dataset: credit
  target: default
  schema: schemas/credit.yaml
  split: {holdout: credit-holdout@latest}
features:
  drop: [application_id, applied_at, sex]        # the sensitive attribute is not a feature
  categorical: [region, employment]
model:
  name: credit
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  params: {random_state: 0, max_iter: 150}
  sweep:
    method: grid
    params: {learning_rate: [0.05, 0.1], max_depth: [3, 6]}
evaluation:
  metrics: [roc_auc, accuracy, f1, log_loss]
  primary: roc_auc
promote: {enabled: true}
gates:
  credit:
    evaluation:
      dataset: credit-holdout@latest
      target: default
      beat_baseline: true        # better accuracy than always predicting "no default"
      thresholds: {roc_auc: {min: 0.7}, accuracy: {min: 0.75}}
      against_champion: {roc_auc: {max_drop: 0.01}}
    behavioural:
      invariance:
        - {column: sex, set: "female", tolerance: 0.0}
      directional:
        - {column: debt_ratio, add: 0.3, direction: increase, output: proba}
      slices:
        - {name: young applicants, where: {age: {max: 25}}, metric: accuracy, min: 0.7}
    fairness:
      sensitive: sex
      demographic_parity_difference: {max: 0.1}
      equalized_odds_difference: {max: 0.1}
    infrastructure:
      latency_p99_ms: 100
      throughput_rows_per_s: 1000
      peak_memory_mb: 2048
governance:
  credit:
    intended_use: Pre-screening of consumer loan applications; a person makes every final decision.
    limitations: Trained on generated data for three months of one year; not validated for business loans.
    owners: [credit-risk-ml]
"""


def main() -> int:
    if WORKSPACE.exists():
        shutil.rmtree(WORKSPACE)
    shipyard.init_workspace(WORKSPACE)
    os.chdir(WORKSPACE)
    os.environ["SHIPYARD_USER"] = "data-scientist"
    print(f"Workspace: {WORKSPACE}\n")

    # 1. The data: versioned, profiled, with a contract inferred from it.
    Path("data").mkdir()
    credit(6000, seed=0).to_csv("data/credit-2026q1.csv", index=False)
    credit(2000, seed=7).to_csv("data/credit-holdout.csv", index=False)
    train = shipyard.data.add("credit", "data/credit-2026q1.csv", message="applications Jan-Mar 2026",
                              key=["application_id"])
    shipyard.data.add("credit-holdout", "data/credit-holdout.csv", message="held-out applications",
                      key=["application_id"])
    contract = shipyard.data.infer_schema("credit@1")
    print(f"Versioned {train.version.version_id} ({train.version.row_count} rows) and credit-holdout@1; "
          f"contract in {contract.relative_to(WORKSPACE)}\n")

    # 2. The lifecycle, declared once.
    with open("shipyard.yaml", "a") as spec:
        spec.write(LIFECYCLE)

    # 3. The standard pipeline: validate, prepare, sweep, evaluate, register, gates, promotion.
    print("$ shipyard run")
    if shipyard_cli(["run"]) != 0:
        return 1
    # 4. Again: everything is a cache hit, nothing new is registered.
    print("\n$ shipyard run   # again, nothing changed")
    shipyard_cli(["run"])

    champion = shipyard.models.load("models:/credit@champion")
    holdout = shipyard.data.load("credit-holdout@1")
    accuracy = float((champion.predict(holdout) == holdout["default"].to_numpy()).mean())
    print(f"\nLoaded models:/credit@champion ({champion.version.version_id}): accuracy {accuracy:.3f} on the holdout\n")

    # 5. The evidence: model card, readiness report, audit chain.
    shipyard_cli(["models", "card", "credit@champion"])
    version = champion.version.version
    readiness = WORKSPACE / "cards" / "credit" / str(version) / "readiness.html"
    shipyard_cli(["readiness", "credit@champion", "--html", str(readiness)])
    status = shipyard_cli(["audit", "verify"])
    print("\nLook further:")
    print(f"  model card:       {WORKSPACE / 'cards' / 'credit' / str(version) / 'card.html'}")
    print(f"  readiness report: {readiness}")
    print(f"  .venv/bin/shipyard -C {WORKSPACE} models show credit@champion")
    print(f"  .venv/bin/shipyard -C {WORKSPACE} runs list --experiment pipelines")
    print(f"  .venv/bin/shipyard -C {WORKSPACE} lineage show credit/{version}")
    print(f"  .venv/bin/shipyard -C {WORKSPACE} audit log")
    return status


if __name__ == "__main__":
    sys.exit(main())
