"""The shapes tracking hands back: runs, metric points, artifacts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple


class MetricPoint(NamedTuple):
    key: str
    value: float
    step: int
    timestamp: int  # milliseconds since the epoch


@dataclass(frozen=True)
class ArtifactRecord:
    path: str
    digest: str
    size: int


@dataclass
class RunRecord:
    run_id: str
    name: str
    experiment: str
    status: str  # running | finished | failed | killed, or lost: running, but its process is gone
    user: str
    start_time: int
    end_time: int | None = None
    parent_id: str | None = None
    lifecycle: str = "active"
    git_commit: str | None = None
    git_dirty: bool | None = None
    source: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
    wall_seconds: float | None = None
    error: str | None = None
    host: str | None = None  # where the process that owns the run runs, and its id
    pid: int | None = None
    heartbeat: int | None = None  # ms since the epoch: when that process last said it was alive
    policy_digest: str | None = None  # SHA-256 of what shipyard.yaml declared when the run started
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: list[ArtifactRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RunPage(list[RunRecord]):
    """One page of search results; pass next_page_token back to get the next."""

    def __init__(self, runs: list[RunRecord], next_page_token: str | None) -> None:
        super().__init__(runs)
        self.next_page_token = next_page_token
