"""The Shipyard demo: a fresh workspace, the data versioned and validated, several scikit-learn models
tracked against that exact data version, the best one picked.

Run it with `make demo`. It uses only the embedded defaults (SQLite, a local artifact folder)."""

from __future__ import annotations

import json
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

WORKSPACE = Path(__file__).resolve().parent.parent / "demo-workspace"

CANDIDATES = [
    ("logreg-C0.1", lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500)), {"model": "logreg", "C": 0.1}),
    ("logreg-C1", lambda: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500)), {"model": "logreg", "C": 1.0}),
    ("rf-100", lambda: RandomForestClassifier(n_estimators=100, random_state=0), {"model": "rf", "n_estimators": 100}),
    ("rf-300-d6", lambda: RandomForestClassifier(n_estimators=300, max_depth=6, random_state=0), {"model": "rf", "n_estimators": 300, "max_depth": 6}),
    ("gbm-150", lambda: GradientBoostingClassifier(n_estimators=150, random_state=0), {"model": "gbm", "n_estimators": 150}),
]


def main() -> int:
    if WORKSPACE.exists():
        shutil.rmtree(WORKSPACE)
    shipyard.init_workspace(WORKSPACE)
    print(f"Workspace: {WORKSPACE}\n")

    # 1. Version the data and check it against a schema contract before anything trains on it.
    data = load_breast_cancer(as_frame=True)
    table = data.frame.copy()
    table.insert(0, "patient_id", np.arange(len(table)))
    source = WORKSPACE / "data" / "cancer.csv"
    source.parent.mkdir()
    table.to_csv(source, index=False)
    added = shipyard.data.add("cancer", source, message="scikit-learn breast cancer", key=["patient_id"],
                              workspace=WORKSPACE)
    print(f"Versioned the data as {added.version.version_id}: {added.version.row_count} rows, "
          f"{len(added.version.table_schema or [])} columns, profiled")
    schema = shipyard.data.infer_schema("cancer@1", workspace=WORKSPACE)
    report = shipyard.data.validate("cancer@1", workspace=WORKSPACE)
    print(f"Schema contract in {schema.relative_to(WORKSPACE.parent)}; validation "
          f"{'passed' if report.ok else 'FAILED'} ({len(report.errors)} errors, {len(report.warnings)} warnings)")
    if not report.ok:
        return 1
    frame = shipyard.data.load("cancer@1", workspace=WORKSPACE)
    features = frame.drop(columns=["patient_id", "target"])
    x_train, x_test, y_train, y_test = train_test_split(
        features, frame["target"], test_size=0.25, random_state=42, stratify=frame["target"]
    )
    print(f"Training on {len(x_train)} rows, testing on {len(x_test)}\n")

    for name, build, params in CANDIDATES:
        with shipyard.start_run(name, experiment="breast-cancer", tags={"dataset": "sklearn:breast_cancer"}, workspace=WORKSPACE) as run:
            run.log_input("cancer@1")
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
                top = sorted(zip(features.columns, np.round(importances, 4).tolist()), key=lambda t: -t[1])[:10]
                run.log_artifact(json.dumps(dict(top), indent=2).encode(), name="feature_importances.json")
            print(f"  trained {name:<11} roc_auc={roc_auc_score(y_test, proba):.4f}")

    print()
    shipyard_cli(["-C", str(WORKSPACE), "runs", "list", "--order-by", "metrics.roc_auc DESC"])
    best = shipyard.search_runs(order_by=["metrics.roc_auc DESC", "metrics.log_loss ASC"], max_results=1, workspace=WORKSPACE)[0]
    print(f"\nBest run: {best.name} ({best.run_id[:8]}) roc_auc={best.metrics['roc_auc']:.4f} "
          f"log_loss={best.metrics['log_loss']:.4f} params={best.params}")
    status = shipyard_cli(["-C", str(WORKSPACE), "audit", "verify"])
    print("\nLook further:")
    print(f"  .venv/bin/shipyard -C {WORKSPACE.name} runs show {best.run_id[:8]}")
    print(f"  .venv/bin/shipyard -C {WORKSPACE.name} runs list --filter \"params.model = 'rf'\"")
    print(f"  .venv/bin/shipyard -C {WORKSPACE.name} data show cancer@1")
    print(f"  .venv/bin/shipyard -C {WORKSPACE.name} lineage show cancer@1 --downstream")
    print(f"  .venv/bin/shipyard -C {WORKSPACE.name} audit log")
    return status


if __name__ == "__main__":
    sys.exit(main())
