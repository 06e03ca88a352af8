"""The ports. The core talks to the first three, operators' actions to ``AdminStore``;
``PointsWindow`` holds the velocity limit's points (``scoreboard.web.guards.limits``);
``Outbox`` holds the webhooks and their deliveries (``scoreboard.courier`` sends them).
Adapters live in ``scoreboard.adapters``.

Each port is small on purpose. The in-memory adapters are the defaults for embedded mode and the
fakes of the unit tests; every adapter passes the same contract tests (``tests/contract``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from scoreboard.boards import Board, BoardsConfig
from scoreboard.events import BoardEvent
from scoreboard.model import (
    AdminKey,
    Applied,
    Audit,
    AuditEntry,
    Entry,
    EventRecord,
    ExportRow,
    HistoryPoint,
    HistoryQuery,
    LedgerEvent,
    Moderated,
    Moved,
    Movers,
    PeriodSummary,
    Placement,
    PointsReservation,
    PointsTicket,
    RankedEntry,
    Replay,
    ScoreEvent,
    ScoreUpdate,
    Standing,
    StoredRow,
    Top,
    UserProfile,
)
from scoreboard.periods import Period
from scoreboard.webhooks import Claimed, Delivery, Notice, Webhook


class ScoreStore(Protocol):
    """The source of truth: score events, what every board makes of them (standings per
    period), the boards' periods, and the applied board configuration.

    The store applies each update with the configuration and the manual seasons current when
    it commits: a configuration change or a rollover is serialized with the updates, so every
    event counts on the boards, and in the periods, that were current at its commit.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # -- the configuration ------------------------------------------------------------------

    async def load_config(self) -> tuple[BoardsConfig | None, int]:
        """The applied configuration and its version (``None``, 0 before any); the store
        applies updates with it from now on."""
        ...

    async def config_version(self) -> int: ...

    async def apply_config(
        self, config: BoardsConfig, *, expected_version: int, fill: Sequence[str]
    ) -> int:
        """Store ``config`` unless another was applied since ``expected_version`` (raises
        ``ConfigChanged``), filling the boards ``fill`` (new, or added back) from the stored
        events of their current period, replacing what that period held, in one transaction
        serialized with the updates. The new version."""
        ...

    # -- events -----------------------------------------------------------------------------

    async def apply(self, update: ScoreUpdate) -> Applied:
        """Apply one update in one transaction and return only once it is durable.

        Inserts the score event (unique per ``(user_id, action_id)``, across metrics), adds it
        to the user's running total of its metric, and moves the user on every board the
        metric feeds, in each board's current period. The same ``action_id`` with the same
        delta and metric again is a retry: nothing is added and ``Applied.replayed`` is true.
        Otherwise it raises ``ActionConflict``; a total or a sum beyond ``±MAX_SCORE``,
        ``ScoreOutOfRange``. A backend failure raises ``Unavailable`` and changes nothing.
        """
        ...

    async def action_delta(self, user_id: str, action_id: str) -> int | None:
        """The delta the user's action ``action_id`` was applied with, or ``None`` when it was
        not applied (yet). A committed read: an ``apply`` still in flight is not seen."""
        ...

    async def profile(self, user_id: str) -> UserProfile | None: ...

    async def history(self, query: HistoryQuery) -> list[ScoreEvent]:
        """The events ``query`` selects (one metric), ordered by ``(at, event_id)``. Served by
        the ``(user_id, metric, created_at)`` index, never a scan."""
        ...

    async def history_buckets(self, query: HistoryQuery) -> list[HistoryPoint]:
        """The score at the end of each ``query.bucket`` (``hour`` or ``day``, UTC) in which
        the user's total of the metric changed, oldest first, at most ``query.limit``."""
        ...

    # -- standings --------------------------------------------------------------------------

    async def entry(self, board: str, period: str, user_id: str) -> Entry | None: ...

    async def rank_of(self, board: str, period: str, order: str, standing: Standing) -> int:
        """1 + the number of entries the ranking rule puts above ``standing``, counted in the
        store: the fallback when the rank index cannot answer, and the archives' rank. It
        costs O(rank), not O(log n)."""
        ...

    async def page(self, board: str, period: str, offset: int, limit: int) -> list[Standing]:
        """Entries in rank order from 0-based ``offset`` (archives)."""
        ...

    async def count(self, board: str, period: str) -> int: ...

    def iter_standings(self, board: str, period: str) -> AsyncIterator[list[Standing]]:
        """Every entry of ``board`` in ``period``, in chunks, in no order (rebuilds)."""
        ...

    def iter_ranked(
        self, board: str, period: str, *, chunk: int = 5000
    ) -> AsyncIterator[list[ExportRow]]:
        """Every shown entry of ``board`` in ``period`` in rank order, in chunks of ``chunk``
        rows (exports): a keyset walk of the rank index, so memory stays flat however many."""
        ...

    async def has_data(self, board: str) -> bool:
        """Whether ``board`` has any entry in any period."""
        ...

    # -- periods ----------------------------------------------------------------------------

    async def period(self, board: str, period_id: str) -> Period | None:
        """The recorded period, or ``None``: never started, or deleted by ``keep``."""
        ...

    async def periods(
        self, board: str, *, limit: int, before: str | None = None
    ) -> list[PeriodSummary]:
        """Newest first, after ``before``; with entries and leader."""
        ...

    async def start_period(self, board: str, period: Period) -> None:
        """Record that ``board`` has ``period`` (idempotent)."""
        ...

    async def seasons(self) -> dict[str, Period]:
        """Every manual board's current season."""
        ...

    async def rollover(self, board: Board) -> tuple[Period, Period]:
        """End the manual ``board``'s season now and start the next: ``(closed, opened)``."""
        ...

    async def prune(self, board: str, keep: int) -> list[str]:
        """Delete ``board``'s closed periods beyond the newest ``keep``; the ids deleted."""
        ...


