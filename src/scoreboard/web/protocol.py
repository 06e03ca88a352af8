"""uvicorn's httptools protocol with a header deadline, a header size cap and a body deadline.

uvicorn with httptools bounds neither how long a client may take to send its headers nor how
many header bytes it may send, and it arms no timer at all on a fresh connection until a first
response: a client that connects and sends one byte every few seconds holds a connection (and
its memory) for ever. That is slowloris. :class:`GuardedHttpProtocol` adds:

- ``SCOREBOARD_HEADER_TIMEOUT``: from the connection being made (or a later request on it
  starting) to the end of the request's headers. On expiry: ``408`` and the connection closed.
- ``SCOREBOARD_MAX_HEADER_BYTES``: the request line plus headers. Over it: ``431`` and closed.
- ``SCOREBOARD_BODY_TIMEOUT`` (+1 s): from the end of the headers to the end of the body, as a
  backstop that closes the connection for any route. The update route reads its body under
  the same deadline itself and answers ``408`` with the JSON error body before this fires.

The refusals are written by hand (the app never saw the request): a JSON body as every other
error, ``Connection: close``. A WebSocket handshake passes through the same header checks; after
the upgrade the WebSocket protocol (ping timeout, frame size) takes over.

It also tells the app, through the ASGI extension ``scoreboard.body`` (:func:`body_arrived`),
whether a request's whole body has already arrived, so that the update route runs its body
deadline only when it may have to wait (``asyncio.timeout`` costs a timer and, on this machine,
several ``getpid()`` system calls per request).

The class reads its limits once per process from the environment (``Settings()``) unless
:meth:`configure` set them: uvicorn's worker processes import it by name, so it cannot be a
closure over the command line's settings.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from scoreboard.settings import Settings

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
_BODY_GRACE = 1.0
BODY_EXTENSION = "scoreboard.body"


class _BodyProgress:
    __slots__ = ("complete",)

    def __init__(self) -> None:
        self.complete = False


def body_arrived(scope: Any) -> bool:
    """Whether the server reported the request's whole body received (``False`` when it
    cannot tell: another server, or not yet)."""
    extension = (scope.get("extensions") or {}).get(BODY_EXTENSION)
    progress = extension.get("progress") if isinstance(extension, dict) else None
    return isinstance(progress, _BodyProgress) and progress.complete


class _Refused(httptools.HttpParserError):
    """Raised in a parser callback after the refusal was written, to stop parsing."""


class GuardedHttpProtocol(HttpToolsProtocol):
    limits: ClassVar[tuple[float, float, int] | None] = None
    """(header timeout, body timeout, max header bytes); from ``Settings()`` when unset."""

    @classmethod
    def configure(cls, settings: Settings) -> None:
        cls.limits = (settings.header_timeout, settings.body_timeout, settings.max_header_bytes)

    @classmethod
    def _limits(cls) -> tuple[float, float, int]:
        if cls.limits is None:
            cls.configure(Settings())
        assert cls.limits is not None
        return cls.limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout, self._body_timeout, self._max_header_bytes = self._limits()
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._in_body = False
        self._refused = False
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
        if self._in_body:
            # The app has the request (and answers a slow body itself): just end it.
            self.transport.close()
            return
        self._refuse(408, "request_timeout", "the request was not received in time")

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
        self._arm(self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if self._refused:  # our own refusal stopped the parser; it is answered already
            return
        self._disarm()
        super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._in_body = False
        # The first request's clock started at connect; a later one's starts now.
        if self._deadline is None or self.cycle is not None:
            self._arm(self._header_timeout)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self._max_header_bytes:
            self._refuse(
                431,
                "headers_too_large",
                f"the request line and headers must be at most {self._max_header_bytes} bytes",
            )
            raise _Refused("headers too large")

    def on_headers_complete(self) -> None:
        self._in_body = True
        self._arm(self._body_timeout + _BODY_GRACE)
        self._progress = _BodyProgress()
        self.scope.setdefault("extensions", {})[BODY_EXTENSION] = {"progress": self._progress}
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        if self._progress is not None:
            self._progress.complete = True
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()
