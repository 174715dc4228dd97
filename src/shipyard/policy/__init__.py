"""The workspace's policy: what shipyard.yaml declares about the lifecycle of its models. One loader (the
file is parsed once per change), one model per section, one translator of errors, and a digest that runs
and gate results record, so that evidence names the policy it was judged by.

Sections are registered here by name: the settings (store, artifacts, tracking, online) and the lifecycle
sections below; later building blocks add theirs with `register_section`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from shipyard.policy.document import Document
    from shipyard.policy.gates import GateSpec
    from shipyard.policy.governance import Governance
    from shipyard.policy.lifecycle import LifecycleSpec

SPEC_FILE = "shipyard.yaml"

#: Every top-level key shipyard.yaml may have, with what it declares.
SECTIONS: dict[str, str] = {
    "store": "the metadata database (settings)",
    "artifacts": "the artifact store (settings)",
    "tracking": "experiment tracking (settings)",
    "online": "the online feature store (settings)",
    "project": "the project's name and description",
    "data": "the dataset the standard pipeline trains on",
    "features": "feature preparation of the standard pipeline",
    "model": "the model (or sweep) the standard pipeline trains",
    "evaluation": "the metrics the standard pipeline computes",
    "promote": "whether the standard pipeline promotes",
    "pipeline": "options of the standard pipeline",
    "gates": "per model: the gates a version passes before it serves",
    "governance": "per model: intended use, limitations, owners, required reviews",
    "deploy": "per deployment: the model, strategy, canary steps and analysis limits",
    "monitor": "per monitor: the deployment or model watched, its window, limits and alert sinks",
    "retrain": "per deployment: the alerts that start retraining, its data, cooldown, limits and approval",
}


def register_section(name: str, description: str) -> None:
    """Declare a top-level section of shipyard.yaml owned by a building block."""
    SECTIONS.setdefault(name, description)


class Policy:
    """A view of one workspace's shipyard.yaml; every read sees the file as it is now (re-parsed only
    when it changed), and each section is validated when first asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / SPEC_FILE

    def __repr__(self) -> str:
        return f"Policy({str(self.path)!r})"

    def document(self) -> Document:
        from shipyard.policy.document import read_document

        return read_document(self.path)

    @property
    def digest(self) -> str:
        """SHA-256 of everything the file declares (comments and formatting aside)."""
        return self.document().digest()

    def section(self, name: str) -> Any:
        return self.document().data.get(name)

    def lifecycle(self) -> LifecycleSpec:
        from shipyard.policy.lifecycle import load_lifecycle

        document = self.document()
        cached = document.sections.get("lifecycle")
        if cached is None:
            cached = document.sections["lifecycle"] = load_lifecycle(document.data, source=SPEC_FILE,
                                                                     document=document)
        return cached

    def gates(self, model: str) -> GateSpec | None:
        """The model's gates, or None when shipyard.yaml declares none for it."""
        from shipyard.policy.errors import require_mapping
        from shipyard.policy.gates import load_gate_spec

        document = self.document()
        key = ("gates", model)
        if key not in document.sections:
            section = require_mapping(document.data.get("gates"), "gates", "model names to their gates", document)
            document.sections[key] = (
                load_gate_spec(section[model], source=SPEC_FILE, model=model, document=document)
                if model in section else None
            )
        return document.sections[key]

    def gates_digest(self, model: str) -> str:
        """SHA-256 of the model's gate policy as validated (defaults included), which gate results record."""
        from shipyard.policy.document import policy_digest

        spec = self.gates(model)
        return policy_digest(spec.model_dump(mode="json") if spec is not None else None)

    def configured_gates(self, model: str) -> list[str]:
        spec = self.gates(model)
        return list(spec.configured) if spec is not None else []

    def governance(self, model: str) -> Governance:
        from pydantic import ValidationError as PydanticValidationError

        from shipyard.policy.errors import require_mapping, translate
        from shipyard.policy.governance import Governance

        document = self.document()
        key = ("governance", model)
        if key not in document.sections:
            section = require_mapping(document.data.get("governance"), "governance",
                                      "model names to their governance", document)
            data = require_mapping(section.get(model), f"governance.{model}", "governance settings", document)
            try:
                document.sections[key] = Governance.model_validate(data)
            except PydanticValidationError as exc:
                raise translate(exc, Governance, prefix=("governance", model), document=document) from None
        return document.sections[key]
