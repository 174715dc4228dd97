"""Sections of shipyard.yaml that map names to settings (deploy.NAME, monitor.NAME): one validated model per
name, cached on the document until the file changes, with the one translator's errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from shipyard.policy.errors import require_mapping, translate

if TYPE_CHECKING:
    from shipyard.policy.document import Document

Spec = TypeVar("Spec", bound=BaseModel)


def load_named(model: type[Spec], section: str, data: Any, name: str, what: str, *, source: str = "shipyard.yaml",
               document: Document | None = None) -> Spec:
    """Validate the mapping under `<section>.<name>`; errors name the key path, the value and a fix."""
    data = require_mapping(data, f"{section}.{name}", what, document)
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise translate(exc, model, prefix=(section, name), document=document, source=source) from None


def named(document: Document, section: str, plural: str) -> dict[str, Any]:
    """The section's mapping of names to settings (empty when absent)."""
    return require_mapping(document.data.get(section), section, plural, document)


def named_spec(model: type[Spec], document: Document, section: str, name: str, what: str, plural: str
               ) -> Spec | None:
    """<section>.NAME of the document, validated once per change of the file; None when it declares none."""
    key = (section, name)
    if key not in document.sections:
        found = named(document, section, plural)
        document.sections[key] = (load_named(model, section, found[name], name, what, source=document.name,
                                             document=document) if name in found else None)
    return document.sections[key]
