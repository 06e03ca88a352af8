"""Value types and the ranking rule.

The ranking rule, written once: **the better aggregate first; equal aggregates are ordered by
who reached that aggregate first**. Better is higher on a board ordered ``desc`` (points), lower
on one ordered ``asc`` (lap times). "First" is measured by ``reached``, the store's sequence
number of the score event that produced the user's current aggregate (smaller is earlier).
Every rank index orders users by :func:`rank_key` and must pass the same contract tests for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

DEFAULT_BOARD = "main"
"""The board behind the seed's endpoints unless ``SCOREBOARD_DEFAULT_BOARD`` names another."""
DEFAULT_METRIC = "points"
"""The metric of an update that names none."""

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
"""A user id, as the OpenAPI document states it (``$`` never meets a newline: ``fullmatch``)."""
USER_ID_RULE = "1-64 characters of letters, digits and _-.:@"
"""The rule of :data:`USER_ID_PATTERN` in words, for every message that states it."""
ACTION_ID_PATTERN = (
    r"^[^\u0000-\u001F\u007F-\u009F\u00AD\u061C\u180E\u200B-\u200F\u2028-\u202E"
    r"\u2060-\u206F\uFEFF\uFFF9-\uFFFB]{1,128}$"
)
"""An action id: 1-128 characters, none of them a control character (C0, DEL, C1), a line or
paragraph separator, or an invisible formatting character (soft hyphen, the bidirectional marks
and overrides, zero-width characters, the byte order mark). Written as explicit ranges rather
than ``str.isprintable``, so that the OpenAPI document states the very rule the server applies,
and it does not move with the Unicode version of the Python that runs it."""

_INVISIBLE = (
    r"\u0000-\u001F\u007F-\u009F\u00AD\u061C\u180E\u200B-\u200F\u2028-\u202E\u2060-\u206F"
    r"\uFEFF\uFFF9-\uFFFB"
)
USERNAME_PATTERN = rf"^[^\s{_INVISIBLE}]([^{_INVISIBLE}]{{0,126}}[^\s{_INVISIBLE}])?$"
"""A display name an operator sets: 1-128 characters, none of them a control or invisible
formatting character (those of :data:`ACTION_ID_PATTERN`), not starting or ending with a
space."""

