"""In-process bus: board events go to this process's subscribers only (embedded mode)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

from scoreboard.events import BoardEvent

_QUEUE_LIMIT = 1024


class MemoryBus:
    """Every subscriber has its own bounded queue. A subscriber that falls more than
    ``_QUEUE_LIMIT`` events behind loses the oldest ones, which is harmless: each event carries
    the whole top of the board, so the newest one is enough to catch up."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[BoardEvent]]] = defaultdict(set)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, event: BoardEvent) -> None:
        for queue in self._queues[event.board]:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    async def listening(self, board: str) -> None:
        return None  # one process: everything published here is delivered here

    async def subscribe(self, board: str) -> AsyncIterator[BoardEvent]:
        queue: asyncio.Queue[BoardEvent] = asyncio.Queue(_QUEUE_LIMIT)
        self._queues[board].add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues[board].discard(queue)
