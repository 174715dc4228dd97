"""deploy.NAME in shipyard.yaml: validated with errors naming the key, `apply`, the analysis policy, recorded
decisions, and the readiness checklist's deployment item."""

from __future__ import annotations

from pathlib import Path

import pytest

import shipyard
from shipyard import deployments
from shipyard.context import open_context
from shipyard.deployments.analysis import AnalysisPolicy, analysis_policy, record_decision
from shipyard.deployments.revisions import current_revision
from shipyard.errors import ConfigError, ConflictError, ValidationError

DEPLOY = """
deploy:
  web:
    model: credit/2
    strategy: canary
    sticky_by: X-Customer
    steps: [5, 25, 100]
    min_requests: 200
    duration: 10m
    analysis:
      max_error_rate_increase: 0.02
      max_p99_latency_ratio: 1.2
      max_prediction_shift: 0.1
      shift_statistic: ks
      min_feedback_delta: -0.01
"""


def _declare(root: Path, text: str) -> None:
    (root / "shipyard.yaml").write_text((root / "shipyard.yaml").read_text() + text)


def _routes(name: str) -> list[tuple[str, str, int]]:
    return [(r.role, r.version_id, r.weight) for r in current_revision(open_context(), name)[1]]


def test_the_declared_policy_and_apply(models: Path) -> None:
    assert deployments.policy("web") == AnalysisPolicy()  # nothing declared: the defaults
    _declare(models, DEPLOY)
    policy = analysis_policy(open_context(), "web")
    assert (policy.steps, policy.min_requests, policy.duration_seconds) == ((5, 25, 100), 200, 600.0)
    assert (policy.max_error_rate_increase, policy.max_p99_latency_ratio, policy.max_prediction_shift,
            policy.shift_statistic, policy.min_feedback_delta) == (0.02, 1.2, 0.1, "ks", -0.01)
    assert policy.source == "deploy.web in shipyard.yaml" and policy.next_step(5) == 25 and policy.next_step(100) is None
    with pytest.raises(shipyard.NotFoundError, match="Create it first"):
        deployments.apply("web")  # a canary needs a primary to run beside
    deployments.create("web", "credit/1")
    started = deployments.apply("web")
    assert (started.strategy, started.sticky_by) == ("canary", "X-Customer")
    assert started.analysis == {"policy": policy.to_dict()}
    assert _routes("web") == [("primary", "credit/1", 95), ("canary", "credit/2", 5)]
    assert deployments.apply("web").revision == started.revision  # already as declared: nothing written
    with pytest.raises(ConfigError, match="declares no deploy.api. Declared deployments: web"):
        deployments.apply("api")


def test_apply_creates_replaces_shadows_and_splits(models: Path) -> None:
    _declare(models, "deploy:\n  api:\n    model: credit/1\n")
    assert deployments.apply("api").revision == 1
    assert deployments.apply("api").revision == 1
    (models / "shipyard.yaml").write_text((models / "shipyard.yaml").read_text().replace("credit/1", "credit/3"))
    assert deployments.apply("api").revision == 2 and _routes("api") == [("primary", "credit/3", 100)]
    text = (models / "shipyard.yaml").read_text()
    (models / "shipyard.yaml").write_text(text.replace("model: credit/3", "model: credit/4\n    strategy: shadow"))
    deployments.apply("api")
    assert _routes("api") == [("primary", "credit/3", 100), ("shadow", "credit/4", 0)]
    deployments.unshadow("api")
    text = (models / "shipyard.yaml").read_text()
    (models / "shipyard.yaml").write_text(text.split("deploy:")[0] + (
        "deploy:\n  api:\n    strategy: ab\n    variants:\n      a: {model: credit/3, weight: 70}\n"
        "      b: {model: credit/2, weight: 30}\n"))
    deployments.apply("api")
    assert _routes("api") == [("variant", "credit/3", 70), ("variant", "credit/2", 30)]


@pytest.mark.parametrize(("section", "fragment"), [
    ("steps: [50, 10, 100]", "must increase"),
    ("steps: [10, 50]", "must end at 100"),
    ("steps: [0, 100]", "deploy.web.steps[0] = 0"),
    ("duration: soon", "'soon'"),
    ("min_requests: 0", "deploy.web.min_requests"),
    ("stratgy: canary", "Did you mean 'strategy'"),
    ("strategy: blue-green", "'blue-green'"),
    ("sticky_by: 'bad key!'", "'bad key!'"),
    ("analysis: {max_p99_latency_ratio: -1}", "deploy.web.analysis.max_p99_latency_ratio"),
    ("analysis: {max_error_rate: 0.1}", "Did you mean 'max_error_rate_increase'"),
])
def test_a_wrong_deploy_section_names_the_key_and_the_value(models: Path, section: str, fragment: str) -> None:
    _declare(models, f"deploy:\n  web:\n    model: credit/2\n    {section}\n")
    with pytest.raises(ConfigError) as caught:
        deployments.policy("web")
    assert fragment in caught.value.message, caught.value.message
    assert "shipyard.yaml line" in caught.value.message or "shipyard.yaml:" in caught.value.message


