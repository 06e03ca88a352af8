"""The live board of one process: the newest board state, encoded once, handed to every socket.

Fan-out never waits on a client. :meth:`LiveBoard.offer` replaces the current state and calls
each subscriber's ``deliver``, which must only store the state in the subscriber's single
"latest board" slot and wake its writer. A slow client therefore skips intermediate boards but
always ends up with the newest one, and cannot delay anyone else. There is no backpressure here:
what bounds a slow client is its writer's send timeout (``SCOREBOARD_WS_SEND_TIMEOUT``).
"""

from __future__ import annotations

from typing import Protocol

from scoreboard.events import BoardChanged, EncodedBoard


class Subscriber(Protocol):
    def deliver(self, board: EncodedBoard) -> None:
        """Take the newest board. Called in the event loop; must not block or await."""
        ...


class LiveBoard:
    """Holds the newest :class:`EncodedBoard` of one board and fans it out.

    Events may arrive twice (the local path and the bus) or out of order (across processes);
    ``offer`` keeps only events newer than the current one by ``seq``. An event no single update
    caused (empty ``user_id``: a rebuilt index, or a catch-up after lost bus messages) is
    encoded without an ``update`` message: sockets get it as a fresh SNAPSHOT.
    """

    def __init__(self, initial: BoardChanged) -> None:
        self._current = EncodedBoard.build(initial, initial=True)
        self._subscribers: set[Subscriber] = set()

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
        encoded = EncodedBoard.build(event, initial=not event.user_id)
        self._current = encoded
        for subscriber in tuple(self._subscribers):
            subscriber.deliver(encoded)
        return True

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
