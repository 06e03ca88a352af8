"""Value types and the ranking rule.

The ranking rule, written once: **higher score first; equal scores are ordered by who reached
that score first**. "First" is measured by ``reached``, the store's sequence number of the score
event that produced the user's current total (smaller is earlier). Every rank index orders users
by :func:`rank_key` and must pass the same contract tests for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

DEFAULT_BOARD = "main"
"""The one board the service has today. Kept as a value passed around, not a global assumption."""

TOP_K = 10

MAX_SCORE = 2**53 - 1
"""Largest total a user may reach (and ``-MAX_SCORE`` the smallest): the largest integer every
JSON reader holds exactly (JavaScript numbers), and far inside what the stores can hold."""
DELTA_LIMIT = 2**31 - 1
"""No configured delta range may reach past ``±DELTA_LIMIT`` (a 32-bit column on PostgreSQL)."""

USER_ID_MAX = 64
ACTION_ID_MAX = 128
USERNAME_MAX = 128

USER_ID_PATTERN = r"^[A-Za-z0-9_\-.:@]{1,64}$"
USER_ID_RULE = "1-64 characters of letters, digits and _-.:@"
"""The rule of :data:`USER_ID_PATTERN` in words, for every message that states it."""
"""A user id, as the OpenAPI document states it (``$`` never meets a newline: ``fullmatch``)."""
ACTION_ID_PATTERN = (
    r"^[^\u0000-\u001F\u007F-\u009F\u00AD\u061C\u180E\u200B-\u200F\u2028-\u202E"
    r"\u2060-\u206F\uFEFF\uFFF9-\uFFFB]{1,128}$"
)
"""An action id: 1-128 characters, none of them a control character (C0, DEL, C1), a line or
paragraph separator, or an invisible formatting character (soft hyphen, the bidirectional marks
and overrides, zero-width characters, the byte order mark). Written as explicit ranges rather
than ``str.isprintable``, so that the OpenAPI document states the very rule the server applies,
and it does not move with the Unicode version of the Python that runs it."""

_USER_ID_RE = re.compile(USER_ID_PATTERN)
_ACTION_ID_RE = re.compile(ACTION_ID_PATTERN)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class UserTotal(NamedTuple):
    """A user's current total as the store holds it.

    ``version`` rises by one with every applied event of this user, so a rank index can drop a
    write older than the one it holds. ``reached`` is the ranking tie-breaker (see module doc).
    A named tuple rather than a frozen dataclass: a rebuild makes one per user, and a tuple is
    built five times faster (10^6 users: 0.35 s instead of 1.8 s).
    """

    user_id: str
    username: str
    score: int
    version: int
    reached: int


@dataclass(frozen=True, slots=True)
class RankedEntry:
    """One row of a board: 1-based rank, who, and their score."""

    rank: int
    user_id: str
    username: str
    score: int


@dataclass(frozen=True, slots=True)
class Board:
    """The top of a board and its sequence number.

    ``seq`` rises by one each time ``top`` changes (membership, order, a score or a name in it)
    and is assigned by the rank index in the same step as the change, so that across processes
    a higher ``seq`` always means a newer ``top``.
    """

    seq: int
    top: tuple[RankedEntry, ...]


@dataclass(frozen=True, slots=True)
class UserProfile:
    """A user's row as the store holds it, for ``GET /api/users/{id}``."""

    user_id: str
    username: str
    score: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ScoreEvent:
    """One applied update in a user's history: ``score`` is the user's total right after it."""

    event_id: int
    at: datetime
    delta: int
    score: int
    action_id: str


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """The user's score at the end of the bucket that starts at ``at`` (an hour or a day)."""

    at: datetime
    score: int


BUCKETS = ("hour", "day")


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Which of a user's events to read: those with ``since <= at < until`` (either bound may be
    ``None``), oldest first, starting after the position ``after`` (the last event already read,
    as ``(at, event_id)``), at most ``limit``. With ``bucket`` (``hour`` or ``day``, UTC), the
    score at the end of each bucket in which it changed, instead of the events (``after`` is
    then unused: a bucket page starts at ``since``)."""

    user_id: str
    since: datetime | None = None
    until: datetime | None = None
    after: tuple[datetime, int] | None = None
    limit: int = 100
    bucket: str | None = None


@dataclass(frozen=True, slots=True)
class ScoreUpdate:
    """A validated request to add ``delta`` to a user's score.

    ``action_id`` is the idempotency key: ``None`` means the caller gave none and the store makes
    one up, so the update can never be matched as a retry. ``username`` is ``None`` when the
    token carried no name (the stored name is then kept, or the user id for a new user).
    """

    user_id: str
    delta: int
    action_id: str | None = None
    username: str | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """What the store did with an update: the user's total afterwards, and whether the update
    was a retry of an action already applied (then nothing was added)."""

    total: UserTotal
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """The answer to an accepted update: the total after it and the user's rank."""

    user_id: str
    new_score: int
    rank: int
    replayed: bool = False
    """The update was a retry of an applied action: nothing was added."""


@dataclass(frozen=True, slots=True)
class PointsTicket:
    """Names one granted reservation of a points window, so that exactly it can be refunded:
    the window's ``key``, the reservation's ``member`` and the time ``at`` it was reserved."""

    key: str
    member: str
    at: float


@dataclass(frozen=True, slots=True)
class PointsReservation:
    """A points window's answer to a reservation (``scoreboard.ports.PointsWindow``)."""

    granted: bool
    used: int
    """Points held in the key's window just before this reservation."""
    reset: float
    """Refused: seconds until enough points have left the window for this reservation to fit
    (the whole span when it is larger than the limit and can never fit). Granted: 0."""
    ticket: PointsTicket | None = None
    """Granted: what ``PointsWindow.refund`` takes to give exactly these points back."""


def rank_key(score: int, reached: int, user_id: str) -> tuple[int, int, str]:
    """Sort key of the ranking rule: ascending order of this key is descending rank.

    The user id is the last resort; two distinct events never share ``reached``, so it only
    matters for totals that were never reached by an event (none in practice).
    """
    return (-score, reached, user_id)


def is_valid_user_id(value: object) -> bool:
    """1-64 characters of ASCII letters, digits and ``_-.:@``."""
    return isinstance(value, str) and _USER_ID_RE.fullmatch(value) is not None


def is_valid_action_id(value: object) -> bool:
    """``ACTION_ID_PATTERN``, and text: a lone surrogate (which only a ``\\ud800``-style JSON
    escape can make) is no character at all, so no JSON Schema string holds one."""
    return (
        isinstance(value, str)
        and _ACTION_ID_RE.fullmatch(value) is not None
        and _SURROGATE.search(value) is None
    )


def is_valid_delta(value: object, minimum: int, maximum: int) -> bool:
    """A JSON integer (not a bool, not a float even if whole) in ``[minimum, maximum]``, not 0."""
    return type(value) is int and value != 0 and minimum <= value <= maximum
