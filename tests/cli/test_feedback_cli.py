"""`shipyard feedback record|report`: one value, a file of them, the report for people and for scripts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shipyard.context import open_context
from shipyard.serving.feedback import latest_feedback
from shipyard.serving.predlog import Prediction, PredictionLog
from tests.cli.helpers import cli, cli_json, fails
from tests.serving.conftest import training_frame


@pytest.fixture
def logged(workspace: Path) -> Path:
    """credit/1 registered, with requests r-1 (two rows) and r-2 in its prediction log."""
    import shipyard
    from sklearn.linear_model import LogisticRegression

    x, y = training_frame()
    shipyard.models.register("credit", LogisticRegression().fit(x, y), input_example=x.head())
    log = PredictionLog(open_context(workspace))
    for i, rows in enumerate((2, 1), start=1):
        log.record(Prediction(f"r-{i}", 1_700_000_000.0 + i, "credit", 1, "infer", x.head(rows),
                              np.array(["yes"] * rows), None, 1.0))
    log.close()
    return workspace


def test_record_one_then_many_then_report(logged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "feedback", "record", "credit", "r-1", "yes")
    assert code == 0 and out.strip() == "Recorded 1 feedback item for credit.", err
    assert cli_json(capsys, "feedback", "record", "credit", "r-1", "1", "--row", "1") == {"model": "credit",
                                                                                           "recorded": 1}
    (logged / "truth.csv").write_text("request_id,value\nr-2,no\nlate,yes\n")
    (logged / "truth.jsonl").write_text('{"request_id": "later", "value": true}\n')
    assert cli(capsys, "feedback", "record", "credit", "--file", "truth.csv")[0] == 0
    assert cli(capsys, "feedback", "record", "credit", "--file", "truth.jsonl")[0] == 0
    given = latest_feedback(open_context(logged), "credit")
    assert given["feedback"].tolist() == ["yes", 1, "no", "yes", True]

    assert cli_json(capsys, "feedback", "report", "credit") == {
        "model": "credit", "received": 5, "matched": 3, "unmatched": 2, "unmatched_request_ids": ["late", "later"]}
    code, out, _ = cli(capsys, "feedback", "report", "credit")
    assert code == 0 and "late, later" in out and "matched" in out


def test_a_bad_file_stores_nothing(logged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (logged / "truth.jsonl").write_text('{"request_id": "r-1", "value": "yes"}\n{"request_id": "r-2"}\n')
    err = fails(capsys, "feedback", "record", "credit", "--file", "truth.jsonl")
    assert "truth.jsonl line 2 has no 'value'" in err
    assert latest_feedback(open_context(logged), "credit").empty
    err = fails(capsys, "feedback", "record", "credit", "r-1", "yes", "--file", "truth.jsonl")
    assert "either --file or REQUEST_ID" in err
