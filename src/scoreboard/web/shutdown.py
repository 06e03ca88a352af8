"""SIGTERM: live sockets are closed with 1001 (going away) before the server shuts down.

uvicorn's own shutdown closes every WebSocket with 1012 (service restart) at the moment it
stops listening. The page reconnects either way, but 1001 is the code that says "this server is
going away, use another one", and closing the sockets ourselves first lets each handler end
cleanly. So for the lifetime of the app, :meth:`Farewell.on_sigterm` puts a handler in front of
uvicorn's: it asks every open socket to close with 1001, waits until they have (at most
``GOODBYE_TIMEOUT``), and only then hands the signal to uvicorn, which stops accepting, lets
in-flight HTTP requests finish (up to its graceful timeout) and runs the lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Protocol

GOODBYE_TIMEOUT = 1.0


class GoingAway(Protocol):
    def go_away(self) -> None:
        """Close with 1001 soon; must not block."""
        ...


class Farewell:
    """The open live sockets of one app, to close with 1001 on SIGTERM."""

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

    @contextlib.asynccontextmanager
    async def on_sigterm(self) -> AsyncIterator[None]:
        previous = signal.getsignal(signal.SIGTERM)
        if threading.current_thread() is not threading.main_thread() or not callable(previous):
            yield  # not the process's server (an in-process test client): nothing to do
            return
        loop = asyncio.get_running_loop()
        chained: Callable[[int, FrameType | None], object] = previous
        pending: set[asyncio.Task[None]] = set()

        def start_goodbye() -> None:
            task = loop.create_task(goodbye())
            pending.add(task)
            task.add_done_callback(pending.discard)

        async def goodbye() -> None:
            self.shutting_down = True
            if self.sockets:
                self._none_open.clear()
                for socket in tuple(self.sockets):
                    socket.go_away()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._none_open.wait(), GOODBYE_TIMEOUT)
            chained(signal.SIGTERM, None)

        def handler(signum: int, frame: FrameType | None) -> None:
            if self.shutting_down:
                chained(signum, frame)  # a second SIGTERM: no more waiting
            else:
                loop.call_soon_threadsafe(start_goodbye)

        signal.signal(signal.SIGTERM, handler)
        try:
            yield
        finally:
            if signal.getsignal(signal.SIGTERM) is handler:
                signal.signal(signal.SIGTERM, previous)
