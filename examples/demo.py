"""The Shipyard demo, end to end on the embedded defaults (SQLite, a local artifact folder):

1. version the data and validate it against a schema contract before anything trains on it;
2. train several scikit-learn models, each tracked against that exact data version;
3. register the best, run its gates (evaluation, behavioural, fairness, infrastructure), get the
   required ethical review, and promote it to champion;
4. write its model card and production-readiness report.

Run it with `make demo`."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard
from shipyard.cli.main import main as shipyard_cli

WORKSPACE = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "demo-workspace"

CANDIDATES = [
    ("logreg-C0.1", lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500)), {"model": "logreg", "C": 0.1}),
    ("logreg-C1", lambda: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500)), {"model": "logreg", "C": 1.0}),
    ("rf-100", lambda: RandomForestClassifier(n_estimators=100, random_state=0), {"model": "rf", "n_estimators": 100}),
    ("rf-300-d6", lambda: RandomForestClassifier(n_estimators=300, max_depth=6, random_state=0), {"model": "rf", "n_estimators": 300, "max_depth": 6}),
    ("gbm-150", lambda: GradientBoostingClassifier(n_estimators=150, random_state=0), {"model": "gbm", "n_estimators": 150}),
]

POLICY = """
# The lifecycle policy of the demo's model: its gates and governance.
gates:
  cancer:
    evaluation:
      dataset: cancer-holdout@latest
      target: target
      thresholds:
        roc_auc: {min: 0.95}
        accuracy: {min: 0.9}
      against_champion:
        roc_auc: {max_drop: 0.01}
    behavioural:
      invariance:
        - {column: clinic, set: "north", tolerance: 0.0}
      directional:
        - {column: worst area, multiply: 1.5, direction: decrease, output: proba}
      slices:
        - {name: large tumours, where: {mean radius: {min: 15}}, metric: accuracy, min: 0.85}
    fairness:
      sensitive: clinic
      demographic_parity_difference: {max: 0.2}
      equalized_odds_difference: {max: 0.2}
    infrastructure:
      latency_p99_ms: 100
      throughput_rows_per_s: 1000
      peak_memory_mb: 2048
governance:
  cancer:
    intended_use: Demonstration of the Shipyard lifecycle on scikit-learn's breast cancer data.
    limitations: Trained on 569 historical cases from one source; not for clinical use.
    owners: [demo-team]
    reviews: [ethical]
