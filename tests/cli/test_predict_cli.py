"""`shipyard predict` end to end: scores and their version, JSON for scripts, exit codes, the progress bar."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import shipyard
from tests.cli.helpers import SHIPYARD, cli, fails

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scoring(workspace: Path) -> Path:
    """credit/1 (a classifier on age and income) and applicants@1 (key application_id) to score with it."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"application_id": rng.permutation(3000), "age": rng.integers(18, 80, 3000),
                          "income": rng.normal(50_000, 10_000, 3000), "branch": rng.choice(["n", "s"], 3000)})
    model = LogisticRegression().fit(frame[["age", "income"]], frame["income"] > 50_000)
    shipyard.models.register("credit", model, input_example=frame[["age", "income"]].head())
    shipyard.data.add("applicants", frame, key=["application_id"])
    frame.to_csv(workspace / "applicants.csv", index=False)
    return workspace


def test_predict_writes_scores_and_versions_them_once(scoring: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "predict", "credit/1", "--input", "applicants@1", "--output", "scores.parquet",
                         "--keep", "branch", "--probabilities", "--chunk-rows", "1000")
    assert code == 0, err
    assert out.startswith("Scored 3000 rows of applicants@1 with credit/1 in 3 chunk(s) (local)")
    assert "application_id, branch, prediction, proba_False, proba_True; versioned as credit-predictions@1" in out
    assert err == ""  # no progress bar when stderr is not a terminal
    scores = pd.read_parquet(scoring / "scores.parquet")
    assert len(scores) == 3000 and scores["application_id"].tolist() == shipyard.data.load("applicants@1")[
        "application_id"].tolist()
    code, out, _ = cli(capsys, "predict", "credit/1", "-i", "applicants", "-o", "again.parquet", "--keep", "branch",
                       "--probabilities", "--json")
    assert code == 0
    again = json.loads(out)
    assert again["created"] is False and again["version"] == "credit-predictions@1" and again["chunks"] == 1
    code, out, _ = cli(capsys, "lineage", "show", "credit-predictions@1", "--json")
    assert code == 0 and "credit/1" in out and "applicants@1" in out


def test_a_file_input_and_a_chosen_dataset_name(scoring: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (scoring / "out").mkdir()
    code, out, err = cli(capsys, "predict", "credit@latest", "--input", "applicants.csv", "--output",
                         "out/scores.parquet", "--as", "applicant-scores", "--keep", "application_id", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["version"] == "applicant-scores@1" and result["rows"] == 3000
    assert result["lineage"][0] == "model_version:credit/1" and result["lineage"][1].startswith("file:")


def test_errors_exit_1_with_one_message_and_usage_errors_exit_2(scoring: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    pd.read_csv(scoring / "applicants.csv").drop(columns=["age"]).to_csv(scoring / "no-age.csv", index=False)
    err = fails(capsys, "predict", "credit/1", "--input", "no-age.csv", "--output", "o.parquet")
    assert "no-age.csv lacks the column(s) 'age'" in err
    err = fails(capsys, "predict", "credit/1", "--input", "applicants@1", "--output", "o.txt")
    assert "'o.txt' is not a .parquet file" in err
    err = fails(capsys, "predict", "credit@champion", "--input", "applicants@1", "--output", "o.parquet")
    assert "champion" in err
    assert not (scoring / "o.parquet").exists() and not (scoring / "o.txt").exists()
    code, _, err = cli(capsys, "predict", "credit/1", "--input", "applicants@1", "--output", "o.parquet",
                       "--chunk-rows", "0")
    assert code == 2 and "0" in err
    code, _, err = cli(capsys, "predict", "credit/1", "--input", "applicants@1")
    assert code == 2 and "--output" in err
    from shipyard.context import open_context
    from shipyard.data.versions import list_datasets

    assert [d["name"] for d in list_datasets(open_context())] == ["applicants"]  # no predictions version


def test_a_terminal_gets_a_progress_bar_on_stderr(scoring: Path) -> None:
    """Run in a pseudo-terminal: the bar is drawn on stderr (the terminal), the summary still on stdout."""
    parent, child = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "120"}
    proc = subprocess.Popen([str(SHIPYARD), "predict", "credit/1", "--input", "applicants@1", "--output",
                             "tty.parquet", "--chunk-rows", "500"], cwd=scoring, env=env, stdout=subprocess.PIPE,
                            stderr=child, stdin=subprocess.DEVNULL)
    os.close(child)
    drawn = b""
    while True:
        try:
            data = os.read(parent, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        drawn += data
    out, _ = proc.communicate(timeout=120)
    os.close(parent)
    assert proc.returncode == 0, drawn.decode(errors="replace")
    assert b"scoring" in drawn and b"3000/3000" in drawn
    assert out.decode().startswith("Scored 3000 rows")
