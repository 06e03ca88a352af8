"""The live channel ``/ws/scoreboard``: a SNAPSHOT on connect, then every board change.

Each socket is a :class:`SocketFeed` subscribed to the process's live board. Under our uvicorn
protocol (``scoreboard.server``) the fan-out writes a board's frame, built once, straight to every
socket that can take it at once; the feed of a socket that cannot holds only the newest board,
and the socket's writer sends it when the socket drains. So a burst coalesces for a slow client,
the final board always arrives, and fan-out never waits on a socket. A socket that cannot be
written to for ``SCOREBOARD_WS_SEND_TIMEOUT`` is closed. Client frames are read and ignored (the
channel is push-only); uvicorn closes a socket whose frame is over ``SCOREBOARD_WS_MAX_MESSAGE``
with 1009, and its pings find dead peers. On SIGTERM every socket is closed with 1001 before the
server stops (``shutdown``).

Admission happens before accept, so a refused socket costs no SNAPSHOT: the ``Origin`` must be
one of ``SCOREBOARD_ALLOWED_ORIGINS`` (403), and the process and the client address must be
under their socket caps (503, 429; ``socket_caps``). The refusal is an HTTP response with the
JSON error body where the server supports the denial-response extension (uvicorn does), else a
close with 1008. A client over its frame budget (``SCOREBOARD_WS_MAX_FRAMES_PER_SECOND`` a second,
bursts of at least 50) is closed with 1008 (policy violation): counted per frame, pings and
fragments included, by ``scoreboard.server``; per message here where that server is absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from scoreboard.bootstrap import Components
from scoreboard.events import EncodedBoard
from scoreboard.web.errors import error_response
from scoreboard.web.extensions import FrameSink, frames_guarded, sink_of, text_frame
from scoreboard.web.guards.client_address import client_address
from scoreboard.web.guards.origins import AllowedOrigins
from scoreboard.web.live.caps import FrameBudget, SocketCaps
from scoreboard.web.live.farewell import Farewell
from scoreboard.web.metrics import Metrics

log = logging.getLogger(__name__)

router = APIRouter()


class SocketFeed:
    """One socket's "latest board" slot. ``deliver`` never blocks.

    Once :meth:`attach` gave it the socket's :class:`FrameSink` (after the SNAPSHOT), a board
    that the socket can take at once is written by ``deliver`` itself: the board's frame, built
    once for every socket. Otherwise, or while an older board waits in the slot, the board goes
    into the slot and the socket's writer task sends it when the socket can take it.
    """

    __slots__ = (
        "_clock",
        "_closed",
        "_latest",
        "_sink",
        "_wake",
        "delivered_at",
        "going_away",
        "sent",
    )

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        """``clock`` (seconds) stamps when a board waits in the slot (``delivered_at``)."""
        self._clock = clock
        self._latest: EncodedBoard | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self._sink: FrameSink | None = None
        self.going_away = False
        """The server is shutting down: close the socket with 1001."""
        self.delivered_at = 0.0
        """When the board in the slot arrived (``time.perf_counter``), for the delivery latency."""
        self.sent = -1
        """The ``seq`` of the newest board sent (or written) to the socket."""

    def attach(self, sink: FrameSink) -> None:
        self._sink = sink

    def deliver(self, board: EncodedBoard) -> None:
        if board.event.seq <= self.sent:
            return
        # Straight out when nothing older waits in the slot and the socket can take it now.
        sink = self._sink if self._latest is None and not self._closed else None
        if sink is not None and sink.write(frame_of(board)):
            self.sent = board.event.seq
            return
        self._latest = board
        self.delivered_at = self._clock()
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def go_away(self) -> None:
        self.going_away = True
        self.close()

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


def message_of(board: EncodedBoard) -> str:
    """What a socket that holds an older board gets: the update that made this board, or, for
    a board no single update caused (a rebuild, a catch-up after lost bus messages), a SNAPSHOT
    that replaces whatever the client holds."""
    return board.update if board.update is not None else board.snapshot


_framed: tuple[EncodedBoard | None, bytes] = (None, b"")


def frame_of(board: EncodedBoard) -> bytes:
    """``message_of(board)`` as one WebSocket frame, built once per board (the last one is kept:
    a fan-out asks for the same board once per socket)."""
    global _framed
    if _framed[0] is not board:
        _framed = (board, text_frame(message_of(board).encode()))
    return _framed[1]


async def _read_until_closed(
    websocket: WebSocket,
    feed: SocketFeed,
    frames: FrameBudget | None,
    sink: FrameSink | None,
    metrics: Metrics,
) -> None:
    """Read and drop what the client sends until it goes. ``frames``: the budget counted here,
    per message, when the server does not count every frame itself (``frames_guarded``)."""
    flooded = False
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                flooded = sink is not None and sink.closed_for == "frame_flood"
                break
            if frames is not None and not frames.take():
                await websocket.close(code=1008, reason="too many frames")
                flooded = True
                break
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        feed.close()
    if flooded:
        metrics.ws_closed.labels("frame_flood").inc()
        log.warning(
            "closed a socket that sent too many frames",
            extra={"event": "ws_frame_flood", "client": client_address(websocket)},
        )


_REFUSALS = {
    "origin": (403, "origin_not_allowed", "this page's origin may not open the live channel"),
    "process_cap": (503, "too_many_sockets", "the server has no room for another socket"),
    "address_cap": (429, "too_many_sockets", "too many sockets from this address"),
}


async def _refuse(websocket: WebSocket, reason: str) -> None:
    status, code, message = _REFUSALS[reason]
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        headers = {"Retry-After": "5"} if status != 403 else None
        await websocket.send_denial_response(error_response(status, code, message, headers))
    else:
        await websocket.close(code=1008, reason=code)


@router.websocket("/ws/scoreboard")
async def scoreboard_socket(websocket: WebSocket) -> None:
    parts: Components = websocket.app.state.components
    metrics: Metrics = websocket.app.state.metrics
    caps: SocketCaps = websocket.app.state.socket_caps
    origins: AllowedOrigins = websocket.app.state.allowed_origins
    address = client_address(websocket)
    refusal = None if origins.allows(websocket.headers.get("origin")) else "origin"
    refusal = refusal or caps.admit(address)
    if refusal is not None:
        metrics.ws_refused.labels(refusal).inc()
        log.info(
            "socket refused", extra={"event": "ws_refused", "reason": refusal, "client": address}
        )
        await _refuse(websocket, refusal)
        return
    metrics.ws_connections.inc()
    try:
        await _serve(websocket, parts, metrics)
    finally:
        caps.release(address)
        metrics.ws_connections.dec()


async def _serve(websocket: WebSocket, parts: Components, metrics: Metrics) -> None:
    live = parts.service.live
    timeout = parts.settings.ws_send_timeout
    await websocket.accept()
    feed = SocketFeed()
    farewell: Farewell = websocket.app.state.farewell
    if farewell.shutting_down:
        await websocket.close(code=1001, reason="server shutting down")
        return
    farewell.add(feed)
    live.subscribe(feed)  # before taking the snapshot, so no change falls in between
    sink = sink_of(websocket.scope)
    frames = None
    if not frames_guarded(websocket.scope):
        frames = FrameBudget(parts.settings.ws_max_frames_per_second)
    reader = asyncio.create_task(_read_until_closed(websocket, feed, frames, sink, metrics))
    try:
        current = live.current
        async with asyncio.timeout(timeout):
            await websocket.send_text(current.snapshot)
        feed.sent = current.event.seq  # nothing was written before: no sink was attached yet
        if sink is not None:
            feed.attach(sink)  # from now on, boards the socket can take go out at once
        while (board := await feed.next()) is not None:
            if board.event.seq <= feed.sent:
                continue
            delivered_at = feed.delivered_at
            async with asyncio.timeout(timeout):
                if sink is None:
                    await websocket.send_text(message_of(board))
                else:
                    await sink.wait_writable()
                    if board.event.seq <= feed.sent:  # a newer one went out meanwhile
                        continue
                    if not sink.write(frame_of(board)):
                        break  # closed: the reader sees the disconnect
            metrics.broadcast_seconds.observe(time.perf_counter() - delivered_at)
            feed.sent = board.event.seq
        if feed.going_away:
            await websocket.close(code=1001, reason="server shutting down")
    except TimeoutError:
        metrics.ws_closed.labels("slow_consumer").inc()
        log.warning(
            "closing a socket that could not be written to for %.0f s",
            timeout,
            extra={"event": "ws_slow_consumer", "client": client_address(websocket)},
        )
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-send
    finally:
        live.unsubscribe(feed)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        farewell.discard(feed)
