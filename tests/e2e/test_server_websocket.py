"""The WebSocket protocol of ``scoreboard.server``, under a real uvicorn in this event loop:
prebuilt frames (the framing itself, the sink offered through the ``scoreboard.frames``
extension, and what happens when it is absent), the budget on client frames and the pong debt.
(The same attacks against a whole ``scoreboard serve``: tests/e2e/test_edge_attacks.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader
from websockets.uri import parse_uri

from scoreboard.server.limits import EdgeLimits
from scoreboard.server.websocket import FramedWebSocketProtocol
from scoreboard.web.extensions import FrameSink, sink_of, text_frame
from tests.support.server import free_port
from tests.support.timing import async_wait_until, scaled


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        assert reader.at_eof(), "bytes left over after the frame"
        return frame
    raise AssertionError("the frame is incomplete")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
def test_a_text_frame_parses_back_to_its_payload_at_every_length_boundary(size: int) -> None:
    payload = ("é" * size).encode()[:size].ljust(size, b"x")
    frame = parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert bytes(frame.data) == payload


class SinkApp:
    """Accepts one socket, writes frames through the sink and through ASGI, reports what it saw."""

    def __init__(self) -> None:
        self.sink: FrameSink | None = None
        self.after_close: tuple[bool, bool] | None = None
        self.done = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        self.sink = sink_of(scope)
        assert self.sink is not None
        assert self.sink.open
        assert self.sink.write(text_frame(b"one"))
        await send({"type": "websocket.send", "text": "two"})  # uvicorn's own framing after ours
        assert self.sink.write(text_frame(b"three"))
        message = await receive()  # the client's close
        assert message["type"] == "websocket.disconnect"
        self.after_close = (self.sink.open, self.sink.write(text_frame(b"late")))
        self.done.set()


@contextlib.asynccontextmanager
async def serving(app: Any, *, deflate: bool) -> AsyncIterator[str]:
    """``app`` under uvicorn with :class:`FramedWebSocketProtocol`, in this event loop."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ws=FramedWebSocketProtocol,
        ws_per_message_deflate=deflate,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    try:
        await async_wait_until(started, 10, "uvicorn to start")
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def framed_server() -> AsyncIterator[tuple[str, SinkApp]]:
    app = SinkApp()
    async with serving(app, deflate=False) as url:
        yield url, app


async def test_the_sink_writes_frames_in_order_with_uvicorns_and_stops_after_close(
    framed_server: tuple[str, SinkApp],
) -> None:
    url, app = framed_server
    async with websockets.connect(url, compression=None) as ws:
        received = [await asyncio.wait_for(ws.recv(), scaled(5)) for _ in range(3)]
    assert received == ["one", "two", "three"]
    await asyncio.wait_for(app.done.wait(), scaled(5))
    assert app.after_close == (False, False)  # closed: nothing more is written


async def test_no_sink_is_offered_when_the_connection_negotiated_compression() -> None:
    seen: list[FrameSink | None] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        seen.append(sink_of(scope))
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "compressed"})
        await receive()

    async with serving(app, deflate=True) as url, websockets.connect(url) as ws:  # offers deflate
        assert await asyncio.wait_for(ws.recv(), scaled(5)) == "compressed"
    assert seen == [None]


# -- the budget on client frames, and the pong debt ------------------------------------------


class HoldingApp:
    """Accepts each socket and keeps it open until the client goes; remembers the disconnect."""

    def __init__(self) -> None:
        self.disconnects: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.texts: list[str] = []
        self.received = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] != "websocket.disconnect":
            self.texts.append(message.get("text", ""))
            self.received.set()
        self.disconnects.append(message)
        self.gone.set()


@contextlib.asynccontextmanager
async def guarded(app: Any, limits: EdgeLimits) -> AsyncIterator[tuple[int, uvicorn.Server]]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ws=functools.partial(FramedWebSocketProtocol, limits=limits),
        ws_per_message_deflate=False,
        lifespan="off",
        log_config=None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    try:
        await async_wait_until(started, 10, "uvicorn to start")
        yield port, server
    finally:
        server.should_exit = True
        await task


