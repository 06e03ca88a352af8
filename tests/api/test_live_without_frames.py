"""The live channel under a server that offers no ``scoreboard.frames`` extension (any ASGI
server but ours): boards go out through ASGI ``websocket.send`` messages instead."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.api.conftest import ApiFactory
from tests.support import live_frames
from tests.support.timing import scaled


async def test_snapshot_then_update_through_plain_asgi_messages(make_api: ApiFactory) -> None:
    async with make_api() as api:
        incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await incoming.put({"type": "websocket.connect"})
        scope = {
            "type": "websocket",
            "path": "/ws/scoreboard",
            "raw_path": b"/ws/scoreboard",
            "query_string": b"",
            "headers": [(b"host", b"test")],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 80),
            "scheme": "ws",
            "subprotocols": [],
            "extensions": {"websocket.http.response": {}},
        }
        socket = asyncio.create_task(api.app(scope, incoming.get, outgoing.put))

        async def message() -> Any:
            sent = await asyncio.wait_for(outgoing.get(), scaled(5))
            if sent["type"] == "websocket.send":
                live_frames.check(scope["path"], sent["text"])
            return sent

        assert (await message())["type"] == "websocket.accept"
        snapshot = orjson.loads((await message())["text"])
        assert snapshot["type"] == "SNAPSHOT"
        await api.ok("ada", 7)
        update = orjson.loads((await message())["text"])
        await incoming.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(socket, scaled(5))
    assert update["type"] == "SCORE_UPDATE"
    assert update["data"]["seq"] == snapshot["data"]["seq"] + 1
    assert update["data"]["rankings"][0]["user_id"] == "ada"
