"""Keeping this process's live boards in step with everyone else's, with the clock, and with the
applied configuration, and the shared indexes whole.

Loops started by the composition root (``bootstrap.running``) and stopped with it:

- **Following the bus**, one subscription per served board: board events from every process
  (this one included) go to the board's live board; ``LiveBoard.offer`` drops our own echo and
  anything older by ``seq``. Moves (``StandingMoved``) go to the ``/ws`` views
  (``scoreboard.subscriptions``), and so does anything that calls for reading them all again.
- **The clock and the database**: at each period boundary of a clock-reset board (and at least
  every ``check_interval``) the board's new period starts (``PERIOD_STARTED`` within a moment of
  the boundary, whether or not any update happens); every ``check_interval`` the applied
  configuration's version and the manual seasons are read, so that ``scoreboard boards apply``
  and ``scoreboard boards rollover`` (run from any process) reach every process within seconds.
- **Keeping a shared index whole**, per board (a :class:`~scoreboard.ports.SharedIndex`: Redis
  in scaled mode; nothing to keep for an index in this process). The index is rebuilt from the
  store whenever it is found lost (flushed, restarted, or a write failed on the connection), and
  checked every ``check_interval`` even when idle. The service keeps serving meanwhile; the
  rebuilt board is announced like any change. The same periodic read compares the live board
  with the shared ``seq``: pub/sub is at most once (a subscription that reconnects misses what
  was published meanwhile), so a process behind a seq that was already shared one check earlier
  lost a message and takes the shared board, which its sockets get as a SNAPSHOT. A page stays
  behind for at most about two checks.
- **Checkpoints for reading the past**, every ``checkpoint_interval`` (an hour): the standings
  of each served board's current period, for ``scoreboard.past`` to replay from (the store's
  :class:`~scoreboard.ports.Checkpoints`; nothing with a store without them). In scaled mode
  every process takes them: a turn that finds nothing new since the last one writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from scoreboard.errors import Unavailable
from scoreboard.events import BoardChanged, StandingMoved
from scoreboard.model import Top
from scoreboard.past import CHECKPOINT_INTERVAL, CHECKPOINT_SIZE
from scoreboard.ports import Bus, Checkpoints, SharedIndex
from scoreboard.service import ScoreService
from scoreboard.subscriptions import LiveViews

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0
SUBSCRIBE_TIMEOUT = 5.0


class Keeper:
    def __init__(
        self,
        service: ScoreService,
        bus: Bus,
        shared: Mapping[str, SharedIndex] | None = None,
        *,
        check_interval: float = CHECK_INTERVAL,
        subscribe_timeout: float = SUBSCRIBE_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        views: LiveViews | None = None,
        checkpoints: Checkpoints | None = None,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
        checkpoint_rows: int = CHECKPOINT_SIZE,
    ) -> None:
        """``shared``: the boards' shared indexes by board id (filled as boards are added),
        empty when the indexes live in this process; ``views``: the ``/ws`` views, fed with
        every move the bus brings; ``checkpoints``: where to take the past reads' checkpoints
        (``None``: none are taken)."""
        self.views = views
        self.checkpoints = checkpoints
        self.checkpoint_interval = checkpoint_interval
        self.checkpoint_rows = checkpoint_rows
        self.service = service
        self.bus = bus
        self.shared = shared if shared is not None else {}
        self.check_interval = check_interval
        self.subscribe_timeout = subscribe_timeout
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self._boards: dict[str, list[asyncio.Task[None]]] = {}
        self._config_version = 0

    async def start(self, config_version: int = 0) -> None:
        """Start the loops; return once the bus delivers other processes' events here (else a
        process could report ready and miss the first changes made elsewhere)."""
        self._config_version = config_version
        self._keep_up_with_boards()
        try:
            await asyncio.wait_for(
                self.bus.listening(self.service.default_board), self.subscribe_timeout
            )
        except TimeoutError:
            log.warning("serving before the board event subscription is confirmed")
        self._tasks.append(asyncio.create_task(self._tick()))
        if self.checkpoints is not None:
            self._tasks.append(asyncio.create_task(self._checkpoint()))

    async def stop(self) -> None:
        tasks = self._tasks + [t for board in self._boards.values() for t in board]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._boards.clear()

    def _keep_up_with_boards(self) -> None:
        """A bus subscription (and a shared index keeper) per served board, no more."""
        served = self.service.boards
        for board_id in [b for b in self._boards if b not in served]:
            for task in self._boards.pop(board_id):
                task.cancel()
            if self.views is not None:  # its /ws subscriptions end with an error
                self.views.unsettled(board_id)
        for board_id in served:
            if board_id in self._boards:
                continue
            tasks = [asyncio.create_task(self._follow_bus(board_id))]
            index = self.shared.get(board_id)
            if index is not None:
                tasks.append(asyncio.create_task(self._keep_whole(board_id, index)))
            self._boards[board_id] = tasks

    async def _follow_bus(self, board_id: str) -> None:
        live = self.service.live_board(board_id)
        views = self.views
        async for event in self.bus.subscribe(board_id):
            if isinstance(event, StandingMoved):
                if views is not None:
                    views.moved(event)
                continue
            live.offer(event)
            if views is not None and (event.previous is not None or not event.user_id):
                views.unsettled(board_id)  # a new period, or a board no single update made

    async def _tick(self) -> None:
        """Sleep to the next period boundary (at most ``check_interval``), then roll clock
        periods over and take up configuration changes and manual rollovers."""
        while True:
            boundary = self.service.next_boundary()
            delay = self.check_interval
            if boundary is not None:
                until = (boundary - self._clock()).total_seconds()
                delay = min(delay, max(until, 0.0) + 0.001)
            await asyncio.sleep(delay)
            try:
                await self.service.roll_clock()
                await self._take_up_changes()
            except Unavailable as exc:
                log.warning("board upkeep postponed: %s", exc)
            except Exception:  # never let the loop die: the next tick tries again
                log.exception("board upkeep failed")

    async def _checkpoint(self) -> None:
        while True:
            await asyncio.sleep(self.checkpoint_interval)
            await self.take_checkpoints()

    async def take_checkpoints(self) -> int:
        """A checkpoint of each served board's current period now; how many were written. A
        failure is logged and left to the next turn (a read meanwhile replays a longer span)."""
        if self.checkpoints is None:
            return 0
        targets = [(served.board, served.period) for served in self.service.boards.values()]
        try:
            return await self.checkpoints.take_checkpoints(targets, self.checkpoint_rows)
        except Unavailable as exc:
            log.warning("checkpoints postponed: %s", exc)
        except Exception:  # never let the loop die: the next turn tries again
            log.exception("checkpoints failed")
        return 0

    async def _take_up_changes(self) -> None:
        store = self.service.store
        version = await store.config_version()
        if version != self._config_version:
            config, version = await store.load_config()
            if config is not None:
                await self.service.reconfigure(config)
                self._keep_up_with_boards()
                log.info("boards configuration taken up", extra={"version": version})
            self._config_version = version
        await self.service.roll_seasons()

    async def _keep_whole(self, board_id: str, index: SharedIndex) -> None:
        seen_before = 0
        while True:
            lost = await index.wait_lost(self.check_interval)
            served = self.service.boards.get(board_id)
            if served is None:
                return
            try:
                if not lost:
                    built, shared = await index.observe()
                    if built:
                        # Behind a seq seen a whole check ago: its message was lost, not late.
                        if served.live.seq < seen_before:
                            self._catch_up(board_id, shared)
                        seen_before = shared.seq
                        continue
                started = time.monotonic()
                period = served.period.id
                top = await index.rebuild(
                    period, self.service.store.iter_standings(board_id, period)
                )
                users = await index.size()
            except Unavailable as exc:  # Redis or the store is down: try again shortly
                log.warning("rank index rebuild postponed: %s", exc)
                await asyncio.sleep(self.check_interval)
                index.mark_lost()
                continue
            log.warning(
                "rank index rebuilt from the store",
                extra={
                    "board": board_id,
                    "users": users,
                    "seconds": round(time.monotonic() - started, 3),
                },
            )
            event = BoardChanged(board_id, top.seq, "", 0, top.top, period=top.period)
            served.live.offer(event)
            await self.bus.publish(event)

    def _catch_up(self, board_id: str, shared: Top) -> None:
        live = self.service.live_board(board_id)
        if shared.seq > live.seq:
            log.warning(
                "live board behind the shared seq; resending the board",
                extra={"board": board_id, "seq": live.seq, "shared_seq": shared.seq},
            )
            live.offer(BoardChanged(board_id, shared.seq, "", 0, shared.top, period=shared.period))
            if self.views is not None:  # moves were lost with it: read the views again
                self.views.unsettled(board_id)
