"""Which blobs garbage collection keeps: every column that holds a blob digest, in every table."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Table

from shipyard.store.blobs import BlobStore
from shipyard.store.db import MetadataStore
from shipyard.store.gc import collect_garbage, referenced_digests
from shipyard.store.tables import blob_references, metadata

# Columns named *digest that hold a hash of something, not the key of a stored blob.
NOT_BLOBS = {
    "dataset_versions.manifest_digest",  # hash of the file list; the files themselves are blobs
    "data_validations.schema_digest",  # hash of the schema a validation checked against
    "gate_results.policy_digest",  # hash of the gate policy a result was judged by
    "runs.policy_digest",  # hash of shipyard.yaml's lifecycle policy when the run started
}


def _name(column: Column[Any]) -> str:
    return f"{column.table.name}.{column.name}"


def _marked() -> list[Column[Any]]:
    return [c for table in metadata.sorted_tables for c in table.columns if c.info.get("blob")]


def test_every_digest_column_is_marked_as_a_blob_or_listed_as_a_hash() -> None:
    digest_columns = {_name(c) for t in metadata.sorted_tables for c in t.columns if c.name.endswith("digest")}
    marked = {_name(c) for c in _marked()}
    unclassified = digest_columns - marked - NOT_BLOBS
    assert not unclassified, (
        f"{sorted(unclassified)} may hold blob digests. Mark a blob column with info=BLOB in "
        "shipyard/store/tables.py (garbage collection keeps what it names), or add a hash column to NOT_BLOBS."
    )
    assert NOT_BLOBS <= digest_columns, f"NOT_BLOBS names columns that no longer exist: {NOT_BLOBS - digest_columns}"
    assert not NOT_BLOBS & marked, f"{NOT_BLOBS & marked} are marked as blobs and listed as hashes"
    assert {_name(c) for c in blob_references()} == marked


def _blob(column: Column[Any]) -> bytes:
    return f"the blob in {_name(column)}".encode()


def _blob_key(column: Column[Any]) -> str:
    return hashlib.sha256(_blob(column)).hexdigest()


def _row(table: Table) -> dict[str, Any]:
    """One row with every required column filled; a marked column holds its own digest. Foreign keys
    point at the one row of the referred table, which is inserted first (tables are sorted by them)."""
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.info.get("blob"):
            row[column.name] = _blob_key(column)
        elif column.nullable and not column.primary_key:
            row[column.name] = None
        elif column.foreign_keys:
            referred = next(iter(column.foreign_keys)).column
            row[column.name] = _row(referred.table)[referred.name]
        elif column.name.endswith("digest"):
            row[column.name] = hashlib.sha256(f"hash in {_name(column)}".encode()).hexdigest()
        else:
            kind = column.type.python_type
            length = getattr(column.type, "length", None) or 64
            row[column.name] = {str: f"{table.name}-{column.name}"[:length], int: 1, float: 1.0, bool: True}[kind]
    return row


def _needed(tables: list[Table]) -> list[Table]:
    """The tables holding blob columns and every table their required foreign keys lead to, parents first."""
    wanted: set[Table] = set()
    stack = list(tables)
    while stack:
        table = stack.pop()
        if table in wanted:
            continue
        wanted.add(table)
        stack += [fk.column.table for c in table.columns if not c.nullable for fk in c.foreign_keys]
    return [t for t in metadata.sorted_tables if t in wanted]


def test_gc_keeps_a_blob_referenced_from_each_marked_column(store_url: str, tmp_path: Path) -> None:
    marked = _marked()
    assert marked, "no column is marked as a blob: garbage collection would delete every blob"
    blobs = BlobStore(str(tmp_path / "blobs"))
    for column in marked:
        assert blobs.put_bytes(_blob(column)).digest == _blob_key(column)
    orphan = blobs.put_bytes(b"nobody references this").digest
    store = MetadataStore(store_url)
    try:
        with store.engine.begin() as conn:
            for table in _needed([c.table for c in marked]):
                conn.execute(table.insert(), _row(table))
        expected = {_blob_key(c) for c in marked}
        assert referenced_digests(store) == expected
        report = collect_garbage(store, blobs, "tester", grace_seconds=0)
    finally:
        store.dispose()
    assert report.removed == [orphan]
    assert {d for d in expected if not blobs.exists(d)} == set()
