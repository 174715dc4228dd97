"""The retraining loop end to end, with real processes: a champion trained by the standard pipeline serves
`credit-api` from a `shipyard serve --deployment` process; clients send it a drifted stream and its true labels
over HTTP; a `shipyard watch --once` process sees the monitor fire, trains a challenger on the newest data,
gates it and rolls it out as a canary that the deployment's analysis judges on the live feedback, while a client
keeps streaming until the controller exits. A better challenger is promoted and a worse one rolled back; either
way no request fails, the server follows, and every step is in the audit trail and the lineage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import shipyard
from shipyard.context import Context, close_all, open_context
from shipyard.control.cycles import RETRAIN_CYCLE, Cycle, cycles
from shipyard.deployments.revisions import DEPLOYMENT_REVISION
from shipyard.monitoring.monitors import MONITOR_REPORT
from shipyard.store.lineage import Node, Tree
from shipyard.synthetic import credit
from tests.cli.helpers import cli, cli_json
from tests.control.lifecycle import lifecycle
from tests.control.stream import Stream
from tests.serving.test_server import REPO, running_server

SPEC = lifecycle(0.6) + """
monitor:
  credit-api: {deployment: credit-api, window: {last: 1h}, performance: null, health: null}
retrain:
  credit-api: {cooldown: 1h, canary_timeout: 120s}
deploy:
  credit-api:
    model: credit@champion
    steps: [50, 100]
    min_requests: 25
    duration: 0s
    analysis: {max_p99_latency_ratio: null, max_prediction_shift: null, min_feedback_delta: -0.03}
"""
#: Rows per request: a step's 25 requests on each route give each route's accuracy on 1,000 labelled rows.
ROWS = 40
#: The stream while the controller runs stops when it exits; this bounds it should the controller hang.
MOST_REQUESTS = 3000
#: Seconds between the stream's requests: a steady client, which leaves the machine to the controller's training.
PAUSE = 0.05


def drifted(n: int, seed: int) -> pd.DataFrame:
    """Applications from another population, whose debts no longer predict default as they did: the champion,
    trained before, gets worse on it."""
    return credit(n, seed=seed, population_shift=1.0, concept_shift=1.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace where credit/1, trained on credit@1 by the standard pipeline, is the champion and serves
    credit-api alone. Built once; each test works on a copy of its own."""
    from shipyard.pipelines.lifecycle import run_standard

    root = shipyard.init_workspace(tmp_path_factory.mktemp("champion") / "ws")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("SHIPYARD_")]:
            patch.delenv(name)
        patch.setenv("SHIPYARD_USER", "tester")
        patch.chdir(root)
        shipyard.data.add("credit", credit(3000, seed=0))
        (root / "shipyard.yaml").write_text((root / "shipyard.yaml").read_text() + SPEC)
        run_standard(open_context(), promote=True)
        shipyard.deployments.apply("credit-api")
        close_all()
    return root


