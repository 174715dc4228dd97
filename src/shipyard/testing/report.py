"""What a conformance suite hands back: each check that passed or was skipped (and why), or the one that failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["passed", "skipped"]


class CheckFailed(AssertionError):
    """A conformance check failed. It is an AssertionError, so pytest and unittest count a failed test, not an error.

    `subject` is what was checked ("flavor 'scorecard'"), `check` the name of the check, `reason` what went wrong."""

    def __init__(self, subject: str, check: str, summary: str, reason: str) -> None:
        self.subject = subject
        self.check = check
        self.summary = summary
        self.reason = reason
        super().__init__(f"The {subject} failed check '{check}' ({summary}): {reason}")

    def __reduce__(self) -> tuple[type[CheckFailed], tuple[str, str, str, str]]:
        # Rebuilt from its parts when pickled (test runners that use worker processes do).
        return type(self), (self.subject, self.check, self.summary, self.reason)


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    summary: str  # what the check holds the subject to
    status: Status
    detail: str  # what was seen, or why the check did not apply


@dataclass(frozen=True)
class CheckReport:
    """Every check that ran, in order. A failure raises CheckFailed instead, so a report means no check failed."""

    subject: str
    outcomes: tuple[CheckOutcome, ...]

    @property
    def passed(self) -> list[str]:
        return [o.name for o in self.outcomes if o.status == "passed"]

    @property
    def skipped(self) -> dict[str, str]:
        """The checks that did not apply, with the reason."""
        return {o.name: o.detail for o in self.outcomes if o.status == "skipped"}

    def __str__(self) -> str:
        width = max((len(o.name) for o in self.outcomes), default=0)
        lines = [f"The {self.subject}: {len(self.passed)} checks passed, {len(self.skipped)} skipped"]
        lines += [f"  {o.status:<8} {o.name:<{width}}  {o.detail}" for o in self.outcomes]
        return "\n".join(lines)
