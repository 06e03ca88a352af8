"""Domain errors.

The core raises these; the HTTP edge turns each into a status code and the JSON error body
``{"error": code, "message": message}`` in one place (``scoreboard.web.errors``). Anything that is
not a ``ScoreboardError`` is a bug and reaches the client as a plain 500.
"""

from __future__ import annotations


class ScoreboardError(Exception):
    """Base class: ``code`` is the machine-readable error, ``str(self)`` the human sentence."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidRequest(ScoreboardError):
    """The request itself is malformed or out of range (400)."""

    code = "invalid_request"


class Unauthorized(ScoreboardError):
    """Authentication or authorization failed (401). The message never contains the token."""

    code = "unauthorized"


class NotFound(ScoreboardError):
    """The thing asked for does not exist (404)."""

    code = "not_found"


class ActionConflict(ScoreboardError):
    """An ``action_id`` was used before by this user with a different delta (409)."""

    code = "action_conflict"


class ScoreOutOfRange(ScoreboardError):
    """Applying the update would take the user's total outside ``±MAX_SCORE`` (409)."""

    code = "score_out_of_range"


class PayloadTooLarge(ScoreboardError):
    """The request body is over the limit (413)."""

    code = "payload_too_large"


class Unavailable(ScoreboardError):
    """A backend needed for this request is down; nothing was changed (503)."""

    code = "unavailable"


class ConfigChanged(ScoreboardError):
    """Another board configuration was applied since the one the caller compared with (409):
    read it again and retry."""

    code = "config_changed"


class Forbidden(ScoreboardError):
    """Who is asking is known, and may not do this (403): a client address outside
    ``SCOREBOARD_ADMIN_ALLOWED_IPS``, a banned user's update."""

    code = "forbidden"


class Banned(Forbidden):
    """An operator banned the user: their updates are refused and change nothing (403)."""

    code = "banned"


class Conflict(ScoreboardError):
    """The request conflicts with what exists (409): an admin key name already taken."""

    code = "conflict"
