"""The credit lifecycle the controller's tests retrain: a small logistic regression on the numeric columns, with
an evaluation gate on its split."""

from __future__ import annotations

FEATURES = ["age", "income", "loan_amount", "term_months", "debt_ratio", "credit_history_years", "prior_defaults"]


def lifecycle(minimum: float = 0.5, *, schema: str | None = None) -> str:
    """shipyard.yaml's data, features, model, evaluation and gates sections; `minimum` is the gate's accuracy."""
    contract = f"\n  schema: {schema}" if schema else ""
    return f"""
data:
  dataset: credit
  target: default{contract}
features:
  drop: [application_id, applied_at, sex, region, employment]
model:
  name: credit
  estimator: sklearn.linear_model.LogisticRegression
  params: {{max_iter: 2000}}
evaluation:
  metrics: [accuracy]
gates:
  credit:
    evaluation: {{dataset: split, target: default, thresholds: {{accuracy: {{min: {minimum}}}}}}}
"""
