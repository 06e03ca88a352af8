"""The ceiling: a bare ASGI app with no framework, served exactly as ``scoreboard serve`` serves.

Every HTTP request gets the same small JSON body. A POST reads its whole body first, as the
service's update route must, so a POST here costs what the server stack alone costs for one
update: parse the request, read the body, write the response. Nothing else.

The uvicorn options below mirror ``scoreboard.server.run.uvicorn_options`` (on uvicorn's stock
protocols: the ceiling is uvicorn itself); if those change, change these, or the ratios in
``docs/benchmarks.md`` compare different stacks. They are written out rather than imported so
that ``bench/run.py --rev OLD`` can still start this app beside an older commit's service.

    .venv/bin/python bench/bare_app.py --port 8001
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY = b'{"user_id":"bench","new_score":1,"rank":1}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        proxy_headers=False,
        timeout_keep_alive=5,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
