"""A fleet of deployments for the retraining controller: one champion (credit/1 from the standard pipeline) served
by many deployments, each with its monitor and retraining policy in shipyard.yaml and its own prediction log,
a few of them drifted, and a new data version to retrain on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shipyard
from shipyard.context import Context, open_context
from shipyard.synthetic import credit
from tests.control.lifecycle import FEATURES, lifecycle

REPO = Path(__file__).resolve().parents[2]
SPEC = lifecycle()
LOGGED_ROWS = 200  # per deployment: 20 requests of ten rows, well above a monitor's min_rows


@dataclass
class Fleet:
    """The deployments, which of them were logged drifted inputs, and which monitor cannot run."""

    ctx: Context
    names: list[str]
    drifted: list[str]
    broken: str  # its monitor names a reference dataset version that does not exist
    approving: set[str]  # whose policies ask a person to approve the rollout
    steady: list[str] = field(default_factory=list)  # neither drifted nor broken


def name_of(i: int) -> str:
    return f"fleet-{i:02d}"


def policy_yaml(names: list[str], *, broken: str, approving: set[str]) -> str:
    """monitor:, retrain: and deploy: entries for every deployment: the broken one's monitor names a missing
    reference; the policies of `approving` ask a person to approve the rollout."""
    lines = ["monitor:"]
    for name in names:
        reference = ", reference: credit@99" if name == broken else ""
        lines.append(f"  {name}: {{deployment: {name}, window: {{last: 1h}}, performance: null, health: null"
                     f"{reference}}}")
    lines.append("retrain:")
    lines += [f"  {name}: {{cooldown: 1h, approval: {str(name in approving).lower()}}}" for name in names]
    lines.append("deploy:")
    for name in names:
        lines += [f"  {name}:", "    model: credit@champion", "    strategy: canary", "    steps: [50, 100]",
                  "    min_requests: 5", "    duration: 0s",
                  "    analysis: {max_p99_latency_ratio: null, max_prediction_shift: null}"]
    return "\n".join(lines) + "\n"


def build(workspace: Path, *, size: int = 50, drifted: int = 5, unapproved: int = 0) -> Fleet:
    """The champion credit/1, `size` deployments of it with their logs (every tenth, from the fourth, drifted),
    the last one's monitor unable to run, and credit's new (drifted) version to retrain on. Every policy asks
    for approval but the last `unapproved` drifted ones'."""
    shipyard.data.add("credit", credit(3000, seed=0))
    names = [name_of(i) for i in range(size)]
    shifted = [name_of(3 + 10 * k) for k in range(drifted)]
    broken = name_of(size - 1)
    path = workspace / "shipyard.yaml"
    approving = set(names) - set(shifted[len(shifted) - unapproved:])
    path.write_text(path.read_text() + SPEC + policy_yaml(names, broken=broken, approving=approving))
    ctx = open_context()
    from shipyard.pipelines.lifecycle import run_standard

    run_standard(ctx, promote=True)
    for name in names:
        shipyard.deployments.create(name, "credit@champion")
    from shipyard.models.loading import load_model

    model = load_model(ctx, "credit/1")
    for i, name in enumerate(names):
        frame = credit(LOGGED_ROWS, seed=100 + i, population_shift=1.0 if name in shifted else 0.0)
        log(ctx, name, frame, model)
    shipyard.data.add("credit", credit(3000, seed=7, population_shift=1.0))  # the new data to retrain on
    return Fleet(ctx, names, shifted, broken, approving, [n for n in names if n not in shifted and n != broken])


def log(ctx: Context, deployment: str, frame: Any, model: Any, *, ago: float = 100) -> None:
    """What `deployment`'s servers would log for `frame` answered by credit/1 on its primary route, ten rows
    a request."""
    from shipyard.serving.batches import build_batches, store_batch
    from shipyard.serving.predlog import Prediction

    inputs = frame[FEATURES].reset_index(drop=True)
    predicted = model.predict(inputs)
    start = time.time() - ago
    entries = [Prediction(f"{deployment}-{i}", start + i / 1000, "credit", 1, "predict", inputs.iloc[i:i + 10],
                          predicted[i:i + 10], None, 2.0, deployment=deployment, deployment_route="primary")
               for i in range(0, len(inputs), 10)]
    for batch in build_batches(entries):
        store_batch(ctx, batch)


def watch(workspace: Path, *args: str) -> subprocess.Popen[str]:
    """`shipyard watch --once --json ARGS` in the workspace as a subprocess with this checkout's sources."""
    from shipyard.context import close_all

    close_all()
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "shipyard"), "watch", "--once", "--json", *args], cwd=workspace,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
