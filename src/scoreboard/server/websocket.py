"""uvicorn's sans-I/O WebSocket protocol, with a budget on client frames, a bounded pong debt,
JSON refusals, and a way to write one prebuilt frame to many sockets.

**Prebuilt frames.** Through ASGI, every message to every socket is framed again and passes a
chain of coroutines (Starlette's ``WebSocket.send``, uvicorn's ``send``, the ``websockets`` frame
writer): about 45 µs per socket per board here, so 1,000 sockets took 45 ms to get one board.
A board is the same bytes for every socket, so the live channel frames it once
(``web.extensions.text_frame``) and writes those bytes to each socket's transport through the
:class:`Sink` this protocol offers as the ASGI extension ``scoreboard.frames`` (only when the
connection negotiated no WebSocket extension: a prebuilt frame is uncompressed). Writing beside
uvicorn is safe: every write happens on the event loop thread, a frame at a time, and server
frames are never fragmented, so uvicorn's own frames (pings, pongs, close) can only come before
or after ours, never inside. The sink refuses to write once a close was sent or received.

**Every client frame counts.** uvicorn hands the app whole messages; pings, pongs and
continuation fragments never reach it, so a per-message limit let one socket send ~200,000
pings a second (a busy event loop for everyone, and a pong for each). Here each frame the
client sends, of any opcode, takes one token of a :class:`~scoreboard.web.socket_caps.FrameBudget`
(``SCOREBOARD_WS_MAX_FRAMES_PER_SECOND``, burst at least 50). The first frame over it closes the
socket with 1008 at once: the frames parsed with it are dropped, the pongs owed for them are not
sent, anything the client sends after it is dropped unparsed, and the connection is dropped
``ABORT_AFTER`` later if the client has not closed it.

**Pongs owed to a client that does not read.** While the transport is over its high-water mark,
a ping gets no pong written; only the newest ping's pong is kept and sent when the transport
drains (RFC 6455 5.5.3 allows answering only the most recent ping). So pongs cost a reader that
never reads at most one pong, not memory without bound.

**Refusals are JSON.** A handshake that ``websockets`` refuses (two ``Origin`` headers, a bad
``Sec-WebSocket-Key``, ...) is answered with the service's JSON error body, not plain text; and
a socket the app refused with an HTTP response (the denial-response extension) completes the
handshake in uvicorn's eyes, so uvicorn no longer logs an ERROR for each refused socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.http11 import Response as HandshakeResponse
from websockets.protocol import State
from websockets.server import ServerProtocol

from scoreboard.server.limits import EdgeLimits
from scoreboard.web.extensions import FRAMES
from scoreboard.web.live.caps import FrameBudget

ABORT_AFTER = 1.0
"""Seconds after a flood close until the connection is dropped, if the client has not closed."""

_FEED = 4096
"""Bytes handed to the frame parser at a time: at most ~680 of the smallest client frames."""

_CODES = {400: "invalid_handshake", 403: "forbidden", 426: "upgrade_required"}


class _JsonRefusals(ServerProtocol):
    """``websockets``' server protocol, refusing handshakes with the service's JSON body."""

    def reject(self, status: Any, text: str) -> HandshakeResponse:
        response = super().reject(status, text)
        code = _CODES.get(response.status_code, "internal_error")
        message = text.strip().rstrip(".") or response.reason_phrase.lower()
        body = orjson.dumps({"error": code, "message": message})
        headers = Headers(response.headers)
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(body))
        return HandshakeResponse(response.status_code, response.reason_phrase, headers, body)


class Sink:
    """Writes prebuilt frames to one socket's transport. Used on the event loop thread only.
    Implements ``scoreboard.web.extensions.FrameSink``."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: FramedWebSocketProtocol) -> None:
        self._protocol = protocol

    @property
    def open(self) -> bool:
        p = self._protocol
        return (
            not p.close_sent
            and not p.disconnected
            and p.conn.state is State.OPEN
            and not p.transport.is_closing()
        )

    @property
    def closed_for(self) -> str | None:
        """Why the server closed the socket itself (``frame_flood``), else ``None``."""
        return self._protocol.closed_for

    def write(self, frame: bytes) -> bool:
        if not self._protocol.writable.is_set() or not self.open:
            return False
        self._protocol.transport.write(frame)
        return True

    async def wait_writable(self) -> None:
        await self._protocol.writable.wait()


class FramedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol, guarded (see the module docstring).

    ``limits`` comes from ``scoreboard.server`` (bound with ``functools.partial``, so uvicorn's
    worker processes get it with the pickled configuration)."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: EdgeLimits | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        conn = self.conn
        self.conn = _JsonRefusals(
            extensions=conn.available_extensions,
            max_size=(conn.max_message_size, conn.max_fragment_size),
            logger=conn.logger,
        )
        limits = limits or EdgeLimits()
        self._budget = FrameBudget(limits.ws_frames_per_second)
        self._owed_pong: bytes | None = None
        self.closed_for: str | None = None

    # -- receiving: every frame counts ---------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # Fed to the parser a slice at a time, counting after each: ``websockets`` parses every
        # complete frame it is given at once, and 64 KiB of pings are 10,000 frames (~100 ms
        # of this event loop) that must not all be parsed to find out the client is over its
        # budget.
        for start in range(0, len(data), _FEED):
            if self.closed_for is not None:
                return  # closed for a flood: whatever else arrives is dropped unparsed
            self.conn.receive_data(data[start : start + _FEED] if len(data) > _FEED else data)
            if self.conn.parser_exc is not None:
                self.handle_parser_exception()
                return
            self.handle_events()

    def handle_events(self) -> None:
        events = self.conn.events_received()
        # Counted before any is handled: ``websockets`` has already queued a pong for every
        # ping in ``events``, and a flood's pongs must not be written.
        frames = sum(isinstance(event, Frame) for event in events)
        if frames and not self._budget.take(frames):
            self._close_flooded()
            return
        for event in events:
            if isinstance(event, Request):
                self.handle_connect(event)
            elif isinstance(event, Frame):
                opcode = event.opcode
                if opcode is Opcode.TEXT:
                    self.handle_text(event)
                elif opcode is Opcode.BINARY:
                    self.handle_bytes(event)
                elif opcode is Opcode.CONT:
                    self.handle_cont(event)
                elif opcode is Opcode.PING:
                    self._answer_ping(bytes(event.data))
                elif opcode is Opcode.PONG:
                    self.handle_pong(event)
                elif opcode is Opcode.CLOSE:
                    self.handle_close(event)

    def _close_flooded(self) -> None:
        self.closed_for = "frame_flood"
        self.conn.data_to_send()  # pongs owed for the flood: never sent
        if not self.close_sent and self.conn.state is State.OPEN:
            self.conn.send_close(1008, "too many frames")
            self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": 1008, "reason": "too many frames"}
        )
        # Not closed at once: a socket closed with the flood still unread answers with a reset,
        # and the reset makes the client drop our close frame unread (it sees 1006). We send
        # our FIN after the close frame, read and drop what still comes, and end the connection
        # when the client closes or after ABORT_AFTER (uvicorn leaves a socket with a
        # close_timer to it).
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.close_timer = self.loop.call_later(ABORT_AFTER, self._abort)

    def _abort(self) -> None:
        self.close_timer = None
        if not self.disconnected:
            self.transport.abort()

    def _answer_ping(self, payload: bytes) -> None:
        # ``websockets`` queued the pong(s) while parsing; write them only to a transport that
        # takes them, otherwise owe the newest one.
        output = self.conn.data_to_send()
        if self.writable.is_set():
            self.transport.write(b"".join(output))
        else:
            self._owed_pong = payload

    def resume_writing(self) -> None:
        super().resume_writing()
        payload, self._owed_pong = self._owed_pong, None
        if payload is not None and not self.close_sent and self.conn.state is State.OPEN:
            self.conn.send_pong(payload)
            self.transport.write(b"".join(self.conn.data_to_send()))

    # -- the handshake -------------------------------------------------------------------------

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # The app's task was created but has not run yet: the scope can still gain a key.
        if self.response.status_code == 101 and not self.conn.extensions:
            self.scope["extensions"][FRAMES] = {"sink": Sink(self), "guarded": True}

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            # The app refused the socket with an HTTP response: the handshake is over (uvicorn
            # otherwise logs "ASGI callable returned without completing handshake" as an ERROR).
            self.handshake_complete = True
