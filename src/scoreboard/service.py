"""The use cases: apply a score update, read the board.

The service owns the order of one update: durable commit first, then the rank index, then (only
if the index reports that the top of the board changed, with its new ``seq``) a board event to
the local live board and to the bus. It imports no web framework, database driver or Redis client.
"""

from __future__ import annotations

import logging

from scoreboard.broadcast import LiveBoard
from scoreboard.errors import InvalidRequest
from scoreboard.events import BoardChanged, EncodedBoard
from scoreboard.model import (
    DEFAULT_BOARD,
    TOP_K,
    RankedEntry,
    ScoreUpdate,
    UpdateResult,
    is_valid_action_id,
    is_valid_delta,
    is_valid_user_id,
)
from scoreboard.ports import Bus, RankIndex, ScoreStore

log = logging.getLogger(__name__)


class ScoreService:
    """Apply updates and serve the board of one board id.

    ``start`` must run before anything else: it rebuilds the rank index from the store (the
    store is the truth; the index is derived) and creates the live board.
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
    ) -> None:
        self.store = store
        self.index = index
        self.bus = bus
        self.board = board
        self.min_delta = min_delta
        self.max_delta = max_delta
        self._live: LiveBoard | None = None

    async def start(self) -> None:
        await self.rebuild_index()
        board = await self.index.board()
        self._live = LiveBoard(BoardChanged(self.board, board.seq, "", 0, board.top))

    async def rebuild_index(self) -> int:
        """Load every total from the store into the index; returns how many users."""
        count = 0
        async for chunk in self.store.iter_totals():
            await self.index.load(chunk)
            count += len(chunk)
        log.info("rank index built", extra={"users": count, "board": self.board})
        return count

    @property
    def live(self) -> LiveBoard:
        if self._live is None:
            raise RuntimeError("ScoreService.start() has not run")
        return self._live

    def current_board(self) -> EncodedBoard:
        return self.live.current

    def validate(self, update: ScoreUpdate) -> None:
        """Raise ``InvalidRequest`` unless the update is well formed and in range."""
        if not is_valid_user_id(update.user_id):
            raise InvalidRequest(
                "user_id must be 1-64 characters of letters, digits and _-.:@",
                code="invalid_user_id",
            )
        if not is_valid_delta(update.delta, self.min_delta, self.max_delta):
            raise InvalidRequest(
                f"score_delta must be a non-zero integer from {self.min_delta} to {self.max_delta}",
                code="invalid_score_delta",
            )
        if update.action_id is not None and not is_valid_action_id(update.action_id):
            raise InvalidRequest(
                "action_id must be 1-128 printable characters", code="invalid_action_id"
            )

    async def update(self, update: ScoreUpdate) -> UpdateResult:
        """Apply an authorized update. Returns after the commit, with the user's new rank.

        A retry of an applied action returns the user's current total and rank and adds
        nothing. Raises ``InvalidRequest``, ``ActionConflict`` or ``Unavailable``; on any of
        them nothing has changed.
        """
        self.validate(update)
        applied = await self.store.apply(update)
        total = applied.total
        if not applied.replayed:
            moved = await self.index.apply(total)
            if moved is not None:
                event = BoardChanged(self.board, moved.seq, total.user_id, total.score, moved.top)
                self.live.offer(event)
                await self.bus.publish(event)
        rank = await self.index.rank(total.user_id)
        if rank is None:  # the index lost the user (a derived store was flushed): heal it
            await self.index.apply(total)
            rank = await self.index.rank(total.user_id) or 0
        return UpdateResult(user_id=total.user_id, new_score=total.score, rank=rank)

    async def top(self, k: int = TOP_K) -> tuple[RankedEntry, ...]:
        return await self.index.top(k)
