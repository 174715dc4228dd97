"""The drift reference of a dataset version: from its stored profile when that is enough, else from one read of
the table, whose sketch is stored as a blob and found again, so a monitor never re-reads its reference."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from shipyard.errors import NotFoundError, ValidationError
from shipyard.monitoring.sketch import FORMAT, ColumnSketch, ReferenceSketch, is_numeric, kind_from, sketch_series

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from shipyard.context import Context
    from shipyard.data.records import DatasetVersion
    from shipyard.models.records import ModelVersion

_PROFILE_LABELS = {"true": "True", "false": "False"}  # profiles say true/false; pandas text says True/False


def reference_sketch(ctx: Context, dataset_version_ref: str, columns: list[str] | None = None) -> ReferenceSketch:
    """The reference for `columns` (default: all) of a table version (NAME@V). Categorical and boolean columns
    whose profile holds every category's count come from the profile; the others from a stored sketch of the
    table, made on first use by reading only those columns."""
    from shipyard.data.versions import get_version

    version = get_version(ctx, dataset_version_ref)
    if version.table_digest is None:
        raise ValidationError(f"{version.version_id} is a set of files, not a table; drift needs a table version.",
                              version=version.version_id)
    available = [str(c["name"]) for c in version.table_schema or []] or list((version.profile or {}).get("columns", {}))
    names = list(available) if columns is None else [str(c) for c in columns]
    missing = [n for n in names if n not in available]
    if missing:
        raise ValidationError(f"Column '{missing[0]}' is not in {version.version_id}; it has {', '.join(available)}.",
                              column=missing[0], version=version.version_id)
    profiled = (version.profile or {}).get("columns", {})
    found: dict[str, ColumnSketch] = {}
    for name in names:
        sketch = profile_sketch(profiled.get(name), int(version.row_count or 0))
        if sketch is not None:
            found[name] = sketch
    to_read = [n for n in names if n not in found]
    source = "profile"
    if to_read:
        stored, source = _sketched(ctx, version, to_read)
        found.update(stored.columns)
    return ReferenceSketch({n: found[n] for n in names}, int(version.row_count or 0), source, version.version_id,
                           to_read)


def profile_sketch(profile: dict[str, Any] | None, rows: int) -> ColumnSketch | None:
    """The sketch of a column from its profile, when the profile counts every category; else None (numeric
    profiles keep 7 quantiles and a 20-bin histogram, too coarse for a Wasserstein distance)."""
    if not profile or profile.get("kind") not in ("categorical", "boolean") or profile.get("distinct_approx"):
        return None
    top = profile.get("top") or []
    count = rows - int(profile.get("null_count") or 0)
    if profile.get("other_count") or len(top) != profile.get("distinct_count") or \
            sum(int(t["count"]) for t in top) != count:
        return None
    import numpy as np

    boolean = profile["kind"] == "boolean"
    labels = [_PROFILE_LABELS.get(t["value"], t["value"]) if boolean else str(t["value"]) for t in top]
    return ColumnSketch(kind_from(len(top), False), count, rows - count, False, len(top), categories=labels,
                        counts=np.array([int(t["count"]) for t in top], dtype=np.int64))


def sketch_table(table: pa.Table) -> dict[str, ColumnSketch]:
    """Sketch every column of an Arrow table, as the same columns of table.to_pandas() would be compared."""
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> ColumnSketch:
        return sketch_series(table.column(name).to_pandas())

    names = list(table.column_names)
    workers = min(len(names), os.cpu_count() or 1)
    if workers > 1 and table.num_rows >= 50_000:  # sorting and hashing release the GIL
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return dict(zip(names, pool.map(one, names), strict=True))
    return {name: one(name) for name in names}


def _sketched(ctx: Context, version: DatasetVersion, names: list[str]) -> tuple[ReferenceSketch, str]:
    """(a sketch of `names`, "sketch" when it was stored before or "data" when the table was read for it)."""
    assert version.table_digest is not None
    digest = _stored_sketch(ctx, version.table_digest, names)
    if digest is not None:
        try:
            return ReferenceSketch.from_bytes(ctx.blobs.get_bytes(digest)).subset(names), "sketch"
        except (NotFoundError, ValidationError):
            pass  # collected or unreadable: build it again
    sketch = ReferenceSketch(sketch_table(_read_table(ctx, version, names)), int(version.row_count or 0), "data",
                             version.version_id, names)
    _remember_sketch(ctx, version.table_digest, names, ctx.blobs.put_bytes(sketch.to_bytes()).digest)
    return sketch, "data"


def _read_table(ctx: Context, version: DatasetVersion, names: list[str]) -> pa.Table:
    from shipyard.data.workspace_files import load_arrow

    return load_arrow(ctx, version, names)


# Stored sketches: one row of reference_sketches per sketch, keyed by what it sketches, naming its blob (so
# garbage collection keeps it).

def _key(kind: str, *parts: str) -> str:
    import hashlib

    return f"{kind}:{FORMAT}:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _stored(ctx: Context, key: str) -> str | None:
    from sqlalchemy import select

    from shipyard.store.tables import reference_sketches

    with ctx.store.read() as conn:
        row = conn.execute(select(reference_sketches.c.digest).where(reference_sketches.c.key == key)).first()
    return None if row is None else str(row.digest)


def _remember(ctx: Context, key: str, digest: str, what: str) -> None:
    from shipyard.store.db import now_ms
    from shipyard.store.tables import reference_sketches

    with ctx.store.mutation(ctx.actor, "monitor.reference.sketch", "reference_sketch", key,
                            {"digest": digest, "of": what}) as conn:
        conn.execute(ctx.store.insert_or_update(reference_sketches, ["key"], ["digest", "created"]),
                     {"key": key, "digest": digest, "created": now_ms()})


def _stored_sketch(ctx: Context, table_digest: str, columns: list[str]) -> str | None:
    """The blob digest of a stored sketch of this table holding at least `columns`: the one of exactly those
    columns, else any other that covers them (a monitor asking for fewer columns reads nothing)."""
    from sqlalchemy import select

    from shipyard.store.tables import reference_sketches

    exact = _stored(ctx, _table_key(table_digest, columns))
    if exact is not None:
        return exact
    c = reference_sketches.c
    with ctx.store.read() as conn:
        rows = conn.execute(select(c.digest).where(c.key.like(_table_key(table_digest, None) + "%"))
                            .order_by(c.created.desc())).all()
    wanted = set(columns)
    for row in rows:
        try:
            if wanted <= set(ReferenceSketch.from_bytes(ctx.blobs.get_bytes(row.digest)).columns):
                return str(row.digest)
        except (NotFoundError, ValidationError):
            continue
    return None


def _remember_sketch(ctx: Context, table_digest: str, columns: list[str], digest: str) -> None:
    _remember(ctx, _table_key(table_digest, columns), digest, f"table {table_digest[:12]}")


def _table_key(table_digest: str, columns: list[str] | None) -> str:
    """table:FORMAT:TABLE_DIGEST:COLUMNS_DIGEST (a prefix of every key of the table when columns is None)."""
    import hashlib

    prefix = f"table:{FORMAT}:{table_digest}:"
    return prefix if columns is None else prefix + hashlib.sha256("\0".join(sorted(columns)).encode()).hexdigest()


def reference_predictions(ctx: Context, version: ModelVersion, dataset_version_ref: str) -> ColumnSketch | None:
    """The sketch of what the model version predicts on the reference data (the baseline of prediction drift),
    made once per model version and reference; None when the reference lacks the model's inputs."""
    import pandas as pd

    from shipyard.data.versions import get_version
    from shipyard.models.loading import load_version

    reference = get_version(ctx, dataset_version_ref)
    if reference.table_digest is None:
        return None
    key = _key("predictions", version.version_id, reference.table_digest)
    digest = _stored(ctx, key)
    if digest is not None:
        try:
            return ReferenceSketch.from_bytes(ctx.blobs.get_bytes(digest)).columns["prediction"]
        except (NotFoundError, ValidationError, KeyError):
            pass  # collected or unreadable: build it again
    inputs = [c["name"] for c in (version.signature or {}).get("inputs", [])]
    available = {str(c["name"]) for c in reference.table_schema or []}
    if not inputs or not set(inputs) <= available:
        return None
    frame = _read_table(ctx, reference, inputs).to_pandas()
    predicted = pd.Series(load_version(ctx, version).predict(frame), name="prediction")
    if predicted.ndim != 1 or (len(predicted) and isinstance(predicted.iloc[0], list | tuple)):
        return None
    sketch = ReferenceSketch({"prediction": sketch_series(predicted)}, len(predicted), "data",
                             reference.version_id, ["prediction"])
    _remember(ctx, key, ctx.blobs.put_bytes(sketch.to_bytes()).digest, f"predictions of {version.version_id}")
    return sketch.columns["prediction"]


