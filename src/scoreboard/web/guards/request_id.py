"""A request id on every request: ``X-Request-ID`` in, else generated; echoed in the response and
on every log line written while the request is served (``logs.request_id``).

An incoming id is taken only if it is 1-128 characters of letters, digits and ``-_.:``, so a
client cannot put newlines or markup into the logs through it; otherwise a fresh one is made.
WebSocket handshakes get one too (it is on the lines logged for that socket).
"""

from __future__ import annotations

import itertools
import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scoreboard import logs

HEADER = "x-request-id"
_HEADER_BYTES = HEADER.encode()
_VALID = re.compile(r"[A-Za-z0-9\-_.:]{1,128}")
# A random prefix per process and a counter: unique enough to find one request's log lines,
# without a system call for randomness on every request (uuid4 was 5% of an update's time).
_PREFIX = uuid.uuid4().hex[:12] + "-"
_COUNTER = itertools.count(1)


def choose(scope: Scope) -> str:
    """The request's id: its valid ``X-Request-ID``, else a new one."""
    incoming = next((v for k, v in scope["headers"] if k == _HEADER_BYTES), b"")
    text = incoming.decode("latin-1")
    return text if _VALID.fullmatch(text) else f"{_PREFIX}{next(_COUNTER):x}"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        value = choose(scope)
        token = logs.request_id.set(value)

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                MutableHeaders(scope=message)[HEADER] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.request_id.reset(token)
