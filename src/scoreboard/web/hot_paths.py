"""A short way in for the two hot routes, ahead of FastAPI's routing.

``GET /api/scores/top10``, ``POST /api/scores/update`` and the live channel are nearly all of the
traffic. On this
machine FastAPI's routing, dependency solving and exception middleware cost about 100 µs per
request: five times what serving the cached top-10 body costs. This middleware calls the very
same handlers (``routes.top10``, ``routes.update_score``) directly and maps their errors through
the app's own exception handlers, so the answers are byte for byte the router's. Everything
else goes through the full stack, and so does any request with an ``Origin`` header, which the
CORS middleware inside must see. The routes stay registered with FastAPI, which documents them
in OpenAPI.

It sits inside the request-id middleware (so responses and log lines keep their request id)
and outside CORS; bench/ measures what it saves (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from scoreboard.web import live, routes

Handler = Callable[[Request], Awaitable[Response]]

_HOT: dict[tuple[str, str], Handler] = {
    ("GET", "/api/scores/top10"): routes.top10,
    ("POST", "/api/scores/update"): routes.update_score,
}


class HotPaths:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws/scoreboard":
            # Every frame sent to a socket would otherwise pass through the router's and the
            # exception middleware's send wrappers: at 1,000 sockets that is most of a fan-out.
            await live.scoreboard_socket(WebSocket(scope, receive, send))
            return
        handler = None
        if scope["type"] == "http":
            handler = _HOT.get((scope["method"], scope["path"]))
        if handler is None or any(name == b"origin" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:
            response = await self._handle(request, exc)
        await response(scope, receive, send)

    @staticmethod
    async def _handle(request: Request, exc: Exception) -> Response:
        """The app's own handler for ``exc``, found the way Starlette finds it (by class)."""
        handlers = request.app.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                response: Response = await handler(request, exc)
                return response
        raise exc
