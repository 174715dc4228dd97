"""The retraining controller killed (SIGKILL) at each phase of a cycle, as a real process, and run again: the
restarted controller, once the dead one's lease has run out, carries the cycle on from its record and ends it
consistently — one cycle, one challenger, what the deployment serves as the cycle says, an intact audit chain.
Two controllers against one store (SQLite, PostgreSQL): one held inside a step keeps the deployment to itself,
one stalled past its lease cannot start a second cycle, and when the holder dies the other takes over."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.context import Context, close_all, open_context
from shipyard.control import controller, cycles
from shipyard.deployments.revisions import get_deployment, history
from shipyard.store import leases
from shipyard.store.db import now_ms
from shipyard.synthetic import credit
from tests import templates
from tests.control.test_controller import log, setup
from tests.services import postgres_schema, unavailable

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = "credit-api"
POLICY = "{cooldown: 1h, approval: true}"
FAST = "{cooldown: 1h, canary_timeout: 0s}"  # a canary without traffic is rolled back at its first look
WAIT_SECONDS = 120.0  # bound on waiting for a process, never a condition of the test


def prepare(workspace: Path, policy: str = FAST) -> Context:
    """The workspace of test_controller (champion credit/1 serving, drifted traffic, new data: a cycle is due)
    with `policy` as the deployment's retrain policy."""
    setup(workspace, minimum=0.5)
    path = workspace / "shipyard.yaml"
    path.write_text(path.read_text().replace(POLICY, policy))
    return open_context()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One prepared SQLite workspace; each test works on a copy."""
    return templates.prepare(tmp_path_factory.mktemp("template") / "ws", prepare)


@pytest.fixture
def copied(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    workspace = tmp_path / "ws"
    shutil.copytree(template, workspace)
    monkeypatch.chdir(workspace)
    return workspace


def command(*args: str, point: str | None = None, when: str = "after", options: tuple[str, ...] = ()) -> list[str]:
    """`shipyard ARGS`, or with `point` the controller that stops there (tests/control/killing.py)."""
    if point is None:
        return [str(Path(sys.executable).with_name("shipyard")), *args]
    return [sys.executable, "-m", "tests.control.killing", point, when, *options, "--", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "COLUMNS": "200"}


def start(workspace: Path, cmd: list[str]) -> subprocess.Popen[str]:
    close_all()  # the test's own connections are not held across another process's writes
    return subprocess.Popen(cmd, cwd=workspace, env=environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run(workspace: Path, cmd: list[str]) -> tuple[int, str]:
    process = start(workspace, cmd)
    out, _ = process.communicate(timeout=WAIT_SECONDS)
    return process.returncode, out


def watching(point: str | None = None, when: str = "after", *options: str) -> list[str]:
    """`shipyard watch --once --json`, stopped at `point` when given."""
    return command("watch", "--once", "--poll-seconds", "0.1", "--json", point=point, when=when, options=options)


def watch(workspace: Path) -> tuple[int, str]:
    """`shipyard watch --once --json`: its exit code and output."""
    return run(workspace, watching())


def kill_at(workspace: Path, point: str, when: str) -> None:
    """A controller killed right `when` (before/after) `point`; then its lease runs out."""
    process = start(workspace, watching(point, when))
    out, _ = process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == -signal.SIGKILL, out
    runs_out(open_context(), process.pid)


def runs_out(ctx: Context, pid: int) -> None:
    """The deployment's lease, held by the stopped or dead controller `pid`, runs out now. The controllers take the
    default lease, which they cannot lose to a late renewal on a busy machine; rather than wait for it, the test
    moves its end to the present, as time would. That a lease runs out is the store's (tests/store/test_leases.py)."""
    from shipyard.store.tables import leases as table

    held = leases.current(ctx.store, controller.lease_name(DEPLOYMENT))
    assert held is not None and f":{pid}:" in held.holder and held.expires > now_ms(), (pid, held)
    with ctx.store.unaudited() as conn:
        conn.execute(table.update().where(table.c.name == held.name, table.c.holder == held.holder,
                                          table.c.token == held.token).values(expires=now_ms()))


def one_cycle(ctx: Context) -> cycles.Cycle:
    found = cycles.cycles(ctx, DEPLOYMENT)
    assert len(found) == 1, [(c.id, c.state) for c in found]
    return found[0]


def finish(workspace: Path) -> dict[str, Any]:
    """A normal `watch --once` after the kill: it must succeed; the deployment's outcome."""
    code, out = watch(workspace)
    assert code == 0, out
    [outcome] = json.loads(out[out.index("{"):])["deployments"]
    assert outcome["error"] is None and not outcome["held_elsewhere"], outcome
    return dict(outcome)