async def raw_socket(
    port: int, *, receive_buffer: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket opened by hand (so that it can stop reading, and send any frame)."""
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    client = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/"))
    client.send_request(client.connect())
    writer.write(b"".join(client.data_to_send()))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


def client_frame(opcode: Opcode, data: bytes = b"", *, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=True, extensions=[])


async def close_code(reader: asyncio.StreamReader) -> int:
    """Read server frames up to the close frame; its code."""
    data = await asyncio.wait_for(reader.read(), scaled(10))  # to EOF: the server closes
    stream = StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    while True:
        parser = Frame.parse(stream.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            frame: Frame = done.value
        if frame.opcode is Opcode.CLOSE:
            return Close.parse(frame.data).code


@pytest.mark.parametrize(
    "flood",
    [
        pytest.param([client_frame(Opcode.PING, b"p")] * 2000, id="pings"),
        pytest.param(
            [client_frame(Opcode.TEXT, b"a", fin=False)]
            + [client_frame(Opcode.CONT, b"a", fin=False)] * 4095,
            id="one-byte-fragments-of-one-message",
        ),
        pytest.param([client_frame(Opcode.PONG, b"u")] * 2000, id="unsolicited-pongs"),
    ],
)
async def test_every_client_frame_counts_and_a_flood_is_closed_with_1008_without_pongs(
    flood: list[bytes],
) -> None:
    app = HoldingApp()
    async with guarded(app, EdgeLimits(ws_frames_per_second=10)) as (port, _):
        reader, writer = await raw_socket(port)
        writer.write(b"".join(flood))
        code = await close_code(reader)
        writer.close()
        await asyncio.wait_for(app.gone.wait(), scaled(5))
    assert code == 1008
    assert app.disconnects == [
        {"type": "websocket.disconnect", "code": 1008, "reason": "too many frames"}
    ]


async def test_frames_within_the_budget_are_answered_and_the_socket_stays_open() -> None:
    app = HoldingApp()
    async with guarded(app, EdgeLimits(ws_frames_per_second=10)) as (port, _):
        reader, writer = await raw_socket(port)
        writer.write(client_frame(Opcode.PING, b"still-here") * 40)  # within the burst of 50
        expected = Frame(Opcode.PONG, b"still-here").serialize(mask=False, extensions=[]) * 40
        assert await asyncio.wait_for(reader.readexactly(len(expected)), scaled(5)) == expected
        assert not app.gone.is_set()
        writer.close()


async def test_pongs_owed_to_a_client_that_never_reads_do_not_pile_up_in_memory() -> None:
    """uvicorn writes a pong for every ping whether or not the peer reads: a client that reads
    nothing and sends 10 MB of pings left megabytes of pongs buffered in the server. Now the
    transport stops taking pongs at its high-water mark and only the newest one is owed."""
    app = HoldingApp()
    ping = client_frame(Opcode.PING, b"x" * 125)  # the largest control frame
    async with guarded(app, EdgeLimits(ws_frames_per_second=None)) as (port, server):
        _, writer = await raw_socket(port, receive_buffer=4096)
        for _ in range(200):  # 200 x 400 pings of 131 bytes: 10 MB, and 10 MB of pongs owed
            writer.write(ping * 400)
            await writer.drain()
        writer.write(client_frame(Opcode.TEXT, b"done"))  # handled after every ping before it
        await asyncio.wait_for(app.received.wait(), scaled(10))
        protocol = next(c for c in server.server_state.connections if hasattr(c, "conn"))
        buffered = protocol.transport.get_write_buffer_size()
        assert app.texts == ["done"]
        assert not app.gone.is_set()
        writer.close()
    assert buffered <= 256 * 1024, f"{buffered} bytes of pongs buffered in the server"