class AdminStore(Protocol):
    """What operators do to the truth (``/api/admin``): moderation, erasure, admin keys and the
    audit trail. The same adapter as the :class:`ScoreStore`, on the same database; each action
    is one transaction with its :class:`~scoreboard.model.Audit` row, serialized with the
    updates of the user it touches.

    Moderation recomputes, from the events, every standing an action touches, in every period
    the events fed (archives included), and returns them (``Moderated.moved``) for the rank
    indexes. A standing that is no longer on its board keeps its row (``hidden``), so its
    version goes on rising.
    """

    async def events_of(
        self, user_id: str, *, limit: int, before: int | None = None
    ) -> list[EventRecord]:
        """The user's events of every metric, newest first, those with ``event_id < before``."""
        ...

    async def event(self, event_id: int) -> EventRecord | None: ...

    async def standing_of(
        self, board: str, period: str, user_id: str
    ) -> tuple[Standing, bool] | None:
        """The user's standing there, shown or not (``None``: no entry, or every event of it
        voided)."""
        ...

    async def void(
        self,
        event_id: int,
        config: BoardsConfig,
        audit: Audit,
        *,
        restore: bool = False,
        notice: Notice | None = None,
    ) -> Moderated:
        """The event stops counting (``restore``: counts again) on every board of
        ``config`` its metric feeds, in the period it was committed in. ``changed`` is
        ``False`` (and nothing is recorded) when it already was so. ``NotFound`` for an
        unknown event; ``ScoreOutOfRange`` if a restored total would leave ``±MAX_SCORE``.
        ``notice`` (``score.voided``) is queued for the webhooks that want it in the same
        transaction (:meth:`Outbox.enqueue`), when the event changed."""
        ...

    async def set_status(
        self, user_id: str, status: str, config: BoardsConfig, audit: Audit
    ) -> Moderated:
        """``active``, ``hidden`` or ``banned``. Every standing of the user, in every period,
        is shown or not accordingly. ``NotFound`` for an unknown user."""
        ...

    async def rename(self, user_id: str, username: str | None, audit: Audit) -> Moderated:
        """Set the user's name and lock it against tokens' names (``username`` ``None``: unlock
        it, keeping the name); every standing of theirs gets a new version, so the indexes
        take the name. ``NotFound`` for an unknown user."""
        ...

    async def adjust(self, update: ScoreUpdate, audit: Audit) -> Applied:
        """:meth:`ScoreStore.apply` of an operator's event (``update.source`` ``admin``),
        recorded with ``audit`` in its transaction."""
        ...

    async def erase(self, user_id: str, erased_as: str, audit: Audit) -> list[tuple[str, str]]:
        """Delete the user and everything of theirs (profile, events, totals, standings in
        every period, webhook deliveries about them); replace their id by ``erased_as`` in the
        audit rows that name them, and record ``audit`` (whose target is ``erased_as``). The
        ``(board, period)`` pairs where they had a standing. ``NotFound`` for an unknown user."""
        ...

    # -- verify and repair (scoreboard.consistency) ------------------------------------------

    def ledger(
        self,
        metric: str,
        since: datetime | None,
        until: datetime | None,
        *,
        user_id: str | None = None,
    ) -> AsyncIterator[list[LedgerEvent]]:
        """Every event of ``metric`` committed in ``[since, until)`` (``None``: unbounded),
        voided ones included, by event id, in chunks (a keyset walk: flat memory); only
        ``user_id``'s with it (an index range read)."""
        ...

    async def backward(
        self,
        board: Board,
        period: Period,
        at: datetime,
        user_id: str,
        most: int,
        place: Callable[[Movers], tuple[int, int] | None],
    ) -> tuple[Movers, int] | None:
        """``board``'s standings in ``period`` (recorded) read back to just before ``at``, in
        one snapshot (``scoreboard.past`` says why that is the board then): the :class:`Movers`
        (the users of the events of the metric dated in ``[at, period end)``), then ``place``
        called with them, and the number of shown standings rows whose ``(rank_score,
        reached)`` sorts before the key it answers (0 when it answers ``None``). ``None``
        (nothing read past the first steps) when more than ``most`` events are dated there, or
        fewer are dated before ``at`` in the period than after it (a recount reads less)."""
        ...

    def stored(
        self, board: str, period: str, *, user_id: str | None = None
    ) -> AsyncIterator[list[StoredRow]]:
        """Every standings row of ``board`` in ``period``, shown or not, in chunks, in no
        order; only ``user_id``'s with it."""
        ...

    async def recount(
        self, board: Board, period: str, user_ids: Sequence[str]
    ) -> tuple[Moved, ...]:
        """The users' standings on ``board`` in the recorded ``period`` again, from the events
        that count, exactly as a void recomputes them, in one transaction serialized with the
        updates (as moderation is). Each gets a new version whether or not it changed, so a rank
        index takes it over whatever it holds. A ``Moved`` per user who has a row there
        (``standing`` ``None``: not shown); nothing for one with neither a row nor an event
        that counts. ``NotFound`` when ``period`` is not recorded."""
        ...

    async def audit_page(self, *, limit: int, before: int | None = None) -> list[AuditEntry]:
        """Newest first, entries with ``id < before``."""
        ...

    async def record(self, audit: Audit) -> None:
        """Record an action that changes nothing else in the store (a rollover over HTTP, a
        webhook's management)."""
        ...

    async def add_key(self, name: str, key_hash: str) -> None:
        """``Conflict`` if the name is taken (a revoked key's name included)."""
        ...

    async def keys(self) -> list[AdminKey]: ...

    async def revoke_key(self, name: str) -> bool:
        """``False`` if there is no such key, or it was revoked already."""
        ...

    async def key_by_hash(self, key_hash: str) -> AdminKey | None:
        """The key with this SHA-256, revoked or not; records its use (``last_used_at``, at
        most once a minute)."""
        ...


