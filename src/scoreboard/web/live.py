"""The live channel ``/ws/scoreboard``: a SNAPSHOT on connect, then every board change.

Each socket is a :class:`SocketFeed` subscribed to the process's live board. The feed holds only
the newest board; the socket's writer sends it when the previous send has finished. So a burst
coalesces for a slow client, the final board always arrives, and fan-out never waits on a
socket. A send that does not complete within ``SCOREBOARD_WS_SEND_TIMEOUT`` closes the socket.
Client frames are read and ignored (the channel is push-only); uvicorn closes a socket whose
frame is over ``SCOREBOARD_WS_MAX_MESSAGE`` with 1009, and its pings find dead peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from scoreboard.bootstrap import Components
from scoreboard.events import EncodedBoard

log = logging.getLogger(__name__)

router = APIRouter()


class SocketFeed:
    """One socket's "latest board" slot. ``deliver`` never blocks."""

    __slots__ = ("_closed", "_latest", "_wake")

    def __init__(self) -> None:
        self._latest: EncodedBoard | None = None
        self._wake = asyncio.Event()
        self._closed = False

    def deliver(self, board: EncodedBoard) -> None:
        self._latest = board
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def next(self) -> EncodedBoard | None:
        """The newest board not yet taken, waiting for one; ``None`` once closed."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closed:
                return None
            board, self._latest = self._latest, None
            if board is not None:
                return board


async def _read_until_closed(websocket: WebSocket, feed: SocketFeed) -> None:
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        feed.close()


@router.websocket("/ws/scoreboard")
async def scoreboard_socket(websocket: WebSocket) -> None:
    parts: Components = websocket.app.state.components
    live = parts.service.live
    timeout = parts.settings.ws_send_timeout
    await websocket.accept()
    feed = SocketFeed()
    live.subscribe(feed)  # before taking the snapshot, so no change falls in between
    reader = asyncio.create_task(_read_until_closed(websocket, feed))
    try:
        current = live.current
        async with asyncio.timeout(timeout):
            await websocket.send_text(current.snapshot)
        sent = current.event.seq
        while (board := await feed.next()) is not None:
            if board.event.seq <= sent or board.update is None:
                continue
            async with asyncio.timeout(timeout):
                await websocket.send_text(board.update)
            sent = board.event.seq
    except TimeoutError:
        log.warning(
            "closing a socket that could not be written to for %.0f s",
            timeout,
            extra={"client": websocket.client.host if websocket.client else None},
        )
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-send
    finally:
        live.unsubscribe(feed)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
