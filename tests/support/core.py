"""The core over the in-memory adapters, as the unit tests use it: a started service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from scoreboard import applying
from scoreboard.adapters.memory_bus import MemoryBus
from scoreboard.adapters.memory_index import MemoryRankIndex
from scoreboard.adapters.memory_store import MemoryScoreStore
from scoreboard.boards import BoardsConfig
from scoreboard.model import UpdateResult
from scoreboard.service import ScoreService

ONE_BOARD = BoardsConfig.default(1, 1000, None)
"""The seed's board: ``main``, the all-time sum of ``points`` (1..1000)."""


async def started_service(
    store: MemoryScoreStore | None = None,
    config: BoardsConfig = ONE_BOARD,
    *,
    clock: Callable[[], datetime] | None = None,
    bus: MemoryBus | None = None,
) -> ScoreService:
    """A service on memory adapters, its configuration applied as an embedded ``serve`` does."""
    store = store or (MemoryScoreStore(clock) if clock else MemoryScoreStore())
    service = ScoreService(
        store,
        bus or MemoryBus(),
        lambda board, live: MemoryRankIndex(order=board.order),
        clock=clock or (lambda: datetime.now(UTC)),
    )
    await service.start(await applying.settle(store, config, may_change=True))
    return service


def on_main(result: UpdateResult) -> tuple[int | None, int | None]:
    """``(score, rank)`` on the board ``main``."""
    place = result.on("main")
    assert place is not None, result
    return place.score, place.rank
