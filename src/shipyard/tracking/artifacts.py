"""Artifacts of runs: fetching them back, verified, from the blob store."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select

from shipyard.context import Context
from shipyard.errors import NotFoundError, ValidationError, did_you_mean
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
    """Copy an artifact to `dest`, verifying its digest. `dest` is a folder to put it in when it exists
    as one or ends with a slash (`out/`, created if missing), else the file to write."""
    digest = artifact_digest(ctx, run_id, path)
    target = Path(dest)
    if target.is_dir() or os.fspath(dest).endswith(("/", os.sep)):
        target = target / Path(path).name
    try:
        return ctx.blobs.get_file(digest, target)
    except (NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError) as exc:
        blocking = next((p for p in target.parents if p.exists()), None)
        why = f"{blocking} is a file, not a folder" if blocking and not blocking.is_dir() else f"{exc.strerror} ({exc.filename})"
        raise ValidationError(
            f"Cannot write artifact '{path}' to {target}: {why}. Choose a file or folder you can write to.",
            path=str(target),
        ) from None


def read_artifact(ctx: Context, run_id: str, path: str) -> bytes:
    return ctx.blobs.get_bytes(artifact_digest(ctx, run_id, path))
