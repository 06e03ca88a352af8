"""Keeping this process's live board in step with everyone else's, and the shared index whole.

Two loops, started by the composition root (``bootstrap.running``) and stopped with it:

- **Following the bus.** Board events from every process (this one included) go to the live
  board; ``LiveBoard.offer`` drops our own echo and anything older by ``seq``.
- **Keeping a shared index whole** (a :class:`~scoreboard.ports.SharedIndex`: Redis in scaled
  mode; nothing to keep for an index in this process). The index is rebuilt from the store
  whenever it is found lost (flushed, restarted, or a write failed on the connection), and
  checked every ``check_interval`` even when idle. The service keeps serving meanwhile; the
  rebuilt board is announced like any change. The same periodic read compares the live board
  with the shared ``seq``: pub/sub is at most once (a subscription that reconnects misses what
  was published meanwhile), so a process behind a seq that was already shared one check earlier
  lost a message and takes the shared board, which its sockets get as a SNAPSHOT. A page stays
  behind for at most about two checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from scoreboard.errors import Unavailable
from scoreboard.events import BoardChanged
from scoreboard.model import Board
from scoreboard.ports import Bus, SharedIndex
from scoreboard.service import ScoreService

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0
SUBSCRIBE_TIMEOUT = 5.0


class Keeper:
    def __init__(
        self,
        service: ScoreService,
        bus: Bus,
        shared: SharedIndex | None = None,
        *,
        check_interval: float = CHECK_INTERVAL,
        subscribe_timeout: float = SUBSCRIBE_TIMEOUT,
    ) -> None:
        self.service = service
        self.bus = bus
        self.shared = shared
        self.check_interval = check_interval
        self.subscribe_timeout = subscribe_timeout
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the loops; return once the bus delivers other processes' events here (else a
        process could report ready and miss the first changes made elsewhere)."""
        self._tasks.append(asyncio.create_task(self._follow_bus()))
        try:
            await asyncio.wait_for(self.bus.listening(self.service.board), self.subscribe_timeout)
        except TimeoutError:
            log.warning("serving before the board event subscription is confirmed")
        if self.shared is not None:
            self._tasks.append(asyncio.create_task(self._keep_whole(self.shared)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _follow_bus(self) -> None:
        live = self.service.live
        async for event in self.bus.subscribe(self.service.board):
            live.offer(event)

    async def _keep_whole(self, index: SharedIndex) -> None:
        service = self.service
        seen_before = 0
        while True:
            lost = await index.wait_lost(self.check_interval)
            try:
                if not lost:
                    built, shared = await index.observe()
                    if built:
                        # Behind a seq seen a whole check ago: its message was lost, not late.
                        if service.live.seq < seen_before:
                            self._catch_up(shared)
                        seen_before = shared.seq
                        continue
                started = time.monotonic()
                board = await index.rebuild(service.store.iter_totals())
                users = await index.size()
            except Unavailable as exc:  # Redis or the store is down: try again shortly
                log.warning("rank index rebuild postponed: %s", exc)
                await asyncio.sleep(self.check_interval)
                index.mark_lost()
                continue
            log.warning(
                "rank index rebuilt from the store",
                extra={"users": users, "seconds": round(time.monotonic() - started, 3)},
            )
            event = BoardChanged(service.board, board.seq, "", 0, board.top)
            service.live.offer(event)
            await self.bus.publish(event)

    def _catch_up(self, shared: Board) -> None:
        live = self.service.live
        if shared.seq > live.seq:
            log.warning(
                "live board behind the shared seq; resending the board",
                extra={"seq": live.seq, "shared_seq": shared.seq},
            )
            live.offer(BoardChanged(self.service.board, shared.seq, "", 0, shared.top))
