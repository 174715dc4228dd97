"""Promotion checks and moves in one transaction, against the champion and gate policy its evidence names.

Races are forced: a second thread archives the version (or rejects its review) right after promotion has
checked, before it moves the alias. The second thread must wait for the promotion to commit and then see it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

import shipyard
from shipyard.context import Context, open_context
from shipyard.errors import ConflictError, GateFailed, ShipyardError
from shipyard.gates import gating, promotion
from shipyard.models import registry, reviews

GATES = """
gates:
  cancer:
    evaluation:
      dataset: holdout@latest
      target: target
      thresholds:
        accuracy: {min: 0.6}
      against_champion:
        accuracy: {max_drop: 0.01}
governance:
  cancer:
    reviews: [ethical]
"""


@pytest.fixture
def data(backend_workspace: Path) -> dict[str, Any]:
    frame = load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["target"])
    shipyard.data.add("holdout", test.reset_index(drop=True))
    spec = backend_workspace / "shipyard.yaml"
    spec.write_text(spec.read_text() + GATES)
    return {"x": train.drop(columns=["target"]), "y": train["target"], "spec": spec}


def _register(data: dict[str, Any], model: Any) -> str:
    return shipyard.models.register("cancer", model.fit(data["x"], data["y"]), input_example=data["x"].head()).version_id


def _approved(ctx: Context, ref: str) -> None:
    reviews.request_review(ctx, ref, "ethical")
    reviews.decide_review(ctx.acting_as("ethics-board"), ref, "ethical", approve=True)


def _in_the_gap(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> dict[str, Any]:
    """Run `action` on another thread right after promotion has checked the version, and give it time to
    finish there; it may only finish in the gap if the check and the move are separate transactions."""
    seen: dict[str, Any] = {"finished_in_gap": None, "error": None}
    real = promotion.promotion_state
    done = threading.Event()

    def act() -> None:
        try:
            action()
        except ShipyardError as exc:
            seen["error"] = exc
        finally:
            done.set()

    def check_then_interfere(*args: Any, **kwargs: Any) -> promotion.Readiness:
        state = real(*args, **kwargs)
        if seen["finished_in_gap"] is None:
            thread = threading.Thread(target=act)
            thread.start()
            seen["thread"] = thread
            seen["finished_in_gap"] = done.wait(timeout=2.0)
        return state

    monkeypatch.setattr(promotion, "promotion_state", check_then_interfere)
    return seen


def test_an_archive_between_check_and_move_cannot_leave_the_champion_on_an_archived_version(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = open_context()
    ref = _register(data, LogisticRegression(max_iter=5000))
    gating.run_gates(ctx, ref)
    _approved(ctx, ref)
    seen = _in_the_gap(monkeypatch, lambda: registry.archive_version(open_context(), ref))
    promotion.promote(ctx, ref)
    seen["thread"].join(60)
    version = registry.get_model_version(ctx, ref)
    assert seen["finished_in_gap"] is False  # the archive waited for the promotion to commit
    assert version.aliases == ["champion"] and version.status == "active"
    assert isinstance(seen["error"], ConflictError)  # ... and then saw the alias and refused


def test_a_rejection_between_check_and_move_is_not_overtaken(data: dict[str, Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = open_context()
    ref = _register(data, LogisticRegression(max_iter=5000))
    gating.run_gates(ctx, ref)
    reviews.request_review(ctx, ref, "ethical")
    reviews.decide_review(ctx.acting_as("ethics-board"), ref, "ethical", approve=True)
    reviews.request_review(ctx, ref, "ethical")  # a second look is asked for; its outcome decides
    with pytest.raises(GateFailed, match="ethical review is requested"):
        promotion.promote(ctx, ref)
    seen = _in_the_gap(monkeypatch, lambda: reviews.decide_review(
        open_context(actor="ethics-board"), ref, "ethical", approve=False))
    with pytest.raises(GateFailed):
        promotion.promote(ctx, ref)
    seen["thread"].join(60)
    assert seen["finished_in_gap"] is False and seen["error"] is None
    assert reviews.latest_review(ctx, ref, "ethical").status == "rejected"  # type: ignore[union-attr]
    assert registry.get_model_version(ctx, ref).aliases == []


def test_candidates_gated_before_a_champion_existed_must_be_gated_again(data: dict[str, Any]) -> None:
    ctx = open_context()
    first = _register(data, LogisticRegression(max_iter=5000))
    second = _register(data, DecisionTreeClassifier(max_depth=1, random_state=0))
    for ref in (first, second):
        [result] = gating.run_gates(ctx, ref)
        assert result.status == "NO_BASELINE"  # no champion to compare with
        _approved(ctx, ref)
    stored = gating.latest_gates(ctx, second)["evaluation"]
    assert stored.baseline_version is None and stored.policy_digest == ctx.policy.gates_digest("cancer")
    promotion.promote(ctx, first)
    with pytest.raises(GateFailed, match=r"compared it with no champion, but the champion is now cancer/1: re-run "
                                         r"the gates"):
        promotion.promote(ctx, second)
    assert promotion.check_promotion(ctx, second).gates["evaluation"] == "STALE"
    [again] = gating.run_gates(ctx, second)  # now judged against cancer/1: the stump is worse
    assert again.status == "FAIL"
    assert gating.latest_gates(ctx, second)["evaluation"].baseline_version == 1
    with pytest.raises(GateFailed, match="accuracy"):
        promotion.promote(ctx, second)
    assert registry.get_model_version(ctx, "cancer@champion").version_id == first


def test_a_changed_gate_policy_makes_results_stale(data: dict[str, Any]) -> None:
    ctx = open_context()
    ref = _register(data, LogisticRegression(max_iter=5000))
    gating.run_gates(ctx, ref)
    _approved(ctx, ref)
    before = ctx.policy.gates_digest("cancer")
    data["spec"].write_text(data["spec"].read_text().replace("min: 0.6", "min: 0.99"))
    assert ctx.policy.gates_digest("cancer") != before  # the policy is re-read when the file changes
    with pytest.raises(GateFailed, match="judged by another gate policy .* re-run the gates"):
        promotion.promote(ctx, ref)
    data["spec"].write_text(data["spec"].read_text().replace("min: 0.99", "min: 0.6"))
    promotion.promote(ctx, ref)  # back to the policy it was judged by: accepted again


def test_a_waiver_records_the_result_it_accepts_and_promotion_says_so(data: dict[str, Any]) -> None:
    ctx = open_context()
    data["spec"].write_text(data["spec"].read_text().replace("min: 0.6", "min: 0.999"))
    ref = _register(data, LogisticRegression(max_iter=5000))
    [result] = gating.run_gates(ctx, ref)
    assert result.status == "FAIL"
    _approved(ctx, ref)
    waived = gating.waive_gate(ctx, ref, "evaluation", reason="accepted for the pilot by the risk board")
    assert waived.status == "WAIVED" and waived.policy_digest == ctx.policy.gates_digest("cancer")
    move = promotion.promote(ctx, ref)
    assert move.reason == "promoted: gates passed, 1 waived"


def test_promotion_evidence_is_audited_with_the_caller(data: dict[str, Any]) -> None:
    ctx = open_context(actor="release-bot")
    ref = _register(data, LogisticRegression(max_iter=5000))
    gating.run_gates(ctx, ref)
    _approved(ctx, ref)
    promotion.promote(ctx, ref)
    [event] = shipyard.audit_log(action="model.alias_set", limit=1)
    assert event.actor == "release-bot" and event.payload["to_version"] == 1
    frame = pd.DataFrame(registry.alias_moves(ctx, "cancer"))
    assert list(frame["actor"]) == ["release-bot"]


def test_the_champion_itself_is_not_stale_for_having_been_gated_before_it_was_champion(data: dict[str, Any]) -> None:
    ctx = open_context()
    ref = _register(data, LogisticRegression(max_iter=5000))
    gating.run_gates(ctx, ref)
    _approved(ctx, ref)
    promotion.promote(ctx, ref)
    state = promotion.check_promotion(ctx, ref)
    assert state.allowed and state.gates["evaluation"] == "NO_BASELINE"
    promotion.promote(ctx, ref, "challenger")  # e.g. moved to another serving alias: no re-gating needed
