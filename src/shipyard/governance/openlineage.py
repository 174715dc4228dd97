"""Export lineage as OpenLineage run events (spec 2-0-2): one job run per tracked run, and one per
dataset version derived from others. Plain dicts: no OpenLineage package is needed to export."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

from shipyard._version import __version__
from shipyard.context import Context
from shipyard.data.records import DatasetVersion
from shipyard.data.versions import all_versions
from shipyard.store.lineage import all_edges
from shipyard.tracking.runs import active_runs

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
SCHEMA_FACET = "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
VERSION_FACET = "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
PRODUCER = f"https://pypi.org/project/shipyard-mlops/{__version__}/"
JOB_NAMESPACE = "shipyard"
_ENDINGS = {"finished": "COMPLETE", "failed": "FAIL", "killed": "ABORT"}


def _time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def _dataset(namespace: str, version: DatasetVersion, role: str) -> dict[str, Any]:
    """A dataset as an input or output of a job run (`role` is "input" or "output")."""
    facets: dict[str, Any] = {
        "version": {"_producer": PRODUCER, "_schemaURL": VERSION_FACET, "datasetVersion": str(version.version)}
    }
    if version.table_schema:
        facets["schema"] = {
            "_producer": PRODUCER,
            "_schemaURL": SCHEMA_FACET,
            "fields": [{"name": c["name"], "type": c["type"]} for c in version.table_schema],
        }
    return {"namespace": namespace, "name": version.dataset, "facets": facets, f"{role}Facets": {}}


def _model(namespace: str, version_id: str) -> dict[str, Any]:
    """A registered model version as an output dataset of the run that produced it."""
    name, _, number = version_id.rpartition("/")
    facets = {"version": {"_producer": PRODUCER, "_schemaURL": VERSION_FACET, "datasetVersion": number}}
    return {"namespace": f"{namespace}/models", "name": name, "facets": facets, "outputFacets": {}}


def _event(kind: str, ms: int, run_id: str, job: str, inputs: list[Any], outputs: list[Any]) -> dict[str, Any]:
    return {
        "eventType": kind,
        "eventTime": _time(ms),
        "producer": PRODUCER,
        "schemaURL": SPEC,
        "run": {"runId": run_id, "facets": {}},
        "job": {"namespace": JOB_NAMESPACE, "name": job, "facets": {}},
        "inputs": inputs,
        "outputs": outputs,
    }


def export_events(ctx: Context) -> list[dict[str, Any]]:
    """START and COMPLETE/FAIL/ABORT events for every active run and every derived dataset version."""
    namespace = f"shipyard://{ctx.workspace.root.name}"
    with ctx.store.read() as conn:
        versions = all_versions(conn)
        edges = all_edges(conn)
        run_rows = active_runs(conn)
    inputs: dict[str, list[Any]] = defaultdict(list)
    outputs: dict[str, list[Any]] = defaultdict(list)
    parents: dict[str, list[Any]] = defaultdict(list)
    for e in edges:
        if e.relation == "input" and e.dst_kind == "run" and e.src_id in versions:
            inputs[e.dst_id].append(_dataset(namespace, versions[e.src_id], "input"))
        elif e.relation == "output" and e.src_kind == "run" and e.dst_id in versions:
            outputs[e.src_id].append(_dataset(namespace, versions[e.dst_id], "output"))
        elif e.relation == "output" and e.src_kind == "run" and e.dst_kind == "model_version":
            outputs[e.src_id].append(_model(namespace, e.dst_id))
        elif e.relation == "derived" and e.dst_kind == "dataset_version" and e.src_id in versions:
            parents[e.dst_id].append(_dataset(namespace, versions[e.src_id], "input"))
    events: list[dict[str, Any]] = []
    for r in run_rows:
        run_uuid = str(uuid.UUID(hex=r.run_id))
        job = f"{r.experiment}.{r.name}"
        events.append(_event("START", r.start_time, run_uuid, job, inputs[r.run_id], outputs[r.run_id]))
        if r.status in _ENDINGS and r.end_time is not None:
            events.append(_event(_ENDINGS[r.status], r.end_time, run_uuid, job, inputs[r.run_id], outputs[r.run_id]))
    for vid, sources in parents.items():
        if vid not in versions:
            continue
        version = versions[vid]
        run_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{vid}"))
        job = f"dataset.{version.dataset}"
        produced = [_dataset(namespace, version, "output")]
        events.append(_event("START", version.created, run_uuid, job, sources, produced))
        events.append(_event("COMPLETE", version.created, run_uuid, job, sources, produced))
    return events
