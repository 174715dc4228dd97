"""`make demo` runs the whole lifecycle, to the retraining loop: here it runs into a temporary folder and its
results are read back.

Nothing here depends on how fast the machine is: the lifecycle runs with its timing budgets relaxed a
thousandfold (`--budget-scale 1000`), and the refusal with budgets no model can meet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def test_demo_runs_the_lifecycle(tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    proc = subprocess.run([sys.executable, str(DEMO), str(workspace), "--budget-scale", "1000"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "it is now champion" in proc.stdout
    assert "unchanged: already credit/1" in proc.stdout  # the second run: cache hits
    assert "Audit chain intact" in proc.stdout
    card = json.loads((workspace / "cards" / "credit" / "1" / "card.json").read_text())
    assert card["model_details"]["path"] == "models:/credit/1"
    assert {g: v["status"] for g, v in card["gates"].items()} == {
        "evaluation": "NO_BASELINE", "behavioural": "PASS", "fairness": "PASS", "infrastructure": "PASS"}
    measured = card["gates"]["infrastructure"]["metrics"]  # with what it was measured under
    assert measured["single_row_runs"] >= 100 and measured["cpu_count"] >= 1 and "load_average_1m" in measured
    assert (workspace / "cards" / "credit" / "1" / "readiness.html").is_file()
    # served: the same answers through every protocol, all four requests logged, the feedback matched
    answers = [line.split("->")[1].strip() for line in proc.stdout.splitlines()
               if line.startswith("  ") and "->" in line]
    assert len(answers) == 4 and len(set(answers)) == 1
    assert "4 requests in the prediction log, feedback for 1 of them" in proc.stdout
    assert "curl -s localhost:8080/predict/credit" in proc.stdout
    scores = pd.read_parquet(workspace / "scores" / "holdout.parquet")  # the batch score, versioned
    assert len(scores) == 2000 and list(scores.columns) == ["application_id", "prediction"]
    assert "versioned as credit-predictions@1" in proc.stdout
    # deployed: a second version as a shadow, then an automated canary to promotion, in the history
    assert "Registered credit/2 (gates: behavioural PASS, evaluation PASS, fairness PASS, infrastructure PASS); " \
           "not promoted." in proc.stdout
    assert "primary credit/1  shadow credit/2" in proc.stdout and "agreement" in proc.stdout
    assert "Deployment 'credit-api' is at revision 4 (single): primary credit/2 100%." in proc.stdout
    assert "automated analysis: promote (within every limit)" in proc.stdout
    shipyard_cli = str(Path(sys.executable).with_name("shipyard"))
    # the loop: the shifted population fires the monitor, one controller pass retrains, gates and rolls out
    assert "credit-api: retraining (firing: " in proc.stdout and "data_drift" in proc.stdout
    assert "cycle 1: gates passed: evaluation PASS, behavioural PASS, fairness PASS, infrastructure PASS" \
        in proc.stdout
    assert "Retraining cycle 1: credit/2 -> credit/3, promoted after its gates and canary." in proc.stdout
    assert ", 0 failed." in proc.stdout  # no customer's request failed while the model changed
    history = json.loads(subprocess.run([shipyard_cli, "-C", str(workspace), "watch", "history", "--json"],
                                        capture_output=True, text=True, timeout=120).stdout)
    assert [(c["state"], c["champion"], c["challenger"]) for c in history] == [("promoted", "credit/2", "credit/3")]
    assert list(history[0]["evidence"]) == ["triggered", "training", "registered", "gated", "canary", "promoted"]
    assert history[0]["evidence"]["promoted"]["champion"] == "credit/3 is credit@champion"
    card = json.loads((workspace / "cards" / "credit" / "3" / "card.json").read_text())  # the new model's card
    assert card["model_details"]["path"] == "models:/credit/3"
    assert "cards/credit/3/card.html" in proc.stdout and "watch history" in proc.stdout
    check = subprocess.run([shipyard_cli, "-C", str(workspace), "readiness", "credit@champion", "--json"],
                           capture_output=True, text=True, timeout=120)
    items = {i["name"]: i["status"] for i in json.loads(check.stdout)["items"]}
    assert {k: items[k] for k in ("data", "model", "pipeline", "deployment", "governance")} == dict.fromkeys(
        ("data", "model", "pipeline", "deployment", "governance"), "PASS")
    runs = subprocess.run([shipyard_cli, "-C", str(workspace), "runs", "list", "--experiment", "pipelines",
                           "--filter", "tags.shipyard.cache = 'hit'", "--all", "--json", "-n", "100"],
                          capture_output=True, text=True, timeout=120)
    assert len(json.loads(runs.stdout)["runs"]) >= 12  # the second run's cached steps


def test_demo_says_why_nothing_was_promoted_and_exits_1(tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    proc = subprocess.run([sys.executable, str(DEMO), str(workspace), "--budget-scale", "1e-9"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "infrastructure FAIL); not promoted" in proc.stdout
    assert "The demo stops here. credit/1 was registered but not promoted to champion:" in proc.stderr
    assert "gate 'infrastructure' FAILED: latency_p50_ms " in proc.stderr and "> budget 5e-08 ms" in proc.stderr
    assert "--budget-scale" in proc.stderr  # and what to do about it
    assert not (workspace / "cards").exists()  # it stopped there
