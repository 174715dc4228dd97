"""Model names and references: models:/credit/3, models:/credit@champion, credit/3, credit@champion."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipyard.errors import ValidationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")
_REF = re.compile(r"^(?:models:/)?(?P<name>[^/@]+)(?:/(?P<version>[^/@]*)|@(?P<alias>[^/@]*))?$")


def check_model_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ValidationError(
            f"Invalid model name {name!r}: use 1-128 letters, digits, '_', '-' or '.', starting with a letter "
            "or digit (for example 'credit' or 'churn-v2')."
        )
    return name


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == "latest":
        raise ValidationError(
            f"Invalid alias {alias!r}: use up to 64 lowercase letters, digits, '_' or '-', starting with a "
            "letter (for example 'champion'); 'latest' is reserved."
        )
    return alias


@dataclass(frozen=True)
class ModelRef:
    model: str
    version: int | None = None
    alias: str | None = None  # "latest" when neither is given

    def __str__(self) -> str:
        if self.version is not None:
            return f"models:/{self.model}/{self.version}"
        return f"models:/{self.model}@{self.alias or 'latest'}"


def parse_model_ref(ref: object) -> ModelRef:
    if not isinstance(ref, str) or not ref.strip():
        raise ValidationError(f"Invalid model reference {ref!r}: expected models:/NAME/VERSION or models:/NAME@ALIAS.")
    match = _REF.match(ref.strip())
    if not match:
        raise ValidationError(
            f"Invalid model reference {ref!r}: expected models:/NAME/VERSION (e.g. models:/credit/3) or "
            "models:/NAME@ALIAS (e.g. models:/credit@champion)."
        )
    name = check_model_name(match.group("name"))
    version, alias = match.group("version"), match.group("alias")
    if version is not None:
        if not version.isdigit() or int(version) < 1:
            raise ValidationError(f"Invalid version {version!r} in {ref!r}: expected a positive number, e.g. {name}/2.")
        return ModelRef(name, version=int(version))
    if alias is not None:
        return ModelRef(name, alias=alias if alias == "latest" else check_alias(alias))
    return ModelRef(name, alias="latest")