# -- charts --------------------------------------------------------------------------------------------------

def distribution(sketch: ColumnSketch, current: pd.Series, bins: int = 20) -> dict[str, Any]:
    """Reference and current shares for a chart: `bins` equal bins over both sides' range for numeric columns,
    else the 20 commonest reference categories and "other"."""
    import numpy as np

    if bins < 1:
        raise ValidationError(f"bins must be at least 1, got {bins}.", bins=bins)
    cur = current.dropna()
    if sketch.kind == "numeric":
        if not is_numeric(cur):
            raise ValidationError(f"Column '{current.name}' is numeric in the reference but {cur.dtype} in the "
                                  "current data; convert it to numbers first.", column=str(current.name))
        x = cur.to_numpy(float)
        x = x[np.isfinite(x)]
        atoms = sketch.atoms()
        assert sketch.minimum is not None and sketch.maximum is not None, "numeric sketches keep their range"
        low, high = sketch.minimum, sketch.maximum
        if len(x):
            low, high = min(low, float(x.min())), max(high, float(x.max()))
        if low == high:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, bins + 1)
        # Each kept point stands for its weight of the reference: shares good to about 1e-4 per bin.
        weights = sketch.weights()
        reference = np.histogram(atoms, edges, weights=weights)[0] / (1.0 if weights is not None else len(atoms))
        shares = np.histogram(x, edges)[0] / len(x) if len(x) else np.zeros(bins)
        return {"kind": "numeric", "edges": edges.tolist(), "reference": reference.tolist(),
                "current": shares.tolist()}
    from shipyard.monitoring.sketch import string_counts

    left = sketch.category_counts()
    if left is None:
        raise ValidationError(f"The reference sketch of column '{current.name}' keeps no category counts.")
    right = string_counts(cur)[0]
    top = list(left.sort_values(ascending=False, kind="stable").index[:20])
    ref_total, cur_total = float(left.sum()), float(right.sum())
    ref_kept = left.reindex(top, fill_value=0).to_numpy(float)
    cur_kept = right.reindex(top, fill_value=0).to_numpy(float)
    categories = [str(c) for c in top]
    if len(left) > len(top) or not set(right.index) <= set(top):
        categories.append("other")
        ref_kept = np.append(ref_kept, ref_total - ref_kept.sum())
        cur_kept = np.append(cur_kept, cur_total - cur_kept.sum())
    return {"kind": "categorical", "categories": categories,
            "reference": (ref_kept / ref_total if ref_total else ref_kept).tolist(),
            "current": (cur_kept / cur_total if cur_total else cur_kept).tolist()}
