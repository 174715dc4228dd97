"""A workspace with a model whose versions 1-3 pass their evaluation gate and version 4 fails it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import shipyard
from tests.templates import copy_into, prepare

GATES = """
gates:
  credit:
    evaluation: {dataset: credit@latest, target: label, thresholds: {accuracy: {min: 0.8}}}
"""


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    amount = rng.normal(100, 10, 200)
    return pd.DataFrame({"amount": amount, "label": (amount > 100).astype(int)})


def register_versions(root: Path) -> None:
    """credit/1-3 pass their gate (fitted on the labels), credit/4 fails it (fitted on the labels flipped)."""
    from shipyard.context import open_context
    from shipyard.gates.gating import run_gates

    (root / "shipyard.yaml").write_text((root / "shipyard.yaml").read_text() + GATES)
    data = frame()
    shipyard.data.add("credit", data)
    x, y = data[["amount"]], data["label"]
    for c in (1.0, 0.5, 0.25):
        shipyard.models.register("credit", LogisticRegression(C=c).fit(x, y), input_example=x.head())
    shipyard.models.register("credit", LogisticRegression().fit(x, 1 - y), input_example=x.head())
    ctx = open_context()
    for version in range(1, 5):
        run_gates(ctx, f"credit/{version}")


@pytest.fixture(scope="session")
def models_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(tmp_path_factory.mktemp("models") / "ws", register_versions)


@pytest.fixture
def models(workspace: Path, models_template: Path) -> Path:
    """The workspace with credit/1-4 registered and gated (a copy of one built once)."""
    return copy_into(models_template, workspace, register_versions)


@pytest.fixture
def backend_models(backend_workspace: Path) -> Path:
    register_versions(backend_workspace)
    return backend_workspace
