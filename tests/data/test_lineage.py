"""The lineage graph from runs and derived datasets, and its OpenLineage export checked with the
official openlineage-python event classes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_iris

import shipyard
from shipyard.cli.main import main
from shipyard.context import open_context
from shipyard.governance.lineage import walk
from shipyard.store.lineage import Node
from shipyard.governance.openlineage import export_events
from shipyard.errors import NotFoundError


@pytest.fixture
def graph(backend_workspace: Path) -> dict[str, str]:
    iris = load_iris(as_frame=True).frame
    shipyard.data.add("iris", iris)
    shipyard.data.add("iris-clean", iris[iris["sepal width (cm)"] > 2.5], parents=["iris@1"])
    with shipyard.start_run("train", experiment="flowers") as train:
        train.log_input("iris-clean@1")
        shipyard.data.add("scores", pd.DataFrame({"id": [1, 2], "score": [0.2, 0.9]}))
        train.log_output("scores@1")
    try:
        with shipyard.start_run("broken", experiment="flowers") as broken:
            broken.log_input("iris@1")
            raise RuntimeError("diverged")
    except RuntimeError:
        pass
    return {"train": train.run_id, "broken": broken.run_id}


def _flat(tree) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    out = [(str(tree.node), tree.relation)]
    for child in tree.children:
        out += _flat(child)
    return out


def test_walk_upstream_and_downstream(graph: dict[str, str]) -> None:
    ctx = open_context()
    up = _flat(walk(ctx, Node("dataset_version", "scores@1"), upstream=True))
    assert up == [
        ("dataset_version:scores@1", None),
        (f"run:{graph['train']}", "output"),
        ("dataset_version:iris-clean@1", "input"),
        ("dataset_version:iris@1", "derived"),
    ]
    down = {node for node, _ in _flat(walk(ctx, Node("dataset_version", "iris@1"), upstream=False))}
    assert down == {"dataset_version:iris@1", "dataset_version:iris-clean@1", f"run:{graph['train']}",
                    "dataset_version:scores@1", f"run:{graph['broken']}"}


def test_lineage_cli(graph: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lineage", "show", "scores@1", "--json"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert tree["children"][0] == {**tree["children"][0], "kind": "run", "id": graph["train"], "relation": "output"}
    assert main(["lineage", "show", graph["train"][:8], "--downstream"]) == 0
    assert "scores@1" in capsys.readouterr().out
    assert main(["lineage", "show", "nope@1"]) == 1
    assert "No dataset named 'nope'" in capsys.readouterr().err
    assert main(["lineage", "show", "iris@1", "--upstream", "--downstream"]) == 1
    assert main(["lineage", "export", "--format", "dot"]) == 1
    assert "openlineage" in capsys.readouterr().err


def test_log_input_names_unknown_versions(workspace: Path) -> None:
    shipyard.data.add("iris", pd.DataFrame({"a": [1]}))
    with shipyard.start_run() as run:
        with pytest.raises(NotFoundError, match="Versions: iris@1"):
            run.log_input("iris@4")


def test_openlineage_events_are_accepted_by_the_official_client(graph: dict[str, str], tmp_path: Path) -> None:
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import dataset_version_dataset, schema_dataset
    from openlineage.client.serde import Serde

    out = tmp_path / "events.jsonl"
    assert main(["lineage", "export", "--format", "openlineage", "-o", str(out)]) == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert events == json.loads(json.dumps(export_events(open_context())))
    # 2 runs x (START + end) + 1 derived dataset x (START + COMPLETE)
    assert [e["eventType"] for e in events].count("START") == 3 and len(events) == 6
    assert {e["eventType"] for e in events} == {"START", "COMPLETE", "FAIL"}

    def dataset(cls, data):  # type: ignore[no-untyped-def]
        facets = {}
        if "schema" in data["facets"]:
            facets["schema"] = schema_dataset.SchemaDatasetFacet(
                fields=[schema_dataset.SchemaDatasetFacetFields(name=f["name"], type=f["type"])
                        for f in data["facets"]["schema"]["fields"]])
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=data["facets"]["version"]["datasetVersion"])
        for facet in facets.values():
            facet._producer = data["facets"]["version"]["_producer"]
        return cls(namespace=data["namespace"], name=data["name"], facets=facets)

    for event in events:
        parsed = RunEvent(  # the client's validators check the time, the UUID and the URIs
            eventType=RunState(event["eventType"]),
            eventTime=event["eventTime"],
            run=Run(runId=event["run"]["runId"]),
            job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"]),
            producer=event["producer"],
            inputs=[dataset(InputDataset, d) for d in event["inputs"]],
            outputs=[dataset(OutputDataset, d) for d in event["outputs"]],
        )
        # nothing lost or changed in the client's round trip (it writes empty optional lists we omit)
        assert _drop_empty(Serde.to_dict(parsed)) == _drop_empty(event)

    train = [e for e in events if e["job"]["name"] == "flowers.train"]
    assert [e["eventType"] for e in train] == ["START", "COMPLETE"]
    assert train[0]["inputs"][0]["name"] == "iris-clean"
    assert train[0]["inputs"][0]["facets"]["version"]["datasetVersion"] == "1"
    assert {f["name"] for f in train[0]["inputs"][0]["facets"]["schema"]["fields"]} >= {"sepal width (cm)", "target"}
    assert train[0]["outputs"][0]["name"] == "scores"


def _drop_empty(value: object) -> object:
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value
