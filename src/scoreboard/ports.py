"""The ports. The core talks to the first three; ``PointsWindow`` holds the velocity limit's
points (``scoreboard.web.guards.limits``). Adapters live in ``scoreboard.adapters``.

Each port is small on purpose. The in-memory adapters are the defaults for embedded mode and the
fakes of the unit tests; every adapter passes the same contract tests (``tests/contract``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from scoreboard.events import BoardChanged
from scoreboard.model import (
    Applied,
    Board,
    HistoryPoint,
    HistoryQuery,
    PointsReservation,
    PointsTicket,
    RankedEntry,
    ScoreEvent,
    ScoreUpdate,
    UserProfile,
    UserTotal,
)


class ScoreStore(Protocol):
    """The source of truth: users' totals and the score events that built them."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def apply(self, update: ScoreUpdate) -> Applied:
        """Apply one update in one transaction and return only once it is durable.

        Inserts the score event (unique per ``(user_id, action_id)``) and adds the delta to the
        user's total. The same ``action_id`` with the same delta again is a retry: nothing is
        added and ``Applied.replayed`` is true. With a different delta it raises
        ``ActionConflict``. A backend failure raises ``Unavailable`` and changes nothing.
        """
        ...

    async def action_delta(self, user_id: str, action_id: str) -> int | None:
        """The delta the user's action ``action_id`` was applied with, or ``None`` when it was
        not applied (yet). A committed read: an ``apply`` still in flight is not seen."""
        ...

    async def get_user(self, user_id: str) -> UserTotal | None: ...

    async def profile(self, user_id: str) -> UserProfile | None: ...

    async def rank_of(self, total: UserTotal) -> int:
        """1 + the number of users the ranking rule puts above ``total``, counted in the store.
        The fallback when the rank index cannot answer: it costs O(rank), not O(log n)."""
        ...

    async def history(self, query: HistoryQuery) -> list[ScoreEvent]:
        """The events ``query`` selects, ordered by ``(at, event_id)``. Served by the
        ``(user_id, created_at)`` index, never a scan."""
        ...

    async def history_buckets(self, query: HistoryQuery) -> list[HistoryPoint]:
        """The score at the end of each ``query.bucket`` (``hour`` or ``day``, UTC) in which
        the user's score changed, oldest first, at most ``query.limit`` buckets. Buckets
        without events are left out: the score did not change."""
        ...

    def iter_totals(self) -> AsyncIterator[list[UserTotal]]:
        """Every user's total, in chunks, for rebuilding a rank index."""
        ...


class RankIndex(Protocol):
    """Users of one board ordered by the ranking rule (``scoreboard.model.rank_key``).

    The index also owns the board's sequence number: when a write changes the top ``top_k``
    entries, the index assigns the next ``seq`` in the same atomic step, so a higher ``seq``
    always carries a newer top, whichever process wrote it.
    """

    async def apply(self, total: UserTotal) -> Board | None:
        """Store a user's total unless the index already holds that user at a version as new
        or newer. Returns the new top with its new ``seq`` if the top changed, else ``None``."""
        ...

    async def apply_and_rank(self, total: UserTotal) -> tuple[Board | None, int | None]:
        """``apply``, plus the user's 1-based rank right after it, in the same step (one
        round trip for a networked index). The rank is ``None`` when the index cannot vouch
        for it (found empty, mid-rebuild); the caller then asks elsewhere."""
        ...

    async def board(self) -> Board:
        """The current top and its ``seq``."""
        ...

    async def load(self, totals: Iterable[UserTotal]) -> None:
        """Add many totals at once (a rebuild), with the same version rule as ``apply``.
        A rebuild that changes the top advances ``seq`` once."""
        ...

    async def clear(self) -> None: ...

    async def top(self, k: int) -> tuple[RankedEntry, ...]:
        """The first ``k`` entries of the board, best first."""
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

    async def observe(self) -> tuple[bool, Board]:
        """One read: whether it is built (marking it lost when not) and the shared board."""
        ...

    async def wait_lost(self, within: float) -> bool:
        """Wait up to ``within`` seconds for the index to be found lost; ``True`` if it was.
        The caller then owns the rebuild."""
        ...

    def mark_lost(self) -> None:
        """Ask for a rebuild (e.g. after one failed)."""
        ...

    async def rebuild(self, chunks: AsyncIterator[list[UserTotal]]) -> Board:
        """Reload every total while the index may be in use; the board after it."""
        ...


class Bus(Protocol):
    """Carries board events between processes. At most once: a lost event is healed by the
    next one, because every event carries the whole top of the board."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, event: BoardChanged) -> None: ...

    async def listening(self, board: str) -> None:
        """Return once events of ``board`` published from now on, by any process, are
        delivered to this process's subscribers."""
        ...

    def subscribe(self, board: str) -> AsyncIterator[BoardChanged]:
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
