"""uvicorn's sans-I/O WebSocket protocol, plus a way to write one prebuilt frame to many sockets.

Through ASGI, every message to every socket is framed again and passes a chain of coroutines
(Starlette's ``WebSocket.send``, uvicorn's ``send``, the ``websockets`` frame writer): about
45 µs per socket per board here, so 1,000 sockets took 45 ms to get one board and fell behind at
100 boards per second. A board is the same bytes for every socket, so the live channel frames
it once (:func:`text_frame`) and writes those bytes to each socket's transport itself.

:class:`FramedWebSocketProtocol` offers that as an ASGI extension, ``scoreboard.frames``, whose
``sink`` is the socket's :class:`FrameSink`. Everything else (handshake, receiving, pings, close)
is uvicorn's, unchanged. The extension is offered only when the connection negotiated no
WebSocket extension (no per-message compression: a prebuilt frame is uncompressed), and the
app falls back to ``send_text`` where it is absent (another server, a test client).

Why writing beside uvicorn is safe: every write happens on the event loop thread, a frame at a
time, and server frames are never fragmented, so uvicorn's own frames (pings, pongs, close) can
only come before or after ours, never inside. The sink refuses to write once a close frame was
sent or received, or the transport is closing.
"""

from __future__ import annotations

import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

EXTENSION = "scoreboard.frames"

_FIN_TEXT = 0x81  # FIN bit and opcode 1 (text); server frames are not masked (RFC 6455 5.1)


def text_frame(payload: bytes) -> bytes:
    """One complete, unmasked, unfragmented text frame carrying ``payload`` (UTF-8)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", _FIN_TEXT, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + payload


class FrameSink:
    """Writes prebuilt frames to one socket's transport. Used on the event loop thread only."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    @property
    def open(self) -> bool:
        """Whether data frames may still be sent (no close sent or received, not closing)."""
        p = self._protocol
        return (
            not p.close_sent
            and not p.disconnected
            and p.conn.state is State.OPEN
            and not p.transport.is_closing()
        )

    def write(self, frame: bytes) -> bool:
        """Write ``frame`` now if the socket is open and its transport is not over its
        high-water mark; ``False`` (nothing written) otherwise."""
        if not self._protocol.writable.is_set() or not self.open:
            return False
        self._protocol.transport.write(frame)
        return True

    async def wait_writable(self) -> None:
        """Until the transport is back under its high-water mark (or the peer is gone)."""
        await self._protocol.writable.wait()


class FramedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol that also offers :data:`EXTENSION`."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # The app's task was created but has not run yet: the scope can still gain a key.
        if self.response.status_code == 101 and not self.conn.extensions:
            self.scope["extensions"][EXTENSION] = {"sink": FrameSink(self)}


def sink_of(scope: Any) -> FrameSink | None:
    """The socket's :class:`FrameSink`, when the server offers one."""
    extension = (scope.get("extensions") or {}).get(EXTENSION)
    sink = extension.get("sink") if isinstance(extension, dict) else None
    return sink if isinstance(sink, FrameSink) else None
