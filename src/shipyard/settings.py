"""The typed settings model and how its values are merged from their sources."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic import ValidationError as PydanticValidationError

from shipyard.config import check_key
from shipyard.errors import ConfigError

ENV_PREFIX = "SHIPYARD_"
# Sections of shipyard.yaml that other building blocks read (the lifecycle spec); checked by them.
OTHER_SECTIONS = (
    "project", "data", "features", "model", "evaluation", "promote", "gates", "governance", "deploy", "monitor",
    "pipeline",
)


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


class Settings(_Section):
    store: StoreSettings = Field(default_factory=StoreSettings)
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)


def setting_keys() -> dict[str, str]:
    """Every dotted setting key mapped to its environment variable."""
    keys: dict[str, str] = {}
    for section, info in Settings.model_fields.items():
        model = info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        for name in model.model_fields:
            keys[f"{section}.{name}"] = f"{ENV_PREFIX}{section}_{name}".upper()
    return keys


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_cache: dict[tuple[Any, ...], tuple[Settings, dict[str, str]]] = {}


def read_spec_file(path: Path) -> dict[str, Any]:
    """The parsed shipyard.yaml (sections other building blocks own included), with clear YAML errors."""
    text = path.read_text() if path.exists() else ""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if mark is None:
            raise ConfigError(f"{path} is not valid YAML: {problem}. Fix the file and retry.") from exc
        lines = text.splitlines()
        context = getattr(exc, "context_mark", None)
        if (mark.line >= len(lines) or not lines[mark.line].strip()) and context is not None:
            mark = context  # the error is at the end of the file: point at where the construct began
        line = lines[mark.line] if mark.line < len(lines) else ""
        raise ConfigError(
            f"{path} is not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}.\n"
            f"  {line}\n  {' ' * mark.column}^\nFix the file and retry."
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, got {type(data).__name__}.")
    return data


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
    spec = read_spec_file(spec_path)
    sections = list(Settings.model_fields)
    for section, values in spec.items():
        if section in OTHER_SECTIONS:
            continue
        check_key(str(section), sections + list(OTHER_SECTIONS), f"section in {spec_path.name}")
        if values is None:  # a section whose keys are all commented out
            continue
        if not isinstance(values, dict):
            raise ConfigError(
                f"{spec_path}: '{section}' must be a mapping of settings, got {values!r}."
            )
        for name, value in values.items():
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
        raise ConfigError(_describe(exc, merged, sources)) from None
    return settings, sources


def _describe(exc: PydanticValidationError, merged: dict[str, Any], sources: dict[str, str]) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        value = merged.get(key, err.get("input"))
        source = sources.get(key, "default")
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"Invalid setting {key} = {value!r} (from {source}): {message}.")
    return "\n".join(lines)
