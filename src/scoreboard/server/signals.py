"""SIGTERM: the live sockets say goodbye (1001) before uvicorn shuts the server down.

For the lifetime of the app, a handler stands in front of uvicorn's: it runs the app's
``Farewell.goodbye`` (``web.live.farewell``) in the event loop and only then hands the signal to
uvicorn's own handler, which stops accepting, lets in-flight HTTP requests finish (up to its
graceful timeout) and runs the lifespan shutdown. A second SIGTERM goes to uvicorn at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Callable
from types import FrameType

from scoreboard.web.live.farewell import Farewell


@contextlib.asynccontextmanager
async def goodbye_on_sigterm(farewell: Farewell) -> AsyncIterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield  # not a server's main thread (an in-process test client): nothing to do
        return
    loop = asyncio.get_running_loop()
    chained: Callable[[int, FrameType | None], object] = previous
    pending: set[asyncio.Task[None]] = set()

    async def goodbye() -> None:
        await farewell.goodbye()
        chained(signal.SIGTERM, None)

    def start_goodbye() -> None:
        task = loop.create_task(goodbye())
        pending.add(task)
        task.add_done_callback(pending.discard)

    def handler(signum: int, frame: FrameType | None) -> None:
        if farewell.shutting_down:
            chained(signum, frame)  # a second SIGTERM: no more waiting
        else:
            loop.call_soon_threadsafe(start_goodbye)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, previous)
