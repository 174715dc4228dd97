"""The shapes the data service hands back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

VersionKind = Literal["files", "table"]


@dataclass
class DatasetVersion:
    dataset: str
    version: int
    kind: VersionKind
    manifest_digest: str
    file_count: int
    total_bytes: int
    created: int
    created_by: str
    row_count: int | None = None
    table_digest: str | None = None
    table_schema: list[dict[str, Any]] | None = None
    profile: dict[str, Any] | None = None
    key_columns: list[str] | None = None
    source: str | None = None
    message: str | None = None

    @property
    def version_id(self) -> str:
        return f"{self.dataset}@{self.version}"

    def to_dict(self, *, with_profile: bool = True) -> dict[str, Any]:
        data = asdict(self)
        data["version_id"] = self.version_id
        if not with_profile:
            data.pop("profile")
        return data

    @classmethod
    def from_row(cls, row: Any) -> DatasetVersion:
        def loads(text: str | None) -> Any:
            return json.loads(text) if text else None

        return cls(
            dataset=row.dataset,
            version=row.version,
            kind=row.kind,
            manifest_digest=row.manifest_digest,
            file_count=row.file_count,
            total_bytes=row.total_bytes,
            created=row.created,
            created_by=row.created_by,
            row_count=row.row_count,
            table_digest=row.table_digest,
            table_schema=loads(row.table_schema),
            profile=loads(row.profile),
            key_columns=loads(row.key_columns),
            source=row.source,
            message=row.message,
        )


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    digest: str


@dataclass
class AddResult:
    version: DatasetVersion
    created: bool  # False when the content matched the latest version
    files_total: int
    files_read: int  # files hashed; the rest came from the stat cache
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version.to_dict(with_profile=False), "created": self.created,
                "files_total": self.files_total, "files_read": self.files_read, "seconds": self.seconds}


@dataclass
class StatusReport:
    dataset: str
    base: str | None  # the version compared against
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    unchanged: int = 0
    files_read: int = 0

    @property
    def clean(self) -> bool:
        return not (self.added or self.removed or self.modified)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}
