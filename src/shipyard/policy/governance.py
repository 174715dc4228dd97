"""The per-model `governance:` section of shipyard.yaml: intended use, limitations, owners, and the reviews
that must be approved before a version may serve."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Governance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intended_use: str | None = None
    limitations: str | None = None
    owners: list[str] = Field(default_factory=list)
    reviews: list[str] = Field(default_factory=list)  # review kinds that must be approved before promotion
