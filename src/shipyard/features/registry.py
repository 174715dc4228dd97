"""The feature view registry: applying views (a new version only when a definition's fingerprint changed,
audited, with lineage from the source dataset version), finding and listing registered versions."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from shipyard.context import Context
from shipyard.data.versions import DATASET_VERSION
from shipyard.errors import ConflictError, NotFoundError, ValidationError, did_you_mean
from shipyard.features.views import FeatureView, check_view_name, format_ttl
from shipyard.store import lineage
from shipyard.store.db import now_ms
from shipyard.store.lineage import Node
from shipyard.store.tables import feature_views

if TYPE_CHECKING:
    from shipyard.features.sources import Source

FEATURE_VIEW = lineage.register_kind("feature_view", "a version of a feature view")

_registered = 0  # versions registered by this process: readers that cache views compare it


def registrations() -> int:
    """How many feature view versions this process has registered so far; a change tells a cache of resolved
    views (`shipyard.features.online_features.OnlineReader`) to resolve them again."""
    return _registered


@dataclass(frozen=True)
class RegisteredView:
    """One registered version of a feature view, with its definition as applied."""

    name: str
    version: int
    fingerprint: str
    definition: dict[str, Any]
    created: int
    created_by: str

    @property
    def version_id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def entities(self) -> list[str]:
        return list(self.definition["entities"])

    @property
    def features(self) -> dict[str, str]:
        return dict(self.definition["features"])

    @property
    def ttl_seconds(self) -> float | None:
        return self.definition["ttl_seconds"]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "version_id": self.version_id,
                "fingerprint": self.fingerprint, "created": self.created, "created_by": self.created_by,
                **{k: v for k, v in self.definition.items() if k != "name"}, "ttl": format_ttl(self.ttl_seconds)}

    @classmethod
    def from_row(cls, row: Any) -> RegisteredView:
        return cls(row.name, row.version, row.fingerprint, json.loads(row.definition), row.created, row.created_by)


@dataclass(frozen=True)
class ApplyResult:
    view: RegisteredView
    created: bool  # False when the definition was the latest version's

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.view.name, "version": self.view.version, "version_id": self.view.version_id,
                "created": self.created, "fingerprint": self.view.fingerprint}


class _Unchanged(Exception):
    """Raised inside the mutation when the fingerprint is the latest version's: leaves it without a write."""


def apply(ctx: Context, views: Iterable[FeatureView]) -> list[ApplyResult]:
    """Register each view: a new version when its fingerprint differs from the latest version's, else nothing
    (no version, no audit event). Each new version is one audited transaction with its lineage edge from the
    source dataset version."""
    chosen = list(views)
    names = [v.name for v in chosen]
    for view in chosen:
        if not isinstance(view, FeatureView):
            raise ValidationError(f"apply takes FeatureView objects, got {type(view).__name__}.")
        if names.count(view.name) > 1:
            raise ValidationError(f"Feature view '{view.name}' is given twice: each view needs its own name.")
    from shipyard.features import sources

    found = []
    for view in chosen:  # every view is checked before any is registered
        source = sources.locate(ctx, view.source)
        if view.transform is None:  # a transform may make the declared columns; else the source must have them
            available = sources.columns_of(ctx, source)
            declared = [*view.entities, view.timestamp, *([view.created_timestamp] if view.created_timestamp else []),
                        *view.features]
            missing = [c for c in declared if c not in available]
            if missing:
                raise ValidationError(
                    f"Feature view '{view.name}' declares column {missing[0]!r}, which its source {source.label} does "
                    f"not have.{did_you_mean(missing[0], available)} Columns: {', '.join(available)}.",
                    view=view.name, column=missing[0])
            _check_time_columns(ctx, view, source)
        found.append((view, source.dataset_version))
    results = [_apply_one(ctx, view, version) for view, version in found]
    from shipyard.features.loading import remember

    for view in chosen:
        remember(view)
    return results


def _check_time_columns(ctx: Context, view: FeatureView, source: Source) -> None:
    """A view's time columns must hold times where the source stores its column types (a dataset version, a
    Parquet file), else every read of the view would fail; a CSV file's types are guessed, so it is checked when
    it is read."""
    types = _column_types(ctx, source)
    for role, column in (("timestamp", view.timestamp), ("created timestamp", view.created_timestamp)):
        kind = types.get(column or "", "")
        if column and kind and not kind.startswith(("timestamp", "date", "null")):
            raise ValidationError(
                f"Feature view '{view.name}' takes {role} column {column!r} of its source {source.label}, which holds "
                f"{kind} values, not times. Name the column that holds each row's time ({role}=...), store "
                "that column as timestamps, or convert it in the view's transform.", view=view.name, column=column)