def assert_settled(ctx: Context, state: str, *, approval: bool = False) -> cycles.Cycle:
    """The end of a cycle that was interrupted: recorded once per state, in order; one challenger, registered
    once; the deployment serves what the cycle's end says, alone; the audit chain intact."""
    from shipyard.cli.main import main
    from shipyard.governance.audit import audit_log
    from shipyard.models.registry import get_model_version, list_versions

    cycle = one_cycle(ctx)
    assert (cycle.state, cycle.champion, cycle.challenger) == (state, "credit/1", "credit/2"), cycle
    assert cycle.ended is not None and cycle.reason != ""
    current = get_deployment(ctx, DEPLOYMENT).current
    assert current.strategy == "single" and current.canary is None and current.primary is not None
    assert current.primary.version_id == ("credit/2" if state == "promoted" else "credit/1")
    assert sorted(v.version_id for v in list_versions(ctx, "credit")) == ["credit/1", "credit/2"]
    assert get_model_version(ctx, "credit@champion").version_id == current.primary.version_id  # the registry too
    assert len(audit_log(ctx, action="model.register", object_id="credit")) == 2  # champion, challenger
    started = [r for r in history(ctx, DEPLOYMENT) if (r.reason or "").startswith("automated canary")]
    assert [(r.canary.version_id if r.canary else None) for r in started] == ["credit/2"]  # started once
    states = ["training", "registered", "gated", *(["awaiting_approval"] if approval else []), "canary", state]
    assert list(cycle.evidence) == ["triggered", *states]
    events = audit_log(ctx, object_kind="retrain_cycle", object_id=str(cycle.id), newest_first=False)
    assert [e.action for e in events] == [f"retrain.{s}" for s in states]
    assert len(audit_log(ctx, action="retrain.triggered", object_id=DEPLOYMENT)) == 1
    close_all()
    assert main(["audit", "verify"]) == 0
    return cycle


# Each case: the controllers killed in turn, each right before or after a point (tests/control/killing.py), with
# "traffic" logged between them where the canary's analysis is to promote; then the state a normal controller
# ends the cycle in. A controller killed inside the pipeline is taken over in the two-controller test below.
CASES: dict[str, tuple[list[Any], str]] = {
    "after triggered": ([("triggered", "after")], "rolled_back"),
    "the challenger registered, registered not recorded": ([("registered", "before")], "rolled_back"),
    "after registered": ([("registered", "after")], "rolled_back"),
    "after gated": ([("gated", "after")], "rolled_back"),
    "the canary started, canary not recorded": ([("canary", "before")], "rolled_back"),
    "in the canary, then promoted by the analysis, not recorded": (
        [("canary", "after"), "traffic", ("promoted", "before")], "promoted"),
    "rolled back by the analysis, not recorded": ([("rolled_back", "before")], "rolled_back"),
}


BEFORE = {"registered": "training", "canary": "gated", "promoted": "canary", "rolled_back": "canary"}


@pytest.mark.parametrize("case", CASES)
def test_a_controller_killed_at_each_phase_is_carried_on_by_the_next(copied: Path, case: str) -> None:
    kills, end = CASES[case]
    for kill in kills:
        if kill == "traffic":  # both routes answered enough requests for the analysis to promote
            ctx = open_context()
            log(ctx, credit(800, seed=5, population_shift=1.0), route="canary", model="credit/2", ago=0)
            log(ctx, credit(800, seed=6, population_shift=1.0), route="primary", model="credit/1", ago=0)
            continue
        point, when = kill
        kill_at(copied, point, when)
        ctx = open_context()  # the dead controller left the cycle open, where the record says
        assert one_cycle(ctx).state == (point if when == "after" else BEFORE.get(point, point))
        current = get_deployment(ctx, DEPLOYMENT).current
        assert (current.canary is not None) == (point == "canary")  # a canary started: left half deployed
    outcome = finish(copied)
    assert outcome["cycle"]["state"] == end
    cycle = assert_settled(open_context(), end)
    if end == "promoted":
        assert cycle.reason is None and cycle.evidence["promoted"]["analysis"]["decision"] == "promote"
    else:
        assert cycle.reason == "the canary analysis rolled credit/2 back; credit/1 keeps serving"
    assert "settled" not in cycle.evidence[end]  # the controller's own analysis ended it, not a person


