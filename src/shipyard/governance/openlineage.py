"""Export lineage as OpenLineage run events (spec 2-0-2): one job run per tracked run (a pipeline's step
runs name the pipeline's run as their parent), and one per dataset version derived from others; and send
them to a collector's HTTP API. Plain dicts: no OpenLineage package is needed to export."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from typing import Any

from shipyard._version import __version__
from shipyard.context import Context
from shipyard.data.records import DatasetVersion
from shipyard.data.versions import all_versions
from shipyard.errors import BackendError, ValidationError
from shipyard.store.identity import store_id
from shipyard.store.lineage import all_edges
from shipyard.tracking.runs import active_runs

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
SCHEMA_FACET = "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
VERSION_FACET = "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
PARENT_FACET = "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet"
PRODUCER = f"https://pypi.org/project/shipyard-mlops/{__version__}/"
ENDPOINT = "api/v1/lineage"
_ENDINGS = {"finished": "COMPLETE", "failed": "FAIL", "killed": "ABORT"}


def namespace(ctx: Context) -> str:
    """The namespace of this workspace's jobs and datasets: `shipyard://` and the id of its store, which
    is made once with the store, so it is unique per store and stays when the folder moves."""
    with ctx.store.read() as conn:
        return f"shipyard://{store_id(conn)}"


def _time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def _run_uuid(run_id: str) -> str:
    return str(uuid.UUID(hex=run_id))


def _dataset(ns: str, version: DatasetVersion, role: str) -> dict[str, Any]:
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
    return {"namespace": ns, "name": version.dataset, "facets": facets, f"{role}Facets": {}}


def _model(ns: str, version_id: str) -> dict[str, Any]:
    """A registered model version as an output dataset of the run that produced it."""
    name, _, number = version_id.rpartition("/")
    facets = {"version": {"_producer": PRODUCER, "_schemaURL": VERSION_FACET, "datasetVersion": number}}
    return {"namespace": f"{ns}/models", "name": name, "facets": facets, "outputFacets": {}}


def _parent(ns: str, run_id: str, job: str) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": PARENT_FACET,
            "run": {"runId": _run_uuid(run_id)}, "job": {"namespace": ns, "name": job}}


def _event(kind: str, ms: int, run_id: str, ns: str, job: str, inputs: list[Any], outputs: list[Any],
           run_facets: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventType": kind,
        "eventTime": _time(ms),
        "producer": PRODUCER,
        "schemaURL": SPEC,
        "run": {"runId": run_id, "facets": run_facets},
        "job": {"namespace": ns, "name": job, "facets": {}},
        "inputs": inputs,
        "outputs": outputs,
    }


def export_events(ctx: Context) -> list[dict[str, Any]]:
    """START and COMPLETE/FAIL/ABORT events for every active run and every derived dataset version.

    A run's job is `EXPERIMENT.NAME`; a child run's (a pipeline's step) is its parent's job and its own
    name (`pipelines.train-credit.register`), and it carries a ParentRunFacet naming the parent run."""
    with ctx.store.read() as conn:
        ns = f"shipyard://{store_id(conn)}"
        versions = all_versions(conn)
        edges = all_edges(conn)
        run_rows = active_runs(conn)
    inputs: dict[str, list[Any]] = defaultdict(list)
    outputs: dict[str, list[Any]] = defaultdict(list)
    parents: dict[str, list[Any]] = defaultdict(list)
    for e in edges:
        if e.relation == "input" and e.dst_kind == "run" and e.src_id in versions:
            inputs[e.dst_id].append(_dataset(ns, versions[e.src_id], "input"))
        elif e.relation == "output" and e.src_kind == "run" and e.dst_id in versions:
            outputs[e.src_id].append(_dataset(ns, versions[e.dst_id], "output"))
        elif e.relation == "output" and e.src_kind == "run" and e.dst_kind == "model_version":
            outputs[e.src_id].append(_model(ns, e.dst_id))
        elif e.relation == "derived" and e.dst_kind == "dataset_version" and e.src_id in versions:
            parents[e.dst_id].append(_dataset(ns, versions[e.src_id], "input"))
    by_id = {r.run_id: r for r in run_rows}
    jobs: dict[str, str] = {}

    def job_of(run_id: str) -> str:
        if run_id not in jobs:
            row, chain, seen = by_id[run_id], [], {run_id}
            chain.append(row.name)
            while row.parent_id in by_id and row.parent_id not in seen:  # a parent that was deleted is left out
                seen.add(row.parent_id)
                row = by_id[row.parent_id]
                chain.append(row.name)
            jobs[run_id] = ".".join([row.experiment, *reversed(chain)])
        return jobs[run_id]

    events: list[dict[str, Any]] = []
    for r in run_rows:
        run_uuid = _run_uuid(r.run_id)
        job = job_of(r.run_id)
        facets = {"parent": _parent(ns, r.parent_id, job_of(r.parent_id))} if r.parent_id in by_id else {}
        events.append(_event("START", r.start_time, run_uuid, ns, job, inputs[r.run_id], outputs[r.run_id], facets))
        if r.status in _ENDINGS and r.end_time is not None:
            events.append(_event(_ENDINGS[r.status], r.end_time, run_uuid, ns, job, inputs[r.run_id],
                                 outputs[r.run_id], facets))
    for vid, sources in parents.items():
        if vid not in versions:
            continue
        version = versions[vid]
        run_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ns}/{vid}"))
        job = f"dataset.{version.dataset}"
        produced = [_dataset(ns, version, "output")]
        events.append(_event("START", version.created, run_uuid, ns, job, sources, produced, {}))
        events.append(_event("COMPLETE", version.created, run_uuid, ns, job, sources, produced, {}))
    return events


def lineage_endpoint(url: str) -> str:
    """The collector's lineage endpoint: `{url}/api/v1/lineage` (a URL already ending so is kept)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(f"The OpenLineage URL {url!r} is not an http(s) URL. Give the collector's base URL, "
                              "for example http://localhost:5000 (Marquez); events go to URL/api/v1/lineage.",
                              url=url)
    base = url.rstrip("/")
    return base if base.endswith("/" + ENDPOINT) else f"{base}/{ENDPOINT}"


def send_events(events: list[dict[str, Any]], url: str, *, api_key: str | None = None,
                timeout: float = 30.0) -> int:
    """POST each event as JSON to the collector's OpenLineage HTTP API, in order; return how many were sent.

    The first failure stops: an unreachable collector or an answer outside 2xx is a BackendError naming the
    endpoint, the event and (for an answer) its status, with how many events went before it."""
    import urllib.error
    import urllib.request

    endpoint = lineage_endpoint(url)
    headers = {"Content-Type": "application/json", "User-Agent": f"shipyard/{__version__}"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    for sent, event in enumerate(events):
        which = f"event {sent + 1} of {len(events)} ({event['eventType']} of job {event['job']['name']})"
        request = urllib.request.Request(endpoint, data=json.dumps(event).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace").strip()[:300]
            raise BackendError(
                f"The OpenLineage collector at {endpoint} answered {exc.code} {exc.reason} to {which}"
                + (f": {body}" if body else "") + f". {sent} event(s) were sent before it. "
                + ("Check the API key (--api-key)." if exc.code in (401, 403) else
                   "Check that the URL is the collector's base URL and that it accepts OpenLineage 2-0-2 events."),
                url=endpoint, status=exc.code, sent=sent,
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackendError(
                f"Cannot reach the OpenLineage collector at {endpoint}: {reason}. {sent} event(s) were sent. "
                "Check the URL and that the collector is running.",
                url=endpoint, sent=sent,
            ) from exc
    return len(events)
