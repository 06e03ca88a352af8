"""``scoreboard.server``'s ``GuardedHttpProtocol`` tells the app whether a request's body has all
arrived (``web.extensions.body_arrived``): the update route skips its body deadline only then."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from scoreboard.server.http import GuardedHttpProtocol
from scoreboard.web.extensions import body_arrived
from tests.support.server import free_port
from tests.support.timing import async_wait_until, scaled

HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"


async def test_the_app_learns_whether_the_body_arrived_before_it_started() -> None:
    seen: list[tuple[bool, bool]] = []
    entered = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        at_start = body_arrived(scope)
        entered.set()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append((at_start, body_arrived(scope)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, http=GuardedHttpProtocol, lifespan="off")
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    async def exchange(*parts: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        entered.clear()
        for i, part in enumerate(parts):
            if i:  # the next part only once the app runs: it started without it
                await asyncio.wait_for(entered.wait(), scaled(5))
            writer.write(part)
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), scaled(5))
        writer.close()
        return answer

    try:
        await async_wait_until(started, 10, "uvicorn to start")
        whole = await exchange(HEAD + b"hello")
        split = await exchange(HEAD, b"hello")
    finally:
        server.should_exit = True
        await task
    assert b"\r\nhello\r\n" in whole  # chunked: the whole body came back
    assert b"\r\nhello\r\n" in split
    assert seen == [(True, True), (False, True)]
