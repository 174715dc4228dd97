"""The prediction log's storage: one Parquet blob per model version per flush, one store row per blob, and
reading them back for monitoring.

A blob's columns: request_id, row (its index within the request), timestamp (UTC), route, latency_ms, the
input features as typed columns, prediction, and probabilities (a list per row) when any request asked for
them. A feature whose name is one of those columns is stored as `input:NAME`."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from shipyard.context import Context
from shipyard.errors import ValidationError
from shipyard.store.db import now_ms
from shipyard.store.tables import prediction_batches

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shipyard.serving.predlog import Prediction

COLUMNS = ("request_id", "row", "timestamp", "route", "latency_ms")
OUTPUTS = ("prediction", "probabilities")
DEPLOYMENT_COLUMNS = ("deployment", "deployment_route", "error")
#: Names a feature cannot keep in a blob (read_predictions adds `version`).
RESERVED = frozenset((*COLUMNS, *OUTPUTS, *DEPLOYMENT_COLUMNS, "version"))
FEATURE_PREFIX = "input:"


@dataclass
class Batch:
    """The Parquet bytes of one model version's requests of a flush, and what its store row says."""

    model: str
    version: int
    data: bytes
    entries: list[Prediction]
    rows: int
    first: float
    last: float


def build_batches(entries: Sequence[Prediction]) -> list[Batch]:
    """One batch per (model, version), in the order of their first request. The same entries give the same
    bytes, so a batch written again (after a crash between the blob and its row) is recognised by digest."""
    import pyarrow.parquet as pq

    groups: dict[tuple[str, int], list[Prediction]] = {}
    for entry in entries:
        groups.setdefault((entry.model, int(entry.version)), []).append(entry)
    batches = []
    for (model, version), group in groups.items():
        table = to_table(group)
        table = table.replace_schema_metadata({
            **(table.schema.metadata or {}),
            b"shipyard.model": model.encode(), b"shipyard.version": str(version).encode(),
        })
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        stamps = [e.timestamp for e in group]
        batches.append(Batch(model, version, buffer.getvalue(), group, table.num_rows, min(stamps), max(stamps)))
    return batches


