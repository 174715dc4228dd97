"""The exception hierarchy: every error Shipyard raises on purpose is a ShipyardError."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ShipyardError(Exception):
    """Base class. The message says what failed, with the offending value, and how to fix it."""

    #: HTTP status the server edge maps this error to.
    status_code = 500


class ConfigError(ShipyardError):
    """A setting, a settings file or a workspace is wrong or missing."""

    status_code = 400


class WorkspaceNotFoundError(ConfigError):
    """No workspace was found walking up from the current folder."""


class NotFoundError(ShipyardError):
    """An object asked for by name or id does not exist."""

    status_code = 404


class ValidationError(ShipyardError):
    """Input was malformed: a bad value, key, type or syntax."""

    status_code = 422


class FilterSyntaxError(ValidationError):
    """A search filter could not be parsed; the message points at the position."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        pointer = " " * position + "^"
        super().__init__(f"Invalid filter at position {position}: {message}\n  {text}\n  {pointer}")


class ConflictError(ShipyardError):
    """The change conflicts with the current state (a param logged twice, a busy object)."""

    status_code = 409


class GateFailed(ShipyardError):
    """A model version may not take a serving alias: a gate failed or a required review is missing."""

    status_code = 409


class IntegrityError(ShipyardError):
    """Stored data failed a check: a blob digest mismatch or a broken audit chain."""

    status_code = 500


class BackendError(ShipyardError):
    """A backing service (database, object store) failed or cannot be reached."""

    status_code = 503


def did_you_mean(value: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str:
    """Return " Did you mean 'x'?" for the closest candidate, or "" when none is close."""
    matches = difflib.get_close_matches(value, list(candidates), n=1, cutoff=cutoff)
    return f" Did you mean '{matches[0]}'?" if matches else ""
