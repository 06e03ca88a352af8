"""Going away: every live socket is closed with 1001 before the server stops.

uvicorn's own shutdown closes every WebSocket with 1012 (service restart) at the moment it stops
listening. The page reconnects either way, but 1001 is the code that says "this server is going
away, use another one", and closing the sockets ourselves first lets each handler end cleanly.
:meth:`Farewell.goodbye` asks every open socket to close with 1001 and waits until they have (at
most ``GOODBYE_TIMEOUT``); the server layer (``scoreboard.server.run``) calls it on SIGTERM
before handing the signal to uvicorn, which then stops accepting, lets in-flight HTTP requests
finish and runs the lifespan shutdown. Signal handling itself is process code, not the app's.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

GOODBYE_TIMEOUT = 1.0


class GoingAway(Protocol):
    def go_away(self) -> None:
        """Close with 1001 soon; must not block."""
        ...


class Farewell:
    """The open live sockets of one app, to close with 1001 when the process is going away."""

    def __init__(self) -> None:
        self.sockets: set[GoingAway] = set()
        self.shutting_down = False
        self._none_open = asyncio.Event()

    def add(self, socket: GoingAway) -> None:
        self.sockets.add(socket)
        self._none_open.clear()

    def discard(self, socket: GoingAway) -> None:
        """The socket's handler is done (after its close was sent)."""
        self.sockets.discard(socket)
        if not self.sockets:
            self._none_open.set()

    async def goodbye(self) -> None:
        """Refuse new sockets, close the open ones with 1001, and wait (at most
        ``GOODBYE_TIMEOUT``) until their handlers are done."""
        self.shutting_down = True
        if not self.sockets:
            return
        self._none_open.clear()
        for socket in tuple(self.sockets):
            socket.go_away()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_open.wait(), GOODBYE_TIMEOUT)
