"""Dataset versions: snapshot a file, a folder or a table into a new immutable version, and find versions."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from shipyard.context import Context
from shipyard.data import formats
from shipyard.data.records import AddResult, DatasetVersion, ManifestEntry
from shipyard.data.refs import check_dataset_name, parse_ref, version_id
from shipyard.data.scan import digests, walk
from shipyard.data.statcache import FileStat, StatCache
from shipyard.errors import ConflictError, NotFoundError, ValidationError, did_you_mean
from shipyard.store.db import now_ms
from shipyard.store import lineage
from shipyard.store.lineage import Node
from shipyard.store.tables import dataset_files, dataset_versions, datasets

KINDS = ("auto", "files", "table")

DATASET_VERSION = lineage.register_kind("dataset_version", "a version of a dataset")


def stat_cache(ctx: Context) -> StatCache:
    return StatCache(ctx.workspace.state_dir / "statcache.db")


def manifest_digest(entries: Sequence[ManifestEntry]) -> str:
    body = "\n".join(f"{e.digest} {e.size} {e.path}" for e in sorted(entries, key=lambda e: e.path))
    return hashlib.sha256(body.encode()).hexdigest()


def add_version(
    ctx: Context,
    name: str,
    source: str | os.PathLike[str] | Any,
    *,
    message: str | None = None,
    kind: str = "auto",
    key: Sequence[str] | None = None,
    parents: Sequence[str] = (),
    sources: Sequence[tuple[Node, str]] = (),
    progress: Callable[[int, int], None] | None = None,
) -> AddResult:
    """Snapshot `source` (a path, a pandas DataFrame or a pyarrow Table) as the next version of dataset `name`.
    `sources` are other lineage nodes it comes from, with their relation, recorded with the version.

    Content identical to the latest version makes no new version (created=False)."""
    started = time.perf_counter()
    check_dataset_name(name)
    if kind not in KINDS:
        raise ValidationError(f"Unknown kind {kind!r}: use one of {', '.join(KINDS)}.")
    key_columns = list(key or [])
    parent_ids = [_resolve_parent(ctx, p) for p in parents]
    if isinstance(source, (str, os.PathLike)):
        if not os.fspath(source).strip():
            raise ValidationError(f"The path to add is empty ({source!r}): name a file, a folder or a table.")
        path = Path(source).expanduser()
        if not path.exists():
            raise NotFoundError(f"Path {path} does not exist. Check the path.")
        is_table = path.is_file() and (kind == "table" or (kind == "auto" and formats.table_format(path) is not None))
        if kind == "table" and not path.is_file():
            raise ValidationError(f"{path} is a folder; a table is one file ({', '.join(formats.TABLE_FORMATS)}).")
        if kind == "table" and formats.table_format(path) is None:
            formats.read_table(path)  # raises the unsupported-type error
        source_text = str(path.resolve())
        table = None
        if is_table:
            # Unchanged since the latest version (by the stat cache alone)? Then nothing is read.
            latest = _latest(ctx, name)
            known = _cached_entry(ctx, path)
            if latest is not None and known is not None and latest.manifest_digest == manifest_digest([known]):
                return AddResult(latest, False, 1, 0, time.perf_counter() - started)
            table = formats.read_table(path)  # a malformed file fails here, before anything is stored
            _check_keys(table, key_columns)
        elif key_columns:
            raise ValidationError("--key applies to tables; this source is versioned as files.")
        entries, files_read = _snapshot_files(ctx, path, progress)
    else:
        table = formats.from_frame(source)
        _check_keys(table, key_columns)
        files_read = 0
        source_text = f"{type(source).__module__.split('.')[0]}.{type(source).__name__}"
        entries = []
    table_digest = schema = profile = None
    row_count = None
    if table is not None:
        parquet = formats.to_parquet_bytes(table)
        info = ctx.blobs.put_bytes(parquet)
        table_digest = info.digest
        if not entries:  # a DataFrame: its canonical Parquet form is its content
            entries = [ManifestEntry("data.parquet", info.size, info.digest)]
        schema = formats.schema_json(table)
        row_count = table.num_rows
        from shipyard.data.profile import profile_table

        profile = profile_table(table)
    version = _commit(
        ctx, name, entries, kind="table" if table is not None else "files", row_count=row_count,
        table_digest=table_digest, schema=schema, profile=profile, key_columns=key_columns or None,
        source=source_text, message=message, parent_ids=parent_ids, sources=sources,
    )
    created = version is not None
    if version is None:
        version = _latest(ctx, name)
        assert version is not None
    return AddResult(version, created, len(entries), files_read, time.perf_counter() - started)


def _check_keys(table: Any, key_columns: list[str]) -> None:
    missing = [c for c in key_columns if c not in table.column_names]
    if missing:
        raise ValidationError(
            f"Key column {missing[0]!r} is not in the table.{did_you_mean(missing[0], table.column_names)} "
            f"Columns: {', '.join(table.column_names)}."
        )


def _cached_entry(ctx: Context, path: Path) -> ManifestEntry | None:
    """The manifest entry of a single file, when the stat cache vouches for its digest."""
    from shipyard.data.statcache import cached_digest

    st = path.stat()
    stat = FileStat(str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    cache = stat_cache(ctx)
    try:
        digest = cached_digest(cache.lookup(stat.path), stat)
    finally:
        cache.close()
    return ManifestEntry(path.name, stat.size, digest) if digest else None


def _snapshot_files(
    ctx: Context, path: Path, progress: Callable[[int, int], None] | None
) -> tuple[list[ManifestEntry], int]:
    files = walk(path)
    if not files:
        raise ValidationError(f"{path} holds no files; there is nothing to version.")
    total = sum(s.size for s in files.values())
    done = [0]

    def advance(nbytes: int) -> None:
        done[0] += nbytes
        if progress:
            progress(done[0], total)

    def store(stat: FileStat) -> str:
        return ctx.blobs.put_file(stat.path, sync=False).digest

    cache = stat_cache(ctx)
    try:
        found, files_read = digests(files, cache, path, store, progress=advance)
        # Digests that came from the cache must still be in the blob store (it may be new, or collected),
        # and are renewed so garbage collection leaves them alone until this version commits.
        absent = {d for d in set(found.values())} - ctx.blobs.renew(set(found.values()))
        for rel, digest in found.items():
            if digest in absent:
                found[rel] = store(files[rel])
                absent.discard(digest)
    finally:
        cache.close()
    ctx.blobs.sync()
    entries = [ManifestEntry(rel, files[rel].size, digest) for rel, digest in sorted(found.items())]
    return entries, files_read


class _Unchanged(Exception):
    """Raised inside the mutation when the content is the latest version's: leaves it without a write."""


