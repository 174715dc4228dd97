"""`shipyard pipeline run|compile` in-process: the step table, --json, failures, --until, params, references."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import shipyard
from shipyard.cli.main import main

FLOW = '''
import shipyard


@shipyard.step
def source(n: int):
    return list(range(n))


@shipyard.step
def scale(values, factor: float):
    return [v * factor for v in values]


@shipyard.step
def shift(values):
    return [v + 1 for v in values]


@shipyard.step
def join(a, b, label: str):
    return {"label": label, "total": sum(a) + sum(b)}


@shipyard.pipeline
def fan(n: int = 4, factor: float = 2.0, label: str = "base"):
    values = source(n)
    return join(scale(values, factor), shift(values), label)


@shipyard.step
def explode(values):
    raise ValueError(f"cannot handle {len(values)} values")


@shipyard.pipeline
def broken(n: int = 3):
    return shift(explode(source(n)))


def plain():
    return 1
'''


@pytest.fixture
def ref(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A pipeline module in the workspace, named by a relative path."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    (workspace / "flows").mkdir()
    (workspace / "flows" / "cli_flow.py").write_text(FLOW)
    yield "flows/cli_flow.py:fan"
    sys.modules.pop("cli_flow", None)
    sys.modules.pop("_shipyard_pipeline_cli_flow", None)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = cli(capsys, *args)
    assert (code, out) == (1, ""), (out, err)
    assert err.startswith("Error: ")
    return " ".join(err.split())  # rich wraps long messages


def test_run_prints_each_step_with_its_cache_decision(ref: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "pipeline", "run", ref)
    assert code == 0, err
    for column in ("step", "status", "cache", "reason", "seconds"):
        assert column in out
    rows = [line for line in out.splitlines() if "first run of this step" in line]
    assert [line.split()[1] for line in rows] == ["source", "scale", "shift", "join"]
    assert all("finished" in line and "miss" in line for line in rows)
    assert "Pipeline 'fan' finished" in out and "4 step(s), 0 cache hit(s)" in out

    code, out, _ = cli(capsys, "pipeline", "run", ref, "--param", "factor=3")
    assert code == 0
    reasons = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert "hit" in reasons["source"] and "hit" in reasons["shift"]
    assert "params changed: factor: 2.0 → 3.0" in reasons["scale"] and "input data changed" in reasons["join"]


def test_run_json_params_and_no_cache(ref: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "pipeline", "run", ref, "-p", "n=3", "-p", "factor=1", "-p", "label=007", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "finished" and list(result["steps"]) == ["source", "scale", "shift", "join"]
    assert {s["cache"] for s in result["steps"].values()} == {"miss"}
    # JSON values are parsed; a float parameter given as 1 is 1.0; a str parameter keeps its text
    assert shipyard.get_run(result["run_id"]).params == {"n": "3", "factor": "1.0", "label": "007"}
    from shipyard.context import open_context
    from shipyard.pipelines.materialize import Stored, load_value

    join = result["steps"]["join"]["outputs"][0]
    assert load_value(open_context().blobs, Stored.from_dict(join)) == {"label": "007", "total": 9.0}

    code, out, _ = cli(capsys, "pipeline", "run", ref, "-p", "n=3", "-p", "factor=1", "-p", "label=007",
                       "--no-cache", "--json")
    assert code == 0 and {s["cache"] for s in json.loads(out)["steps"].values()} == {"off"}


def test_until_runs_a_step_and_what_it_needs(ref: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "pipeline", "run", ref, "--until", "scale", "--json")
    assert code == 0, err
    assert list(json.loads(out)["steps"]) == ["source", "scale"]
    code, out, _ = cli(capsys, "pipeline", "run", ref, "--json")
    assert {k: s["cache"] for k, s in json.loads(out)["steps"].items()} == {
        "source": "hit", "scale": "hit", "shift": "miss", "join": "miss"}
    assert "no step 'scal'. Did you mean 'scale'?" in fails(capsys, "pipeline", "run", ref, "--until", "scal")


def test_a_failing_step_exits_1_naming_the_step(ref: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(capsys, "pipeline", "run", ref.replace(":fan", ":broken"))
    assert "Pipeline 'broken' failed at step 'explode'" in err
    assert "ValueError: cannot handle 3 values" in err
    runs = {r.name: r.status for r in shipyard.search_runs(experiment="pipelines")}
    assert runs == {"broken": "failed", "source": "finished", "explode": "failed"}  # shift never ran


def test_bad_params(ref: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--param 'n5' must look like NAME=VALUE" in fails(capsys, "pipeline", "run", ref, "--param", "n5")
    assert "must look like NAME=VALUE" in fails(capsys, "pipeline", "run", ref, "--param", "=5")
    err = fails(capsys, "pipeline", "run", ref, "--param", "factr=2")
    assert "Pipeline 'fan' has no parameter 'factr'. Did you mean 'factor'? Parameters: n, factor, label." in err


def test_bad_references(ref: str, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(capsys, "pipeline", "run", "flows/cli_flow.py:fna")
    assert "flows/cli_flow.py has no attribute 'fna'" in err and "Did you mean 'fan'?" in err
    assert "Pipelines in flows/cli_flow.py: broken, fan." in err
    err = fails(capsys, "pipeline", "run", "flows/cli_flow.py:shift")
    assert "'flows/cli_flow.py:shift' is a step, not a pipeline" in err
    assert "is a function, not a pipeline" in fails(capsys, "pipeline", "run", "flows/cli_flow.py:plain")
    assert "must look like package.module:attribute or path/to/file.py:attribute" in \
        fails(capsys, "pipeline", "run", "flows/cli_flow.py")
    assert "No file 'flows/missing.py'" in fails(capsys, "pipeline", "run", "flows/missing.py:fan")
    err = fails(capsys, "pipeline", "run", "flowz.cli_flow:fan")
    assert "Cannot import module 'flowz.cli_flow'" in err and "path/to/flowz/cli_flow.py:fan" in err
    # the module form: the current folder is importable
    code, out, _ = cli(capsys, "pipeline", "run", "flows.cli_flow:fan", "--until", "source", "--json")
    assert code == 0 and list(json.loads(out)["steps"]) == ["source"]
    (workspace / "flows" / "typo.py").write_text("import shipyard\nshipyard.pipelin\n")
    err = fails(capsys, "pipeline", "run", "flows/typo.py:fan")
    assert "Importing flows/typo.py for pipeline reference 'flows/typo.py:fan' failed: AttributeError" in err


def test_unknown_executor(ref: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "Unknown executor 'spark'" in fails(capsys, "pipeline", "run", ref, "--executor", "spark")


def test_compile_for_kubeflow(ref: str, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "pipeline", "compile", ref, "--target", "kfp", "-o", "build/pipeline.yaml",
                         "--image", "acme/train:1", "--param", "n=100")
    assert code == 0, err
    assert "Wrote Kubeflow pipeline 'fan' (4 tasks, image acme/train:1) to build/pipeline.yaml" in out
    spec = yaml.safe_load((workspace / "build" / "pipeline.yaml").read_text())
    assert spec["root"]["inputDefinitions"]["parameters"]["n"]["defaultValue"] == 100
    assert spec["root"]["dag"]["tasks"]["join"]["dependentTasks"] == ["scale", "shift"]
    code, out, _ = cli(capsys, "pipeline", "compile", ref, "--target", "kfp", "--image", "acme/train:1", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["output"] == "pipeline.yaml" and (workspace / "pipeline.yaml").is_file()
    assert summary["tasks"]["join"] == {"step": "join", "after": ["scale", "shift"]}
    assert summary["repeated_steps"] == []


def test_compile_errors(ref: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(capsys, "pipeline", "compile", ref, "--target", "airflow", "--image", "acme/train:1")
    assert "Unknown target 'airflow'; the supported target is 'kfp'" in err
    assert "Compiling for Kubeflow needs --image" in fails(capsys, "pipeline", "compile", ref, "--target", "kfp")
    assert "has no parameter 'm'" in fails(capsys, "pipeline", "compile", ref, "--target", "kfp",
                                           "--image", "acme/train:1", "-p", "m=1")


def test_a_corrupt_cached_output_shows_in_the_step_table(ref: str, workspace: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "pipeline", "run", ref, "--until", "source", "--json")
    assert code == 0, err
    source = json.loads(out)["steps"]["source"]
    digest = source["outputs"][0]["digest"]
    blob = workspace / ".shipyard" / "artifacts" / "sha256" / digest[:2] / digest
    blob.write_bytes(b"x" * blob.stat().st_size)
    code, out, err = cli(capsys, "pipeline", "run", ref, "--until", "source")
    assert code == 0, err
    cells = [line.split("│") for line in out.splitlines() if line.startswith("│")]
    assert cells[0][1].strip() == "source" and cells[0][3].strip() == "miss"
    reason = " ".join(row[4].strip() for row in cells)  # the reason column wraps
    assert reason == (f"cached outputs of run {source['run_id']} are corrupt: output 0 (blob {digest}) does not "
                      "match its SHA-256; the corrupt blob was removed and the step runs again")
