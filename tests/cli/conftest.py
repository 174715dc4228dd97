"""Fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import make_run


@pytest.fixture
def three_runs(workspace: Path) -> dict[str, str]:
    """alpha (rf, auc 0.7→0.9), beta (gb, auc 0.95), gamma (rf, auc 0.6); name → run id."""
    return {
        "alpha": make_run(
            "alpha", experiment="exp-a", params={"model": "rf", "seed": 1},
            metrics={"auc": [0.7, 0.8, 0.9], "loss": [0.5, 0.4]},
        ),
        "beta": make_run("beta", experiment="exp-b", params={"model": "gb", "seed": 1}, metrics={"auc": [0.95]}),
        "gamma": make_run("gamma", experiment="exp-a", params={"model": "rf", "seed": 1}, metrics={"auc": [0.6]}),
    }

