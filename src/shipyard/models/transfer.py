"""Copying one registered version, record and artifact, into another store under the same number: what a
self-contained serving image carries so that `shipyard serve NAME/N` finds it there without the registry."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shipyard.context import Context
from shipyard.errors import ConflictError
from shipyard.models.loading import fetch_artifact
from shipyard.models.records import ModelVersion
from shipyard.models.registry import get_model_version
from shipyard.store.db import now_ms
from shipyard.store.tables import model_versions, registered_models


def copy_version(source: Context, version: ModelVersion, target: Context) -> ModelVersion:
    """Put `version` of `source`'s registry into `target`'s with its number, flavor, signature, environment
    and artifact (verified on the way). Its run and aliases stay behind: the run's id, which `target` does
    not know, is kept in the audit event with the store it came from. Refused when `target` already has
    another version under that number."""
    from shipyard.store.identity import store_id

    with source.store.read() as conn:
        origin = store_id(conn)
    with tempfile.TemporaryDirectory(prefix="shipyard-copy-") as tmp:
        path = fetch_artifact(source, version, Path(tmp))  # raises IntegrityError on a tampered blob
        target.blobs.put_file(path)
    payload: dict[str, Any] = {"version": version.version, "from_store": origin, "run_id": version.run_id,
                               "artifact_digest": version.artifact_digest}
    with target.store.mutation(target.actor, "model.copy", "model", version.model, payload) as conn:
        taken = conn.execute(select(model_versions.c.artifact_digest).where(
            model_versions.c.version_id == version.version_id)).scalar()
        if taken is not None:
            if taken == version.artifact_digest:
                raise ConflictError(f"{version.version_id} is already in this store; nothing was copied.",
                                    version=version.version_id)
            raise ConflictError(f"This store already has another {version.version_id} (artifact {taken[:12]}); "
                                "nothing was copied. Copy into an empty store.", version=version.version_id)
        conn.execute(target.store.insert_or_ignore(registered_models, ["name"]),
                     {"name": version.model, "created": now_ms(), "created_by": target.actor, "description": None})
        conn.execute(model_versions.insert(), {
            "version_id": version.version_id, "model": version.model, "version": version.version,
            "flavor": version.flavor, "artifact_digest": version.artifact_digest,
            "artifact_size": version.artifact_size, "flavor_meta": json.dumps(version.flavor_meta),
            "signature": json.dumps(version.signature) if version.signature else None,
            "environment": json.dumps(version.environment), "details": json.dumps(version.details, default=str),
            "metrics": json.dumps(version.metrics), "run_id": None, "dataset_version": version.dataset_version,
            "status": version.status, "description": version.description, "created": version.created,
            "created_by": version.created_by,
        })
    return get_model_version(target, version.version_id)
