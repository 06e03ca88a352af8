"""uvicorn's httptools protocol with deadlines that always run while the client owes us bytes,
a header size cap, and JSON refusals.

uvicorn with httptools bounds neither how long a client may take to send its headers nor how
many header bytes it may send, and it arms no timer at all on a fresh connection until a first
response: a client that connects and sends one byte every few seconds holds a connection (and
its memory) for ever. That is slowloris. Worse, any bytes received cancel uvicorn's keep-alive
timer, and only a *response* arms it again: a request whose body arrives after its answer
(``GET /healthz`` with ``Content-Length: 1``, the byte sent after the 200; or the rest of a body
after a 413) left the connection with no timer at all, open for ever. :class:`GuardedHttpProtocol`
keeps one rule instead: **whenever the connection waits on the client, a deadline runs.**

- Waiting for a request's headers (from the connection, or from a request's first byte):
  ``SCOREBOARD_HEADER_TIMEOUT``; on expiry ``408`` and the connection closed.
- Waiting for a request's body (from the end of its headers), whether or not the app has
  answered already: ``SCOREBOARD_BODY_TIMEOUT`` + 1 s, then closed. (The update route reads its
  body under the same deadline itself and answers ``408`` with the JSON body before this fires.)
- Waiting for the next request on an idle keep-alive connection: uvicorn's keep-alive timeout,
  at most the header timeout; then closed. We arm it ourselves when uvicorn's is gone.
- Only while the app holds a whole request (body complete, answer not yet sent) does no
  deadline run: the client owes nothing then.

``SCOREBOARD_MAX_HEADER_BYTES`` caps the request line plus headers: over it ``431`` and closed.
Every refusal written here, and httptools' parse errors (uvicorn answers those in plain text),
carries the service's JSON error body and ``Connection: close``. A WebSocket handshake passes
through the same header checks; after the upgrade the WebSocket protocol takes over.

It also tells the app, through the ASGI extension ``scoreboard.body``
(``web.extensions.body_arrived``), whether a request's whole body has already arrived, so that
the update route runs its body deadline only when it may have to wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from scoreboard.server.limits import EdgeLimits
from scoreboard.web.extensions import BODY

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
}
_BODY_GRACE = 1.0


class _BodyProgress:
    __slots__ = ("complete",)

    def __init__(self) -> None:
        self.complete = False


class _Refused(httptools.HttpParserError):
    """Raised in a parser callback after the refusal was written, to stop parsing."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """See the module docstring. ``limits`` comes from ``scoreboard.server`` (bound with
    ``functools.partial``, so uvicorn's worker processes get it with the pickled config)."""

    def __init__(self, *args: Any, limits: EdgeLimits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits = limits or EdgeLimits()
        self._idle_timeout = min(limits.idle_timeout, self.timeout_keep_alive)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._in_request = False
        self._in_body = False
        self._refused = False
        self._upgraded = False
        self._progress: _BodyProgress | None = None

    # -- the deadline ------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._in_body or not self._in_request:
            # The app has the request (and answers a slow body itself), or no request has
            # begun (an idle connection): just end it.
            self.transport.close()
            return
        self._refuse(408, "request_timeout", "the request was not received in time")

    def _watch(self) -> None:
        """Keep a deadline running whenever the connection waits on the client (see the
        module docstring); called after every event that may end one."""
        if self._deadline is not None or self._refused or self._upgraded:
            return  # a deadline runs, or the connection is answered, or it is a WebSocket now
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if not cycle.more_body:
                return  # the app holds a whole request: the client owes nothing
            self._arm(self._limits.body_timeout + _BODY_GRACE)
            return
        if self.timeout_keep_alive_task is not None:
            return  # uvicorn's own idle timer runs
        self._in_request = self._in_body = False
        self._arm(self._idle_timeout)

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._refused = True
        self._disarm()
        body = orjson.dumps({"error": code, "message": message})
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (status, _REASONS[status], len(body))
        )
        self.transport.write(head + body)
        self.transport.close()

    # -- protocol and parser callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._in_request = True  # its first bytes are the request's: 408 if they do not come
        self._arm(self._limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def send_400_response(self, msg: str) -> None:
        if self._refused:  # our own refusal stopped the parser; it is answered already
            return
        self._refuse(400, "invalid_http", "the request is not valid HTTP/1.1")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._in_body = False
        self._in_request = True
        # The first request's clock started at connect; a later one's starts now.
        if self._deadline is None or self.cycle is not None:
            self._arm(self._limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self._limits.max_header_bytes:
            self._refuse(
                431,
                "headers_too_large",
                "the request line and headers must be at most "
                f"{self._limits.max_header_bytes} bytes",
            )
            raise _Refused("headers too large")

    def on_headers_complete(self) -> None:
        self._in_body = True
        self._arm(self._limits.body_timeout + _BODY_GRACE)
        self._progress = _BodyProgress()
        self.scope.setdefault("extensions", {})[BODY] = {"progress": self._progress}
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        if self._progress is not None:
            self._progress.complete = True
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        self._upgraded = True  # the transport belongs to the WebSocket protocol from here on
        super().handle_websocket_upgrade()
