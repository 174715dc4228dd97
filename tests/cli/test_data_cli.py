"""The data commands end to end: add, list, log, show, status, diff, checkout, schema, validate, gc."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from shipyard.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def diabetes(tmp_path: Path) -> Path:
    frame = load_diabetes(as_frame=True).frame
    frame.insert(0, "patient", range(len(frame)))
    path = tmp_path / "diabetes.csv"
    frame.to_csv(path, index=False)
    past = time.time() - 120
    os.utime(path, (past, past))
    return path


def test_add_list_log_show_and_diff(workspace: Path, diabetes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "add", "diabetes", str(diabetes), "-m", "first", "--key", "patient")
    assert code == 0 and "Added diabetes@1: table, 1 file(s)" in out and "442 rows" in out
    code, out, _ = run(capsys, "data", "add", "diabetes", str(diabetes))
    assert code == 0 and "unchanged since diabetes@1" in out
    frame = pd.read_csv(diabetes)
    frame.iloc[:400].to_csv(diabetes, index=False)
    code, out, _ = run(capsys, "data", "add", "diabetes", str(diabetes), "--json")
    added = json.loads(out)
    assert code == 0 and added["created"] and added["version"]["version_id"] == "diabetes@2"
    assert added["version"]["row_count"] == 400

    code, out, _ = run(capsys, "data", "list", "--json")
    assert [(d["name"], d["versions"], d["latest"]["version_id"]) for d in json.loads(out)] == [("diabetes", 2, "diabetes@2")]
    code, out, _ = run(capsys, "data", "log", "diabetes")
    assert out.index("diabetes@2") < out.index("diabetes@1") and "first" in out
    code, out, _ = run(capsys, "data", "show", "diabetes@1", "--json")
    shown = json.loads(out)
    assert shown["key_columns"] == ["patient"] and shown["profile"]["columns"]["bmi"]["null_count"] == 0
    code, out, _ = run(capsys, "data", "show", "diabetes@latest")
    assert "diabetes@2" in out and "bmi" in out and "profile" in out
    code, out, _ = run(capsys, "data", "diff", "diabetes@1", "diabetes@2", "--json")
    d = json.loads(out)
    assert d["row_count"] == [442, 400] and d["rows_removed"] == 42 and d["rows_added"] == 0


def test_status_and_checkout(workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.txt").write_text(f"page {i}")
    assert run(capsys, "data", "status", "docs", str(folder), "--json")[0] == 0  # no version yet: all added
    assert main(["data", "add", "docs", str(folder)]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "data", "status", "docs", str(folder))
    assert code == 0 and "matches docs@1 (5 files)" in out
    (folder / "2.txt").write_text("edited")
    code, out, _ = run(capsys, "data", "status", "docs", str(folder), "--json")
    assert json.loads(out)["modified"] == ["2.txt"]
    dest = tmp_path / "copy"
    code, out, _ = run(capsys, "data", "checkout", "docs@1", str(dest))
    assert code == 0 and (dest / "2.txt").read_text() == "page 2"
    code, _, err = run(capsys, "data", "checkout", "docs@1", str(dest))
    assert code == 1 and "--force" in err


def test_schema_infer_validate_and_html(workspace: Path, diabetes: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "add", "diabetes", str(diabetes), "--key", "patient"]) == 0
    code, out, _ = run(capsys, "data", "schema", "infer", "diabetes@1")
    schema = workspace / "schemas" / "diabetes.yaml"
    assert code == 0 and schema.is_file() and "patient" in schema.read_text()
    code, out, _ = run(capsys, "data", "validate", "diabetes@1")
    assert code == 0 and "Validation passed: 0 error(s)" in out

    bad = pd.read_csv(diabetes)
    bad.loc[0:4, "age"] = 99.0  # far outside the inferred range
    bad.loc[10, "patient"] = 11  # a duplicate key
    bad.to_csv(diabetes, index=False)
    assert main(["data", "add", "diabetes", str(diabetes)]) == 0
    capsys.readouterr()
    report = tmp_path / "report.html"
    code, out, _ = run(capsys, "data", "validate", "diabetes@2", "--html", str(report), "--json")
    result = json.loads(out)
    assert code == 1 and not result["ok"]
    kinds = {a["kind"] for a in result["anomalies"]}
    assert {"out_of_range", "duplicate_key"} <= kinds
    page = report.read_text()
    assert "duplicate_key" in page and "<script" not in page and "http://" not in page

    from shipyard.context import open_context
    from shipyard.data.checks import latest_validation

    evidence = latest_validation(open_context(), "diabetes@2")
    assert evidence is not None and evidence["ok"] is False and evidence["reference"] == "diabetes@1"


def test_bad_input(workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.csv").write_text("a,b\n1,2\n3\n")
    cases = [
        (["data", "add", "Bad Name", str(tmp_path)], "Invalid dataset name"),
        (["data", "add", "x", str(tmp_path / "nope.csv")], "does not exist"),
        (["data", "add", "x", str(tmp_path / "broken.csv")], "line 3"),
        (["data", "show", "x@1"], "No dataset named 'x'"),
        (["data", "show", "x@0"], "expected a positive number"),
        (["data", "validate", "x@1"], "No dataset named 'x'"),
    ]
    for args, message in cases:
        code, out, err = run(capsys, *args)
        assert code == 1, args
        assert message in err, (args, err)
        assert "Traceback" not in err
    (tmp_path / "ok.csv").write_text("a,b\n1,2\n")
    assert main(["data", "add", "ok", str(tmp_path / "ok.csv")]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "data", "validate", "ok@1")
    assert code == 1 and "shipyard data schema infer ok@1" in err
    typo = tmp_path / "typo.yaml"
    typo.write_text("colums:\n  a: {type: int64}\n")
    code, _, err = run(capsys, "data", "validate", "ok@1", "--schema", str(typo))
    assert code == 1 and "colums" in err and "Did you mean 'columns'" in err
    assert main(["audit", "verify"]) == 0
