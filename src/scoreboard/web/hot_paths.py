"""A short way in for the hot routes, in front of the whole FastAPI stack.

``GET /api/scores/top10``, ``POST /api/scores/update`` and the live channel are nearly all of
the traffic. On this machine FastAPI's middleware chain, routing, dependency solving and
exception middleware cost about 100 µs per request: more than three times what serving the
cached top-10 body costs. :class:`ScoreboardApp` (the app every factory returns) answers those
three itself, before any of that:

- the top 10 as two raw ASGI messages carrying the body encoded once per board change;
- the update by calling the very work the routed handler does (``update.apply_update``) and
  sending its 200 body as two raw ASGI messages, and mapping its errors through the app's own
  exception handlers, so answers are byte for byte the router's;
- the live channel by calling its handler directly, so no frame passes through the router's and
  the middleware's send wrappers (at 1,000 sockets those were most of a fan-out).

Each keeps the request id contract (``X-Request-ID`` echoed or made, and on every log line).
Everything else goes through the full stack, and so does any request with an ``Origin`` header,
which the CORS middleware must see. That is all the hot paths stand in for: the app's middleware
must be exactly :data:`STOOD_IN_FOR`, and the app refuses to start otherwise (checked when
Starlette builds the middleware stack, at the lifespan's start), so a middleware added later can
never silently miss the busiest routes. The routes stay registered with FastAPI, which documents
them in OpenAPI. bench/ measures what this saves (docs/benchmarks.md).

``HEAD`` is answered here too, for every path that answers ``GET`` (FastAPI's routes take only
the methods they declare, so it was a 405): the request is served as a ``GET`` whose body is
dropped, so the status and headers, ``Content-Length`` included, are the ``GET``'s. A ``GET``
pays nothing for it: the top 10 is matched before the method is looked at again.
"""

from __future__ import annotations

import inspect

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from scoreboard import logs
from scoreboard.web.endpoints import update
from scoreboard.web.guards import request_id
from scoreboard.web.guards.origins import JsonCorsMiddleware
from scoreboard.web.guards.request_id import RequestIdMiddleware
from scoreboard.web.live import channel

STOOD_IN_FOR = (RequestIdMiddleware, JsonCorsMiddleware)
"""The app's middleware, outermost first, as the hot paths assume it: they set the request id
themselves, and send any request with an ``Origin`` header through the stack for CORS."""

_TOP10 = ("GET", "/api/scores/top10")
_UPDATE = ("POST", "/api/scores/update")
_JSON = (b"content-type", b"application/json")
_BOARD_SOCKETS = "/ws/boards/"


class ScoreboardApp(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        found: tuple[object, ...] = tuple(middleware.cls for middleware in self.user_middleware)
        if found != STOOD_IN_FOR:
            names = ", ".join(getattr(cls, "__name__", repr(cls)) for cls in found)
            raise RuntimeError(
                f"the app's middleware is [{names}], but its hot paths (web/hot_paths.py) skip the "
                "middleware and stand in for "
                f"[{', '.join(cls.__name__ for cls in STOOD_IN_FOR)}] only: teach them the change"
            )
        return super().build_middleware_stack()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            route = (scope["method"], scope["path"])
            if route in (_TOP10, _UPDATE) and not _has_origin(scope):
                await self._hot_http(route, scope, receive, send)
                return
            if route[0] == "HEAD" and self._answers_get(scope):
                await self({**scope, "method": "GET"}, receive, _without_body(send))
                return
        elif kind == "websocket":
            path = scope["path"]
            if path == "/ws/scoreboard":
                await self._hot_socket(scope, receive, send, None)
                return
            if path.startswith(_BOARD_SOCKETS) and "/" not in path[len(_BOARD_SOCKETS) :]:
                await self._hot_socket(scope, receive, send, path[len(_BOARD_SOCKETS) :])
                return
        await super().__call__(scope, receive, send)

    async def _hot_http(
        self, route: tuple[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        scope["app"] = self
        rid = request_id.choose(scope)
        if route == _TOP10:
            await _send_json(send, self.state.components.service.current_board().top_body, rid)
            return
        token = logs.request_id.set(rid)
        try:
            request = Request(scope, receive, send)
            try:
                body = await update.apply_update(request)
            except Exception as exc:
                response = await self._handle(request, exc)
                response.headers[request_id.HEADER] = rid
                await response(scope, receive, send)
                return
            await _send_json(send, body, rid)
        finally:
            logs.request_id.reset(token)

    async def _hot_socket(
        self, scope: Scope, receive: Receive, send: Send, board: str | None
    ) -> None:
        scope["app"] = self
        rid = request_id.choose(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "websocket.http.response.start":  # a refusal before accept
                MutableHeaders(scope=message)[request_id.HEADER] = rid
            await send(message)

        token = logs.request_id.set(rid)
        try:
            websocket = WebSocket(scope, receive, send_with_id)
            if board is None:
                await channel.scoreboard_socket(websocket)
            else:
                await channel.board_socket(websocket, board)
        finally:
            logs.request_id.reset(token)

    def _answers_get(self, scope: Scope) -> bool:
        as_get = {**scope, "method": "GET"}
        return any(route.matches(as_get)[0] is Match.FULL for route in self.router.routes)

    async def _handle(self, request: Request, exc: Exception) -> Response:
        """The app's own handler for ``exc``, found the way Starlette finds it (by class)."""
        for cls in type(exc).__mro__:
            handler = self.exception_handlers.get(cls)
            if handler is not None:
                response = handler(request, exc)
                return await response if inspect.isawaitable(response) else response
        raise exc


async def _send_json(send: Send, body: bytes, rid: str) -> None:
    """A 200 with a JSON ``body``, as the two ASGI messages Starlette's ``Response`` would send."""
    headers = [
        _JSON,
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", rid.encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _without_body(send: Send) -> Send:
    """``send`` for a HEAD request: every message as the GET's, but with an empty body."""

    async def head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head


def _has_origin(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])