@pytest.fixture
def champion(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the trained workspace, made the current folder."""
    root = Path(shutil.copytree(trained, tmp_path / "ws"))
    monkeypatch.chdir(root)
    return root


def watch_once(workspace: Path) -> subprocess.Popen[str]:
    """`shipyard watch --once` as a process of its own, looking at its canary every half second."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "shipyard"), "watch", "--once", "--poll-seconds", "0.5", "--json"],
        cwd=workspace, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def logged(ctx: Context, request_ids: list[str]) -> None:
    """Until the server's prediction log holds every one of `request_ids` (it writes about once a second)."""
    from shipyard.serving.batches import read_predictions

    for _ in range(300):  # a bounded count of looks
        if set(request_ids) <= set(read_predictions(ctx, "credit", 1)["request_id"]):
            return
        time.sleep(0.1)
    raise AssertionError("the server never wrote its prediction log")


def retrain_live(workspace: Path, new_data: pd.DataFrame) -> tuple[Context, Stream, dict[str, Any]]:
    """The champion of `workspace` serving a drifted stream with feedback; `new_data` collected as credit@2; then a
    `shipyard watch --once` process while the stream goes on until it exits. Returns the stream (every answer)
    and what the controller printed."""
    ctx = open_context()
    traffic = drifted(2400, seed=4)
    with running_server(workspace, "--deployment", "credit-api") as (url, _):
        stream = Stream(url, traffic, rows=ROWS)
        before = stream.send(30)
        logged(ctx, [a.request_id for a in before])
        shipyard.data.add("credit", new_data)
        controller = watch_once(workspace)
        stop = threading.Event()
        # One client: each request's labels are stored before the next is sent, so whenever the analysis looks,
        # every logged request but at most one has its feedback, and the feedback limit is judged on it.
        client = threading.Thread(target=stream.until, args=(stop, MOST_REQUESTS), kwargs={"pause": PAUSE})
        client.start()
        try:
            out, err = controller.communicate(timeout=300)
        finally:
            stop.set()
            client.join(60)
            if controller.poll() is None:
                controller.kill()
                controller.wait()
        assert not client.is_alive() and controller.returncode == 0, err
        revision = shipyard.deployments.status("credit-api").current.revision
        follows(stream, revision)
        served = stream.send(10)
        assert {a.revision for a in served} == {revision}
    return ctx, stream, {"out": json.loads(out), "said": err, "served": served}


def follows(stream: Stream, revision: int) -> None:
    """Until the server answers under `revision` (it follows the deployment's revisions on its own)."""
    for _ in range(300):  # a bounded count of requests
        if stream.send(1)[0].revision == revision:
            return
        time.sleep(0.02)
    raise AssertionError(f"the server never served revision {revision}")


def nodes(tree: Tree) -> set[Node]:
    return {tree.node}.union(*(nodes(child) for child in tree.children))


def check_trail(ctx: Context, cycle: Cycle, capsys: pytest.CaptureFixture[str]) -> None:
    """Every step of `cycle` audited in order, the chain intact, and the lineage from the monitor report that
    started it through the cycle to its run, its challenger and the deployment revision it ended on."""
    from shipyard.governance.lineage import walk

    ended = cycle.state
    actions = [e.action for e in shipyard.audit_log(object_kind="retrain_cycle", object_id=str(cycle.id),
                                                    newest_first=False)]
    assert actions == ["retrain.training", "retrain.registered", "retrain.gated", "retrain.canary", f"retrain.{ended}"]
    [started] = shipyard.audit_log(action="retrain.triggered")
    assert (started.object_id, started.payload["cycle"]) == ("credit-api", cycle.id)
    code, out, err = cli(capsys, "audit", "verify")
    assert code == 0 and "Audit chain intact" in out, out + err
    report = Node(MONITOR_REPORT, str(cycle.trigger["report"]))
    final = cycle.evidence[ended]["revision"]
    reached = nodes(walk(ctx, report, upstream=False))
    assert {Node(RETRAIN_CYCLE, str(cycle.id)), Node("run", str(cycle.run_id)),
            Node("model_version", str(cycle.challenger)),
            Node(DEPLOYMENT_REVISION, f"credit-api/{final}")} <= reached
    assert report in nodes(walk(ctx, Node("model_version", str(cycle.challenger)), upstream=True))
    [history] = cli_json(capsys, "watch", "history")
    assert (history["id"], history["state"], history["challenger"]) == (cycle.id, ended, cycle.challenger)
    [status] = cli_json(capsys, "watch", "status")["deployments"]
    assert status["cycle"] is None and not status["due"]
    assert status["next"].startswith(f"cooling down after cycle {cycle.id} ({ended})")


def the_cycle(ctx: Context, controller: dict[str, Any]) -> Cycle:
    """The one cycle the controller ran, as it printed it and as it is recorded."""
    [outcome] = controller["out"]["deployments"]
    [cycle] = cycles(ctx, "credit-api")
    assert outcome["error"] is None and outcome["cycle"]["id"] == cycle.id and outcome["cycle"]["state"] == cycle.state
    assert "data_drift" in {a["rule"] for a in cycle.trigger["alerts"]}  # the monitor fired on the stream
    fired = {a.rule: a for a in shipyard.monitoring.list_alerts(monitor="credit-api")}
    assert fired["data_drift"].state == "firing" and fired["data_drift"].first_report == cycle.trigger["report"]
    assert "retrain_failed" not in fired or fired["retrain_failed"].state == "resolved"
    assert cycle.champion == "credit/1" and cycle.challenger == "credit/2"
    assert list(cycle.evidence) == ["triggered", "training", "registered", "gated", "canary", cycle.state]
    return cycle


def test_a_drifted_stream_retrains_and_the_better_challenger_is_promoted_without_a_failed_request(
        champion: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctx, stream, controller = retrain_live(champion, drifted(3000, seed=7))
    cycle = the_cycle(ctx, controller)
    assert cycle.state == "promoted" and cycle.reason is None
    numbers = cycle.evidence["promoted"]["analysis"]["numbers"]
    assert numbers["canary"]["feedback_score"] > numbers["primary"]["feedback_score"]  # better on live labels
    assert min(numbers[r]["feedback_rows"] for r in ("canary", "primary")) >= 25 * ROWS - ROWS
    [promotion, *_] = shipyard.deployments.history("credit-api")
    assert promotion.revision == cycle.evidence["promoted"]["revision"]
    assert promotion.reason == "automated analysis: promote (within every limit)"
    now = shipyard.deployments.status("credit-api").current
    assert (now.strategy, [r.version_id for r in now.routes]) == ("single", ["credit/2"])
    assert {(a.version, a.route) for a in controller["served"]} == {("credit/2", "primary")}  # the server follows
    assert stream.failed() == []
    assert {a.version for a in stream.answers if a.route == "canary"} == {"credit/2"}  # the canary took traffic
    check_trail(ctx, cycle, capsys)


def test_a_worse_challenger_is_rolled_back_and_the_champion_keeps_serving_without_a_failed_request(
        champion: Path, capsys: pytest.CaptureFixture[str]) -> None:
    collected = drifted(3000, seed=7)
    flipped = collected.assign(default=1 - collected["default"])  # what the live feedback says, reversed
    ctx, stream, controller = retrain_live(champion, flipped)
    cycle = the_cycle(ctx, controller)
    assert cycle.state == "rolled_back"
    assert cycle.reason == "the canary analysis rolled credit/2 back; credit/1 keeps serving"
    assert cycle.evidence["gated"]["gates"] == {"evaluation": "PASS"}  # its own held-out rows agree with it
    analysis = cycle.evidence["rolled_back"]["analysis"]
    assert [r.startswith("on feedback the canary scores") for r in analysis["reasons"]] == [True]
    [rollback, *_] = shipyard.deployments.history("credit-api")
    assert rollback.revision == cycle.evidence["rolled_back"]["revision"]
    assert rollback.reason is not None and rollback.reason.startswith("automated analysis: rollback (on feedback")
    now = shipyard.deployments.status("credit-api").current
    assert (now.strategy, [r.version_id for r in now.routes]) == ("single", ["credit/1"])
    assert {(a.version, a.route) for a in controller["served"]} == {("credit/1", "primary")}
    assert stream.failed() == []
    assert {a.version for a in stream.answers if a.route == "canary"} == {"credit/2"}
    check_trail(ctx, cycle, capsys)
