"""The exception hierarchy: every error Shipyard raises on purpose is a ShipyardError.

Each class has a stable `code` and an HTTP `status_code`; an error may carry structured `fields` (the
offending value, the object it concerns), so an edge can render it without parsing the message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, ClassVar

#: Exit statuses of the `shipyard` command: the outcome happened (or there was nothing to do), an error,
#: a usage error (a wrong option or argument), and "it ran, but a gate or a required review blocked the
#: promotion" — so `shipyard run && deploy` stops, and a script can tell a block from a crash.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3


class ShipyardError(Exception):
    """Base class. The message says what failed, with the offending value, and how to fix it."""

    #: A stable, machine-readable name of the kind of error (part of the HTTP error body).
    code: ClassVar[str] = "error"
    #: HTTP status the server edge maps this error to.
    status_code: ClassVar[int] = 500
    #: Exit status the CLI ends with on this error.
    exit_code: ClassVar[int] = EXIT_ERROR

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, Any] = fields

    def to_dict(self) -> dict[str, Any]:
        """The one JSON shape of an error: {"error": {"code", "message", "status", ...fields}}."""
        return {"error": {"code": self.code, "message": self.message, "status": self.status_code, **self.fields}}


class ConfigError(ShipyardError):
    """A setting, a settings file or a workspace is wrong or missing."""

    code = "config"
    status_code = 400


class WorkspaceNotFoundError(ConfigError):
    """No workspace was found walking up from the current folder."""

    code = "workspace_not_found"


class NotFoundError(ShipyardError):
    """An object asked for by name or id does not exist."""

    code = "not_found"
    status_code = 404


class ValidationError(ShipyardError):
    """Input was malformed: a bad value, key, type or syntax."""

    code = "invalid"
    status_code = 422


class FilterSyntaxError(ValidationError):
    """A search filter could not be parsed; the message points at the position."""

    code = "filter_syntax"

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        pointer = " " * position + "^"
        super().__init__(
            f"Invalid filter at position {position}: {message}\n  {text}\n  {pointer}", filter=text, position=position
        )


class ConflictError(ShipyardError):
    """The change conflicts with the current state (a param logged twice, a busy object)."""

    code = "conflict"
    status_code = 409


class GateFailed(ShipyardError):
    """A model version may not take a serving alias: a gate failed or a required review is missing."""

    code = "gate_failed"
    status_code = 409
    exit_code = EXIT_BLOCKED


class IntegrityError(ShipyardError):
    """Stored data failed a check: a blob digest mismatch or a broken audit chain."""

    code = "integrity"
    status_code = 500


class BackendError(ShipyardError):
    """A backing service (database, object store) failed or cannot be reached."""

    code = "backend_unavailable"
    status_code = 503


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, for messages (1772323200 rather than np.int64(1772323200))."""
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


def did_you_mean(value: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str:
    """Return " Did you mean 'x'?" for the closest candidate, or "" when none is close."""
    matches = difflib.get_close_matches(value, list(candidates), n=1, cutoff=cutoff)
    return f" Did you mean '{matches[0]}'?" if matches else ""
