"""A workspace with a small registered classifier (two numeric columns, string classes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.templates import copy_into, prepare


def training_frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"age": rng.integers(18, 80, 60), "income": rng.normal(50_000, 10_000, 60)})
    y = pd.Series(np.where(x["income"] > 50_000, "yes", "no"), name="approved")
    return x, y


def register_model(workspace: Path) -> None:
    """credit/1 and credit/2 (C=1 and C=0.1) logged by one run, credit/2 aliased staging."""
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


@pytest.fixture(scope="session")
def model_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(tmp_path_factory.mktemp("model") / "ws", register_model)


@pytest.fixture
def model_workspace(workspace: Path, model_template: Path) -> Path:
    """The workspace with the classifier registered (a copy of one built once)."""
    return copy_into(model_template, workspace, register_model)
