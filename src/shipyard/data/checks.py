"""Schema contracts attached to datasets, and validation of versions against them (kept as evidence)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from shipyard.context import Context
from shipyard.data.refs import parse_ref
from shipyard.data.versions import get_version
from shipyard.data.workspace_files import load_arrow
from shipyard.errors import NotFoundError
from shipyard.store.db import now_ms
from shipyard.store.tables import data_validations

if TYPE_CHECKING:
    from shipyard.data.validation import ValidationReport

SCHEMA_DIR = "schemas"


def schema_path(ctx: Context, dataset: str) -> Path:
    """Where a dataset's editable schema contract lives: schemas/NAME.yaml in the workspace."""
    return ctx.workspace.root / SCHEMA_DIR / f"{dataset}.yaml"


def infer(ctx: Context, ref: str, *, output: str | os.PathLike[str] | None = None, key: list[str] | None = None) -> Path:
    """Infer a schema contract from a table version and write it as YAML (atomically)."""
    from shipyard.data.schema import infer_schema

    version = get_version(ctx, ref)
    table = load_arrow(ctx, version)
    schema = infer_schema(table, version.profile or {}, key=key or version.key_columns)
    target = Path(output) if output else schema_path(ctx, version.dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = schema.to_yaml()
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    payload = {"version": version.version_id, "path": str(target), "digest": hashlib.sha256(text.encode()).hexdigest()}
    with ctx.store.mutation(ctx.actor, "dataset.infer_schema", "dataset", version.dataset, payload):
        os.replace(tmp, target)
    return target


def validate(
    ctx: Context,
    ref: str,
    *,
    schema_file: str | os.PathLike[str] | None = None,
    reference: str | None = None,
    record: bool = True,
) -> tuple[ValidationReport, dict[str, Any]]:
    """Check a table version against its schema and a reference version's profile.

    The reference defaults to the previous version. Returns the report and what it was checked
    against; the result is stored as evidence unless record=False."""
    from shipyard.data.schema import load_schema
    from shipyard.data.validation import validate_table

    version = get_version(ctx, ref)
    path = Path(schema_file) if schema_file else schema_path(ctx, version.dataset)
    if not path.is_file():
        raise NotFoundError(
            f"No schema contract for '{version.dataset}' at {path}. Create one with "
            f"`shipyard data schema infer {version.dataset}@1` (then edit it), or pass --schema FILE."
        )
    text = path.read_text()
    schema = load_schema(text, source=str(path))
    reference_version = None
    if reference is not None:
        reference_version = get_version(ctx, reference)
    elif version.version > 1:
        reference_version = get_version(ctx, f"{version.dataset}@{version.version - 1}")
    table = load_arrow(ctx, version)
    report = validate_table(
        table,
        version.profile or {},
        schema,
        reference_profile=reference_version.profile if reference_version else None,
        previous_row_count=reference_version.row_count if reference_version else None,
    )
    context = {"version": version.version_id, "schema": str(path),
               "schema_digest": hashlib.sha256(text.encode()).hexdigest(),
               "reference": reference_version.version_id if reference_version else None}
    if record:
        summary = {"ok": report.ok, "errors": len(report.errors), "warnings": len(report.warnings), **context}
        with ctx.store.mutation(ctx.actor, "dataset.validate", "dataset_version", version.version_id, summary) as conn:
            conn.execute(
                data_validations.insert(),
                {"version_id": version.version_id, "ok": report.ok, "errors": len(report.errors),
                 "warnings": len(report.warnings), "schema_digest": context["schema_digest"],
                 "reference_version": context["reference"],
                 "report": json.dumps(report.to_dict(), allow_nan=False, default=str),
                 "created": now_ms(), "created_by": ctx.actor},
            )
    return report, context


def latest_validation(ctx: Context, ref: str) -> dict[str, Any] | None:
    """The newest stored validation of a version, or None."""
    version = get_version(ctx, str(parse_ref(ref)) if "@" in ref else ref)
    with ctx.store.read() as conn:
        row = conn.execute(
            select(data_validations).where(data_validations.c.version_id == version.version_id)
            .order_by(data_validations.c.id.desc()).limit(1)
        ).first()
    if row is None:
        return None
    return {"version": row.version_id, "ok": row.ok, "errors": row.errors, "warnings": row.warnings,
            "reference": row.reference_version, "created": row.created, "created_by": row.created_by,
            "report": json.loads(row.report)}