"""


def main() -> int:
    if WORKSPACE.exists():
        shutil.rmtree(WORKSPACE)
    shipyard.init_workspace(WORKSPACE)
    os.chdir(WORKSPACE)
    os.environ["SHIPYARD_USER"] = "data-scientist"
    with open("shipyard.yaml", "a") as spec:
        spec.write(POLICY)
    print(f"Workspace: {WORKSPACE}\n")

    # 1. Version the data and check it against a schema contract before anything trains on it.
    table = load_breast_cancer(as_frame=True).frame
    table.insert(0, "patient_id", np.arange(len(table)))
    table.insert(1, "clinic", np.where(table["patient_id"] % 3 == 0, "north", "south"))
    Path("data").mkdir()
    table.to_csv("data/cancer.csv", index=False)
    added = shipyard.data.add("cancer", "data/cancer.csv", message="scikit-learn breast cancer", key=["patient_id"])
    print(f"Versioned the data as {added.version.version_id}: {added.version.row_count} rows, "
          f"{len(added.version.table_schema or [])} columns, profiled")
    schema = shipyard.data.infer_schema("cancer@1")
    report = shipyard.data.validate("cancer@1")
    print(f"Schema contract in {schema.relative_to(WORKSPACE)}; validation "
          f"{'passed' if report.ok else 'FAILED'} ({len(report.errors)} errors, {len(report.warnings)} warnings)")
    if not report.ok:
        return 1
    frame = shipyard.data.load("cancer@1")
    train, holdout = train_test_split(frame, test_size=0.25, random_state=42, stratify=frame["target"])
    shipyard.data.add("cancer-train", train.reset_index(drop=True), parents=["cancer@1"], key=["patient_id"])
    shipyard.data.add("cancer-holdout", holdout.reset_index(drop=True), parents=["cancer@1"], key=["patient_id"])
    # The training split must honour the same contract as the whole table (its profile is compared too).
    checked = shipyard.data.validate("cancer-train@1", schema=schema, reference="cancer@1")
    if not checked.ok:
        print(f"cancer-train@1 failed validation: {[a.message for a in checked.errors]}")
        return 1
    features = [c for c in frame.columns if c not in ("patient_id", "clinic", "target")]
    x_train, y_train = train[features], train["target"]
    x_test, y_test = holdout[features], holdout["target"]
    print(f"Split into cancer-train@1 ({len(train)} rows, validated against the contract) and "
          f"cancer-holdout@1 ({len(holdout)} rows)\n")

    # 2. Train the candidates, each run linked to the data version it read.
    for name, build, params in CANDIDATES:
        with shipyard.start_run(name, experiment="breast-cancer", tags={"dataset": "cancer-train@1"}) as run:
            run.log_input("cancer-train@1")
            run.log_params({**params, "test_size": 0.25, "random_state": 42})
            model = build().fit(x_train, y_train)
            proba = model.predict_proba(x_test)[:, 1]
            predicted = (proba >= 0.5).astype(int)
            run.log_metrics({
                "accuracy": accuracy_score(y_test, predicted),
                "f1": f1_score(y_test, predicted),
                "roc_auc": roc_auc_score(y_test, proba),
                "log_loss": log_loss(y_test, proba),
            })
            if isinstance(model, GradientBoostingClassifier):  # a learning curve, one point per stage
                for stage, staged in enumerate(model.staged_predict_proba(x_test)):
                    run.log_metric("test_log_loss", log_loss(y_test, staged[:, 1]), step=stage)
            importances = getattr(model, "feature_importances_", None)
            if importances is not None:
                top = sorted(zip(features, np.round(importances, 4).tolist()), key=lambda t: -t[1])[:10]
                run.log_artifact(json.dumps(dict(top), indent=2).encode(), name="feature_importances.json")
            run.log_model(model, "cancer", input_example=x_train.head(), register=False)
            print(f"  trained {name:<11} roc_auc={roc_auc_score(y_test, proba):.4f}")

    print()
    shipyard_cli(["runs", "list", "--order-by", "metrics.roc_auc DESC"])
    best = shipyard.search_runs(order_by=["metrics.roc_auc DESC", "metrics.log_loss ASC"], max_results=1)[0]
    print(f"\nBest run: {best.name} ({best.run_id[:8]}) roc_auc={best.metrics['roc_auc']:.4f} params={best.params}\n")

    # 3. Register it, run its gates, get the review, promote it.
    shipyard_cli(["models", "register", "cancer", "--run", best.run_id, "--description",
                  f"{best.name}: the best of {len(CANDIDATES)} candidates by ROC AUC on the holdout"])
    shipyard_cli(["models", "gate", "cancer/1"])
    shipyard_cli(["review", "request", "cancer/1", "--kind", "ethical", "--notes", "check the clinics"])
    os.environ["SHIPYARD_USER"] = "ethics-board"
    shipyard_cli(["review", "approve", "cancer/1", "--kind", "ethical", "--notes", "no disparity between clinics"])
    os.environ["SHIPYARD_USER"] = "data-scientist"
    if shipyard_cli(["models", "promote", "cancer/1", "--alias", "champion"]) != 0:
        return 1
    champion = shipyard.models.load("models:/cancer@champion")
    agreement = float((champion.predict(x_test) == holdout["target"].to_numpy()).mean())
    print(f"Loaded models:/cancer@champion back: accuracy {agreement:.4f} on the holdout\n")

    # 4. The model card and the readiness report, computed from the evidence in the store.
    card_status = shipyard_cli(["models", "card", "cancer/1"])
    readiness = WORKSPACE / "cards" / "cancer" / "1" / "readiness.html"
    shipyard_cli(["readiness", "cancer/1", "--html", str(readiness)])
    status = shipyard_cli(["audit", "verify"])
    print("\nLook further:")
    print(f"  model card:       {WORKSPACE / 'cards' / 'cancer' / '1' / 'card.html'}")
    print(f"  readiness report: {readiness}")
    print(f"  .venv/bin/shipyard -C {WORKSPACE} models show cancer@champion")
    print(f"  .venv/bin/shipyard -C {WORKSPACE} lineage show cancer/1")
    print(f"  .venv/bin/shipyard -C {WORKSPACE} data show cancer@1")
    print(f"  .venv/bin/shipyard -C {WORKSPACE} audit log")
    return status or card_status


if __name__ == "__main__":
    sys.exit(main())
