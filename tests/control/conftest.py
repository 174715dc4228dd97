"""A deployment to diagnose."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.context import Context
from tests.control.test_doctor import deploy, record_gate, register_accuracy


@pytest.fixture
def served(workspace: Path) -> Context:
    """loans/1 deployed as loans-api, with a fast infrastructure gate result and its registered accuracy."""
    ctx = deploy(workspace)
    record_gate(ctx, "loans/1")
    register_accuracy(ctx, "loans/1")
    return ctx