class Outbox(Protocol):
    """The webhooks operators registered and the deliveries queued for them. The same adapter
    as the :class:`ScoreStore`, on the same database, so a delivery can be queued in the
    transaction of what caused it (a void). Each management action is one transaction with its
    :class:`~scoreboard.model.Audit` row.

    A delivery is unique per ``(webhook, notice.key)``: queueing a notice again (another
    process came to know the same event) adds nothing. :meth:`claim` hands each due delivery
    to one caller at a time, across processes, until its lease runs out."""

    async def add_webhook(self, webhook: Webhook, audit: Audit) -> None: ...

    async def webhooks(self) -> list[Webhook]:
        """Every webhook, oldest first."""
        ...

    async def webhook(self, webhook_id: str) -> Webhook | None: ...

    async def delete_webhook(self, webhook_id: str, audit: Audit) -> bool:
        """With its deliveries. ``False`` (and nothing recorded) if there is no such webhook."""
        ...

    async def update_webhook(self, webhook: Webhook, audit: Audit) -> bool:
        """Store ``webhook``'s secrets and ``enabled``/``disabled_at`` (a rotation, an enable,
        a disable). ``False`` (and nothing recorded) if there is no such webhook."""
        ...

    async def enqueue(self, notice: Notice) -> int:
        """Queue ``notice`` for every enabled webhook that wants it, due now; how many
        deliveries this call added."""
        ...

    async def deliveries(
        self, webhook_id: str, *, limit: int, before: int | None = None
    ) -> list[Delivery]:
        """Newest first, those with ``id < before``."""
        ...

    async def claim(self, *, limit: int, lease: float) -> list[Claimed]:
        """Up to ``limit`` pending deliveries that are due (``next_at`` passed) and not held,
        oldest first, now held by the caller for ``lease`` seconds (their endpoint enabled)."""
        ...

    async def settle(
        self,
        delivery_id: int,
        *,
        delivered: bool,
        error: str | None = None,
        next_at: datetime | None = None,
    ) -> None:
        """The outcome of one attempt: delivered; or failed, tried again at ``next_at``
        (``None``: given up, status ``failed``). The lease is released either way."""
        ...

    async def forget(self, user_id: str) -> None:
        """Delete every delivery about ``user_id`` (an erasure deletes them in its own
        transaction; this is for events queued just after it)."""
        ...

    async def redeliver(self, webhook_id: str, delivery_id: int, audit: Audit) -> bool:
        """Make the delivery pending and due now again, whatever its status. ``False`` (and
        nothing recorded) when the webhook has no such delivery."""
        ...


