"""Helpers shared by the command-line tests."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.cli.main import main

SHIPYARD = Path(sys.executable).with_name("shipyard")




def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr) of this call only."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run a command that must fail cleanly: exit 1, nothing on stdout, no traceback. Return stderr."""
    code, out, err = cli(capsys, *args)
    assert code == 1, (out, err)
    assert out == ""
    assert "Error:" in err
    assert "Traceback" not in err
    return err


def make_run(
    name: str,
    *,
    experiment: str = "default",
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, list[float]] | None = None,
    artifacts: Mapping[str, bytes] | None = None,
) -> str:
    with shipyard.start_run(name, experiment=experiment) as run:
        if params:
            run.log_params(params)
        for key, values in (metrics or {}).items():
            for value in values:
                run.log_metric(key, value)
        for path, data in (artifacts or {}).items():
            run.log_artifact(data, name=path)
    return run.run_id


def list_ids(capsys: pytest.CaptureFixture[str], *args: str, options: tuple[str, ...] = ()) -> list[str]:
    """Ids of `runs list ARGS`, with global OPTIONS before the command."""
    return [r["run_id"] for r in cli_json(capsys, *options, "runs", "list", *args)["runs"]]


def blob_path(root: Path, data: bytes) -> Path:
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    return root / ".shipyard" / "artifacts" / "sha256" / digest[:2] / digest
