"""The shapes the registry hands back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

VersionStatus = Literal["active", "archived"]


@dataclass
class ModelVersion:
    model: str
    version: int
    flavor: str
    artifact_digest: str
    artifact_size: int
    flavor_meta: dict[str, Any]
    environment: dict[str, Any]
    created: int
    created_by: str
    status: VersionStatus = "active"
    signature: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    dataset_version: str | None = None
    description: str | None = None
    aliases: list[str] = field(default_factory=list)

    @property
    def version_id(self) -> str:
        return f"{self.model}/{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "version_id": self.version_id, "uri": self.uri}

    @classmethod
    def from_row(cls, row: Any, aliases: list[str] | None = None) -> ModelVersion:
        def loads(text: str | None, default: Any) -> Any:
            return json.loads(text) if text else default

        return cls(
            model=row.model, version=row.version, flavor=row.flavor, artifact_digest=row.artifact_digest,
            artifact_size=row.artifact_size, flavor_meta=loads(row.flavor_meta, {}),
            environment=loads(row.environment, {}), created=row.created, created_by=row.created_by,
            status=row.status, signature=loads(row.signature, None), details=loads(row.details, {}),
            metrics=loads(row.metrics, {}), run_id=row.run_id, dataset_version=row.dataset_version,
            description=row.description, aliases=sorted(aliases or []),
        )


@dataclass(frozen=True)
class Artifact:
    """A model file already in the blob store, saved by its flavor: registered as it is, never saved again
    (saving a loaded model again can change its bytes, and with them the digest the registry knows it by)."""

    flavor: str
    digest: str
    size: int
    flavor_meta: dict[str, Any]


@dataclass(frozen=True)
class Registration:
    """The version an artifact is registered as, and whether this call created it (False: a version of
    the model already had exactly this artifact, and nothing was written)."""

    version: ModelVersion
    created: bool


@dataclass(frozen=True)
class AliasMove:
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    time: int
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