class Store(ScoreStore, AdminStore, Outbox, Protocol):
    """What each store adapter is: the truth, what operators do to it, and the outbox."""


@runtime_checkable
class Checkpoints(Protocol):
    """Checkpoints of the boards' standings, so that a read of the past replays the events
    after the latest one instead of the whole period (``scoreboard.past``). Derived state:
    losing them costs speed, never an answer. The SQLite and PostgreSQL stores have them; a
    store without them (memory) reads every past by recounting."""

    async def take_checkpoints(self, boards: Sequence[tuple[Board, Period]], size: int) -> int:
        """Record, for each ``(board, period)`` with events, the standings as they are now (the
        first ``size`` rows in rank order, shown or not), in one transaction serialized with the
        updates; first note, for every checkpoint already recorded, the users of events
        committed since the previous call but dated before its ``at``. How many were written."""
        ...

    async def replay(self, board: Board, period: Period, until: datetime) -> Replay | None:
        """What reading ``board`` in ``period`` just before ``until`` needs from the latest
        checkpoint dated before ``until`` of the board's present shape (metric, aggregate,
        order), in one snapshot; ``None`` when there is none."""
        ...

    async def events_of_users(
        self, metric: str, users: Sequence[str], since: datetime | None, until: datetime
    ) -> list[LedgerEvent]:
        """Every event of ``metric`` of each of ``users`` committed in ``[since, until)``
        (``None``: unbounded), voided ones included, by event id, in one read (an index range
        per user): a replay's recount of the users it cannot place otherwise."""
        ...


class RankIndex(Protocol):
    """One board's entries in its current period, ordered by the ranking rule
    (``scoreboard.model.rank_key`` with the board's order).

    The index also owns the board's sequence number: when a write changes the top ``top_k``
    entries, or a new period starts, the index assigns the next ``seq`` in the same atomic
    step, so a higher ``seq`` always carries a newer top, whichever process wrote it.
    """

    async def apply(self, period: str, standing: Standing) -> Top | None:
        """Store a user's standing in ``period``, unless the index already holds that user at
        a version as new or newer, or ``period`` is not its current period. Returns the new top
        with its new ``seq`` if the top changed, else ``None``."""
        ...

    async def apply_and_rank(
        self, period: str, standing: Standing
    ) -> tuple[Top | None, int | None]:
        """``apply``, plus the user's 1-based rank right after it, in the same step (one
        round trip for a networked index). The rank is ``None`` when the index cannot vouch
        for it (another period, found empty, mid-rebuild); the caller then asks elsewhere."""
        ...

    async def apply_and_move(self, period: str, standing: Standing) -> Placement:
        """``apply``, plus the user's rank right before and right after it, in the same
        atomic step (one round trip for a networked index): what the live views need to know
        which windows the write can have changed. ``stored`` is ``False`` when the write was
        dropped (stale, another period); ranks are ``None`` where the index cannot vouch for
        them (as in ``apply_and_rank``)."""
        ...

    async def remove(self, period: str, user_id: str, version: int) -> Top | None:
        """The user is no longer on the board in ``period`` (hidden, banned, or nothing of
        theirs counts there), as of their standing's ``version``: a later :meth:`apply` of an
        older or equal version is dropped. Returns the new top when it changed."""
        ...

    async def forget(self, user_id: str) -> Top | None:
        """Erase every trace of the user, in every period the index holds (no tombstone: a
        new user with that id starts from nothing). Returns the new top when it changed."""
        ...

    async def board(self) -> Top:
        """The current period's top and the board's ``seq``."""
        ...

    async def start_period(self, period: str) -> Top:
        """Make ``period`` the current one, empty, with the next ``seq`` (the ``seq`` of its
        ``PERIOD_STARTED``); when it already is the current period (another process started
        it), what that start answered, however the period changed since: every process asks
        and announces what it gets, so the period is announced with one ``seq``. (For a period
        made current by ``load`` rather than started: its top as it is.)"""
        ...

    async def load(self, period: str, standings: Iterable[Standing]) -> None:
        """Add many standings of ``period`` at once (a rebuild; ``period`` becomes the current
        one), with the same version rule as ``apply``. A load that changes the top advances
        ``seq`` once."""
        ...

    async def clear(self) -> None: ...

    async def top(self, k: int) -> tuple[RankedEntry, ...]:
        """The first ``k`` entries, best first."""
        ...

    async def page(self, offset: int, limit: int) -> tuple[RankedEntry, ...]:
        """Up to ``limit`` entries starting at 0-based position ``offset``, in O(log n + k)."""
        ...

    async def rank(self, user_id: str) -> int | None:
        """1-based rank of a user, or ``None`` if the user is not on the board."""
        ...

    async def size(self) -> int: ...