def test_ab_sections_need_variants_summing_to_100(models: Path) -> None:
    _declare(models, "deploy:\n  web:\n    strategy: ab\n    variants:\n      a: {model: credit/1, weight: 60}\n"
                     "      b: {model: credit/2, weight: 60}\n")
    with pytest.raises(ConfigError, match="sum to 120"):
        deployments.apply("web")


def test_recorded_decisions_carry_their_numbers(models: Path) -> None:
    _declare(models, DEPLOY)
    deployments.create("web", "credit/1")
    deployments.apply("web")
    ctx = open_context()
    numbers = {"primary": {"requests": 400, "error_rate": 0.0, "p99_ms": 4.1},
               "canary": {"requests": 210, "error_rate": 0.0, "p99_ms": 4.3}, "shift": 0.02}
    held = record_decision(ctx, "web", "hold", numbers, reasons=["fewer than 200 requests on a route"])
    assert held.routes == current_revision(ctx, "web")[1] and held.analysis is not None
    assert held.analysis["decision"] == "hold" and held.analysis["step"] == 5
    advanced = record_decision(ctx, "web", "advance", numbers)
    assert advanced.canary is not None and advanced.canary.weight == 25
    assert advanced.analysis is not None and advanced.analysis["numbers"] == numbers
    assert advanced.analysis["policy"]["steps"] == [5, 25, 100]
    worse = {**numbers, "canary": {"requests": 300, "error_rate": 0.2, "p99_ms": 9.0}}
    back = record_decision(ctx, "web", "rollback", worse, reasons=["error rate +0.2 > 0.02"])
    assert back.strategy == "canary" and back.canary is not None and back.canary.weight == 5  # one revision back
    assert back.analysis is not None and back.analysis["numbers"]["canary"]["error_rate"] == 0.2
    promoted = record_decision(ctx, "web", "promote", numbers)
    assert promoted.strategy == "single" and promoted.routes[0].version_id == "credit/2"
    decisions = [(r.analysis or {}).get("decision") for r in deployments.history("web")]
    assert decisions[:4] == ["promote", "rollback", "advance", "hold"]
    events = [e for e in shipyard.audit_log(object_id="web") if e.payload.get("analysis")]
    assert {e.payload["analysis"]["decision"] for e in events if "decision" in e.payload["analysis"]} == {
        "hold", "advance", "rollback", "promote"}
    with pytest.raises(ConflictError, match="runs no canary"):
        record_decision(ctx, "web", "advance", numbers)


def test_decisions_refuse_bad_input_and_change_nothing(models: Path) -> None:
    deployments.create("web", "credit/1")
    deployments.canary("web", "credit/2", 10)
    ctx = open_context()
    before = current_revision(ctx, "web")
    with pytest.raises(ValidationError, match="'rewind'"):
        record_decision(ctx, "web", "rewind", {})
    with pytest.raises(ValidationError, match="canary.p99_ms is nan"):
        record_decision(ctx, "web", "hold", {"canary": {"p99_ms": float("nan")}})
    assert current_revision(ctx, "web") == before


def test_readiness_of_the_deployment_item(models: Path) -> None:
    from shipyard.governance.readiness import evaluate

    def item() -> tuple[str, list[str], list[str]]:
        found = {i.name: i for i in evaluate(open_context(), "credit/2").items}["deployment"]
        return found.status, found.evidence, found.missing

    status, _, missing = item()
    assert status == "FAIL" and missing == [
        "no deployment serves credit/2 (`shipyard deploy create NAME --model credit/2`, or a canary of it)"]
    deployments.create("web", "credit/2")
    status, evidence, missing = item()
    assert status == "FAIL"
    assert missing == ["shipyard.yaml declares no strategy for deployment 'web' (add deploy.web with its strategy, "
                       "canary steps and analysis limits)",
                       "deployment 'web' has no rollback target: revision 1 is its first"]
    _declare(models, DEPLOY.replace("model: credit/2", "model: credit/3"))
    deployments.canary("web", "credit/3", 10)
    status, evidence, missing = item()
    assert status == "PASS", missing
    assert evidence == ["deployment 'web' revision 2 serves it as primary (90%)",
                        "deploy.web declares strategy canary, steps [5, 25, 100]",
                        "rollback target of 'web': revision 1 (primary credit/2)"]


def test_a_decision_on_a_revision_no_longer_in_force_changes_nothing(models: Path) -> None:
    deployments.create("web", "credit/1")
    judged = deployments.canary("web", "credit/2", 10).revision
    deployments.canary("web", "credit/2", 30)  # someone moved it by hand meanwhile
    ctx = open_context()
    before = current_revision(ctx, "web")
    for decision in ("rollback", "promote", "advance", "hold"):
        with pytest.raises(ConflictError, match=f"after revision {judged} was judged"):
            record_decision(ctx, "web", decision, {"canary": {"requests": 5}}, revision=judged)
    assert current_revision(ctx, "web") == before
