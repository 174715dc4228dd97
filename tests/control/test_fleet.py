"""The retraining controller over a fleet: fifty deployments of one champion, each with its monitor and policy.
One pass runs every monitor, starts cycles for exactly the drifted deployments (which share the one training
run and challenger the pipeline's cache gives), reports a deployment whose monitor fails without stopping the
others, leaves a deployment held by another controller to it, and waits on no approval and no canary. Two
controller processes sharing the fleet on PostgreSQL give each drifted deployment exactly one cycle."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import shipyard
from shipyard.context import Context, open_context
from shipyard.control import controller, cycles
from shipyard.models.reviews import decide_review, list_reviews
from shipyard.monitoring.monitors import get_report
from shipyard.store import leases
from tests.control.fleet import FEATURES, LOGGED_ROWS, build, watch
from tests.services import postgres_schema

QUIET = "no alert of monitor {} among data_drift, prediction_drift, performance, concept_drift is firing"


def report_counts(ctx: Context) -> Counter[str]:
    """Stored monitor reports per monitor."""
    from shipyard.store.tables import monitor_reports

    with ctx.store.read() as conn:
        rows = conn.execute(select(monitor_reports.c.monitor, func.count()).group_by(monitor_reports.c.monitor))
        return Counter({str(monitor): int(count) for monitor, count in rows})


def training(ctx: Context, runs: list[str]) -> list[str]:
    """How the `train` step went in each of these pipeline runs: "miss" (it trained) or "hit" (the cache's)."""
    from shipyard.tracking.runs import get_run
    from shipyard.tracking.search import search_run_ids

    ids, _ = search_run_ids(ctx, "tags.shipyard.step = 'train'", ["start_time ASC"], max_results=100)
    steps = {run.parent_id: run.tags["shipyard.cache"] for run in map(lambda i: get_run(ctx, i), ids)}
    return [steps[run] for run in runs]


def assert_one_challenger_for_all(ctx: Context, started: list[cycles.Cycle], *, controllers: int = 1) -> None:
    """Each cycle ran the standard pipeline, but the first of each controller alone trained (controllers that
    train at once both miss the cache): the rest were the cache's. The same model registers once, so every
    drifted deployment got the same challenger and the registry holds one new version."""
    assert {(c.champion, c.challenger) for c in started} == {("credit/1", "credit/2")}
    assert len({c.run_id for c in started}) == len(started)
    steps = training(ctx, [str(c.run_id) for c in sorted(started, key=lambda c: c.created)])
    assert set(steps) <= {"hit", "miss"} and 1 <= steps.count("miss") <= controllers
    if controllers == 1:  # one controller drives the cycles one after another: only the first trains
        assert steps == ["miss"] + ["hit"] * (len(steps) - 1)
    assert sorted(v.version for v in shipyard.models.versions("credit")) == [1, 2]


def test_one_pass_over_fifty_deployments_acts_for_each_and_waits_for_nothing(
        backend_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = build(backend_workspace, unapproved=2)
    ctx = fleet.ctx
    held = "fleet-07"
    elsewhere = leases.acquire(ctx.store, ctx.actor, controller.lease_name(held), "elsewhere:1:x", 600)
    assert elsewhere is not None
    from shipyard.serving import canary

    looks: Counter[str] = Counter()
    step = canary.canary_step

    def look(ctx: Context, name: str, *args: Any, **kwargs: Any) -> Any:
        looks[name] += 1
        return step(ctx, name, *args, **kwargs)

    monkeypatch.setattr(canary, "canary_step", look)
    said: list[str] = []
    began = time.perf_counter()
    outcomes = {o.deployment: o for o in controller.watch_once(ctx, holder="fleet:1:a", report=said.append)}
    print(f"\none pass over {len(fleet.names)} deployments: {time.perf_counter() - began:.1f} s")

    assert sorted(outcomes) == fleet.names
    assert report_counts(ctx) == Counter({n: 1 for n in fleet.names if n not in (held, fleet.broken)})
    assert {get_report(ctx, n)["window"]["rows"] for n in report_counts(ctx)} == {LOGGED_ROWS}  # its own alone
    skipped = outcomes[held]
    assert (skipped.held_elsewhere, skipped.decision, skipped.cycle, skipped.error) == (
        True, "another controller acts for it (elsewhere:1:x)", None, None)
    failed = outcomes[fleet.broken]
    assert failed.cycle is None and failed.error is not None and failed.error.startswith(
        "Dataset 'credit' has no version 99.")
    quiet = [n for n in fleet.steady if n != held]
    assert {n: (outcomes[n].decision, outcomes[n].cycle, outcomes[n].error) for n in quiet} == {
        n: (QUIET.format(n), None, None) for n in quiet}
    started = cycles.cycles(ctx)
    assert sorted(c.deployment for c in started) == fleet.drifted  # one cycle each, for the drifted alone
    for name in fleet.drifted:
        outcome = outcomes[name]
        assert outcome.error is None and outcome.decision.startswith("firing: ") and "data_drift" in outcome.decision
        assert outcome.cycle is not None and outcome.cycle.state == (
            "awaiting_approval" if name in fleet.approving else "canary")
    assert_one_challenger_for_all(ctx, started)
    [review] = list_reviews(ctx, "credit/2")  # one request, which every approving cycle waits on
    assert (review.kind, review.status) == ("rollout", "requested")
    rolling = [n for n in fleet.drifted if n not in fleet.approving]
    assert looks == Counter(rolling)  # a canary without traffic is looked at once, and the pass goes on
    for name in fleet.names:
        now = shipyard.deployments.status(name).current
        assert now.primary is not None and now.primary.version_id == "credit/1"
        serving = (now.canary.version_id, now.canary.weight) if now.canary is not None else None
        assert serving == (("credit/2", 50) if name in rolling else None)

    again = {o.deployment: o for o in controller.watch_once(ctx, holder="fleet:1:a", report=said.append,
                                                            only=fleet.drifted)}
    by_name = {c.deployment: c for c in started}
    assert {n: (o.decision, o.cycle.state if o.cycle else None) for n, o in again.items()} == {
        n: (f"resuming cycle {c.id} ({c.state})", c.state) for n, c in by_name.items()}
    assert looks == Counter(rolling * 2) and len(cycles.cycles(ctx)) == len(fleet.drifted)

    monkeypatch.setenv("SHIPYARD_USER", "reviewer")  # another person approves credit/2's rollout, once
    decide_review(open_context(), "credit/2", "rollout", approve=True)
    monkeypatch.setenv("SHIPYARD_USER", ctx.actor)
    third = controller.watch_once(ctx, holder="fleet:1:a", report=said.append, only=fleet.drifted)
    assert {o.deployment: o.cycle.state if o.cycle else None for o in third} == {n: "canary" for n in fleet.drifted}
    assert looks == Counter(rolling * 3 + sorted(fleet.approving & set(fleet.drifted)))
    assert_each_reads_its_own(ctx, monkeypatch)


def assert_each_reads_its_own(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many deployments of one version share its log: a deployment's rows are read from the blobs that may hold
    them (by their statistics), passing over those of other deployments; a blob holding several is read."""
    import pandas as pd
    import pyarrow.parquet as pq

    from shipyard.models.loading import load_model
    from shipyard.serving.batches import build_batches, read_predictions, store_batch
    from shipyard.serving.predlog import Prediction
    from shipyard.synthetic import credit

    frame = credit(30, seed=1)[FEATURES]
    predicted = load_model(ctx, "credit/1").predict(frame)
    now = time.time()
    entries = [Prediction(f"mixed-{i}", now - 10 + i, "credit", 1, "predict", frame.iloc[i * 10:i * 10 + 10],
                          predicted[i * 10:i * 10 + 10], None, 2.0, deployment=name, deployment_route="primary")
               for i, name in enumerate(["mix-a", "mix-c", "mix-a"])]
    for batch in build_batches(entries):  # one blob: mix-a and mix-c, whose range holds mix-b's name
        store_batch(ctx, batch)
    tables = Counter[str]()
    read = pq.read_table

    def counted(*args: Any, **kwargs: Any) -> Any:
        tables["read"] += 1
        return read(*args, **kwargs)

    monkeypatch.setattr(pq, "read_table", counted)
    rows = {name: read_predictions(ctx, "credit", 1, deployment=name)
            for name in ["mix-a", "mix-b", "mix-c", "fleet-00"]}
    assert {n: len(f) for n, f in rows.items()} == {"mix-a": 20, "mix-b": 0, "mix-c": 10, "fleet-00": LOGGED_ROWS}
    assert tables["read"] == 3 + 1  # the mixed blob for each mix- name, fleet-00's alone of the fleet's
    assert set(rows["mix-a"]["request_id"]) == {"mixed-0", "mixed-2"}
    pd.testing.assert_frame_equal(rows["mix-c"][FEATURES], frame.iloc[10:20].reset_index(drop=True),
                                  check_dtype=False)


@pytest.fixture
def postgres_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh workspace whose store is a new PostgreSQL schema (skipped when PostgreSQL is unreachable)."""
    with postgres_schema() as url:
        root = shipyard.init_workspace(tmp_path / "ws")
        monkeypatch.chdir(root)
        monkeypatch.setenv("SHIPYARD_STORE_URL", url)
        yield root


def test_two_controller_processes_share_the_fleet_on_postgresql(postgres_workspace: Path) -> None:
    fleet = build(postgres_workspace)
    began = time.perf_counter()
    processes = [watch(postgres_workspace), watch(postgres_workspace)]
    try:
        done = [p.communicate(timeout=600) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=60)
    print(f"\ntwo controllers over {len(fleet.names)} deployments: {time.perf_counter() - began:.1f} s")
    assert all(p.returncode in (0, 1) for p in processes), [err for _, err in done]
    outputs = [{o["deployment"]: o for o in json.loads(out)["deployments"]} for out, _ in done]
    for i, (mine, process) in enumerate(zip(outputs, processes, strict=True)):
        left = sum(o["held_elsewhere"] for o in mine.values())
        print(f"controller {i + 1} (pid {process.pid}) acted for {len(mine) - left}, left {left} to the other")
    ctx = open_context()
    started = cycles.cycles(ctx)
    assert sorted(c.deployment for c in started) == fleet.drifted  # exactly one cycle per drifted deployment
    by_name = {c.deployment: c for c in started}
    for mine, process, other in ((outputs[0], processes[0], processes[1]), (outputs[1], processes[1], processes[0])):
        assert sorted(mine) == fleet.names
        errors = {n for n, o in mine.items() if o["error"]}
        assert errors <= {fleet.broken} and process.returncode == (1 if errors else 0)
        for name, outcome in mine.items():
            if outcome["held_elsewhere"]:  # left to the other process, which held it then
                assert outcome["cycle"] is None and f":{other.pid}:" in outcome["decision"]
            elif name == fleet.broken:
                assert outcome["error"].startswith("Dataset 'credit' has no version 99.")
            elif name in by_name:  # it started the deployment's cycle, or found it started and resumed it
                cycle = by_name[name]
                assert outcome["cycle"]["id"] == cycle.id and outcome["cycle"]["state"] == "awaiting_approval"
                assert outcome["decision"].startswith("firing: ") or \
                    outcome["decision"] == f"resuming cycle {cycle.id} (awaiting_approval)"
            else:
                assert (outcome["decision"], outcome["cycle"], outcome["error"]) == (QUIET.format(name), None, None)
    for name in fleet.names:
        acted = [o[name] for o in outputs if not o[name]["held_elsewhere"]]
        assert acted, f"neither controller acted for {name}"
        if name in by_name:
            assert sum(o["decision"].startswith("firing: ") for o in acted) == 1  # one of them started it
    counts = report_counts(ctx)
    assert all(counts[n] == sum(not o[n]["held_elsewhere"] for o in outputs) for n in fleet.steady)
    assert_one_challenger_for_all(ctx, started, controllers=2)
