"""`shipyard deploy …`: each command drives one service function; exit codes say what happened."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.context import open_context
from shipyard.errors import EXIT_BLOCKED
from tests.cli.helpers import cli, cli_json


def _log(version: int, requests: int, latency_ms: float) -> None:
    """Requests answered by credit/VERSION, written to the prediction log as the server writes them."""
    from shipyard.serving.batches import build_batches, store_batch
    from shipyard.serving.predlog import Prediction

    ctx = open_context()
    entries = [Prediction(f"r-{version}-{i}", time.time(), "credit", version, "infer",
                          pd.DataFrame({"amount": [100.0, 101.0]}), np.array([0, 1]), None, latency_ms + i)
               for i in range(requests)]
    for batch in build_batches(entries):
        store_batch(ctx, batch)


def test_a_canary_through_the_cli(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    created = cli_json(capsys, "deploy", "create", "web", "--model", "credit/1", "--reason", "first release")
    assert (created["revision"], created["reason"]) == (1, "first release")
    code, out, err = cli(capsys, "deploy", "canary", "web", "--model", "credit/4", "--percent", "10")
    assert code == EXIT_BLOCKED and "gate 'evaluation' FAILED" in err and out == ""
    code, out, _ = cli(capsys, "deploy", "canary", "web", "--model", "credit/2", "--percent", "10",
                       "--sticky-by", "X-Customer")
    assert code == 0 and "revision 2 (canary): primary credit/1 90%, canary credit/2 10%" in out
    code, _, err = cli(capsys, "deploy", "shadow", "web", "--model", "credit/3")
    assert code == 1 and "has a canary in force" in err

    _log(1, 9, 2.0)
    _log(2, 1, 5.0)
    status = cli_json(capsys, "deploy", "status", "web")
    assert status["current"]["sticky_by"] == "X-Customer"
    assert [(n["label"], n["requests"], n["rows"], n["p50_ms"]) for n in status["live"]] == [
        ("primary", 9, 18, 6.0), ("canary", 1, 2, 5.0)]
    code, out, _ = cli(capsys, "deploy", "status", "web")
    assert code == 0 and "revision 2  canary  sticky by X-Customer" in out

    assert cli_json(capsys, "deploy", "promote", "web")["routes"][0]["version_id"] == "credit/2"
    assert cli_json(capsys, "deploy", "rollback", "web")["restores"] == 2
    history = cli_json(capsys, "deploy", "history", "web")
    assert [h["revision"] for h in history] == [4, 3, 2, 1]
    code, out, _ = cli(capsys, "deploy", "history", "web")
    assert code == 0 and "rolled back to revision 2" in out
    assert [d["name"] for d in cli_json(capsys, "deploy", "list")] == ["web"]
    assert cli_json(capsys, "deploy", "delete", "web")["strategy"] == "deleted"
    assert cli_json(capsys, "deploy", "list") == []
    assert [d["name"] for d in cli_json(capsys, "deploy", "list", "--all")] == ["web"]


def test_shadow_ab_and_apply_through_the_cli(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli_json(capsys, "deploy", "create", "web", "--model", "credit/1")
    assert cli_json(capsys, "deploy", "shadow", "web", "--model", "credit/4")["strategy"] == "shadow"
    code, _, err = cli(capsys, "deploy", "shadow", "web", "--model", "credit/2", "--off")
    assert code == 1 and "got both" in err
    assert cli_json(capsys, "deploy", "shadow", "web", "--off")["strategy"] == "single"
    split = cli_json(capsys, "deploy", "ab", "web", "--variant", "a=credit/1:50", "--variant", "b=credit/3:50")
    assert [(r["label"], r["version_id"], r["weight"]) for r in split["routes"]] == [
        ("a", "credit/1", 50), ("b", "credit/3", 50)]
    code, _, err = cli(capsys, "deploy", "promote", "web")
    assert code == 1 and "--variant (a, b)" in err
    assert cli_json(capsys, "deploy", "promote", "web", "--variant", "b")["routes"][0]["version_id"] == "credit/3"

    (models / "shipyard.yaml").write_text((models / "shipyard.yaml").read_text()
                                          + "deploy:\n  web:\n    model: credit/2\n    strategy: canary\n")
    applied = cli_json(capsys, "deploy", "apply", "web")
    assert applied["strategy"] == "canary" and applied["routes"][1]["weight"] == 10
    assert json.dumps(applied["analysis"]["policy"]["steps"]) == "[10, 50, 100]"
