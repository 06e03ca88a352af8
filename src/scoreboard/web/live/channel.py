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
import re
import time
from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from scoreboard.boards import NAME_PATTERN
from scoreboard.bootstrap import Components
from scoreboard.broadcast import LiveBoard
from scoreboard.events import EncodedBoard, Encoding
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
        "_channel",
        "_clock",
        "_closed",
        "_latest",
        "_sink",
        "_wake",
        "delivered_at",
        "going_away",
        "sent",
    )

    def __init__(
        self, clock: Callable[[], float] = time.perf_counter, channel: Channel = "seed"
    ) -> None:
        """``clock`` (seconds) stamps when a board waits in the slot (``delivered_at``);
        ``channel``: which shapes the socket gets."""
        self._clock = clock
        self._channel = channel
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
        if sink is not None and sink.write(frame_of(board, self._channel)):
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


Channel = Literal["seed", "board"]
"""Which shapes a socket gets: the seed's (``/ws/scoreboard``) or a board channel's (with
``board`` and ``period``, ``/ws/boards/{board}``)."""


def encoding_of(board: EncodedBoard, channel: Channel = "seed") -> Encoding:
    return board.seed if channel == "seed" else board.board


def message_of(board: EncodedBoard, channel: Channel = "seed") -> str:
    """What a socket that holds an older board gets: the update that made this board (or the
    ``PERIOD_STARTED`` of a new period), or, for a board no single update caused (a rebuild, a
    catch-up after lost bus messages), a SNAPSHOT that replaces whatever the client holds."""
    encoding = encoding_of(board, channel)
    return encoding.update if encoding.update is not None else encoding.snapshot


_framed: dict[Channel, tuple[EncodedBoard | None, bytes]] = {
    "seed": (None, b""),
    "board": (None, b""),
}


def frame_of(board: EncodedBoard, channel: Channel = "seed") -> bytes:
    """``message_of(board)`` as one WebSocket frame, built once per board and channel (the last
    one is kept: a fan-out asks for the same board once per socket)."""
    last, frame = _framed[channel]
    if last is not board:
        frame = text_frame(message_of(board, channel).encode())
        _framed[channel] = (board, frame)
    return frame


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


_BOARD_RE = re.compile(NAME_PATTERN)
_REFUSALS = {
    "invalid_board": (400, "invalid_board", f"board must be {NAME_PATTERN}"),
    "unknown_board": (404, "unknown_board", "there is no such board"),
    "origin": (403, "origin_not_allowed", "this page's origin may not open the live channel"),
    "process_cap": (503, "too_many_sockets", "the server has no room for another socket"),
    "address_cap": (429, "too_many_sockets", "too many sockets from this address"),
}


async def _refuse(websocket: WebSocket, reason: str) -> None:
    status, code, message = _REFUSALS[reason]
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        headers = {"Retry-After": "5"} if status in (429, 503) else None
        await websocket.send_denial_response(error_response(status, code, message, headers))
    else:
        await websocket.close(code=1008, reason=code)


@router.websocket("/ws/scoreboard")
async def scoreboard_socket(websocket: WebSocket) -> None:
    """The default board's channel, in the seed's shapes."""
    await _socket(websocket, None)


@router.websocket("/ws/boards/{board}")
async def board_socket(websocket: WebSocket, board: str) -> None:
    """One board's channel (its current period): refused before accept with 404 for a board
    that is not served, 400 for a board id of the wrong form (as the HTTP reads are)."""
    await _socket(websocket, board)


async def admit(websocket: WebSocket, board: str | None) -> str | None:
    """Admit a live socket before accept (every live channel, ``/ws`` too): its address,
    counted in the socket caps (``release`` it when done), or ``None`` once it was refused."""
    parts: Components = websocket.app.state.components
    metrics: Metrics = websocket.app.state.metrics
    caps: SocketCaps = websocket.app.state.socket_caps
    origins: AllowedOrigins = websocket.app.state.allowed_origins
    address = client_address(websocket)
    refusal = None if origins.allows(websocket.headers.get("origin")) else "origin"
    if refusal is None and board is not None and board not in parts.service.boards:
        refusal = "unknown_board" if _BOARD_RE.fullmatch(board) else "invalid_board"
    refusal = refusal or caps.admit(address)
    if refusal is not None:
        metrics.ws_refused.labels(refusal).inc()
        log.info(
            "socket refused", extra={"event": "ws_refused", "reason": refusal, "client": address}
        )
        await _refuse(websocket, refusal)
        return None
    return address


async def _socket(websocket: WebSocket, board: str | None) -> None:
    parts: Components = websocket.app.state.components
    metrics: Metrics = websocket.app.state.metrics
    caps: SocketCaps = websocket.app.state.socket_caps
    address = await admit(websocket, board)
    if address is None:
        return
    metrics.ws_connections.inc()
    try:
        live = parts.service.live_board(board or parts.service.default_board)
        await _serve(websocket, parts, metrics, live, "seed" if board is None else "board")
    finally:
        caps.release(address)
        metrics.ws_connections.dec()


async def _serve(
    websocket: WebSocket,
    parts: Components,
    metrics: Metrics,
    live: LiveBoard,
    channel: Channel,
) -> None:
    timeout = parts.settings.ws_send_timeout
    await websocket.accept()
    feed = SocketFeed(channel=channel)
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
            await websocket.send_text(encoding_of(current, channel).snapshot)
        feed.sent = current.event.seq  # nothing was written before: no sink was attached yet
        if sink is not None:
            feed.attach(sink)  # from now on, boards the socket can take go out at once
        while (board := await feed.next()) is not None:
            if board.event.seq <= feed.sent:
                continue
            delivered_at = feed.delivered_at
            async with asyncio.timeout(timeout):
                if sink is None:
                    await websocket.send_text(message_of(board, channel))
                else:
                    await sink.wait_writable()
                    if board.event.seq <= feed.sent:  # a newer one went out meanwhile
                        continue
                    if not sink.write(frame_of(board, channel)):
                        break  # closed: the reader sees the disconnect
            metrics.broadcast_seconds.observe(time.perf_counter() - delivered_at)
            feed.sent = board.event.seq
        if feed.going_away:
            await websocket.close(code=1001, reason="going away")
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
