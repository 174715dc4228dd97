"""A workspace with a small registered classifier (two numeric columns, string classes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def training_frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"age": rng.integers(18, 80, 60), "income": rng.normal(50_000, 10_000, 60)})
    y = pd.Series(np.where(x["income"] > 50_000, "yes", "no"), name="approved")
    return x, y


@pytest.fixture
def model_workspace(workspace: Path) -> Path:
    import shipyard
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = training_frame()
    with shipyard.start_run("train") as run:
        for c in (1.0, 0.1):
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(x, y)
            run.log_model(model, "credit", input_example=x.head(), signature_frame=x)
    shipyard.models.set_alias("credit/2", "staging")
    return workspace
