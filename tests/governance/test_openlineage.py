"""The OpenLineage export of a pipeline-trained model (its input data, the step runs' parent), the
namespace of a workspace, and sending the events to a collector's HTTP API."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import shipyard
from shipyard.cli.main import main
from shipyard.context import close_all, open_context
from shipyard.governance.openlineage import export_events, namespace

SPEC = """
data:
  dataset: credit
  target: default
model:
  name: credit
  estimator: sklearn.linear_model.LogisticRegression
  params: {max_iter: 500}
evaluation:
  metrics: [accuracy]
gates:
  credit: {}
"""


def _credit(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"income": rng.normal(50, 15, n), "age": rng.integers(18, 80, n)})
    frame["default"] = (frame["income"] < 45).astype(int)
    return frame


@pytest.fixture
def trained(workspace: Path) -> Path:
    shipyard.data.add("credit", _credit())
    (workspace / "shipyard.yaml").write_text((workspace / "shipyard.yaml").read_text() + SPEC)
    assert main(["run"]) == 0
    return workspace


def test_a_pipeline_trained_model_has_its_input_data_and_step_runs_their_parent(trained: Path) -> None:
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.generated import parent_run
    from openlineage.client.serde import Serde

    events = export_events(open_context())
    ns = namespace(open_context())
    [pipeline_start] = [e for e in events if e["job"]["name"] == "pipelines.train-credit" and e["eventType"] == "START"]
    pipeline_run = pipeline_start["run"]["runId"]
    assert "parent" not in pipeline_start["run"]["facets"]

    registers = [e for e in events if any(o["namespace"] == f"{ns}/models" for o in e["outputs"])]
    assert [e["eventType"] for e in registers] == ["START", "COMPLETE"]
    for event in registers:
        assert event["job"] == {"namespace": ns, "name": "pipelines.train-credit.register", "facets": {}}
        assert [(d["namespace"], d["name"], d["facets"]["version"]["datasetVersion"]) for d in event["inputs"]] \
            == [(ns, "credit", "1")]
        assert [(o["name"], o["facets"]["version"]["datasetVersion"]) for o in event["outputs"]] == [("credit", "1")]

    steps = [e for e in events if e["job"]["name"].startswith("pipelines.train-credit.")]
    assert {e["job"]["name"].rsplit(".", 1)[1] for e in steps} >= {"validate_data", "prepare", "train", "register"}
    for event in steps:
        parent = event["run"]["facets"]["parent"]
        assert parent["run"] == {"runId": pipeline_run}
        assert parent["job"] == {"namespace": ns, "name": "pipelines.train-credit"}
        assert parent["_schemaURL"].endswith("/ParentRunFacet.json#/$defs/ParentRunFacet")
        rebuilt = parent_run.ParentRunFacet(run=parent_run.Run(runId=parent["run"]["runId"]),
                                            job=parent_run.Job(namespace=ns, name=parent["job"]["name"]))
        rebuilt._producer = parent["_producer"]
        rebuilt._schemaURL = parent["_schemaURL"]
        parsed = RunEvent(  # the client's validators check the run ids, the time and the URIs
            eventType=RunState(event["eventType"]), eventTime=event["eventTime"],
            run=Run(runId=event["run"]["runId"], facets={"parent": rebuilt}),
            job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"]), producer=event["producer"],
            inputs=[InputDataset(namespace=d["namespace"], name=d["name"]) for d in event["inputs"]],
            outputs=[OutputDataset(namespace=d["namespace"], name=d["name"]) for d in event["outputs"]],
        )
        assert _drop_empty(Serde.to_dict(parsed)["run"]["facets"]["parent"]) == parent  # nothing lost or changed


def _drop_empty(value: object) -> object:  # the client writes empty optional facets we leave out
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v not in ({}, [], None)}
    return value


def test_the_namespace_is_the_store_id_not_the_folder_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spaces = [shipyard.init_workspace(tmp_path / side / "project") for side in ("a", "b")]
    namespaces = []
    for root in spaces:
        monkeypatch.chdir(root)
        shipyard.data.add("credit", _credit(20))
        shipyard.data.add("credit-clean", _credit(20).head(10), parents=["credit@1"])
        ns = namespace(open_context())
        assert ns.startswith("shipyard://") and "project" not in ns
        assert {e["job"]["namespace"] for e in export_events(open_context())} == {ns}
        namespaces.append(ns)
    assert namespaces[0] != namespaces[1]  # two folders of the same name are two workspaces

    close_all()
    moved = shutil.move(str(spaces[0]), str(tmp_path / "elsewhere"))
    monkeypatch.chdir(moved)
    assert namespace(open_context()) == namespaces[0]  # the id lives in the store, so it moves with it


class _Collector:
    """An OpenLineage HTTP endpoint on loopback that keeps what it was sent and answers `status`."""

    def __init__(self, status: int = 201) -> None:
        self.received: list[tuple[str, dict[str, str], Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.received.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(status)
                self.end_headers()
                if status >= 300:
                    self.wfile.write(b'{"error": "schema validation failed"}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Collector:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def lineage(workspace: Path) -> Iterator[Path]:
    shipyard.data.add("iris", _credit(30))
    shipyard.data.add("iris-clean", _credit(30).head(20), parents=["iris@1"])
    with shipyard.start_run("train", experiment="flowers") as run:
        run.log_input("iris-clean@1")
    yield workspace


def test_export_sends_every_event_to_a_collector(lineage: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    expected = json.loads(json.dumps(export_events(open_context())))
    with _Collector() as collector:
        assert main(["lineage", "export", "--url", collector.url + "/", "--api-key", "s3cret"]) == 0
        monkeypatch.setenv("OPENLINEAGE_API_KEY", "from-env")
        assert main(["lineage", "export", "--url", f"{collector.url}/api/v1/lineage", "-o", "events.jsonl"]) == 0
    assert collector.received[4][1]["Authorization"] == "Bearer from-env"
    assert [json.loads(line) for line in (lineage / "events.jsonl").read_text().splitlines()] == expected
    del collector.received[4:]
    out = capsys.readouterr().out
    assert f"Sent 4 OpenLineage events to {collector.url}/api/v1/lineage" in out
    assert namespace(open_context()) in out
    assert [body for _, _, body in collector.received] == expected
    assert {path for path, _, _ in collector.received} == {"/api/v1/lineage"}
    headers = collector.received[0][1]
    assert headers["Authorization"] == "Bearer s3cret" and headers["Content-Type"] == "application/json"


def test_export_names_a_refusing_or_unreachable_collector(lineage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _Collector(status=400) as collector:
        assert main(["lineage", "export", "--url", collector.url]) == 1
    err = capsys.readouterr().err
    assert f"{collector.url}/api/v1/lineage answered 400" in err and "event 1 of 4" in err
    assert "0 event(s) were sent before it" in err and "schema validation failed" in err
    assert len(collector.received) == 1  # the first failure stops

    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert main(["lineage", "export", "--url", f"http://127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert f"Cannot reach the OpenLineage collector at http://127.0.0.1:{port}/api/v1/lineage" in err
    assert "Traceback" not in err

    assert main(["lineage", "export", "--url", "marquez:5000"]) == 1
    assert "is not an http(s) URL" in capsys.readouterr().err
    assert main(["lineage", "export", "--api-key", "k"]) == 1
    assert "--url" in capsys.readouterr().err
    assert main(["lineage", "export", "-o", str(lineage / "no" / "such" / "events.jsonl")]) == 1
    assert "Cannot write the events to" in capsys.readouterr().err