def to_table(entries: Sequence[Prediction]) -> pa.Table:
    """The Arrow table of one model version's requests, one row per predicted row."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    counts = np.array([len(e.inputs) for e in entries], dtype=np.int64)
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    columns: dict[str, pa.Array] = {
        "request_id": pa.array(np.repeat(np.array([str(e.request_id) for e in entries], dtype=object), counts),
                               pa.string()),
        "row": pa.array(np.arange(total, dtype=np.int64) - np.repeat(starts, counts), pa.int32()),
        "timestamp": pa.array(np.repeat(np.array([round(e.timestamp * 1e6) for e in entries], dtype=np.int64),
                                        counts), pa.timestamp("us", tz="UTC")),
        "route": pa.array(np.repeat(np.array([str(e.route) for e in entries], dtype=object), counts), pa.string()),
        "latency_ms": pa.array(np.repeat(np.array([float(e.latency_ms) for e in entries]), counts), pa.float64()),
    }
    for extra in DEPLOYMENT_COLUMNS:  # only in batches with requests served through a deployment
        values = [getattr(e, extra, None) for e in entries]
        if any(v is not None for v in values):
            columns[extra] = pa.array(np.repeat(np.array(values, dtype=object), counts), pa.string())
    features = pd.concat([e.inputs for e in entries], ignore_index=True, sort=False) if entries else pd.DataFrame()
    names = []
    for name in features.columns:
        stored = f"{FEATURE_PREFIX}{name}" if str(name) in RESERVED else str(name)
        columns[stored] = _array(features[name])
        names.append([stored, str(name)])
    columns["prediction"] = _predictions(entries, counts)
    probabilities = _probabilities(entries, counts)
    if probabilities is not None:
        columns["probabilities"] = probabilities
    table = pa.table(columns)
    return table.replace_schema_metadata({b"shipyard.features": json.dumps(names).encode()})


def _array(values: Any) -> pa.Array:
    """A typed Arrow column; values Arrow cannot type as one kind (text mixed with numbers) become text."""
    import pandas as pd
    import pyarrow as pa

    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
        return pa.array([None if _missing(v) else str(v) for v in pd.Series(values)], pa.string())


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _predictions(entries: Sequence[Prediction], counts: Any) -> pa.Array:
    """One value per row; a model that predicts several values per row gets a list per row."""
    import numpy as np

    arrays = [np.asarray(e.outputs) for e in entries]
    if all(a.ndim == 1 and len(a) == n for a, n in zip(arrays, counts, strict=True)):
        return _array(np.concatenate(arrays) if arrays else np.array([], dtype=float))
    values: list[Any] = []
    for array, n in zip(arrays, counts, strict=True):
        fits = array.ndim >= 1 and len(array) == n
        values.extend(array.tolist() if fits else [None] * int(n))  # a malformed entry keeps its inputs
    return _array(values)


def _probabilities(entries: Sequence[Prediction], counts: Any) -> pa.Array | None:
    """A list of class probabilities per row; null for rows of requests that did not ask for them."""
    import numpy as np
    import pyarrow as pa

    if all(e.probabilities is None for e in entries):
        return None
    offsets, values, missing = [0], [], []
    for entry, n in zip(entries, counts, strict=True):
        array = None if entry.probabilities is None else np.asarray(entry.probabilities, dtype=np.float64)
        if array is not None and array.ndim == 2 and len(array) == n:
            base, width = offsets[-1], array.shape[1]
            values.append(array.reshape(-1))
            offsets.extend(base + width * (i + 1) for i in range(int(n)))
            missing.extend([False] * int(n))
        else:
            offsets.extend([offsets[-1]] * int(n))
            missing.extend([True] * int(n))
    flat = np.concatenate(values) if values else np.array([], dtype=np.float64)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, pa.float64()),
                                    mask=pa.array(missing, pa.bool_()))


def store_batch(ctx: Context, batch: Batch) -> str:
    """Write the blob, then its row (with its audit event). Idempotent: a batch already stored is kept once.

    The blob goes first so a row never names a missing blob; until the row commits, the blob's young age
    keeps garbage collection off it, and every retry writes it again, which renews it."""
    info = ctx.blobs.put_bytes(batch.data)
    row = {"model": batch.model, "version": batch.version, "digest": info.digest, "size": info.size,
           "requests": len(batch.entries), "rows": batch.rows, "first_timestamp": round(batch.first * 1000),
           "last_timestamp": round(batch.last * 1000), "written_at": now_ms(), "host": socket.gethostname()[:255],
           "pid": os.getpid()}
    payload = {k: row[k] for k in ("digest", "requests", "rows")}
    with ctx.store.mutation(ctx.actor, "predictions.log", "model_version", f"{batch.model}/{batch.version}",
                            payload) as conn:
        conn.execute(ctx.store.insert_or_ignore(prediction_batches, ["digest"]), row)
    return info.digest


def stored_batches(ctx: Context, model: str, version: int | None = None, since: float | None = None,
                   until: float | None = None, *, newest_first: bool = False) -> list[Any]:
    c = prediction_batches.c
    query = select(prediction_batches).where(c.model == model)
    if version is not None:
        query = query.where(c.version == version)
    if since is not None:
        query = query.where(c.last_timestamp >= math.floor(since * 1000))
    if until is not None:
        query = query.where(c.first_timestamp < math.ceil(until * 1000))
    order = (c.last_timestamp.desc(), c.id.desc()) if newest_first else (c.first_timestamp, c.id)
    with ctx.store.read() as conn:
        return list(conn.execute(query.order_by(*order)))


def read_predictions(ctx: Context, model: str, version: int | None = None, since: float | dt.datetime | None = None,
                     *, columns: Sequence[str] | None = None, until: float | dt.datetime | None = None,
                     deployment: str | None = None, last_rows: int | None = None) -> pd.DataFrame:
    """The logged requests of a model (one version, or all), one row per predicted row, oldest first.

    `since` and `until` (unix seconds or datetimes; naive means UTC) keep requests that arrived in
    [since, until); `deployment` those served through that deployment; `last_rows` the newest that many rows
    (reading blobs newest first, and no more of them than it takes). `columns` reads only those (plus
    `version`). Every blob is verified against its digest as it is read."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from shipyard.models.registry import get_model_version
    from shipyard.models.refs import check_model_name

    get_model_version(ctx, check_model_name(model))  # an unknown model: NotFoundError with a suggestion
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValidationError(f"Invalid version {version!r}: expected a positive number, e.g. 2.")
    if last_rows is not None and (isinstance(last_rows, bool) or not isinstance(last_rows, int) or last_rows < 1):
        raise ValidationError(f"Invalid last_rows {last_rows!r}: expected a positive number of rows, e.g. 5000.")
    start, end = _since(since), _since(until, "until")
    wanted_columns = None if columns is None else [*columns, *(["deployment"] if deployment is not None else []),
                                                   *(["timestamp"] if last_rows is not None else [])]
    tables: list[pa.Table] = []
    kept, oldest = 0, math.inf
    for batch in stored_batches(ctx, model, version, start, end, newest_first=last_rows is not None):
        if last_rows is not None and kept >= last_rows and batch.last_timestamp / 1000 < oldest:
            break  # every row of this batch and the older ones is older than the newest last_rows rows
        data = ctx.blobs.get_bytes(batch.digest)
        if deployment is not None and not _may_hold(pq.ParquetFile(pa.BufferReader(data)).metadata, "deployment",
                                                    deployment):
            continue  # another deployment's requests: many deployments of one version share its log
        wanted = None
        if wanted_columns is not None:
            names = pq.read_schema(pa.BufferReader(data)).names
            wanted = [c for c in dict.fromkeys(wanted_columns) if c in names and c != "version"]
        table = pq.read_table(pa.BufferReader(data), columns=wanted)
        keep = None
        if "timestamp" in table.column_names:
            stamps = table["timestamp"]
            for bound, compare in ((start, pc.greater_equal), (end, pc.less)):
                if bound is not None:
                    mask = compare(stamps, pa.scalar(round(bound * 1e6), pa.timestamp("us", tz="UTC")))
                    keep = mask if keep is None else pc.and_(keep, mask)
        if deployment is not None:
            mask = (pc.equal(table["deployment"], deployment) if "deployment" in table.column_names
                    else pa.array([False] * table.num_rows))
            keep = mask if keep is None else pc.and_(keep, mask)
        if keep is not None:
            table = table.filter(keep)
        if last_rows is not None and table.num_rows:
            kept += table.num_rows
            oldest = min(oldest, pc.min(table["timestamp"]).value / 1e6)
        table = table.replace_schema_metadata(None)
        tables.append(table.append_column("version", pa.array([batch.version] * table.num_rows, pa.int32())))
    if not tables:
        return _empty(columns)
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    identity = [c for c in ("request_id", "row", "timestamp", "version") if c in frame.columns]
    if len(identity) == 4:  # a batch spilled at shutdown while its write was still going on may be stored twice
        frame = frame.drop_duplicates(subset=identity + [c for c in DEPLOYMENT_COLUMNS if c in frame.columns],
                                      ignore_index=True)
    if last_rows is not None or len(tables) > 1:
        order = [c for c in ("timestamp", "request_id", "row") if c in frame.columns]
        frame = frame.sort_values(order, kind="stable", ignore_index=True) if order else frame
    if last_rows is not None:
        frame = frame.iloc[-last_rows:].reset_index(drop=True)
    if columns is not None:
        frame = frame[[c for c in frame.columns if c in {*columns, "version"}]]
    first = [c for c in (*COLUMNS[:3], "version", *COLUMNS[3:]) if c in frame.columns]
    last = [c for c in OUTPUTS if c in frame.columns]
    middle = [c for c in frame.columns if c not in first and c not in last]
    return frame[[*first, *middle, *last]]


