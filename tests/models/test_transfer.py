"""Copying a version into another store (what a self-contained serving image holds): the same number,
record and artifact, audited with where it came from; never over another version of that number."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import shipyard
from shipyard.context import open_context
from shipyard.errors import ConflictError
from shipyard.models.registry import get_model_version
from shipyard.models.transfer import copy_version


def test_a_copied_version_keeps_its_number_and_loads_from_the_other_store(workspace: Path, tmp_path: Path) -> None:
    x, y = load_iris(as_frame=True, return_X_y=True)
    with shipyard.start_run("train") as run:
        for c in (1.0, 0.1, 0.01):
            run.log_model(LogisticRegression(C=c, max_iter=500).fit(x, y), "iris", input_example=x.head())
    source = open_context()
    version = get_model_version(source, "iris/3")
    other = shipyard.init_workspace(tmp_path / "other")
    target = open_context(other)

    copied = copy_version(source, version, target)
    assert (copied.version_id, copied.artifact_digest, copied.signature, copied.environment) == \
        (version.version_id, version.artifact_digest, version.signature, version.environment)
    assert copied.run_id is None and version.run_id is not None  # the run stays behind ...
    [event] = shipyard.audit_log(object_id="iris", workspace=other)
    assert event.action == "model.copy" and event.payload["run_id"] == version.run_id  # ... named in the audit
    assert event.payload["version"] == 3 and len(event.payload["from_store"]) == 32
    assert shipyard.models.load("iris/3", workspace=other).predict(x.head()).tolist() == \
        shipyard.models.load("iris/3").predict(x.head()).tolist()

    with pytest.raises(ConflictError, match="already in this store"):
        copy_version(source, version, target)
    impostor = dataclasses.replace(get_model_version(source, "iris/2"), version=3)  # another artifact as iris/3
    with pytest.raises(ConflictError, match="already has another iris/3"):
        copy_version(source, impostor, target)
    assert len(shipyard.audit_log(object_id="iris", workspace=other)) == 1  # the refusals wrote nothing