def _commit(
    ctx: Context,
    name: str,
    entries: list[ManifestEntry],
    *,
    kind: str,
    row_count: int | None,
    table_digest: str | None,
    schema: list[dict[str, Any]] | None,
    profile: dict[str, Any] | None,
    key_columns: list[str] | None,
    source: str,
    message: str | None,
    parent_ids: list[str],
    sources: Sequence[tuple[Node, str]] = (),
) -> DatasetVersion | None:
    """Insert the version and its manifest in one audited transaction; None when unchanged."""
    digest = manifest_digest(entries)
    total = sum(e.size for e in entries)
    payload = {"kind": kind, "files": len(entries), "bytes": total, "rows": row_count,
               "manifest_digest": digest, "source": source, "parents": parent_ids}
    if sources:
        payload["sources"] = [str(node) for node, _ in sources]
    now = now_ms()
    try:
        with ctx.store.mutation(ctx.actor, "dataset.add_version", "dataset", name, payload) as conn:
            latest = _latest_row(conn, name)
            if latest is not None and latest.manifest_digest == digest:
                raise _Unchanged  # rolls the transaction back: no audit event for nothing
            if latest is None:
                stmt = ctx.store.insert_or_ignore(datasets, ["name"])
                conn.execute(stmt, {"name": name, "created": now, "created_by": ctx.actor})
            number = (latest.version if latest is not None else 0) + 1
            vid = version_id(name, number)
            payload["version"] = number  # the audit event is appended as the transaction ends
            conn.execute(
                dataset_versions.insert(),
                {
                    "version_id": vid, "dataset": name, "version": number, "kind": kind,
                    "manifest_digest": digest, "file_count": len(entries), "total_bytes": total,
                    "row_count": row_count, "table_digest": table_digest,
                    "table_schema": json.dumps(schema) if schema is not None else None,
                    "profile": json.dumps(profile, allow_nan=False) if profile is not None else None,
                    "key_columns": json.dumps(key_columns) if key_columns else None,
                    "source": source, "message": message, "created": now, "created_by": ctx.actor,
                },
            )
            ctx.store.insert_many(
                conn, dataset_files, ("version_id", "path", "size", "digest"),
                [(vid, e.path, e.size, e.digest) for e in entries],
            )
            lineage.add_edges(conn, [(Node(DATASET_VERSION, parent), Node(DATASET_VERSION, vid), "derived")
                                     for parent in parent_ids])
            lineage.add_edges(conn, [(node, Node(DATASET_VERSION, vid), relation) for node, relation in sources])
    except _Unchanged:
        return None
    except DBIntegrityError as exc:
        raise ConflictError(
            f"Another process added a version of '{name}' at the same moment; nothing was written by this "
            "one. Run the command again."
        ) from exc
    return get_version(ctx, f"{name}@{number}")