def _may_hold(metadata: pq.FileMetaData, column: str, value: str) -> bool:
    """Whether a blob may hold rows whose text `column` is `value`, by its row groups' statistics: without the
    column it holds none; without statistics (or text ones) it may."""
    for group in range(metadata.num_row_groups):
        for index in range(metadata.num_columns):
            chunk = metadata.row_group(group).column(index)
            if chunk.path_in_schema == column:
                stats = chunk.statistics
                if stats is None or not stats.has_min_max or not isinstance(stats.min, str) \
                        or not isinstance(stats.max, str) or stats.min <= value <= stats.max:
                    return True
    return False


def _empty(columns: Sequence[str] | None) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame({"request_id": pd.Series(dtype=object), "row": pd.Series(dtype="int32"),
                          "timestamp": pd.Series(dtype="datetime64[us, UTC]"), "version": pd.Series(dtype="int32"),
                          "route": pd.Series(dtype=object), "latency_ms": pd.Series(dtype=float),
                          "prediction": pd.Series(dtype=object)})
    return frame if columns is None else frame[[c for c in frame.columns if c in {*columns, "version"}]]


def _since(since: float | dt.datetime | None, name: str = "since") -> float | None:
    if since is None:
        return None
    if isinstance(since, dt.datetime):
        return (since if since.tzinfo else since.replace(tzinfo=dt.timezone.utc)).timestamp()
    if isinstance(since, bool) or not isinstance(since, (int, float)) or not math.isfinite(since):
        raise ValidationError(f"Invalid {name} {since!r}: give unix seconds (e.g. time.time() - 3600) or a datetime.")
    return float(since)
