"""Run service functions: create, log, finish, fetch and delete runs. Every write is audited (the
heartbeat, which changes no record, is written by tracking/liveness.py)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select, update

from shipyard.context import Context
from shipyard.errors import ConflictError, NotFoundError, ValidationError, did_you_mean
from shipyard.store import lineage
from shipyard.store.db import now_ms
from shipyard.store.tables import artifacts, metric_latest, metrics, params, runs, tags
from shipyard.tracking import validation as check
from shipyard.tracking.liveness import HOST, LOST, is_lost
from shipyard.tracking.records import ArtifactRecord, MetricPoint, RunRecord

STATUSES = ("running", "finished", "failed", "killed")  # as stored; readers may also see LOST (derived)
RUN = lineage.register_kind("run", "a tracked run (a pipeline and each of its steps are runs too)")
_PREFIX_MIN = 4
# Prebuilt statements for the hot paths, executed with parameters.
_INSERT_RUN = insert(runs)
_RUN_STATE = select(runs.c.status, runs.c.lifecycle).where(runs.c.run_id == bindparam("rid"))
_UPDATE_RUN = update(runs).where(runs.c.run_id == bindparam("rid"))
_INSERT_TAGS = insert(tags)
_INSERT_PARAMS = insert(params)


def new_run_id() -> str:
    return uuid.uuid4().hex


def create_run(
    ctx: Context,
    *,
    name: str | None = None,
    experiment: str = "default",
    tags_: dict[str, Any] | None = None,
    parent_id: str | None = None,
    git_commit: str | None = None,
    git_dirty: bool | None = None,
    source: str | None = None,
    environment: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> RunRecord:
    run_id = run_id or new_run_id()
    name = check.check_name(name, "run name") if name is not None else f"run-{run_id[:8]}"
    experiment = check.check_name(experiment, "experiment name")
    tag_values = check.check_tags(tags_)
    record = RunRecord(
        run_id=run_id,
        name=name,
        experiment=experiment,
        status="running",
        user=ctx.actor,
        start_time=now_ms(),
        parent_id=parent_id,
        host=HOST,
        pid=os.getpid(),
        git_commit=git_commit,
        git_dirty=git_dirty,
        source=source,
        environment=environment or {},
        tags=tag_values,
        policy_digest=ctx.policy.digest,
    )
    record.heartbeat = record.start_time
    payload = {"name": name, "experiment": experiment, "parent_id": parent_id, "policy_digest": record.policy_digest}
    with ctx.store.mutation(ctx.actor, "run.create", "run", run_id, payload) as conn:
        if parent_id is not None:
            _require_run(conn, parent_id)
        conn.execute(
            _INSERT_RUN,
            {
                "run_id": run_id,
                "name": name,
                "experiment": experiment,
                "parent_id": parent_id,
                "status": "running",
                "lifecycle": "active",
                "user": record.user,
                "start_time": record.start_time,
                "git_commit": git_commit,
                "git_dirty": git_dirty,
                "source": source,
                "environment": json.dumps(record.environment),
                "host": record.host,
                "pid": record.pid,
                "heartbeat": record.heartbeat,
                "policy_digest": record.policy_digest,
            },
        )
        if tag_values:
            conn.execute(_INSERT_TAGS, [{"run_id": run_id, "key": k, "value": v} for k, v in tag_values.items()])
    return record


def log_params(ctx: Context, run_id: str, values: dict[str, Any]) -> None:
    checked = check.check_params(values)
    if not checked:
        return
    with ctx.store.mutation(ctx.actor, "run.log_params", "run", run_id, {"params": checked}) as conn:
        _require_writable(conn, run_id)
        _write_params(conn, run_id, checked)


def set_tags(ctx: Context, run_id: str, values: dict[str, Any]) -> None:
    checked = check.check_tags(values)
    if not checked:
        return
    with ctx.store.mutation(ctx.actor, "run.set_tags", "run", run_id, {"tags": checked}) as conn:
        _require_writable(conn, run_id)
        _write_tags(ctx, conn, run_id, checked)


def log_metrics(ctx: Context, run_id: str, points: Sequence[MetricPoint]) -> None:
    """Write metric points in one transaction (callers validate points as they are logged)."""
    if not points:
        return
    with ctx.store.mutation(ctx.actor, "run.log_metrics", "run", run_id, _metrics_summary(points)) as conn:
        _require_writable(conn, run_id)
        _write_metrics(ctx, conn, run_id, points)


def log_batch(
    ctx: Context,
    run_id: str,
    points: Sequence[MetricPoint] = (),
    params_: dict[str, Any] | None = None,
    tags_: dict[str, Any] | None = None,
) -> None:
    """Metrics, params and tags in one transaction: all are written or none is."""
    checked_params = check.check_params(params_ or {})
    checked_tags = check.check_tags(tags_)
    payload = {**_metrics_summary(points), "params": checked_params, "tags": checked_tags}
    with ctx.store.mutation(ctx.actor, "run.log_batch", "run", run_id, payload) as conn:
        _require_writable(conn, run_id)
        if checked_params:
            _write_params(conn, run_id, checked_params)
        if checked_tags:
            _write_tags(ctx, conn, run_id, checked_tags)
        if points:
            _write_metrics(ctx, conn, run_id, points)


def finish_run(
    ctx: Context,
    run_id: str,
    status: str,
    *,
    error: str | None = None,
    resources: dict[str, float | int] | None = None,
    points: Sequence[MetricPoint] = (),
    tags_: dict[str, Any] | None = None,
    artifacts_: Sequence[tuple[str, str, int]] = (),
) -> None:
    """Mark a run ended, committing its last buffered metric points, and any final tags and artifacts
    (path, digest, size), in the same transaction."""
    if status not in STATUSES[1:]:
        raise ValidationError(f"Cannot end a run with status {status!r}; use one of {', '.join(STATUSES[1:])}.")
    payload: dict[str, Any] = {"status": status, **(resources or {})}
    if points:
        payload.update(_metrics_summary(points))
    if error:
        payload["error"] = error.strip().splitlines()[-1][:500]
    checked_tags = check.check_tags(tags_)
    files = [(_check_artifact_path(path), digest, size) for path, digest, size in artifacts_]
    if checked_tags:
        payload["tags"] = checked_tags
    if files:
        payload["artifacts"] = [{"path": p, "digest": d, "size": n} for p, d, n in files]
    with ctx.store.mutation(ctx.actor, "run.finish", "run", run_id, payload) as conn:
        _require_writable(conn, run_id)
        if points:
            _write_metrics(ctx, conn, run_id, points)
        if checked_tags:
            _write_tags(ctx, conn, run_id, checked_tags)
        if files:
            stmt = ctx.store.insert_or_update(artifacts, ["run_id", "path"], ["digest", "size", "created"])
            conn.execute(stmt, [{"run_id": run_id, "path": p, "digest": d, "size": n, "created": now_ms()}
                                for p, d, n in files])
        conn.execute(_UPDATE_RUN, {"rid": run_id, "status": status, "end_time": now_ms(), "error": error, **(resources or {})})


def log_artifact_blob(ctx: Context, run_id: str, path: str, digest: str, size: int) -> ArtifactRecord:
    path = _check_artifact_path(path)
    record = ArtifactRecord(path, digest, size)
    payload = {"path": path, "digest": digest, "size": size}
    with ctx.store.mutation(ctx.actor, "run.log_artifact", "run", run_id, payload) as conn:
        _require_writable(conn, run_id)
        stmt = ctx.store.insert_or_update(artifacts, ["run_id", "path"], ["digest", "size", "created"])
        conn.execute(stmt, {"run_id": run_id, "path": path, "digest": digest, "size": size, "created": now_ms()})
    return record


def delete_run(ctx: Context, run_id: str, *, purge: bool = False) -> str:
    """Soft-delete (hidden from listings, restorable) or purge (rows removed, blobs left to gc)."""
    run_id = resolve_run_id(ctx, run_id)
    action = "run.purge" if purge else "run.delete"
    with ctx.store.mutation(ctx.actor, action, "run", run_id) as conn:
        if purge:
            children = conn.execute(select(runs.c.run_id).where(runs.c.parent_id == run_id)).scalars().all()
            if children:
                raise ConflictError(
                    f"Run {run_id} has child runs ({', '.join(c[:8] for c in children)}); purge them first."
                )
            for table in (metrics, metric_latest, params, tags, artifacts):
                conn.execute(delete(table).where(table.c.run_id == run_id))
            conn.execute(delete(runs).where(runs.c.run_id == run_id))
        else:
            conn.execute(update(runs).where(runs.c.run_id == run_id).values(lifecycle="deleted"))
    return run_id


def restore_run(ctx: Context, run_id: str) -> str:
    run_id = resolve_run_id(ctx, run_id, include_deleted=True)
    with ctx.store.mutation(ctx.actor, "run.restore", "run", run_id) as conn:
        conn.execute(update(runs).where(runs.c.run_id == run_id).values(lifecycle="active"))
    return run_id


# -- reading ------------------------------------------------------------------------------------


def resolve_run_id(ctx: Context, ref: str, *, include_deleted: bool = True) -> str:
    """A full run id, or a unique prefix of one (like git); unknown ids get a did-you-mean."""
    if not isinstance(ref, str) or not ref.strip():
        raise ValidationError(f"Run id must be a non-empty string, got {ref!r}.")
    ref = ref.strip().lower()
    with ctx.store.read() as conn:
        if conn.execute(select(runs.c.run_id).where(runs.c.run_id == ref)).first():
            return ref
        if len(ref) >= _PREFIX_MIN:
            found = conn.execute(select(runs.c.run_id).where(runs.c.run_id.startswith(ref, autoescape=True)).limit(3))
            matches = found.scalars().all()
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise ValidationError(
                    f"Run id prefix '{ref}' is ambiguous: it matches {', '.join(matches)}. Give more characters."
                )
        recent = conn.execute(select(runs.c.run_id).order_by(runs.c.start_time.desc()).limit(5000)).scalars()
        hint = did_you_mean(ref, recent, cutoff=0.75)
    raise NotFoundError(f"No run with id '{ref}'.{hint} List runs with `shipyard runs list`.")


def get_run(ctx: Context, run_id: str) -> RunRecord:
    """The run's record; a running run whose process is gone has status `lost` (see liveness.py)."""
    run_id = resolve_run_id(ctx, run_id)
    with ctx.store.read() as conn:
        return fetch_runs(conn, [run_id], lost_after_seconds=ctx.workspace.settings.tracking.lost_after_seconds,
                          with_artifacts=True)[0]


