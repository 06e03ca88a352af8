"""The suite-wide check of received frames (tests/support/live_frames.py) is on, over real
sockets: a server that sends a frame the AsyncAPI document does not allow fails the test that
receives it, through ``recv`` and through ``async for`` alike. The server here is a stand-in
(the real one sends no such frame), listening on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection, serve

from tests.support.timing import scaled

DRIFTED = '{"type": "SNAPSHOT", "data": {"rankings": [], "seq": 1, "extra": true}}'
VALID = '{"type": "SNAPSHOT", "data": {"rankings": [], "seq": 1}}'


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    async def handler(connection: ServerConnection) -> None:
        await connection.send(VALID)
        await connection.send(DRIFTED)
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def test_recv_fails_on_a_drifted_frame(base_url: str) -> None:
    async with websockets.connect(f"{base_url}/ws/scoreboard") as ws:
        assert await asyncio.wait_for(ws.recv(), scaled(5)) == VALID
        with pytest.raises(AssertionError, match="extra"):
            await asyncio.wait_for(ws.recv(), scaled(5))


async def test_iteration_fails_on_a_drifted_frame(base_url: str) -> None:
    received: list[str | bytes] = []

    async def follow(ws: ClientConnection) -> None:
        async with asyncio.timeout(scaled(5)):
            async for frame in ws:
                received.append(frame)

    async with websockets.connect(f"{base_url}/ws/boards/main") as ws:
        with pytest.raises(AssertionError, match=r"does not match /asyncapi\.json"):
            await follow(ws)
    assert received == []  # on a board channel, the seed's SNAPSHOT lacks board and period


async def test_other_paths_are_not_checked(base_url: str) -> None:
    async with websockets.connect(f"{base_url}/elsewhere") as ws:
        frames = [await asyncio.wait_for(ws.recv(), scaled(5)) for _ in range(2)]
    assert frames == [VALID, DRIFTED]