_USER_ID_RE = re.compile(USER_ID_PATTERN)
_USERNAME_RE = re.compile(USERNAME_PATTERN)
_ACTION_ID_RE = re.compile(ACTION_ID_PATTERN)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class Standing(NamedTuple):
    """A user's aggregate on one board in one period, as the store holds it.

    ``version`` rises by one with every event that changed it, so a rank index can drop a write
    older than the one it holds. ``reached`` is the ranking tie-breaker (see module doc). A named
    tuple rather than a frozen dataclass: a rebuild makes one per user, and a tuple is built five
    times faster (10^6 users: 0.35 s instead of 1.8 s).
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


class ExportRow(NamedTuple):
    """One row of an export: 1-based rank, who, the score, and when the event that reached
    it was committed."""

    rank: int
    user_id: str
    username: str
    score: int
    reached_at: datetime


@dataclass(frozen=True, slots=True)
class Top:
    """The top of a board in its current ``period``, and the board's sequence number.

    ``seq`` rises by one each time ``top`` changes (membership, order, a score or a name in it,
    or a new period) and is assigned by the rank index in the same step as the change, so that
    across processes a higher ``seq`` always means a newer ``top``. One ``seq`` per board, over
    all its periods.
    """

    seq: int
    top: tuple[RankedEntry, ...]
    period: str = "all"


class Placement(NamedTuple):
    """What one write did to a rank index: the new top (``None``: unchanged), the user's 1-based
    rank right ``before`` and ``after`` it (``None``: not on the board, or the index cannot
    vouch for it), and whether the write was ``stored`` (not dropped as stale, or as another
    period's). A user moving from ``before`` to ``after`` moves only the entries ranked between
    the two: the live views (``scoreboard.subscriptions``) recompute only the windows there."""

    top: Top | None
    before: int | None
    after: int | None
    stored: bool


@dataclass(frozen=True, slots=True)
class UserProfile:
    """A user's row as the store holds it: who, under which name, since when; the status an
    operator gave them, and whether an operator's name for them is locked against tokens."""

    user_id: str
    username: str
    created_at: datetime
    status: str = "active"
    name_locked: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """A user's standing on a board in a period, with when it last changed."""

    standing: Standing
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
    metric: str = DEFAULT_METRIC


@dataclass(frozen=True, slots=True)
class ScoreUpdate:
    """A validated request to add an event of ``delta`` to a user's ``metric``.

    ``action_id`` is the idempotency key, per user across metrics: ``None`` means the caller gave
    none and the store makes one up, so the update can never be matched as a retry.
    ``username`` is ``None`` when the token carried no name (the stored name is then kept, or
    the user id for a new user).
    """

    user_id: str
    delta: int
    action_id: str | None = None
    username: str | None = None
    metric: str = DEFAULT_METRIC
    source: str = "user"
    """``admin``: an operator's adjustment (``POST /api/admin/users/{id}/adjust``). It counts on
    ``sum`` boards only, never renames the user, and is applied to a banned user too."""


@dataclass(frozen=True, slots=True)
class BoardStanding:
    """Where one update left its user on one board its metric feeds: the board's current
    ``period`` (the one the event was committed in) and the user's ``standing`` there
    (``None``: no entry in that period, as for a replay after a rollover). ``changed``: the
    event changed the standing (a ``best`` board the event did not better: ``False``)."""

    board: str
    period: str
    standing: Standing | None
    changed: bool
    shown: bool = True
    """``False``: the standing is not on the board (its user is hidden or banned): a rank index
    must not hold it, and the answer's rank is ``null``."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What the store did with an update: where it left the user on every board its metric
    feeds, and whether it was a retry of an action already applied (then nothing was added and
    the standings are the user's current ones)."""

    user_id: str
    username: str
    boards: tuple[BoardStanding, ...]
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class BoardResult:
    """One board in the answer to an update: the period, the user's score and rank there
    (``None`` where the user has no entry, or is not ranked)."""

    board: str
    period: str
    score: int | None
    rank: int | None


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """The answer to an accepted update: the user's place on every board its metric feeds."""

    user_id: str
    boards: tuple[BoardResult, ...]
    replayed: bool = False
    """The update was a retry of an applied action: nothing was added."""

    def on(self, board: str) -> BoardResult | None:
        return next((b for b in self.boards if b.board == board), None)


@dataclass(frozen=True, slots=True)
class PeriodSummary:
    """A period of a board as ``/api/boards/{board}/periods`` lists it."""

    board: str
    id: str
    starts_at: datetime | None
    ends_at: datetime | None
    entries: int
    leader: RankedEntry | None


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


ORDERS = ("desc", "asc")


def rank_score(score: int, order: str = "desc") -> int:
    """The score as it sorts: ascending order of ``rank_score`` is rank order (the better
    first), on a board of either order. Stored beside the score, so one ascending index serves
    every board."""
    return -score if order == "desc" else score


def rank_key(score: int, reached: int, user_id: str, order: str = "desc") -> tuple[int, int, str]:
    """Sort key of the ranking rule: ascending order of this key is rank order.

    The user id is the last resort; two distinct events never share ``reached``, so it only
    matters for aggregates that were never reached by an event (none in practice).
    """
    return (rank_score(score, order), reached, user_id)


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


def is_valid_username(value: object) -> bool:
    """:data:`USERNAME_PATTERN`, and text (no lone surrogate)."""
    return (
        isinstance(value, str)
        and _USERNAME_RE.fullmatch(value) is not None
        and _SURROGATE.search(value) is None
    )


def is_valid_delta(value: object, minimum: int, maximum: int) -> bool:
    """A JSON integer (not a bool, not a float even if whole) in ``[minimum, maximum]``, not 0."""
    return type(value) is int and value != 0 and minimum <= value <= maximum


USER_STATUSES = ("active", "hidden", "banned")
"""``hidden``: on no public read, page or live board, though their updates still count;
``banned``: hidden, and their updates are refused."""
SOURCES = ("user", "admin")


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A score event as an operator sees it (``GET /api/admin/users/{id}/events``)."""

    event_id: int
    user_id: str
    metric: str
    delta: int
    action_id: str
    source: str
    at: datetime
    voided: bool


class CheckpointRow(NamedTuple):
    """A row of a checkpoint: a user's standing as the checkpoint found it (``hidden`` as in
    ``standings``: bit 1 not shown)."""

    user_id: str
    score: int
    rank_score: int
    reached: int
    hidden: int


@dataclass(frozen=True, slots=True)
class Replay:
    """What a read of a board at an instant needs from the latest checkpoint of its period
    before that instant (``Checkpoints.replay``), all read in one snapshot.

    The checkpoint counted every event of the metric in the period through event ``through``,
    all of them dated ``at`` or earlier. ``rows`` are its first rows in rank order (shown or
    not); every other user's key was after ``bound`` (``None``: there was no other user).
    ``after`` are the events dated after ``at`` up to the read's instant, by event id;
    ``recounted`` the users to count from ``own`` (all their events of the period up to the
    instant) rather than from their row: those with an event committed after ``through`` but
    dated before ``at``, and those named by an audit entry after the checkpoint's
    (``audit``)."""

    at: datetime
    through: int
    bound: tuple[int, int, str] | None
    rows: tuple[CheckpointRow, ...]
    after: tuple[LedgerEvent, ...]
    recounted: frozenset[str]
    own: tuple[LedgerEvent, ...]
    audit: tuple[AuditEntry, ...]


class RowKey(NamedTuple):
    """A standings row as it sorts (``rank_score``, ``reached``) and why it is not shown
    (``hidden``: 0 shown, see migration 0005)."""

    rank_score: int
    reached: int
    hidden: int


@dataclass(frozen=True, slots=True)
class Movers:
    """A board's period read backward from now (``AdminStore.backward``), in one snapshot: the
    ``users`` with an event of the metric dated at or after the instant (voided ones included),
    every event of theirs in the period dated before it (``events``, by event id; their ``at``
    may be ``None``: the tally does not need it), and the
    present standings rows of them and of the asked user (``rows``; none for a user without
    one)."""

    users: frozenset[str]
    events: tuple[LedgerEvent, ...]
    rows: dict[str, RowKey]


@dataclass(frozen=True, slots=True)
class Moved:
    """A standing a moderation action changed: the user's place on ``board`` in ``period`` is
    now ``standing``, or, with ``standing`` ``None``, the user is no longer on it (hidden,
    banned, erased, or every event that made it voided). ``version`` is the standing's new
    version, so a rank index can drop a write older than the removal."""

    board: str
    period: str
    user_id: str
    standing: Standing | None
    version: int


class LedgerEvent(NamedTuple):
    """A score event as ``scoreboard verify`` and ``repair`` read the ledger: who, the delta,
    its source (``user`` or ``admin``), whether it is voided, and whether its user is shown
    (``active``; a hidden or banned user's standings are kept but not shown)."""

    event_id: int
    user_id: str
    delta: int
    source: str
    voided: bool
    user_shown: bool
    at: datetime | None = None
    """When it was committed (the past reads place it in time; verify does not need it)."""


class StoredRow(NamedTuple):
    """A standings row exactly as stored, shown or not: ``hidden`` is the row's bits (1: the
    user is hidden or banned, 2: every event of it voided; 0: shown)."""

    user_id: str
    username: str
    score: int
    rank_score: int
    reached: int
    version: int
    hidden: int


@dataclass(frozen=True, slots=True)
class Moderated:
    """What a moderation action did: ``changed`` is ``False`` when there was nothing to do (it
    is idempotent: voiding a voided event), ``moved`` the standings it changed, in every period
    (current ones and archives)."""

    changed: bool
    moved: tuple[Moved, ...] = ()


@dataclass(frozen=True, slots=True)
class Audit:
    """An admin action to record, in the same transaction as the action itself."""

    key: str
    """The name of the admin key that did it."""
    action: str
    target: str
    reason: str | None = None
    details: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A recorded admin action (``GET /api/admin/audit``)."""

    id: int
    at: datetime
    key: str
    action: str
    target: str
    reason: str | None
    details: dict[str, object]


def audit_subjects(audit: Iterable[AuditEntry]) -> tuple[set[str], set[int]]:
    """Every user the entries may be about (each target, each details' ``user_id``) and every
    event they name (a target ``event:N``, whose user a reader looks up). More than the
    actions about a user name: a reader that recounts them all recounts some ids that are no
    user's, which costs it only the lookup."""
    users: set[str] = set()
    events: set[int] = set()
    for entry in audit:
        users.add(entry.target)
        kind, _, number = entry.target.partition(":")
        if kind == "event" and number.isdigit():
            events.add(int(number))
        user = entry.details.get("user_id")
        if isinstance(user, str):
            users.add(user)
    return users, events


@dataclass(frozen=True, slots=True)
class AdminKey:
    """An admin key as the store holds it: never the key itself, only its SHA-256."""

    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    key_hash: str = ""
    """Only when looked up by it (``AdminStore.key_by_hash``)."""