def fetch_runs(
    conn: Connection, run_ids: Sequence[str], *, lost_after_seconds: float, with_artifacts: bool = False
) -> list[RunRecord]:
    """Full records for the given ids, in the given order, with params, latest metrics and tags.
    Running runs whose heartbeat is older than `lost_after_seconds`, or whose process on this host
    has died, are reported with status `lost`."""
    found: dict[str, RunRecord] = {}
    now = now_ms()
    for chunk in _chunks(run_ids, 500):
        for row in conn.execute(select(runs).where(runs.c.run_id.in_(chunk))):
            record = found[row.run_id] = _record(row)
            if is_lost(row.status, row.host, row.pid, row.heartbeat, now=now, lost_after_seconds=lost_after_seconds):
                record.status = LOST
        for table, attr in ((params, "params"), (tags, "tags"), (metric_latest, "metrics")):
            query = select(table.c.run_id, table.c.key, table.c.value).where(table.c.run_id.in_(chunk))
            for run_id, key, value in conn.execute(query):
                getattr(found[run_id], attr)[key] = value
        if with_artifacts:
            query = select(artifacts).where(artifacts.c.run_id.in_(chunk)).order_by(artifacts.c.path)
            for row in conn.execute(query):
                found[row.run_id].artifacts.append(ArtifactRecord(row.path, row.digest, row.size))
    return [found[r] for r in run_ids if r in found]


