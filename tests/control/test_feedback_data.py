"""`data: feedback` in a retrain policy: a cycle builds a new version of the training dataset from the requests
the deployment answered, joined with their feedback, and the standard pipeline trains the challenger on it. The
rows are the answered, labelled ones in the window (no shadow copies, no failed requests, labels coerced to the
target's type, the rest counted); too few of them, or a version the contract refuses, fail the cycle with
nothing written; a step run again after a restart makes no second version."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import shipyard
from shipyard.context import Context, open_context
from shipyard.control import controller, cycles
from shipyard.errors import ConfigError, ValidationError
from shipyard.serving.feedback import FeedbackItem, record_feedback
from shipyard.store import leases
from shipyard.synthetic import credit

from tests.control.lifecycle import FEATURES, lifecycle

DROPPED = ["application_id", "applied_at", "sex", "region", "employment"]
SPEC = lifecycle(schema="schemas/credit.yaml") + """
monitor:
  credit-api: {deployment: credit-api, window: {last: 1h}, performance: null, health: null}
retrain:
  credit-api: {data: feedback, feedback: {window: 1h, min_rows: 300}, cooldown: 1h, approval: true}
deploy:
  credit-api: {model: credit@champion}
"""


def setup_workspace(workspace: Path, *, nullable: bool = True) -> Context:
    """credit@1 with a contract inferred from it (the columns the log lacks declared nullable, or not), credit/1
    trained on it and serving as credit-api."""
    shipyard.data.add("credit", credit(3000, seed=0))
    (workspace / "shipyard.yaml").write_text((workspace / "shipyard.yaml").read_text() + SPEC)
    contract = Path(shipyard.data.infer_schema("credit@1"))
    rules = yaml.safe_load(contract.read_text())
    for name, rule in rules["columns"].items():
        if name in DROPPED and nullable:
            rule.update(nullable=True, max_null_fraction=0.2)
        rule.pop("min", None), rule.pop("max", None)  # the served population is older and richer
    contract.write_text(yaml.safe_dump(rules))
    ctx = open_context()
    from shipyard.pipelines.lifecycle import run_standard

    run_standard(ctx, promote=True)
    shipyard.deployments.create("credit-api", "credit@champion")
    return ctx


def serve(ctx: Context, frame: pd.DataFrame, prefix: str, *, route: str = "primary", ago: float = 600,
          failed: bool = False, per_request: int = 10) -> list[str]:
    """Log `frame` as credit-api's servers would, answered by credit/1 on `route`: requests of `per_request`
    rows named PREFIX0, PREFIX1, ..., arriving from `ago` seconds before now."""
    from shipyard.models.loading import load_model
    from shipyard.serving.batches import build_batches, store_batch
    from shipyard.serving.predlog import Prediction

    inputs = frame[FEATURES].reset_index(drop=True)
    predicted = load_model(ctx, "credit/1").predict(inputs)
    start = time.time() - ago
    entries = [Prediction(f"{prefix}{i // per_request}", start + i / 1000, "credit", 1, "predict",
                          inputs.iloc[i:i + per_request], predicted[i:i + per_request], None, 2.0,
                          deployment="credit-api", deployment_route=route, error="model failed" if failed else None)
               for i in range(0, len(inputs), per_request)]
    for batch in build_batches(entries):
        store_batch(ctx, batch)
    return [e.request_id for e in entries]


def label(ctx: Context, ids: list[str], frame: pd.DataFrame, per_request: int = 10,
          value: Any = lambda v: int(v)) -> None:
    """Per-row feedback: the true `default` of every row of the requests `ids`."""
    truth = frame["default"].reset_index(drop=True)
    record_feedback(ctx, "credit", [FeedbackItem(r, value(truth[i * per_request + j]), j)
                                    for i, r in enumerate(ids) for j in range(per_request)
                                    if i * per_request + j < len(truth)])


def traffic(ctx: Context) -> pd.DataFrame:
    """What credit-api answered in the last hour, and its feedback: 300 rows on the primary (the first 100 also
    copied to a shadow), 100 on an A/B variant of which 50 have no feedback yet, a failed request, and requests
    older than the window; one label that is no number, ten given as text. The rows a version built now takes,
    in the order it takes them."""
    shifted = credit(400, seed=4, population_shift=1.0)
    primary, variant = shifted.iloc[:300], shifted.iloc[300:]
    first = serve(ctx, primary, "p", ago=900)
    serve(ctx, primary.iloc[:100], "p", route="shadow", ago=900)  # the same requests, answered again unseen
    second = serve(ctx, variant, "b", route="b", ago=600)
    old = credit(100, seed=5)
    late = serve(ctx, old, "old", ago=7200)  # before the window
    broken = serve(ctx, old.iloc[:10], "err", ago=300, failed=True)
    label(ctx, first[2:], primary.iloc[20:])
    label(ctx, first[:2], primary.iloc[:20], value=lambda v: str(int(v)))  # "0", "1": coerced to numbers
    record_feedback(ctx, "credit", [FeedbackItem("p0", "maybe", 0)])  # no number: skipped, and shown
    label(ctx, second[:5], variant.iloc[:50])
    label(ctx, late, old)
    label(ctx, broken, old.iloc[:10])
    return pd.concat([primary.iloc[1:], variant.iloc[:50]], ignore_index=True)


def policy(ctx: Context) -> Any:
    from shipyard.policy.retrain import retrain_spec

    spec = retrain_spec(ctx.policy.document(), "credit-api")
    assert spec is not None
    return spec


def start(ctx: Context) -> tuple[cycles.Cycle, leases.Lease]:
    """A cycle of credit-api, started by the data drift its monitor sees in the traffic."""
    from shipyard.monitoring.monitors import run_monitor

    assert "data_drift" in {f.rule for f in run_monitor(ctx, "credit-api").firing}
    lease = leases.acquire(ctx.store, ctx.actor, controller.lease_name("credit-api"), "test:1:a", 600)
    assert lease is not None
    decision = controller.due(ctx, "credit-api", policy(ctx))
    assert decision.start
    return controller.begin(ctx, decision, lease), lease


def upstream(ctx: Context, version: str) -> set[tuple[str, str, str]]:
    from shipyard.store.lineage import Node, neighbours

    with ctx.store.read() as conn:
        return {(n.kind, n.id, relation) for n, relation in neighbours(conn, Node("dataset_version", version),
                                                                       upstream=True)}


def test_a_cycle_trains_the_challenger_on_a_version_built_from_the_labelled_requests(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = setup_workspace(workspace)
    taken = traffic(ctx)
    cycle, lease = start(ctx)
    recorded = controller.advance

    def dies_once(ctx: Context, cycle_id: int, state: str, *args: Any, **kwargs: Any) -> cycles.Cycle:
        if state == "training":  # the controller stops after the version is written, before the cycle says so
            monkeypatch.setattr(controller, "advance", recorded)
            raise KeyboardInterrupt
        return recorded(ctx, cycle_id, state, *args, **kwargs)

    monkeypatch.setattr(controller, "advance", dies_once)
    with pytest.raises(KeyboardInterrupt):
        controller.drive(ctx, cycle, policy(ctx), lease, report=lambda _: None)
    assert [v.version_id for v in shipyard.data.log("credit")] == ["credit@2", "credit@1"]
    said: list[str] = []
    cycle = controller.drive(ctx, cycles.get_cycle(ctx, cycle.id), policy(ctx), lease, report=said.append)
    assert [v.version_id for v in shipyard.data.log("credit")] == ["credit@2", "credit@1"]  # built again: the same
    assert f"cycle {cycle.id}: training on credit@2, already built from 349 labelled rows" in said[0]

    assert (cycle.state, cycle.champion, cycle.challenger) == ("awaiting_approval", "credit/1", "credit/2")
    training = cycle.evidence["training"]
    assert training["data"] == "credit@2"
    built = training["feedback"]
    assert {k: built[k] for k in ("version", "created", "base", "base_rows", "feedback_rows", "requests", "models",
                                  "skipped", "skipped_example", "empty_columns")} == {
        "version": "credit@2", "created": False, "base": "credit@1", "base_rows": 3000, "feedback_rows": 349,
        "requests": 35, "models": ["credit/1"], "skipped": 1,
        "skipped_example": {"request_id": "p0", "row": 0, "value": "maybe"}, "empty_columns": DROPPED}
    assert built["since"] is not None and built["since"] < built["until"]

    version = shipyard.data.get("credit@2")
    assert version.row_count == 3349 and version.message is not None
    assert version.message.startswith("349 labelled rows of 35 requests answered by credit/1 through deployment "
                                      "credit-api from ")
    assert version.message.endswith(f", after the 3000 rows of credit@1 (retraining cycle {cycle.id})")
    rows, base = shipyard.data.load("credit@2"), shipyard.data.load("credit@1")
    assert version.table_schema == shipyard.data.get("credit@1").table_schema  # the same columns and types
    pd.testing.assert_frame_equal(rows.iloc[:3000].reset_index(drop=True), base, check_dtype=False)
    added = rows.iloc[3000:].reset_index(drop=True)
    pd.testing.assert_frame_equal(added[FEATURES], taken[FEATURES], check_dtype=False)
    assert added["default"].tolist() == taken["default"].tolist() and rows["default"].dtype == base["default"].dtype
    assert added[DROPPED].isna().all().all() and list(rows.columns) == list(base.columns)

    from shipyard.data.checks import latest_validation
    from shipyard.models.registry import get_model_version

    assert get_model_version(ctx, "credit/2").dataset_version == "credit@2"  # trained on it
    checked = latest_validation(ctx, "credit@2")
    assert checked is not None and checked["ok"] and checked["reference"] == "credit@1"
    assert upstream(ctx, "credit@2") == {("dataset_version", "credit@1", "derived"),
                                         ("model_version", "credit/1", "derived"),
                                         ("retrain_cycle", str(cycle.id), "output")}


def test_too_few_labels_or_a_contract_that_refuses_the_rows_fail_the_cycle_with_nothing_written(
        workspace: Path) -> None:
    ctx = setup_workspace(workspace, nullable=False)
    traffic(ctx)
    path = workspace / "shipyard.yaml"
    path.write_text(path.read_text().replace("min_rows: 300", "min_rows: 500"))
    cycle, lease = start(ctx)
    cycle = controller.drive(ctx, cycle, policy(ctx), lease, report=lambda _: None)
    assert cycle.state == "failed" and cycle.reason is not None
    assert cycle.reason.startswith(
        "no training data from feedback: Only 349 labelled rows for training: 400 rows of credit were logged "
        "through deployment 'credit-api' from ")
    assert ("350 of them with feedback; 1 more had a label that is not a value of default's type (int64), e.g. "
            "'maybe'. retrain.credit-api.feedback.min_rows asks for 500: send more feedback") in cycle.reason
    assert list(cycle.evidence) == ["triggered", "failed"] and "training" not in cycle.evidence
    [alert] = [a for a in shipyard.monitoring.list_alerts(monitor="credit-api", state="firing")
               if a.rule == "retrain_failed"]
    assert f"cycle {cycle.id} of credit-api failed: no training data from feedback: Only 349" in alert.message
    assert [v.version_id for v in shipyard.data.log("credit")] == ["credit@1"]

    path.write_text(path.read_text().replace("min_rows: 500", "min_rows: 300"))
    again = controller.begin(ctx, controller.Decision("credit-api", True, "again", cycle.trigger), lease)
    again = controller.drive(ctx, again, policy(ctx), lease, report=lambda _: None)
    assert again.state == "failed" and again.reason is not None
    assert again.reason.startswith("no training data from feedback: The version of credit built from feedback "
                                   "would fail its contract ")
    assert "Column 'sex': 349 null values (10.4% of 3,349 rows); the schema declares it not nullable" in again.reason
    assert again.reason.endswith(
        "The log holds only the model's inputs, so application_id, applied_at, employment, region, sex are empty "
        "in the 349 rows from feedback: declare them `nullable: true` with a max_null_fraction that admits them "
        "in schemas/credit.yaml (and no key of them), or train on data: latest.")
    assert [v.version_id for v in shipyard.data.log("credit")] == ["credit@1"]


def test_versions_built_from_feedback_never_stack_and_combine_none_keeps_the_labelled_rows_alone(
        backend_workspace: Path) -> None:
    from shipyard.policy.retrain import FeedbackSpec
    from shipyard.serving.feedback_data import build_feedback_version

    ctx = setup_workspace(backend_workspace)
    contract = backend_workspace / "schemas" / "credit.yaml"  # the labelled rows alone must pass it too
    rules = yaml.safe_load(contract.read_text())
    rules["row_count"] = None
    for name in DROPPED:
        rules["columns"][name]["max_null_fraction"] = 1.0
    contract.write_text(yaml.safe_dump(rules))
    taken = traffic(ctx)
    with pytest.raises(ValidationError, match=r"Only 0 labelled rows for training: 0 rows of credit were logged "
                                              r"through deployment 'other-api' up to .*, 0 of them with feedback\. "
                                              r"feedback.min_rows asks for 10"):
        build_feedback_version(ctx, "other-api", "credit", FeedbackSpec(min_rows=10), until_ms=int(time.time() * 1000),
                               note="by hand")
    first = build_feedback_version(ctx, "credit-api", "credit", FeedbackSpec(window=3600, min_rows=10),
                                   until_ms=int(time.time() * 1000), note="by hand")
    assert (first.version, first.created, first.feedback_rows) == ("credit@2", True, 349)
    more = credit(50, seed=9)
    label(ctx, serve(ctx, more, "n", ago=1), more)
    now = int(time.time() * 1000)
    second = build_feedback_version(ctx, "credit-api", "credit", FeedbackSpec(window=3600, min_rows=10),
                                    until_ms=now, note="by hand")
    assert (second.version, second.base, second.feedback_rows) == ("credit@3", "credit@1", 399)
    assert shipyard.data.get("credit@3").row_count == 3399  # credit@1's rows once, and every labelled row once
    same = build_feedback_version(ctx, "credit-api", "credit", FeedbackSpec(window=3600, min_rows=10),
                                  until_ms=now, note="by hand, again")
    assert (same.version, same.created) == ("credit@3", False)
    alone = build_feedback_version(ctx, "credit-api", "credit", FeedbackSpec(window=3600, min_rows=10,
                                                                             combine="none"),
                                   until_ms=now, note="by hand")
    assert (alone.version, alone.base, alone.base_rows) == ("credit@4", None, 0)
    rows = shipyard.data.load("credit@4")
    assert len(rows) == 399 and rows["default"].tolist() == [*taken["default"], *more["default"]]
    assert ("dataset_version", "credit@1", "derived") not in upstream(ctx, "credit@4")
    assert np.array_equal(rows["age"].to_numpy(), np.concatenate([taken["age"], more["age"]]))


@pytest.mark.parametrize(("policy_text", "message"), [
    ("{data: feedbak}", r"retrain.credit-api.data = 'feedbak': Input should be 'latest' or 'feedback'. Did you "
                        r"mean 'feedback'\?"),
    ("{feedback: {min_rows: 50}}", r"retrain.credit-api: feedback settings apply to data: feedback, but data is "
                                   r"'latest'; set data: feedback"),
    ("{data: feedback, feedback: {min_rows: 0}}", r"retrain.credit-api.feedback.min_rows = 0: Input should be "
                                                  r"greater than or equal to 1"),
    ("{data: feedback, feedback: {window: soon}}", r"retrain.credit-api.feedback.window = 'soon': expected a "
                                                   r"duration such as 300, 90s, 5m or 1h"),
    ("{data: feedback, feedback: {window: 0s}}", r"retrain.credit-api.feedback.window = '0s': expected a positive "
                                                 r"duration"),
    ("{data: feedback, feedback: {combine: all}}", r"retrain.credit-api.feedback.combine = 'all': Input should be "
                                                   r"'latest' or 'none'"),
    ("{data: feedback, feedback: {min_row: 5}}", r"unknown key retrain.credit-api.feedback.min_row \(value 5\). "
                                                 r"Did you mean 'min_rows'\?"),
])
def test_bad_feedback_settings_name_the_key_and_the_fix(tmp_path: Path, policy_text: str, message: str) -> None:
    from shipyard.policy import Policy
    from shipyard.policy.retrain import retrain_spec

    (tmp_path / "shipyard.yaml").write_text(f"retrain:\n  credit-api: {policy_text}\n")
    with pytest.raises(ConfigError, match=r"shipyard.yaml line 2: " + message):
        retrain_spec(Policy(tmp_path).document(), "credit-api")


def test_data_feedback_alone_takes_the_defaults_and_latest_stays_the_default(tmp_path: Path) -> None:
    from shipyard.policy import Policy
    from shipyard.policy.retrain import retrain_spec

    (tmp_path / "shipyard.yaml").write_text("retrain:\n  a: {data: feedback}\n  b: {}\n"
                                            "  c: {data: feedback, feedback: {window: 2h, combine: none}}\n")
    document = Policy(tmp_path).document()
    a, b, c = (retrain_spec(document, name) for name in "abc")
    assert a is not None and b is not None and c is not None
    assert (a.data, a.feedback_data.window, a.feedback_data.min_rows, a.feedback_data.combine) == (
        "feedback", None, 100, "latest")
    assert b.data == "latest" and b.feedback is None
    assert (c.feedback_data.window, c.feedback_data.combine) == (7200.0, "none")
