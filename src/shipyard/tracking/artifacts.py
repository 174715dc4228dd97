"""Artifacts of runs: fetching them back, verified, from the blob store."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select

from shipyard.context import Context
from shipyard.errors import NotFoundError, did_you_mean
from shipyard.store.tables import artifacts
from shipyard.tracking.runs import resolve_run_id


def artifact_digest(ctx: Context, run_id: str, path: str) -> str:
    run_id = resolve_run_id(ctx, run_id)
    with ctx.store.read() as conn:
        rows = dict(conn.execute(select(artifacts.c.path, artifacts.c.digest).where(artifacts.c.run_id == run_id)).all())
    if path not in rows:
        raise NotFoundError(
            f"Run {run_id} has no artifact '{path}'.{did_you_mean(path, rows)} "
            f"Artifacts: {', '.join(sorted(rows)) or 'none'}."
        )
    return rows[path]


def download_artifact(ctx: Context, run_id: str, path: str, dest: str | os.PathLike[str]) -> Path:
    """Copy an artifact to `dest` (a file, or a folder to put it in: one that exists, or any path ending
    in a slash, which is created), verifying its digest."""
    digest = artifact_digest(ctx, run_id, path)
    target = Path(dest)
    if target.is_dir() or str(dest).endswith(("/", os.sep)):
        target = target / Path(path).name
    return ctx.blobs.get_file(digest, target)


def read_artifact(ctx: Context, run_id: str, path: str) -> bytes:
    return ctx.blobs.get_bytes(artifact_digest(ctx, run_id, path))
