"""The model registry: register versions with their artifact, signature and environment; find them by
version or alias; move aliases (kept in a history); archive; load verified models."""

from __future__ import annotations

import json
import platform
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from shipyard.context import Context
from shipyard.errors import ConflictError, NotFoundError, ValidationError, did_you_mean
from shipyard.models.guards import archive_objections
from shipyard.models.records import AliasMove, Artifact, ModelVersion, Registration
from shipyard.models.refs import check_alias, check_model_name, parse_model_ref
from shipyard.store.db import insert_or_update, now_ms
from shipyard.store import lineage
from shipyard.store.lineage import Node
from shipyard.store.tables import alias_history, model_aliases, model_versions, registered_models

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.models.flavors.base import Flavor

SERVING_ALIASES = ("champion", "challenger")
MODEL_VERSION = lineage.register_kind("model_version", "a registered version of a model")


def describe_model(model: Any, flavor: Flavor, *, input_example: pd.DataFrame | None = None,
                   signature_frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """What the registry records about a model besides its file: signature, environment and details.

    The model predicts on the example (at most 20 rows; the first rows of `signature_frame` when no
    example is given), so a model whose predict fails is refused before anything is stored. The
    signature's nullability, ranges and categories come from `signature_frame` (the whole training
    features) when given, else from the example."""
    from shipyard.models.signature import infer_signature

    example = _frame("input_example", input_example)
    whole = _frame("signature_frame", signature_frame)
    if example is not None and whole is not None and list(example.columns) != list(whole.columns):
        raise ValidationError(
            f"input_example has columns {', '.join(map(str, example.columns))} but signature_frame has "
            f"{', '.join(map(str, whole.columns))}; pass the same feature columns (in the same order) to both."
        )
    details = flavor.describe(model)
    signature = None
    sample = example if example is not None else whole
    if sample is not None:
        try:
            predictions = flavor.predict(model, sample.head(20))
        except Exception as exc:  # noqa: BLE001 - any failure of user code is reported, not raised as-is
            raise ValidationError(
                f"The model's predict failed on the input example: {type(exc).__name__}: {exc}. "
                "Nothing was registered; fix the model or the example."
            ) from exc
        inferred_from = whole if whole is not None else sample
        signature = infer_signature(inferred_from, predictions, classes=details.get("classes")).to_dict()
    environment = {"python": platform.python_version(), "flavor": flavor.name, "packages": flavor.environment()}
    return {"signature": signature, "environment": environment, "details": details}


def _frame(name: str, value: Any) -> pd.DataFrame | None:
    import pandas as pd

    if value is not None and not isinstance(value, pd.DataFrame):
        raise ValidationError(
            f"{name} must be a pandas DataFrame with the model's input columns, got "
            f"{type(value).__name__}. Pass the training features (or a few rows of them, e.g. X.head())."
        )
    return value


def package_model(model: Any, folder: Path, *, flavor: str | None = None, input_example: pd.DataFrame | None = None,
                  signature_frame: pd.DataFrame | None = None) -> tuple[Flavor, Path, dict[str, Any]]:
    """Save `model` through its flavor into `folder`; return the flavor, the file and its metadata
    (flavor meta, signature, environment, details; see describe_model)."""
    from shipyard.models.flavors import flavor_for, get_flavor

    chosen = get_flavor(flavor) if flavor else flavor_for(model)
    path = folder / chosen.file_name
    meta = chosen.save(model, path)
    info = describe_model(model, chosen, input_example=input_example, signature_frame=signature_frame)
    return chosen, path, {"flavor_meta": meta, **info}


def store_artifact(ctx: Context, model: Any, *, flavor: str | None = None) -> Artifact:
    """Save `model` through its flavor (detected unless named) into the blob store."""
    from shipyard.models.flavors import flavor_for, get_flavor

    chosen = get_flavor(flavor) if flavor else flavor_for(model)
    with tempfile.TemporaryDirectory(prefix="shipyard-model-") as tmp:
        path = Path(tmp) / chosen.file_name
        meta = chosen.save(model, path)
        blob = ctx.blobs.put_file(path)
    return Artifact(chosen.name, blob.digest, blob.size, meta)


MODEL_INFO = "shipyard-model.json"


def register_model(
    ctx: Context,
    name: str,
    model: Any,
    *,
    input_example: pd.DataFrame | None = None,
    signature_frame: pd.DataFrame | None = None,
    flavor: str | None = None,
    run_id: str | None = None,
    dataset_version: str | None = None,
    metrics: dict[str, float] | None = None,
    description: str | None = None,
    artifact_path: str | None = None,
    register: bool = True,
) -> ModelVersion | None:
    """Package `model` and register it as the next version of `name`, in one audited transaction.

    `signature_frame` (the whole training features) is what the signature's nullability, ranges and
    categories are inferred from; the model predicts on the first rows only. With a run, the packaged
    model is also attached to the run as artifacts under `artifact_path` (the file and
    shipyard-model.json), from which `register_from_run` can register it later."""
    check_model_name(name)
    with tempfile.TemporaryDirectory(prefix="shipyard-model-") as tmp:
        chosen, path, info = package_model(model, Path(tmp), flavor=flavor, input_example=input_example,
                                           signature_frame=signature_frame)
        blob = ctx.blobs.put_file(path)  # only once the model has predicted on the example
    artifact = Artifact(chosen.name, blob.digest, blob.size, info["flavor_meta"])
    if run_id is not None:
        _attach(ctx, run_id, artifact_path or f"models/{name}", artifact, info)
    if not register:
        return None
    return insert_version(ctx, name, artifact.flavor, artifact.digest, artifact.size, info, run_id=run_id,
                          dataset_version=dataset_version, metrics=metrics, description=description).version


def register_artifact(
    ctx: Context,
    name: str,
    model: Any,
    artifact: Artifact,
    *,
    input_example: pd.DataFrame | None = None,
    signature_frame: pd.DataFrame | None = None,
    run_id: str | None = None,
    dataset_version: str | None = None,
    metrics: dict[str, float] | None = None,
    description: str | None = None,
    details: dict[str, Any] | None = None,
) -> Registration:
    """Register a model file already in the blob store (a pipeline step's output) exactly as it is, as
    the next version of `name` — unless a version of `name` already has this artifact: then nothing is
    written and that version comes back with `created=False`. `model` is the loaded artifact, to
    describe it and infer its signature; it is not saved again. `details` adds entries to the version's
    details (e.g. `features`: the feature views it was trained with)."""
    from shipyard.models.flavors import get_flavor

    check_model_name(name)
    chosen = get_flavor(artifact.flavor)
    if not ctx.blobs.exists(artifact.digest):
        raise NotFoundError(f"The model artifact {artifact.digest} is not in the blob store; nothing was registered.",
                            digest=artifact.digest)
    info = {"flavor_meta": artifact.flavor_meta,
            **describe_model(model, chosen, input_example=input_example, signature_frame=signature_frame)}
    if details:
        info["details"] = {**info["details"], **details}
    registration = insert_version(ctx, name, chosen.name, artifact.digest, artifact.size, info, run_id=run_id,
                                  dataset_version=dataset_version, metrics=metrics, description=description,
                                  existing_ok=True)
    if registration.created and run_id is not None:
        _attach(ctx, run_id, f"models/{name}", artifact, info)
    return registration


def _attach(ctx: Context, run_id: str, folder: str, artifact: Artifact, info: dict[str, Any]) -> None:
    """The model file and its shipyard-model.json as artifacts of the run."""
    from shipyard.models.flavors import get_flavor
    from shipyard.tracking.runs import log_artifact_blob

    file_name = get_flavor(artifact.flavor).file_name
    log_artifact_blob(ctx, run_id, f"{folder}/{file_name}", artifact.digest, artifact.size)
    record = json.dumps({"flavor": artifact.flavor, "file": file_name, "digest": artifact.digest,
                         "size": artifact.size, **info}, indent=2, default=str).encode()
    meta_blob = ctx.blobs.put_bytes(record)
    log_artifact_blob(ctx, run_id, f"{folder}/{MODEL_INFO}", meta_blob.digest, meta_blob.size)


def register_from_run(ctx: Context, name: str, run_id: str, *, artifact_path: str | None = None,
                      description: str | None = None) -> ModelVersion:
    """Register a model a run logged with log_model(register=False), reusing its stored artifact."""
    from shipyard.tracking.artifacts import read_artifact
    from shipyard.tracking.runs import get_run

    check_model_name(name)
    run = get_run(ctx, run_id)
    folder = artifact_path or f"models/{name}"
    candidates = sorted(a.path for a in run.artifacts if a.path.endswith("/" + MODEL_INFO))
    if f"{folder}/{MODEL_INFO}" not in candidates:
        found = ", ".join(c.rsplit("/", 1)[0] for c in candidates) or "none"
        raise NotFoundError(
            f"Run {run.run_id} has no logged model at '{folder}'.{did_you_mean(folder, [c.rsplit('/', 1)[0] for c in candidates])} "
            f"Logged models: {found}."
        )
    info = json.loads(read_artifact(ctx, run.run_id, f"{folder}/{MODEL_INFO}"))
    if not ctx.blobs.exists(info["digest"]):
        raise NotFoundError(f"The artifact of the model at '{folder}' of run {run.run_id} is gone from the blob store.")
    return insert_version(ctx, name, info["flavor"], info["digest"], info["size"], info, run_id=run.run_id,
                          dataset_version=None, metrics=run.metrics, description=description).version


def insert_version(
    ctx: Context,
    name: str,
    flavor: str,
    digest: str,
    size: int,
    info: dict[str, Any],
    *,
    run_id: str | None,
    dataset_version: str | None,
    metrics: dict[str, float] | None,
    description: str | None,
    existing_ok: bool = False,
) -> Registration:
    """Insert the next version of `name` with its lineage edges, audited. With `existing_ok`, a version
    of `name` that already has the artifact `digest` is returned instead (`created=False`), found in the
    same transaction, so two runs registering the same artifact at once make one version."""
    from shipyard.data.versions import get_version as get_dataset_version

    if dataset_version is not None:
        dataset_version = get_dataset_version(ctx, dataset_version).version_id
    elif run_id is not None:
        dataset_version = _run_input(ctx, run_id)
    now = now_ms()
    payload: dict[str, Any] = {"flavor": flavor, "artifact_digest": digest, "run_id": run_id,
                               "dataset_version": dataset_version}
    try:
        with ctx.store.mutation(ctx.actor, "model.register", "model", name, payload) as conn:
            if existing_ok and (found := artifact_version(conn, name, digest)) is not None:
                raise _AlreadyRegistered(found)  # rolls the transaction back: no audit event for nothing
            latest = conn.execute(
                select(model_versions.c.version).where(model_versions.c.model == name)
                .order_by(model_versions.c.version.desc()).limit(1)
            ).scalar()
            if latest is None:
                stmt = ctx.store.insert_or_ignore(registered_models, ["name"])
                conn.execute(stmt, {"name": name, "created": now, "created_by": ctx.actor, "description": None})
            number = (latest or 0) + 1
            payload["version"] = number
            version_id = f"{name}/{number}"
            conn.execute(
                model_versions.insert(),
                {
                    "version_id": version_id, "model": name, "version": number, "flavor": flavor,
                    "artifact_digest": digest, "artifact_size": size,
                    "flavor_meta": json.dumps(info["flavor_meta"]),
                    "signature": json.dumps(info["signature"]) if info.get("signature") else None,
                    "environment": json.dumps(info["environment"]),
                    "details": json.dumps(info.get("details") or {}, default=str),
                    "metrics": json.dumps(metrics or {}), "run_id": run_id, "dataset_version": dataset_version,
                    "status": "active", "description": description, "created": now, "created_by": ctx.actor,
                },
            )
            edges = []
            if run_id is not None:
                edges.append((Node("run", run_id), Node(MODEL_VERSION, version_id), "output"))
            if dataset_version is not None:
                edges.append((Node("dataset_version", dataset_version), Node(MODEL_VERSION, version_id), "derived"))
            lineage.add_edges(conn, edges)
    except DBIntegrityError as exc:
        raise ConflictError(
            f"Another process registered a version of '{name}' at the same moment; nothing was written by "
            "this one. Register again."
        ) from exc
    except _AlreadyRegistered as already:
        return Registration(get_model_version(ctx, f"{name}/{already.number}"), created=False)
    return Registration(get_model_version(ctx, f"{name}/{number}"), created=True)


class _AlreadyRegistered(Exception):
    """Raised inside the mutation to leave it without a write (or an audit event)."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


def artifact_version(conn: Connection, name: str, digest: str) -> int | None:
    """The version of `name` whose artifact is `digest` (an active one before an archived one, then the
    latest), or None."""
    rows = conn.execute(
        select(model_versions.c.version, model_versions.c.status)
        .where(model_versions.c.model == name, model_versions.c.artifact_digest == digest)
        .order_by(model_versions.c.version.desc())
    ).all()
    active = [r.version for r in rows if r.status != "archived"]
    if active:
        return int(active[0])
    return int(rows[0].version) if rows else None


def _run_input(ctx: Context, run_id: str) -> str | None:
    """The dataset version a run read (its first recorded input), if any."""
    with ctx.store.read() as conn:
        return lineage.first_source(conn, Node("run", run_id), "dataset_version", "input")


# -- finding -----------------------------------------------------------------------------------


def _aliases(conn: Connection, model: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for alias, version in conn.execute(
        select(model_aliases.c.alias, model_aliases.c.version).where(model_aliases.c.model == model)
    ):
        found.setdefault(version, []).append(alias)
    return found


def get_model_version(ctx: Context, ref: str) -> ModelVersion:
    """A version by models:/NAME/V, NAME/V, models:/NAME@ALIAS or NAME (the latest)."""
    with ctx.store.read() as conn:
        return find_version(conn, ref)


def find_version(conn: Connection, ref: str) -> ModelVersion:
    """get_model_version on the caller's connection, so a check and a change can share one transaction."""
    parsed = parse_model_ref(ref)
    exists = conn.execute(select(registered_models.c.name).where(registered_models.c.name == parsed.model)).first()
    if exists is None:
        names = conn.execute(select(registered_models.c.name)).scalars().all()
        raise NotFoundError(
            f"No registered model named '{parsed.model}'.{did_you_mean(parsed.model, names)} "
            f"Models: {', '.join(sorted(names)) or 'none yet'}.", model=parsed.model,
        )
    aliases = _aliases(conn, parsed.model)
    number = parsed.version
    if parsed.alias == "latest":
        number = conn.execute(
            select(model_versions.c.version).where(model_versions.c.model == parsed.model)
            .order_by(model_versions.c.version.desc()).limit(1)
        ).scalar()
    elif parsed.alias is not None:
        by_alias = {a: v for v, names in aliases.items() for a in names}
        if parsed.alias not in by_alias:
            known = sorted(by_alias)
            raise NotFoundError(
                f"Model '{parsed.model}' has no alias '{parsed.alias}'. Aliases: {', '.join(known) or 'none'}."
                f"{did_you_mean(parsed.alias, known)}", model=parsed.model, alias=parsed.alias,
            )
        number = by_alias[parsed.alias]
    row = conn.execute(
        select(model_versions).where(model_versions.c.model == parsed.model, model_versions.c.version == number)
    ).first()
    if row is None:
        versions = conn.execute(
            select(model_versions.c.version).where(model_versions.c.model == parsed.model)
            .order_by(model_versions.c.version)
        ).scalars().all()
        raise NotFoundError(
            f"Model '{parsed.model}' has no version {number}. Versions: "
            f"{', '.join(f'{parsed.model}/{v}' for v in versions)}.", model=parsed.model, version=number,
        )
    return ModelVersion.from_row(row, aliases.get(row.version, []))


def alias_target(conn: Connection, model: str, alias: str) -> int | None:
    """The version number `alias` points at, or None."""
    return conn.execute(
        select(model_aliases.c.version).where(model_aliases.c.model == model, model_aliases.c.alias == alias)
    ).scalar()


def list_models(ctx: Context) -> list[dict[str, Any]]:
    with ctx.store.read() as conn:
        names = conn.execute(select(registered_models.c.name).order_by(registered_models.c.name)).scalars().all()
        rows = conn.execute(select(model_versions.c.model, model_versions.c.version, model_versions.c.status)).all()
        alias_rows = conn.execute(select(model_aliases.c.model, model_aliases.c.alias, model_aliases.c.version)).all()
    out = []
    for name in names:
        versions = [r for r in rows if r.model == name]
        out.append({
            "name": name,
            "versions": len(versions),
            "latest": max((r.version for r in versions), default=None),
            "archived": sum(1 for r in versions if r.status == "archived"),
            "aliases": {a.alias: a.version for a in alias_rows if a.model == name},
        })
    return out


def list_versions(ctx: Context, name: str) -> list[ModelVersion]:
    get_model_version(ctx, check_model_name(name))  # raises with did-you-mean when unknown
    with ctx.store.read() as conn:
        aliases = _aliases(conn, name)
        rows = conn.execute(
            select(model_versions).where(model_versions.c.model == name).order_by(model_versions.c.version.desc())
        ).all()
    return [ModelVersion.from_row(r, aliases.get(r.version, [])) for r in rows]


# -- aliases and lifecycle ---------------------------------------------------------------------


def set_alias(ctx: Context, ref: str, alias: str, *, reason: str | None = None) -> AliasMove:
    """Point `alias` at the version `ref`; the move is kept in the alias history and the audit trail.

    Serving aliases (champion, challenger) go through promote(), which checks gates first."""
    version = get_model_version(ctx, ref)
    check_alias(alias)
    if alias in SERVING_ALIASES:
        from shipyard.errors import GateFailed

        raise GateFailed(
            f"'{alias}' serves traffic, so it moves only through promotion, which checks the gates: "
            f"`shipyard models promote {version.version_id} --alias {alias}`."
        )
    payload: dict[str, Any] = {"alias": alias, "to_version": version.version, "reason": reason}
    with ctx.store.mutation(ctx.actor, "model.alias_set", "model", version.model, payload) as conn:
        if find_version(conn, version.version_id).status == "archived":
            raise ConflictError(
                f"{version.version_id} is archived; an alias cannot point at it. Choose an active version.",
                version=version.version_id,
            )
        return move_alias(conn, ctx.actor, version.model, alias, version.version, reason=reason, payload=payload)


def _move_alias(ctx: Context, model: str, alias: str, to_version: int | None, *, reason: str | None) -> AliasMove:
    payload: dict[str, Any] = {"alias": alias, "to_version": to_version, "reason": reason}
    with ctx.store.mutation(ctx.actor, "model.alias_set" if to_version else "model.alias_delete", "model",
                            model, payload) as conn:
        return move_alias(conn, ctx.actor, model, alias, to_version, reason=reason, payload=payload)


def move_alias(conn: Connection, actor: str, model: str, alias: str, to_version: int | None, *,
               reason: str | None, payload: dict[str, Any] | None = None) -> AliasMove:
    """Point `alias` at `to_version` (None removes it) inside the caller's mutation, keeping the history.

    It checks nothing: callers check (archived versions, gates) in the same transaction first."""
    now = now_ms()
    current = alias_target(conn, model, alias)
    if payload is not None:
        payload["from_version"] = current
    if to_version is None:
        if current is None:
            raise NotFoundError(f"Model '{model}' has no alias '{alias}' to remove.", model=model, alias=alias)
        conn.execute(model_aliases.delete().where(model_aliases.c.model == model, model_aliases.c.alias == alias))
    else:
        conn.execute(insert_or_update(conn, model_aliases, ["model", "alias"], ["version", "updated", "updated_by"]),
                     {"model": model, "alias": alias, "version": to_version, "updated": now, "updated_by": actor})
    conn.execute(alias_history.insert(), {"model": model, "alias": alias, "from_version": current,
                                          "to_version": to_version, "actor": actor, "time": now, "reason": reason})
    return AliasMove(model, alias, current, to_version, actor, now, reason)


def delete_alias(ctx: Context, name: str, alias: str, *, reason: str | None = None) -> AliasMove:
    get_model_version(ctx, check_model_name(name))
    return _move_alias(ctx, name, check_alias(alias), None, reason=reason)


def alias_moves(ctx: Context, name: str, alias: str | None = None) -> list[AliasMove]:
    get_model_version(ctx, check_model_name(name))
    conds = [alias_history.c.model == name]
    if alias is not None:
        conds.append(alias_history.c.alias == alias)
    with ctx.store.read() as conn:
        rows = conn.execute(select(alias_history).where(*conds).order_by(alias_history.c.id)).all()
    return [AliasMove(r.model, r.alias, r.from_version, r.to_version, r.actor, r.time, r.reason) for r in rows]


def archive_version(ctx: Context, ref: str) -> ModelVersion:
    """Archive a version: kept, loadable, but no alias may point at it. Refused while one does."""
    version = get_model_version(ctx, ref)
    if version.aliases:
        raise ConflictError(
            f"{version.version_id} is still the target of alias(es) {', '.join(version.aliases)}; move or remove "
            "them first (`shipyard models alias set` / `alias delete`)."
        )
    with ctx.store.mutation(ctx.actor, "model.archive", "model_version", version.version_id) as conn:
        if conn.execute(
            select(model_aliases.c.alias).where(model_aliases.c.model == version.model,
                                                model_aliases.c.version == version.version)
        ).first():
            raise ConflictError(f"{version.version_id} gained an alias meanwhile; try again.")
        objections = archive_objections(conn, version.model, version.version)
        if objections:
            raise ConflictError(f"{version.version_id} cannot be archived: {'; '.join(objections)}.",
                                version=version.version_id)
        conn.execute(model_versions.update().where(model_versions.c.version_id == version.version_id)
                     .values(status="archived"))
    return get_model_version(ctx, version.version_id)
