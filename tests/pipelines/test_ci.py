"""`shipyard ci` and `shipyard run` as scripts see them: exit codes that say whether the outcome happened,
a CI check that leaves the registry as it was, the GitHub workflow run in a fresh clone against
PostgreSQL and S3, and step failures reported without a library traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import shipyard
from shipyard.cli.main import main
from shipyard.errors import EXIT_BLOCKED, EXIT_ERROR, EXIT_OK

from tests.services import MotoServer, postgres_schema

BIN = Path(sys.executable).parent


def _credit(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"customer_id": np.arange(n), "income": rng.normal(50, 15, n),
                          "region": rng.choice(["north", "south", "east"], n)})
    frame["default"] = ((frame["income"] < 45) ^ (rng.random(n) < 0.1)).astype(int)
    return frame


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """A workspace started from a table with the starter spec (few trees, to stay fast)."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    _credit().to_csv(root / "credit.csv", index=False)
    code, _, err = _cli(capsys, "init", "--from", "credit.csv", "--target", "default")
    assert code == 0, err
    _edit(root / "shipyard.yaml", "# thresholds: {roc_auc: {min: 0.7}}", "thresholds: {accuracy: {min: 0.5}}")
    return root


# Parameters each valid for the estimator (so the spec is accepted) that fail together when it is fitted.
CLASHING = ("params: {C: 1.0, max_iter: 1000}", "params: {C: 1.0, max_iter: 1000, solver: newton-cg, dual: true}")
CLASH = "Solver newton-cg supports only dual=False, got dual=True"


def _registry() -> list[dict[str, Any]]:
    from shipyard.context import open_context
    from shipyard.models.registry import list_models

    return list_models(open_context())


