"""Dataset names and version references: NAME, NAME@3, NAME@latest."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipyard.errors import ValidationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_dataset_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith(".") or ".." in name:
        raise ValidationError(
            f"Invalid dataset name {name!r}: use 1-128 letters, digits, '_', '-' or '.', starting with a "
            "letter or digit (for example 'credit' or 'credit-raw')."
        )
    return name


@dataclass(frozen=True)
class VersionRef:
    dataset: str
    version: int | None  # None means the latest

    def __str__(self) -> str:
        return f"{self.dataset}@{self.version if self.version is not None else 'latest'}"


def parse_ref(ref: object, *, default_latest: bool = True) -> VersionRef:
    """Parse NAME@V, NAME@latest or (when default_latest) a bare NAME."""
    if not isinstance(ref, str) or not ref.strip():
        raise ValidationError(f"Invalid dataset reference {ref!r}: expected NAME@VERSION, e.g. 'credit@3'.")
    name, sep, version = ref.strip().partition("@")
    check_dataset_name(name)
    if not sep:
        if default_latest:
            return VersionRef(name, None)
        raise ValidationError(f"Dataset reference {ref!r} needs a version: '{name}@1' or '{name}@latest'.")
    if version == "latest":
        return VersionRef(name, None)
    if not version.isdigit() or int(version) < 1:
        raise ValidationError(
            f"Invalid version {version!r} in {ref!r}: expected a positive number or 'latest', e.g. '{name}@2'."
        )
    return VersionRef(name, int(version))


def version_id(dataset: str, version: int) -> str:
    return f"{dataset}@{version}"