def _column_types(ctx: Context, source: Source) -> dict[str, str]:
    if source.dataset_version is not None:
        from shipyard.data.versions import get_version

        schema = get_version(ctx, source.dataset_version).table_schema or []
        return {c["name"]: str(c.get("type", "")) for c in schema}
    if source.path is not None and source.path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            return {field.name: str(field.type) for field in pq.read_schema(source.path)}
        except (OSError, ValueError):
            return {}  # columns_of has read this schema already; a failure here is reported when it is read
    return {}


def _apply_one(ctx: Context, view: FeatureView, source_version: str | None) -> ApplyResult:
    definition = view.definition()
    fingerprint = view.fingerprint
    payload: dict[str, Any] = {"fingerprint": fingerprint, "source": source_version or view.source}
    try:
        with ctx.store.mutation(ctx.actor, "feature_view.apply", "feature_view", view.name, payload) as conn:
            latest = _latest_row(conn, view.name)
            if latest is not None and latest.fingerprint == fingerprint:
                raise _Unchanged
            number = (latest.version if latest is not None else 0) + 1
            payload["version"] = number
            conn.execute(feature_views.insert(), {
                "name": view.name, "version": number, "fingerprint": fingerprint,
                "definition": json.dumps(definition, sort_keys=True), "created": now_ms(), "created_by": ctx.actor,
            })
            if source_version is not None:
                lineage.add_edges(conn, [(Node(DATASET_VERSION, source_version),
                                          Node(FEATURE_VIEW, f"{view.name}@{number}"), "input")])
    except _Unchanged:
        assert latest is not None
        return ApplyResult(RegisteredView.from_row(latest), False)
    except DBIntegrityError as exc:
        raise ConflictError(f"Another process applied feature view '{view.name}' at the same moment; nothing was "
                            "written by this one. Apply again.") from exc
    global _registered
    _registered += 1
    return ApplyResult(get_view(ctx, f"{view.name}@{number}"), True)


def _latest_row(conn: Connection, name: str) -> Any:
    return conn.execute(select(feature_views).where(feature_views.c.name == name)
                        .order_by(feature_views.c.version.desc()).limit(1)).first()


def parse_view_ref(ref: object) -> tuple[str, int | None]:
    """NAME, NAME@latest or NAME@V."""
    if not isinstance(ref, str) or not ref.strip():
        raise ValidationError(f"Invalid feature view reference {ref!r}: expected NAME or NAME@VERSION, e.g. "
                              "'customer_stats@2'.")
    name, sep, version = ref.strip().partition("@")
    check_view_name(name)
    if not sep or version == "latest":
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ValidationError(f"Invalid version {version!r} in {ref!r}: expected a positive number or 'latest', "
                              f"e.g. '{name}@1'.")
    return name, int(version)


def get_view(ctx: Context, ref: str) -> RegisteredView:
    """A registered version (NAME@V) or the latest (NAME); unknown names and versions say what exists."""
    name, version = parse_view_ref(ref)
    with ctx.store.read() as conn:
        if version is None:
            row = _latest_row(conn, name)
        else:
            row = conn.execute(select(feature_views).where(feature_views.c.name == name,
                                                           feature_views.c.version == version)).first()
        if row is not None:
            return RegisteredView.from_row(row)
        known = conn.execute(select(feature_views.c.version).where(feature_views.c.name == name)
                             .order_by(feature_views.c.version)).scalars().all()
        if not known:
            names = sorted(set(conn.execute(select(feature_views.c.name)).scalars().all()))
            raise NotFoundError(
                f"No feature view named '{name}'.{did_you_mean(name, names)} Feature views: "
                f"{', '.join(names) or 'none yet'}. Register one with `shipyard features apply MODULE`.", view=name)
    raise NotFoundError(f"Feature view '{name}' has no version {version}. Versions: "
                        f"{', '.join(f'{name}@{v}' for v in known)}.", view=name, version=version)


def list_views(ctx: Context) -> list[dict[str, Any]]:
    """Every feature view with its latest version and how many versions it has."""
    counts = (select(feature_views.c.name, func.max(feature_views.c.version).label("latest"),
                     func.count().label("versions")).group_by(feature_views.c.name).subquery())
    query = (select(feature_views, counts.c.versions)
             .join(counts, (feature_views.c.name == counts.c.name) & (feature_views.c.version == counts.c.latest))
             .order_by(feature_views.c.name))
    with ctx.store.read() as conn:
        rows = conn.execute(query).all()
    return [{"name": row.name, "versions": row.versions, "latest": RegisteredView.from_row(row).to_dict()}
            for row in rows]


def list_versions(ctx: Context, name: str) -> list[RegisteredView]:
    """The versions of one view, newest first."""
    get_view(ctx, name)  # an unknown name says what exists
    with ctx.store.read() as conn:
        rows = conn.execute(select(feature_views).where(feature_views.c.name == name)
                            .order_by(feature_views.c.version.desc())).all()
    return [RegisteredView.from_row(r) for r in rows]
