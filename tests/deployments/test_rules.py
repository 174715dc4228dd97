"""Every refused change is a clear error naming the value, and the deployment is left exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard import deployments
from shipyard.context import open_context
from shipyard.deployments.revisions import current_revision
from shipyard.errors import ConflictError, GateFailed, NotFoundError, ShipyardError, ValidationError


def _refused(change: Callable[[], Any], error: type[ShipyardError], fragment: str, name: str = "web") -> None:
    before = current_revision(open_context(), name)
    audit = shipyard.audit_head()
    with pytest.raises(error) as caught:
        change()
    assert fragment in caught.value.message, caught.value.message
    assert current_revision(open_context(), name) == before
    assert shipyard.audit_head() == audit  # nothing half-written, not even an audit event


@pytest.mark.parametrize("percent", [0, -5, 101, 12.5, True])
def test_a_canary_percent_outside_0_to_100(models: Path, percent: Any) -> None:
    deployments.create("web", "credit/1")
    _refused(lambda: deployments.canary("web", "credit/2", percent), ValidationError, f"percent {percent!r}")


def test_unknown_models_versions_and_aliases(models: Path) -> None:
    deployments.create("web", "credit/1")
    _refused(lambda: deployments.canary("web", "credit/9", 10), NotFoundError, "no version 9")
    _refused(lambda: deployments.canary("web", "credt/2", 10), NotFoundError, "Did you mean 'credit'")
    _refused(lambda: deployments.shadow("web", "credit@champoin"), NotFoundError, "'champoin'")
    _refused(lambda: deployments.canary("web", "credit/x", 10), ValidationError, "'x'")
    _refused(lambda: deployments.canary("nope", "credit/2", 10), NotFoundError, "No deployment named 'nope'")
    with pytest.raises(NotFoundError, match="no version 9"):
        deployments.create("api", "credit/9")
    assert deployments.list()[0].name == "web"  # no half-made 'api'
    with pytest.raises(ValidationError, match="'bad name!'"):
        deployments.create("bad name!", "credit/1")


def test_promoting_with_no_canary_and_rolling_back_with_no_earlier_revision(models: Path) -> None:
    deployments.create("web", "credit/1")
    _refused(lambda: deployments.promote("web"), ConflictError, "no canary to promote")
    _refused(lambda: deployments.rollback("web"), ConflictError, "no earlier revision")
    deployments.shadow("web", "credit/2")
    _refused(lambda: deployments.promote("web"), ConflictError, "no canary to promote")
    _refused(lambda: deployments.create("web", "credit/2"), ConflictError, "exists")


def test_one_experiment_at_a_time(models: Path) -> None:
    deployments.create("web", "credit/1")
    deployments.canary("web", "credit/2", 10)
    _refused(lambda: deployments.ab("web", {"a": ("credit/1", 50), "b": ("credit/3", 50)}), ConflictError,
             "has a canary in force")
    _refused(lambda: deployments.shadow("web", "credit/3"), ConflictError, "has a canary in force")
    _refused(lambda: deployments.canary("web", "credit/3", 10), ConflictError, "promote it")
    _refused(lambda: deployments.canary("web", "credit/1", 10), ConflictError, "has a canary in force")
    deployments.promote("web")
    deployments.ab("web", {"a": ("credit/2", 50), "b": ("credit/3", 50)})
    _refused(lambda: deployments.canary("web", "credit/1", 10), ConflictError, "has an A/B test in force")
    _refused(lambda: deployments.promote("web"), ValidationError, "--variant (a, b)")
    _refused(lambda: deployments.promote("web", variant="c"), ValidationError, "no variant 'c'")
    deployments.promote("web", variant="a")
    _refused(lambda: deployments.canary("web", "credit/2", 10), ValidationError, "already the primary")
    _refused(lambda: deployments.unshadow("web"), ConflictError, "no shadow to remove")


def test_a_version_that_failed_its_gates_takes_no_traffic_unless_waived(models: Path) -> None:
    deployments.create("web", "credit/1")
    _refused(lambda: deployments.canary("web", "credit/4", 10), GateFailed, "gate 'evaluation' FAILED")
    _refused(lambda: deployments.ab("web", {"a": ("credit/1", 50), "b": ("credit/4", 50)}), GateFailed, "credit/4")
    with pytest.raises(GateFailed, match="credit/4"):
        deployments.create("api", "credit/4")
    assert deployments.shadow("web", "credit/4").shadow is not None  # a shadow never answers
    deployments.unshadow("web")
    from shipyard.gates.gating import waive_gate

    waive_gate(open_context(), "credit/4", "evaluation", reason="known: labels flipped on purpose for this test")
    assert deployments.canary("web", "credit/4", 10).canary is not None


def test_a_version_whose_gates_have_not_run_is_refused(models: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from tests.deployments.conftest import frame

    data = frame()
    shipyard.models.register("credit", LogisticRegression().fit(data[["amount"]], data["label"]),
                             input_example=data[["amount"]].head())
    deployments.create("web", "credit/1")
    _refused(lambda: deployments.canary("web", "credit/5", 10), GateFailed, "gate 'evaluation' has not run")


def test_ab_weights_labels_and_versions(models: Path) -> None:
    deployments.create("web", "credit/1")
    ab = deployments.ab
    _refused(lambda: ab("web", {"a": ("credit/1", 50), "b": ("credit/2", 40)}), ValidationError, "sum to 90")
    _refused(lambda: ab("web", {"a": ("credit/1", 100)}), ValidationError, "at least two variants")
    _refused(lambda: ab("web", {"a": ("credit/1", 0), "b": ("credit/2", 100)}), ValidationError, "weight 0")
    _refused(lambda: ab("web", {"a": ("credit/1", 50), "canary": ("credit/2", 50)}), ValidationError, "'canary'")
    _refused(lambda: ab("web", {"a": ("credit/2", 50), "b": ("credit/2", 50)}), ValidationError,
             "both route to credit/2")
    _refused(lambda: deployments.canary("web", "credit/2", 10, sticky_by="bad key!"), ValidationError, "'bad key!'")


def test_a_routed_version_cannot_be_archived(models: Path) -> None:
    deployments.create("web", "credit/1")
    deployments.shadow("web", "credit/2")
    for ref, role in (("credit/1", "primary"), ("credit/2", "shadow")):
        with pytest.raises(ConflictError, match=f"deployment 'web' \\(revision 2, {role}"):
            shipyard.models.archive(ref)
        assert shipyard.models.get(ref).status == "active"
    deployments.unshadow("web")
    assert shipyard.models.archive("credit/2").status == "archived"  # no longer routed
    _refused(lambda: deployments.rollback("web"), ValidationError, "credit/2 is archived")
    _refused(lambda: deployments.canary("web", "credit/2", 10), ValidationError, "credit/2 is archived")