def _latest_row(conn: Connection, name: str) -> Any:
    return conn.execute(
        select(dataset_versions).where(dataset_versions.c.dataset == name)
        .order_by(dataset_versions.c.version.desc()).limit(1)
    ).first()


def _latest(ctx: Context, name: str) -> DatasetVersion | None:
    with ctx.store.read() as conn:
        row = _latest_row(conn, name)
    return DatasetVersion.from_row(row) if row is not None else None


def _resolve_parent(ctx: Context, ref: str) -> str:
    return get_version(ctx, ref).version_id


def get_version(ctx: Context, ref: str) -> DatasetVersion:
    """NAME@V, NAME@latest or NAME; unknown names and versions say what exists."""
    parsed = parse_ref(ref)
    with ctx.store.read() as conn:
        if parsed.version is None:
            row = _latest_row(conn, parsed.dataset)
        else:
            row = conn.execute(
                select(dataset_versions).where(
                    dataset_versions.c.dataset == parsed.dataset, dataset_versions.c.version == parsed.version
                )
            ).first()
        if row is not None:
            return DatasetVersion.from_row(row)
        known = conn.execute(
            select(dataset_versions.c.version).where(dataset_versions.c.dataset == parsed.dataset)
            .order_by(dataset_versions.c.version)
        ).scalars().all()
        if not known:
            names = conn.execute(select(datasets.c.name)).scalars().all()
            raise NotFoundError(
                f"No dataset named '{parsed.dataset}'.{did_you_mean(parsed.dataset, names)} "
                f"Datasets: {', '.join(sorted(names)) or 'none yet'}. Add one with `shipyard data add`.",
                dataset=parsed.dataset,
            )
    versions = ", ".join(f"{parsed.dataset}@{v}" for v in known)
    raise NotFoundError(f"Dataset '{parsed.dataset}' has no version {parsed.version}. Versions: {versions}.",
                        dataset=parsed.dataset, version=parsed.version)


def all_versions(conn: Connection) -> dict[str, DatasetVersion]:
    """Every dataset version by id, on the caller's connection."""
    return {row.version_id: DatasetVersion.from_row(row) for row in conn.execute(select(dataset_versions))}


def list_datasets(ctx: Context) -> list[dict[str, Any]]:
    latest = (
        select(dataset_versions.c.dataset, func.max(dataset_versions.c.version).label("latest"),
               func.count().label("versions"))
        .group_by(dataset_versions.c.dataset).subquery()
    )
    query = (
        select(dataset_versions, latest.c.versions)
        .join(latest, (dataset_versions.c.dataset == latest.c.dataset) & (dataset_versions.c.version == latest.c.latest))
        .order_by(dataset_versions.c.dataset)
    )
    with ctx.store.read() as conn:
        rows = conn.execute(query).all()
    out = []
    for row in rows:
        version = DatasetVersion.from_row(row)
        out.append({"name": version.dataset, "versions": row.versions, "latest": version.to_dict(with_profile=False)})
    return out


def list_versions(ctx: Context, name: str) -> list[DatasetVersion]:
    check_dataset_name(name)
    get_version(ctx, name)  # raises with did-you-mean when unknown
    with ctx.store.read() as conn:
        rows = conn.execute(
            select(dataset_versions).where(dataset_versions.c.dataset == name).order_by(dataset_versions.c.version.desc())
        ).all()
    return [DatasetVersion.from_row(r) for r in rows]


def manifest(ctx: Context, version: DatasetVersion) -> list[ManifestEntry]:
    with ctx.store.read() as conn:
        rows = conn.execute(
            select(dataset_files.c.path, dataset_files.c.size, dataset_files.c.digest)
            .where(dataset_files.c.version_id == version.version_id).order_by(dataset_files.c.path)
        ).all()
    return [ManifestEntry(*row) for row in rows]