class SharedIndex(RankIndex, Protocol):
    """A rank index that outlives this process and is shared with others (Redis): it can be
    lost underneath us (flushed, restarted) and must then be rebuilt from the store, and its
    ``seq`` may move without us. ``scoreboard.keeper`` keeps it whole."""

    async def check(self) -> bool:
        """Whether the index is built (``False`` after a flush; marks it lost then)."""
        ...

    async def observe(self) -> tuple[bool, Top]:
        """One read: whether it is built (marking it lost when not) and the shared board."""
        ...

    async def wait_lost(self, within: float) -> bool:
        """Wait up to ``within`` seconds for the index to be found lost; ``True`` if it was.
        The caller then owns the rebuild."""
        ...

    def mark_lost(self) -> None:
        """Ask for a rebuild (e.g. after one failed)."""
        ...

    async def rebuild(self, period: str, chunks: AsyncIterator[list[Standing]]) -> Top:
        """Reload every standing of ``period`` while the index may be in use; the top after."""
        ...


class Bus(Protocol):
    """Carries board events between processes: ``BoardChanged`` (a new top) and
    ``StandingMoved`` (one user's place changed, for the subscribed views of ``/ws``). At most
    once: a lost ``BoardChanged`` is healed by the next one, because every one carries the whole
    top of the board; a lost ``StandingMoved`` leaves the views it would have changed behind
    until a later move, a rebuild or a catch-up touches them (``scoreboard.subscriptions``)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, event: BoardEvent) -> None: ...

    async def listening(self, board: str) -> None:
        """Return once events of ``board`` published from now on, by any process, are
        delivered to this process's subscribers."""
        ...

    def subscribe(self, board: str) -> AsyncIterator[BoardEvent]:
        """Events of ``board`` published from now on, by any process (this one included)."""
        ...


class PointsWindow(Protocol):
    """Points reserved per key in a moving window of ``span`` seconds.

    A reservation made at time ``t`` holds its points until ``t + span`` (exclusive), so the
    points held at any instant are exactly those reserved in the ``span`` seconds before it.
    ``reserve`` grants ``points`` when the points held plus ``points`` stay within ``limit``,
    and holds them, in one atomic step: however many callers (processes) reserve at once, the
    points held never exceed the limit. A refused reservation holds nothing. A backend failure
    raises ``Unavailable``.

    Reservations under one key with the same ``action_id`` and the same points are one action
    asked for again (a retry, possibly concurrent): while one of them holds its points, the
    others **share** that reservation instead of holding the points again. They are granted
    whatever the budget, hold no more points, and the points are held (from the first one's
    time) until every sharer has refunded or they leave the window.
    """

    async def reserve(
        self, key: str, points: int, *, limit: int, span: float, action_id: str | None = None
    ) -> PointsReservation: ...

    async def refund(self, ticket: PointsTicket) -> None:
        """Give back exactly the reservation ``ticket`` names (for a shared one: one sharer's
        part; each grant is refunded at most once); nothing when it already left the window
        or was given back entirely before."""
        ...

    async def forget(self, key: str) -> None:
        """Drop everything held under ``key`` (an erased user's window)."""
        ...