def active_runs(conn: Connection) -> list[Any]:
    """Every run not deleted, oldest first, as rows of (run_id, name, experiment, parent_id, status,
    start_time, end_time), on the caller's connection."""
    return list(conn.execute(
        select(runs.c.run_id, runs.c.name, runs.c.experiment, runs.c.parent_id, runs.c.status, runs.c.start_time,
               runs.c.end_time).where(runs.c.lifecycle == "active").order_by(runs.c.start_time)
    ))


def get_metric_history(
    ctx: Context, run_id: str, key: str, *, max_points: int | None = None
) -> list[MetricPoint]:
    """Every point of one metric by step, or at most `max_points` evenly spaced (first and last kept)."""
    from sqlalchemy import func

    run_id = resolve_run_id(ctx, run_id)
    if max_points is not None and (isinstance(max_points, bool) or max_points < 2):
        raise ValidationError(f"max_points must be at least 2, got {max_points!r}.")
    cond = and_(metrics.c.run_id == run_id, metrics.c.key == key)
    with ctx.store.read() as conn:
        total = conn.execute(select(func.count()).select_from(metrics).where(cond)).scalar_one()
        if total == 0:
            known = conn.execute(select(metric_latest.c.key).where(metric_latest.c.run_id == run_id)).scalars().all()
            raise NotFoundError(
                f"Run {run_id} has no metric '{key}'.{did_you_mean(key, known)}"
                f" Metrics: {', '.join(sorted(known)) or 'none'}."
            )
        order = (metrics.c.step, metrics.c.timestamp, metrics.c.id)
        if max_points is None or total <= max_points:
            rows = conn.execute(
                select(metrics.c.key, metrics.c.value, metrics.c.step, metrics.c.timestamp).where(cond).order_by(*order)
            ).all()
            return [MetricPoint(*row) for row in rows]
        stride = -(-(total - 1) // (max_points - 1))  # ceil: keeps at most max_points incl. the last
        numbered = select(
            metrics.c.key,
            metrics.c.value,
            metrics.c.step,
            metrics.c.timestamp,
            func.row_number().over(order_by=order).label("rn"),
        ).where(cond).subquery()
        rows = conn.execute(
            select(numbered.c.key, numbered.c.value, numbered.c.step, numbered.c.timestamp)
            .where(or_((numbered.c.rn - 1) % stride == 0, numbered.c.rn == total))
            .order_by(numbered.c.rn)
        ).all()
        return [MetricPoint(*row) for row in rows]


# -- internals ----------------------------------------------------------------------------------


def _record(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        name=row.name,
        experiment=row.experiment,
        status=row.status,
        user=row.user,
        start_time=row.start_time,
        end_time=row.end_time,
        parent_id=row.parent_id,
        lifecycle=row.lifecycle,
        git_commit=row.git_commit,
        git_dirty=row.git_dirty,
        source=row.source,
        environment=json.loads(row.environment) if row.environment else {},
        cpu_seconds=row.cpu_seconds,
        peak_memory_bytes=row.peak_memory_bytes,
        wall_seconds=row.wall_seconds,
        error=row.error,
        host=row.host,
        pid=row.pid,
        heartbeat=row.heartbeat,
        policy_digest=row.policy_digest,
    )


def _require_run(conn: Connection, run_id: str) -> Any:
    row = conn.execute(_RUN_STATE, {"rid": run_id}).first()
    if row is None:
        raise NotFoundError(f"No run with id '{run_id}'. List runs with `shipyard runs list`.")
    return row


def _require_writable(conn: Connection, run_id: str) -> None:
    row = _require_run(conn, run_id)
    if row.lifecycle != "active":
        raise ConflictError(
            f"Run {run_id} is deleted; nothing can be logged to it. Restore it with `shipyard runs restore`."
        )


def _write_params(conn: Connection, run_id: str, values: dict[str, str]) -> None:
    existing = dict(
        conn.execute(
            select(params.c.key, params.c.value).where(params.c.run_id == run_id, params.c.key.in_(list(values)))
        ).all()
    )
    for key, value in values.items():
        if key in existing and existing[key] != value:
            raise ConflictError(
                f"Param '{key}' of run {run_id} is already '{existing[key]}'; params cannot change "
                f"(tried '{value}'). Log the new value under another key, or as a metric or tag."
            )
    new = [{"run_id": run_id, "key": k, "value": v} for k, v in values.items() if k not in existing]
    if new:
        conn.execute(_INSERT_PARAMS, new)


def _write_tags(ctx: Context, conn: Connection, run_id: str, values: dict[str, str]) -> None:
    stmt = ctx.store.insert_or_update(tags, ["run_id", "key"], ["value"])
    conn.execute(stmt, [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()])


def _write_metrics(ctx: Context, conn: Connection, run_id: str, points: Sequence[MetricPoint]) -> None:
    ctx.store.insert_many(
        conn, metrics, ("run_id", "key", "value", "step", "timestamp"), [(run_id, *p) for p in points]
    )
    latest: dict[str, MetricPoint] = {}
    for p in points:  # points may be plain (key, value, step, timestamp) tuples
        seen = latest.get(p[0])
        if seen is None or (p[2], p[3]) >= (seen[2], seen[3]):
            latest[p[0]] = p

    def newer(excluded: Any) -> Any:
        return or_(
            excluded.step > metric_latest.c.step,
            and_(excluded.step == metric_latest.c.step, excluded.timestamp >= metric_latest.c.timestamp),
        )

    stmt = ctx.store.insert_or_update(metric_latest, ["run_id", "key"], ["value", "step", "timestamp"], where=newer)
    conn.execute(
        stmt,
        [{"run_id": run_id, "key": p[0], "value": p[1], "step": p[2], "timestamp": p[3]} for p in latest.values()],
    )


def _metrics_summary(points: Sequence[MetricPoint]) -> dict[str, Any]:
    if not points:
        return {}
    keys = sorted({p[0] for p in points})
    return {"metric_points": len(points), "metric_keys": keys[:50], "metric_keys_total": len(keys)}


def _check_artifact_path(path: str) -> str:
    if not isinstance(path, str) or not path.strip():
        raise ValidationError(f"Artifact path must be a non-empty string, got {path!r}.")
    parts = path.replace("\\", "/").split("/")
    if path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValidationError(
            f"Artifact path {path!r} must be relative, without '.', '..' or empty parts (e.g. 'plots/roc.png')."
        )
    if len(path) > 1024:
        raise ValidationError(f"Artifact path is {len(path)} characters long; the limit is 1024.")
    return "/".join(parts)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