def test_ci_gates_the_candidate_and_leaves_the_registry_as_it_was(project: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from shipyard.context import open_context
    from shipyard.store.audit import list_events

    code, out, err = _cli(capsys, "ci", "--report", "report.md")
    assert code == EXIT_OK, out + err
    report = (project / "report.md").read_text()
    assert report.startswith("# Shipyard model CI") and "**Passed**" in report
    assert "nothing was added to the registry" in report
    assert "| evaluation | PASS |" in report and "| roc_auc |" in report and "candidate (run " in report
    assert _registry() == []  # no model, no version, no gate result
    with open_context().store.read() as conn:
        assert [e.action for e in list_events(conn, limit=1000) if e.action.startswith("model.")] == []

    code, out, err = _cli(capsys, "ci", "--register")  # asked for: registered and gated, not promoted
    assert code == EXIT_OK, out + err
    assert "**Passed**: credit/1 may be promoted." in out
    [model] = _registry()
    assert model["versions"] == 1 and model["aliases"] == {}
    assert shipyard.models.get("credit/1").dataset_version == "credit@1"

    _edit(project / "shipyard.yaml", "accuracy: {min: 0.5}", "accuracy: {min: 0.999}")
    code, out, _ = _cli(capsys, "ci", "--report", "report.md")
    assert code == EXIT_BLOCKED
    report = (project / "report.md").read_text()
    assert "**Blocked**: gate(s) evaluation failed." in report and "< minimum 0.999" in report
    assert _registry()[0]["versions"] == 1  # still only the version registered on request


def test_ci_without_gates_is_blocked_and_a_failing_step_is_an_error(project: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    spec = project / "shipyard.yaml"
    text = spec.read_text()
    spec.write_text(text[: text.index("gates:")])
    code, out, _ = _cli(capsys, "ci")
    assert code == EXIT_BLOCKED and "**Blocked**: no gates are configured for 'credit'" in out
    spec.write_text(text[: text.index("gates:")] + "gates:\n  credit: {}\n")  # it needs none, explicitly
    code, out, _ = _cli(capsys, "ci")
    assert code == EXIT_OK and "**Passed**" in out

    _edit(spec, *CLASHING)
    code, out, err = _cli(capsys, "ci", "--report", "report.md")
    assert code == EXIT_ERROR
    report = (project / "report.md").read_text()
    assert "**Failed** at step `train`" in report and CLASH in report
    assert "Traceback" not in report and "Traceback" not in err
    assert _registry() == []


def test_run_exits_3_when_a_gate_blocks_the_promotion(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(project / "shipyard.yaml", "accuracy: {min: 0.5}", "accuracy: {min: 0.999}")
    code, out, err = _cli(capsys, "run")
    assert code == EXIT_BLOCKED
    assert "Registered credit/1 (gates: evaluation FAIL); not promoted." in out
    assert "Not promoted: gate 'evaluation' FAILED" in err and "Traceback" not in err
    code, out, _ = _cli(capsys, "run", "--json")
    outcome = json.loads(out)["outcome"]
    assert code == EXIT_BLOCKED and outcome["alias"] is None and outcome["blocked"][0].startswith("gate 'evaluation'")

    _edit(project / "shipyard.yaml", "accuracy: {min: 0.999}", "accuracy: {min: 0.5}")
    code, out, err = _cli(capsys, "run")
    assert code == EXIT_OK, err
    assert "it is now champion" in out


def test_run_without_gates_is_not_promoted_unless_the_spec_says_it_needs_none(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = project / "shipyard.yaml"
    text = spec.read_text()
    spec.write_text(text[: text.index("gates:")])
    code, out, err = _cli(capsys, "run")
    assert code == EXIT_BLOCKED and "not promoted" in out and "no gates are configured for 'credit'" in err
    spec.write_text(text[: text.index("gates:")] + "gates:\n  credit: {}\n")
    code, out, err = _cli(capsys, "run")
    assert code == EXIT_OK, err
    assert "(gates: none configured); it is now champion." in out  # unchanged model, promoted now


def test_a_failing_step_names_the_step_and_where_its_traceback_is(project: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _edit(project / "shipyard.yaml", *CLASHING)
    code, out, err = _cli(capsys, "run")
    assert code == EXIT_ERROR
    assert "Traceback" not in err and "File \"" not in err
    assert "failed at step 'train'" in err
    assert f"ValueError: {CLASH}" in err
    assert re.search(r"│ train\s+│ failed", out) and re.search(r"│ evaluate\s+│ skipped", out)
    [run_id] = re.findall(r"`shipyard artifacts get ([0-9a-f]+) traceback.txt`", err)
    assert f"`shipyard runs show {run_id}`" in err

    code, out, _ = _cli(capsys, "artifacts", "get", run_id, "traceback.txt", str(project / "traceback.txt"))
    assert code == EXIT_OK
    kept = (project / "traceback.txt").read_text()
    assert kept.startswith("Traceback (most recent call last):") and "in train" in kept
    assert CLASH in kept.splitlines()[-1]
    assert shipyard.get_run(run_id).error == kept

    code, _, err = _cli(capsys, "--debug", "run")
    assert code == EXIT_ERROR and "The step's traceback:" in err and "in train" in err


# -- the GitHub workflow ----------------------------------------------------------------------------------


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args], cwd=cwd,
                   check=True, capture_output=True, text=True, timeout=60)


def _env(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "GITHUB_"))}
    return {**base, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def _run_workflow(checkout: Path, secrets: dict[str, str], summary: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run the workflow's `run:` steps as GitHub would, with `secrets` as the repository secrets: checkout
    and setup-python are what the test already has, and the package is installed already."""
    workflow = yaml.safe_load((checkout / ".github" / "workflows" / "shipyard.yml").read_text())
    [job] = workflow["jobs"].values()
    context = {"secrets": secrets, "github": {"actor": "ci-bot"}}

    def expand(value: str) -> str:  # ${{ secrets.NAME }}: an unset secret is an empty string
        return re.sub(r"\$\{\{\s*(\w+)\.(\w+)\s*\}\}", lambda m: context[m[1]].get(m[2], ""), str(value))

    env = _env({**{k: expand(v) for k, v in job["env"].items()}, "GITHUB_STEP_SUMMARY": str(summary)})
    done: list[subprocess.CompletedProcess[str]] = []
    for step in job["steps"]:
        if "uses" in step or step["run"].startswith("pip install"):
            continue
        if done and done[-1].returncode != 0 and "always()" not in str(step.get("if", "")):
            continue
        done.append(subprocess.run(["bash", "-e", "-c", step["run"]], cwd=checkout, env=env, capture_output=True,
                                   text=True, timeout=300))
    return done


def test_the_github_workflow_runs_in_a_fresh_clone_on_the_shared_stores(tmp_path: Path, moto: MotoServer) -> None:
    origin, checkout = tmp_path / "origin", tmp_path / "checkout"
    origin.mkdir()
    _credit().to_csv(origin / "credit.csv", index=False)
    with postgres_schema() as store_url:
        secrets = {"SHIPYARD_STORE_URL": store_url, "SHIPYARD_ARTIFACTS_URL": f"s3://{moto.new_bucket()}/shipyard",
                   "SHIPYARD_ARTIFACTS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing"}
        # The data scientist starts the workspace on the shared stores and pushes it.
        started = subprocess.run(["shipyard", "init", "--from", "credit.csv", "--target", "default", "--ci", "github"],
                                 cwd=origin, env=_env(secrets), capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stderr
        _edit(origin / "shipyard.yaml", "# thresholds: {roc_auc: {min: 0.7}}", "thresholds: {accuracy: {min: 0.5}}")
        _git(origin, "init", "-q")
        _git(origin, "add", ".")
        _git(origin, "commit", "-q", "-m", "credit model")
        _git(tmp_path, "clone", "-q", str(origin), str(checkout))
        assert not (checkout / ".shipyard").exists() and (checkout / "shipyard.yaml").is_file()

        summary = tmp_path / "summary.md"
        steps = _run_workflow(checkout, secrets, summary)
        assert [s.returncode for s in steps] == [0, 0, 0], [s.stdout[-2000:] + s.stderr[-2000:] for s in steps]
        text = summary.read_text()
        assert text.startswith("# Shipyard model CI") and "**Passed**" in text and "| evaluation | PASS |" in text
        listing = subprocess.run(["shipyard", "models", "list", "--json"], cwd=checkout, env=_env(secrets),
                                 capture_output=True, text=True, timeout=120)
        assert listing.returncode == 0 and json.loads(listing.stdout) == []  # the shared registry is untouched

        missing = _run_workflow(checkout, {"AWS_ACCESS_KEY_ID": "x"}, tmp_path / "nothing.md")
        assert missing[0].returncode == 1 and len(missing) == 2  # the check, then only the always() step
        assert "Missing repository secret(s): SHIPYARD_STORE_URL SHIPYARD_ARTIFACTS_URL." in missing[0].stdout

        without_stores = subprocess.run(["shipyard", "ci"], cwd=checkout, env=_env({}), capture_output=True,
                                        text=True, timeout=120)
        assert without_stores.returncode == EXIT_ERROR and "server" not in without_stores.stderr
        assert f"its folder {checkout / '.shipyard'} does not exist" in without_stores.stderr
        assert "SHIPYARD_STORE_URL" in without_stores.stderr and "Traceback" not in without_stores.stderr


def test_an_unchanged_model_is_gated_again_when_its_gate_policy_changed(project: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _edit(project / "shipyard.yaml", "accuracy: {min: 0.5}", "accuracy: {min: 0.999}")
    code, out, _ = _cli(capsys, "run")
    assert code == EXIT_BLOCKED
    code, out, err = _cli(capsys, "run")  # same model, same policy: the stored refusal stands
    assert code == EXIT_BLOCKED and "unchanged: already credit/1 (gates: evaluation FAIL)" in out
    _edit(project / "shipyard.yaml", "accuracy: {min: 0.999}", "accuracy: {min: 0.5}")
    code, out, err = _cli(capsys, "run")  # the policy changed: judged again, and now promoted
    assert code == EXIT_OK, err
    assert "unchanged: already credit/1 (gates: evaluation PASS); it is now champion" in out
