"""Validation gates: evaluation, behavioural, fairness and infrastructure checks of model versions."""
