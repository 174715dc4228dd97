"""The typed settings model and how its values are merged from their sources."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic import ValidationError as PydanticValidationError

from shipyard.errors import ConfigError, did_you_mean

ENV_PREFIX = "SHIPYARD_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StoreSettings(_Section):
    url: str = "sqlite:///.shipyard/shipyard.db"
    busy_timeout_ms: int = Field(default=60_000, ge=0)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError(
                "expected a sqlite:///path or postgresql+psycopg://user@host:port/db URL"
            )
        return value


class ArtifactSettings(_Section):
    url: str = ".shipyard/artifacts"
    endpoint_url: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        if "://" in value and not value.startswith(("s3://", "file://", "memory://")):
            raise ValueError("expected a local folder, file://path or s3://bucket/prefix")
        if not value.strip():
            raise ValueError("expected a local folder, file://path or s3://bucket/prefix")
        return value


class TrackingSettings(_Section):
    flush_interval_seconds: float = Field(default=2.0, ge=0)
    flush_max_points: int = Field(default=5000, ge=1)
    heartbeat_seconds: float = Field(default=30.0, gt=0)
    # Checked even when left at its default: a heartbeat setting alone can make the pair inconsistent.
    lost_after_seconds: float = Field(default=300.0, gt=0, validate_default=True)

    @field_validator("flush_interval_seconds", "heartbeat_seconds", "lost_after_seconds")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("expected a finite number of seconds")
        return value

    @field_validator("lost_after_seconds")
    @classmethod
    def _longer_than_a_heartbeat(cls, value: float, info: ValidationInfo) -> float:
        heartbeat = info.data.get("heartbeat_seconds")
        if heartbeat is not None and value <= 2 * heartbeat:
            raise ValueError(
                f"must be more than twice tracking.heartbeat_seconds ({heartbeat:g}), or a live run could "
                "be reported lost between two heartbeats; raise it or lower tracking.heartbeat_seconds"
            )
        return value


class OnlineSettings(_Section):
    url: str = "sqlite:///.shipyard/online.db"
    # Redis keys start with shipyard:NAMESPACE:; unset, the metadata store's id (workspaces sharing a store share it).
    namespace: str | None = None

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "redis://", "rediss://", "unix://")):
            raise ValueError("expected a sqlite:///path or redis://host:port/db URL")
        return value

    @field_validator("namespace")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", value):
            raise ValueError("expected 1-100 letters, digits, '_', '.' or '-'")
        return value


class Settings(_Section):
    store: StoreSettings = Field(default_factory=StoreSettings)
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    online: OnlineSettings = Field(default_factory=OnlineSettings)


def setting_keys() -> dict[str, str]:
    """Every dotted setting key mapped to its environment variable."""
    keys: dict[str, str] = {}
    for section, info in Settings.model_fields.items():
        model = info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        for name in model.model_fields:
            keys[f"{section}.{name}"] = f"{ENV_PREFIX}{section}_{name}".upper()
    return keys


_cache: dict[tuple[Any, ...], tuple[Settings, dict[str, str]]] = {}


def resolve_settings(
    spec_path: Path, environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[Settings, dict[str, str]]:
    """Merge the sources in order and validate; errors name the key, the value and its source.

    Results are cached until the file, the SHIPYARD_* environment or the overrides change."""
    try:
        stat = spec_path.stat()
        file_key: tuple[Any, ...] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    except FileNotFoundError:
        file_key = ()
    env_items = tuple(sorted((k, v) for k, v in environ.items() if k.startswith(ENV_PREFIX)))
    key = (str(spec_path), file_key, env_items, repr(sorted(overrides.items())))
    cached = _cache.get(key)
    if cached is not None:
        return cached[0], dict(cached[1])
    settings, sources = _resolve(spec_path, environ, overrides)
    if len(_cache) > 64:
        _cache.clear()
    _cache[key] = (settings, sources)
    return settings, dict(sources)


def _resolve(
    spec_path: Path, environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[Settings, dict[str, str]]:
    keys = setting_keys()
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    from shipyard.policy import SECTIONS
    from shipyard.policy.document import read_document
    from shipyard.policy.errors import require_mapping

    document = read_document(spec_path)
    sections = list(Settings.model_fields)
    for section, values in document.data.items():
        check_key(str(section), list(SECTIONS), f"section in {spec_path.name}")
        if section not in sections:  # a section of the lifecycle policy, validated where it is used
            continue
        for name, value in require_mapping(values, str(section), "settings", document).items():
            check_key(f"{section}.{name}", list(keys), f"setting in {spec_path.name}")
            merged[f"{section}.{name}"] = value
            sources[f"{section}.{name}"] = spec_path.name
    for key, env_name in keys.items():
        if env_name in environ:
            merged[key] = environ[env_name]
            sources[key] = env_name
    for key, value in overrides.items():
        check_key(key, list(keys), "setting")
        merged[key] = value
        sources[key] = "flag"
    nested: dict[str, dict[str, Any]] = {}
    for key, value in merged.items():
        section, name = key.split(".", 1)
        nested.setdefault(section, {})[name] = value
    try:
        settings = Settings.model_validate(nested)
    except PydanticValidationError as exc:
        from shipyard.policy.errors import translate

        raise translate(exc, Settings, document=document, source=spec_path.name,
                        source_of=lambda key: sources.get(key, "default")) from None
    return settings, sources


def check_key(key: str, allowed: list[str], what: str) -> None:
    """Raise a ConfigError naming `key` with a did-you-mean when it is not in `allowed`."""
    if key not in allowed:
        raise ConfigError(
            f"Unknown {what} '{key}'.{did_you_mean(key, allowed)} Known: {', '.join(sorted(allowed))}."
        )
