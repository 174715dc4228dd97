"""What shipyard.yaml declares about a model: its gates (gates.NAME) and governance (governance.NAME:
intended use, limitations, required reviews)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from shipyard.config import SPEC_FILE
from shipyard.context import Context
from shipyard.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from shipyard.gates.spec import GateSpec


class Governance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intended_use: str | None = None
    limitations: str | None = None
    owners: list[str] = Field(default_factory=list)
    reviews: list[str] = Field(default_factory=list)  # review kinds that must be approved before promotion


def _section(ctx: Context, name: str) -> dict[str, Any]:
    from shipyard.settings import read_spec_file

    spec = read_spec_file(ctx.workspace.root / SPEC_FILE)
    value = spec.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{SPEC_FILE}: '{name}' must map model names to settings, got {value!r}.")
    return value


def gate_spec(ctx: Context, model: str) -> GateSpec | None:
    """The model's gates, or None when shipyard.yaml declares none for it."""
    from shipyard.gates.spec import load_gate_spec

    section = _section(ctx, "gates")
    if model not in section:
        return None
    data = section[model] or {}
    return load_gate_spec(data, source=SPEC_FILE, model=model)


def governance(ctx: Context, model: str) -> Governance:
    section = _section(ctx, "governance")
    data = section.get(model) or {}
    try:
        return Governance.model_validate(data)
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        hint = did_you_mean(key, list(Governance.model_fields)) if err["type"] == "extra_forbidden" else ""
        raise ConfigError(
            f"{SPEC_FILE}: governance.{model}.{key} = {err.get('input')!r}: {err['msg']}.{hint}"
        ) from None


def configured_gates(spec: GateSpec | None) -> list[str]:
    return list(spec.configured) if spec is not None else []
