"""`shipyard deploy export` on the command line: what it prints, --json, exit codes, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import shipyard
from tests.cli.helpers import cli, fails


@pytest.fixture
def registered(workspace: Path) -> Path:
    from sklearn.linear_model import LogisticRegression

    from tests.serving.conftest import training_frame

    x, y = training_frame()
    shipyard.models.register("credit", LogisticRegression().fit(x, y), input_example=x.head())
    shipyard.models.set_alias("credit/1", "staging")
    return workspace


def test_export_prints_what_it_wrote_and_the_next_steps(registered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "deploy", "export", "credit@staging", "--out", "deploy/credit", "-n", "ml")
    assert code == 0, err
    folder = registered / "deploy" / "credit"
    assert f"Exported credit/1 to {folder}" in out
    assert "memory request 512Mi, limit 1024Mi (default)" in out
    assert f"docker build -t credit:1 {folder}" in out and f"kubectl apply -f {folder}/kubernetes/" in out
    assert "Warning:" in err and "no infrastructure gate result" in err
    assert (folder / "Dockerfile").is_file() and (folder / "kubernetes" / "deployment.yaml").is_file()


def test_export_json(registered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "deploy", "export", "credit/1", "--out", "out", "--image", "registry.example.com/ml/credit:1",
                       "--memory", "768Mi", "--json")
    assert code == 0
    done = json.loads(out)
    assert done["version_id"] == "credit/1" and done["image"] == "registry.example.com/ml/credit:1"
    assert (done["memory_request_mib"], done["memory_source"]) == (768, "--memory 768Mi")
    assert "Dockerfile" in done["files"] and "kubernetes/hpa.yaml" in done["files"]
    assert json.loads((registered / "out" / "shipyard-export.json").read_text())["image"] == done["image"]


@pytest.mark.parametrize(("args", "message"), [
    (["credit/7", "--out", "x"], "Model 'credit' has no version 7"),
    (["credit/1", "--out", "x", "--namespace", "Prod!"], "Invalid namespace 'Prod!'"),
    (["credit/1", "--out", "x", "--name", "Credit"], "Invalid Kubernetes name 'Credit'"),
    (["credit/1", "--out", "x", "--registry", "shared"], "--registry shared needs stores a container can reach"),
    (["credit/1", "--out", "x", "--memory", "2GB"], "Invalid memory quantity '2GB'"),
])
def test_bad_input_is_one_message_and_nothing_written(registered: Path, capsys: pytest.CaptureFixture[str],
                                                     args: list[str], message: str) -> None:
    err = fails(capsys, "deploy", "export", *args)
    assert message in " ".join(err.split())
    assert not (registered / "x").exists()


def test_a_folder_in_use_needs_force(registered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (registered / "out").mkdir()
    (registered / "out" / "keep.txt").write_text("mine")
    err = fails(capsys, "deploy", "export", "credit/1", "--out", "out")
    assert "already exists and is not empty" in err and "--force" in err
    assert (registered / "out" / "keep.txt").is_file()
    code, _, _ = cli(capsys, "deploy", "export", "credit/1", "--out", "out", "--force")
    assert code == 0 and not (registered / "out" / "keep.txt").exists()


@pytest.mark.parametrize("args", [
    ["credit/1"],  # no --out
    ["credit/1", "--out", "x", "--registry", "cluster"],
    ["credit/1", "--out", "x", "--workers", "many"],
])
def test_usage_errors_exit_2(registered: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, err = cli(capsys, "deploy", "export", *args)
    assert code == 2 and out == "" and "Traceback" not in err
    assert not (registered / "x").exists()
