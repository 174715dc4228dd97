"""Dataset versions meet the file system: status of a folder, checkout, loading a table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.context import Context
from shipyard.data.records import DatasetVersion, StatusReport
from shipyard.data.refs import check_dataset_name
from shipyard.data.scan import digests, walk
from shipyard.data.versions import get_version, manifest, stat_cache
from shipyard.errors import ConflictError, NotFoundError, ValidationError
from shipyard.store.blobs import hash_file

if TYPE_CHECKING:
    import pandas as pd


def status(ctx: Context, name: str, path: str | os.PathLike[str]) -> StatusReport:
    """What changed in `path` since the latest version, reading only files whose stat changed."""
    check_dataset_name(name)
    root = Path(path).expanduser()
    try:
        base: DatasetVersion | None = get_version(ctx, name)
    except NotFoundError:
        base = None
    files = walk(root)
    cache = stat_cache(ctx)
    try:
        current, files_read = digests(files, cache, root, lambda stat: hash_file(stat.path)[0])
    finally:
        cache.close()
    report = StatusReport(dataset=name, base=base.version_id if base else None, files_read=files_read)
    recorded = {e.path: e.digest for e in manifest(ctx, base)} if base else {}
    for rel, digest in sorted(current.items()):
        if rel not in recorded:
            report.added.append(rel)
        elif recorded[rel] != digest:
            report.modified.append(rel)
        else:
            report.unchanged += 1
    report.removed = sorted(set(recorded) - set(current))
    return report


def checkout(ctx: Context, ref: str, dest: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
    """Write a version's files into folder `dest`, each verified against its digest."""
    version = get_version(ctx, ref)
    target = Path(dest).expanduser()
    if target.exists() and not target.is_dir():
        raise ValidationError(f"Checkout destination {target} is a file; give a folder.")
    entries = manifest(ctx, version)
    if not force:
        clashes = [e.path for e in entries if (target / e.path).exists()]
        if clashes:
            raise ConflictError(
                f"{len(clashes)} file(s) of {version.version_id} already exist in {target} (e.g. {clashes[0]}). "
                "Choose an empty folder, or pass --force to overwrite them."
            )
    written = []
    for entry in entries:
        out = target / entry.path
        if out.is_file() and out.stat().st_size == entry.size and hash_file(out)[0] == entry.digest:
            written.append(out)
            continue
        written.append(ctx.blobs.get_file(entry.digest, out))
    return written


def load(ctx: Context, ref: str) -> pd.DataFrame:
    """A table version as a pandas DataFrame, read from its verified canonical Parquet form."""
    import io

    import pyarrow.parquet as pq

    version = get_version(ctx, ref)
    if version.table_digest is None:
        raise ValidationError(
            f"{version.version_id} is a set of files, not a table; use `shipyard data checkout` to get its files."
        )
    data = ctx.blobs.get_bytes(version.table_digest)
    return pq.read_table(io.BytesIO(data)).to_pandas()


def load_arrow(ctx: Context, version: DatasetVersion, columns: list[str] | None = None) -> Any:
    import io

    import pyarrow.parquet as pq

    if version.table_digest is None:
        raise ValidationError(f"{version.version_id} is a set of files, not a table.")
    return pq.read_table(io.BytesIO(ctx.blobs.get_bytes(version.table_digest)), columns=columns)
