"""The live board of one process: the newest board state, encoded once, handed to every socket.

Fan-out never waits on a client. :meth:`LiveBoard.offer` replaces the current state; a fan-out,
run soon after in the event loop, calls each subscriber's ``deliver``, which must not block: it
writes the board to a socket that can take it at once, or stores it in the subscriber's single
"latest board" slot and wakes its writer. A slow client therefore skips intermediate boards but
always ends up with the newest one, and cannot delay anyone else. There is no backpressure here:
what bounds a slow client is its writer's send timeout (``SCOREBOARD_WS_SEND_TIMEOUT``).

The fan-out runs once per event-loop turn, not once per change: changes made in the same turn
(the updates of one group commit, resuming together) reach the sockets as the newest of them,
and the update requests themselves never wait for a fan-out. A new period's ``PERIOD_STARTED``
is the exception: it goes out at once, because merged into a later board of the period the
sockets would never hear that the period started. (A socket too slow to take it at once may
still see it replaced in its slot by a later board, which names the new period.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from scoreboard.events import BoardChanged, EncodedBoard

log = logging.getLogger(__name__)


class Subscriber(Protocol):
    def deliver(self, board: EncodedBoard) -> None:
        """Take the newest board. Called in the event loop; must not block or await."""
        ...

    def go_away(self) -> None:
        """The board is no longer served: close (with 1001) soon; must not block."""
        ...


class LiveBoard:
    """Holds the newest :class:`EncodedBoard` of one board and fans it out.

    Events may arrive twice (the local path and the bus) or out of order (across processes);
    ``offer`` keeps only events newer than the current one by ``seq``. An event no single update
    caused (empty ``user_id``: a rebuilt index, or a catch-up after lost bus messages) is
    encoded without an ``update`` message: sockets get it as a fresh SNAPSHOT.
    """

    def __init__(
        self, initial: BoardChanged, *, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        """``clock`` (seconds) times each fan-out for ``on_fan_out``."""
        self._clock = clock
        self._current = EncodedBoard.build(initial, initial=True)
        self._subscribers: set[Subscriber] = set()
        self._offered_at: float | None = None
        """When the oldest change not yet fanned out was offered; ``None`` when none is."""
        self._changes = 0
        """Changes taken on since the last fan-out."""
        self.on_fan_out: Callable[[float, int], None] | None = None
        """Called after each fan-out with the seconds from the oldest change it carried to its
        end, and how many changes it carried."""

    @property
    def current(self) -> EncodedBoard:
        return self._current

    @property
    def seq(self) -> int:
        return self._current.event.seq

    def offer(self, event: BoardChanged) -> bool:
        """Make ``event`` the current board if it is newer; returns whether it was."""
        if event.seq <= self._current.event.seq:
            return False
        self._current = EncodedBoard.build(event, initial=not event.user_id)
        self._changes += 1
        if event.previous is not None:  # a new period: out now, not merged (module docstring)
            if self._offered_at is None:
                self._offered_at = self._clock()
            self._fan_out()
            return True
        if self._offered_at is None:
            self._offered_at = self._clock()
            try:
                asyncio.get_running_loop().call_soon(self._fan_out)
            except RuntimeError:  # no event loop (a synchronous caller): fan out at once
                self._fan_out()
        return True

    def _fan_out(self) -> None:
        if self._changes == 0:  # a new period went out at once since this was scheduled
            return
        board, offered_at, changes = self._current, self._offered_at, self._changes
        self._offered_at, self._changes = None, 0
        for subscriber in tuple(self._subscribers):
            try:
                subscriber.deliver(board)
            except Exception:  # one socket's failure must not cost the others their board
                log.exception("a live board subscriber failed")
        if self.on_fan_out is not None and offered_at is not None:
            self.on_fan_out(self._clock() - offered_at, changes)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def retire(self) -> None:
        """The board is no longer served: every subscriber is told to go."""
        for subscriber in tuple(self._subscribers):
            subscriber.go_away()
        self._subscribers.clear()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
