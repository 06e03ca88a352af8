"""The use cases: apply a score update, read the board.

The service owns the order of one update: durable commit first, then the rank index, then (only
if the index reports that the top of the board changed, with its new ``seq``) a board event to
the local live board and to the bus. It imports no web framework, database driver or Redis client.
"""

from __future__ import annotations

import logging

from scoreboard.broadcast import LiveBoard
from scoreboard.errors import InvalidRequest, NotFound, Unavailable
from scoreboard.events import BoardChanged, EncodedBoard
from scoreboard.model import (
    BUCKETS,
    DEFAULT_BOARD,
    TOP_K,
    USER_ID_RULE,
    HistoryPoint,
    HistoryQuery,
    RankedEntry,
    ScoreEvent,
    ScoreUpdate,
    UpdateResult,
    UserProfile,
    UserTotal,
    is_valid_action_id,
    is_valid_delta,
    is_valid_user_id,
)
from scoreboard.ports import Bus, RankIndex, ScoreStore

log = logging.getLogger(__name__)

PAGE_MAX = 100
RADIUS_MAX = 50
HISTORY_MAX = 1000


class ScoreService:
    """Apply updates and serve the board of one board id.

    ``start`` must run before anything else: it rebuilds the rank index from the store (the
    store is the truth; the index is derived) and puts its board on the live board.
    """

    def __init__(
        self,
        store: ScoreStore,
        index: RankIndex,
        bus: Bus,
        *,
        min_delta: int,
        max_delta: int,
        board: str = DEFAULT_BOARD,
        live: LiveBoard | None = None,
    ) -> None:
        """``live``: the process's live board (made empty here when not given; the composition
        root makes it first when a shared index must read its ``seq``)."""
        self.store = store
        self.index = index
        self.bus = bus
        self.board = board
        self.min_delta = min_delta
        self.max_delta = max_delta
        self.live = live or LiveBoard(BoardChanged(board, 0, "", 0, ()))
        self.started = False
        """Whether :meth:`start` has built the index (readiness)."""

    async def start(self) -> None:
        await self.rebuild_index()
        board = await self.index.board()
        self.live.offer(BoardChanged(self.board, board.seq, "", 0, board.top))
        self.started = True

    async def rebuild_index(self) -> int:
        """Load every total from the store into the index; returns how many users."""
        # One load of everything: an index can build from a whole list far faster than it can
        # insert chunk after chunk (a sort instead of n ordered inserts).
        totals = []
        async for chunk in self.store.iter_totals():
            totals.extend(chunk)
        await self.index.load(totals)
        log.info("rank index built", extra={"users": len(totals), "board": self.board})
        return len(totals)

    def current_board(self) -> EncodedBoard:
        return self.live.current

    def validate(self, update: ScoreUpdate) -> None:
        """Raise ``InvalidRequest`` unless the update is well formed and in range."""
        self._check_user_id(update.user_id)
        if not is_valid_delta(update.delta, self.min_delta, self.max_delta):
            raise InvalidRequest(
                f"score_delta must be a non-zero integer from {self.min_delta} to {self.max_delta}",
                code="invalid_score_delta",
            )
        if update.action_id is not None and not is_valid_action_id(update.action_id):
            raise InvalidRequest(
                "action_id must be 1-128 characters, with no control or invisible formatting "
                "characters",
                code="invalid_action_id",
            )

    async def update(self, update: ScoreUpdate) -> UpdateResult:
        """Apply an authorized update. Returns after the commit, with the user's new rank.

        A retry of an applied action returns the user's current total and rank and adds
        nothing. Raises ``InvalidRequest``, ``ActionConflict``, ``ScoreOutOfRange`` or (when
        the store cannot commit) ``Unavailable``; on any of them nothing has changed. Once the
        store has committed, the update is answered even if the rank index is down: the rank
        then comes from the store.
        """
        self.validate(update)
        applied = await self.store.apply(update)
        # Committed: from here on the answer is a 200, whatever happens to derived state.
        total = applied.total
        try:
            rank = await self._index(total, applied.replayed)
        except Unavailable as exc:
            log.warning(
                "rank index unavailable after a commit; ranking from the store: %s",
                exc,
                extra={"user_id": total.user_id},
            )
            rank = await self.store.rank_of(total)
        return UpdateResult(total.user_id, total.score, rank, replayed=applied.replayed)

    async def already_applied(self, update: ScoreUpdate) -> bool:
        """Whether ``update`` carries an ``action_id`` the store has applied (with any delta):
        applying it again adds nothing, it is answered as a replay (or a conflict). One
        committed read; an update still in flight is not seen."""
        if update.action_id is None:
            return False
        return await self.store.action_delta(update.user_id, update.action_id) is not None

    async def _index(self, total: UserTotal, replayed: bool) -> int:
        """Bring the index up to ``total`` (publishing a board change) and return the rank."""
        rank = None
        if not replayed:
            moved, rank = await self.index.apply_and_rank(total)
            if moved is not None:
                event = BoardChanged(self.board, moved.seq, total.user_id, total.score, moved.top)
                self.live.offer(event)
                await self.bus.publish(event)
        if rank is None:
            rank = await self.index.rank(total.user_id)
        if rank is None:  # the index lost the user (a derived store was flushed): heal it
            await self.index.apply(total)
            rank = await self.index.rank(total.user_id)
        return rank if rank is not None else await self.store.rank_of(total)

    async def top(self, k: int = TOP_K) -> tuple[RankedEntry, ...]:
        return await self.index.top(k)

    # -- reads beyond the top 10 --------------------------------------------------------------

    async def page(self, offset: int, limit: int) -> tuple[tuple[RankedEntry, ...], int]:
        """A page of the board and the number of users on it."""
        if offset < 0 or not 1 <= limit <= PAGE_MAX:
            raise InvalidRequest(f"offset must be >= 0 and limit 1-{PAGE_MAX}")
        return await self.index.page(offset, limit), await self.index.size()

    async def user(self, user_id: str) -> tuple[UserProfile, int]:
        """A user's stored row and current rank; ``NotFound`` for a user with no score."""
        self._check_user_id(user_id)
        profile = await self.store.profile(user_id)
        rank = await self.index.rank(user_id)
        if profile is None or rank is None:
            raise NotFound(f"no score for user '{user_id}'", code="unknown_user")
        return profile, rank

    async def around(self, user_id: str, radius: int) -> tuple[int, tuple[RankedEntry, ...]]:
        """The user's rank and the entries from ``radius`` above to ``radius`` below it."""
        self._check_user_id(user_id)
        if not 1 <= radius <= RADIUS_MAX:
            raise InvalidRequest(f"radius must be 1-{RADIUS_MAX}")
        rank = await self.index.rank(user_id)
        if rank is None:
            raise NotFound(f"no score for user '{user_id}'", code="unknown_user")
        start = max(0, rank - 1 - radius)
        return rank, await self.index.page(start, rank + radius - start)

    async def history(self, query: HistoryQuery) -> list[ScoreEvent]:
        """The user's score events (each with the total after it), oldest first. A window
        that ends before it starts holds none."""
        if not self._check_history(query):
            return []
        return await self.store.history(query)

    async def history_buckets(self, query: HistoryQuery) -> list[HistoryPoint]:
        """The user's score at the end of each hour or day in which it changed."""
        if query.bucket not in BUCKETS:
            raise InvalidRequest("bucket must be 'hour' or 'day'", code="invalid_bucket")
        if not self._check_history(query):
            return []
        return await self.store.history_buckets(query)

    def _check_user_id(self, user_id: str) -> None:
        if not is_valid_user_id(user_id):
            raise InvalidRequest(f"user_id must be {USER_ID_RULE}", code="invalid_user_id")

    def _check_history(self, query: HistoryQuery) -> bool:
        """Raise for a bad request; ``False`` when the window is empty (not an error: the
        OpenAPI document has no way to relate two parameters, so a client could not know)."""
        self._check_user_id(query.user_id)
        if not 1 <= query.limit <= HISTORY_MAX:
            raise InvalidRequest(f"limit must be 1-{HISTORY_MAX}")
        return query.since is None or query.until is None or query.since < query.until
