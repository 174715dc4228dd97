"""Garbage collection of blobs that no metadata row references."""

from __future__ import annotations

from sqlalchemy import select, union

from shipyard.store.blobs import BlobStore, GcReport
from shipyard.store.db import MetadataStore
from shipyard.store.tables import blob_references


def referenced_digests(store: MetadataStore) -> set[str]:
    query = union(*[select(column.label("digest")) for column in blob_references()])
    with store.read() as conn:
        return set(conn.execute(query).scalars())


def collect_garbage(
    store: MetadataStore, blobs: BlobStore, actor: str, *, grace_seconds: float = 3600.0, dry_run: bool = False
) -> GcReport:
    """Delete unreferenced blobs older than the grace period; the sweep itself is audited."""
    report = blobs.gc(referenced_digests(store), grace_seconds=grace_seconds, dry_run=dry_run)
    if not dry_run and (report.removed or report.temp_removed):
        payload = {"removed": len(report.removed), "freed_bytes": report.freed_bytes,
                   "temp_removed": report.temp_removed, "digests": report.removed[:100]}
        with store.mutation(actor, "blobs.gc", "blob_store", blobs.url, payload):
            pass
    return report