def test_a_controller_killed_while_a_rollout_waits_for_approval(copied: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    from shipyard.governance.audit import audit_log
    from shipyard.models.reviews import decide_review, latest_review

    path = copied / "shipyard.yaml"
    path.write_text(path.read_text().replace(FAST, "{cooldown: 1h, canary_timeout: 0s, approval: true}"))
    kill_at(copied, "awaiting_approval", "before")  # the review is requested, the cycle still says gated
    assert one_cycle(open_context()).state == "gated"
    outcome = finish(copied)
    assert outcome["cycle"]["state"] == "awaiting_approval"  # the review it requested is the one it waits for
    ctx = open_context()
    assert len(audit_log(ctx, action="review.request", object_id="credit/2")) == 1
    monkeypatch.setenv("SHIPYARD_USER", "reviewer")
    decide_review(open_context(), "credit/2", "rollout", approve=True)
    monkeypatch.setenv("SHIPYARD_USER", "tester")
    kill_at(copied, "canary", "before")  # approved, the canary started, not recorded
    assert one_cycle(open_context()).state == "awaiting_approval"
    assert finish(copied)["cycle"]["state"] == "rolled_back"
    ctx = open_context()
    assert_settled(ctx, "rolled_back", approval=True)
    review = latest_review(ctx, "credit/2", "rollout")
    assert review is not None and (review.status, review.decided_by) == ("approved", "reviewer")


@pytest.fixture(params=["sqlite", "postgres"])
def shared(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A prepared workspace whose store is each backend in turn; on SQLite a copy of the template."""
    if request.param == "sqlite":
        yield request.getfixturevalue("copied")
        return
    if "SHIPYARD_TEST_POSTGRES_URL" not in os.environ:
        unavailable("SHIPYARD_TEST_POSTGRES_URL is not set; set it to run the controllers on PostgreSQL")
    with postgres_schema() as url:
        monkeypatch.setenv("SHIPYARD_STORE_URL", url)
        workspace = shipyard.init_workspace(tmp_path / "ws")
        monkeypatch.chdir(workspace)
        prepare(workspace)
        yield workspace


def reached(process: subprocess.Popen[str], hold: Path) -> None:
    """Wait until the held controller says it stands at its point."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not (hold / "reached").exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the controller did not reach its point"
        time.sleep(0.05)


@pytest.fixture
def controllers() -> Iterator[list[subprocess.Popen[str]]]:
    """The held controllers a test starts; any still running when it ends (it failed) are killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=WAIT_SECONDS)


def held(controllers: list[subprocess.Popen[str]], workspace: Path, point: str, when: str, hold: Path,
         *options: str) -> subprocess.Popen[str]:
    """A controller that stops at `point` until the test creates HOLD/go."""
    hold.mkdir()
    process = start(workspace, watching(point, when, "--hold", str(hold), *options))
    controllers.append(process)
    reached(process, hold)
    return process


def test_two_controllers_share_a_deployment_one_at_a_time(shared: Path, tmp_path: Path,
                                                         controllers: list[subprocess.Popen[str]]) -> None:
    from shipyard.models.registry import list_versions

    name = controller.lease_name(DEPLOYMENT)
    # A decided a cycle is due, then stalls (renewing nothing) past the end of its lease
    first = held(controllers, shared, "triggered", "before", tmp_path / "a", "--no-renew")
    runs_out(open_context(), first.pid)
    # B takes the lease, starts the cycle, and is held inside training, the challenger just registered; it keeps
    # renewing the lease, which lasts long enough (120 s) that no late renewal loses it while the test goes on
    second = held(controllers, shared, "register", "after", tmp_path / "b")
    ctx = open_context()
    cycle = one_cycle(ctx)
    assert cycle.state == "training" and "credit/2" in {v.version_id for v in list_versions(ctx, "credit")}
    holder = leases.current(ctx.store, name)
    assert holder is not None and f":{second.pid}:" in holder.holder and holder.expires > now_ms()
    # A goes on with its stale decision: its lease is fenced off, no second cycle starts
    (tmp_path / "a" / "go").touch()
    out, _ = first.communicate(timeout=WAIT_SECONDS)
    assert first.returncode == 1, out
    [refused] = json.loads(out[out.index("{"):])["deployments"]
    assert refused["cycle"] is None and f"lease '{name}'" in refused["error"], refused
    assert "another controller acts now" in refused["error"]
    # C, while B holds the lease, leaves the deployment alone
    code, out = watch(shared)
    assert code == 0, out
    [left] = json.loads(out[out.index("{"):])["deployments"]
    assert left["held_elsewhere"] and left["cycle"] is None
    assert left["decision"] == f"another controller acts for it ({holder.holder})"
    ctx = open_context()
    assert one_cycle(ctx) == cycle  # not a field changed
    # B dies holding the lease; once it has run out C takes over and ends the cycle
    os.kill(second.pid, signal.SIGKILL)
    second.communicate(timeout=WAIT_SECONDS)
    assert second.returncode == -signal.SIGKILL
    runs_out(ctx, second.pid)
    outcome = finish(shared)
    assert outcome["decision"] == f"resuming cycle {cycle.id} (training)"
    assert outcome["cycle"]["state"] == "rolled_back"
    assert_settled(open_context(), "rolled_back")
