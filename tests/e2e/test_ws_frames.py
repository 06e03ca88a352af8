"""Prebuilt WebSocket frames (``web.ws_protocol``): the framing itself, the sink uvicorn's
protocol offers through the ``scoreboard.frames`` extension, and what happens when it is absent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from scoreboard.web.ws_protocol import FramedWebSocketProtocol, FrameSink, sink_of, text_frame
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
