"""Checks that blocks above the registry plug in: a version that something they own still uses (a
deployment routes traffic to it) cannot be archived. archive_version runs them in its transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Connection

_archive_guards: list[Callable[[Connection, str, int], str | None]] = []


def register_archive_guard(guard: Callable[[Connection, str, int], str | None]) -> None:
    """Run `guard` before a version is archived, on the archive's connection (registered once)."""
    if guard not in _archive_guards:
        _archive_guards.append(guard)


def archive_objections(conn: Connection, model: str, version: int) -> list[str]:
    """Why the guards refuse archiving `model`/`version` (empty when none does)."""
    return [reason for guard in _archive_guards if (reason := guard(conn, model, version)) is not None]
