"""What the app may find in an ASGI scope's ``extensions`` when ``scoreboard.server`` serves it.

The server layer (``scoreboard.server``) subclasses uvicorn's protocols; the app never imports
it. It looks the extensions up by name and uses them through the small Protocols below, so the
app runs unchanged under another ASGI server, a test client, or the stock uvicorn protocols
(``SCOREBOARD_ALLOW_UNTESTED_SERVER``): each extension is an optimisation or a guard whose
absence the app handles.

- ``scoreboard.frames``: ``{"sink": FrameSink, "guarded": bool}``. The sink writes one prebuilt
  WebSocket frame (:func:`text_frame`) to the socket's transport, bypassing ASGI's per-socket
  framing. ``guarded`` says the server counts every client frame (control frames and
  continuation fragments included) against ``SCOREBOARD_WS_MAX_FRAMES_PER_SECOND`` itself; the
  app counts messages only where it is not.
- ``scoreboard.body``: ``{"progress": BodyProgress}``: whether the request's whole body has
  arrived, so the update route runs its body deadline only when it may have to wait.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

FRAMES = "scoreboard.frames"
BODY = "scoreboard.body"

_FIN_TEXT = 0x81  # FIN bit and opcode 1 (text); server frames are not masked (RFC 6455 5.1)


@runtime_checkable
class FrameSink(Protocol):
    """Writes prebuilt frames to one socket. Used on the event loop thread only."""

    @property
    def open(self) -> bool:
        """Whether data frames may still be sent (no close sent or received)."""
        ...

    @property
    def closed_for(self) -> str | None:
        """Why the server closed the socket itself (``frame_flood``), else ``None``."""
        ...

    def write(self, frame: bytes) -> bool:
        """Write ``frame`` now if the socket is open and its transport is not over its
        high-water mark; ``False`` (nothing written) otherwise."""
        ...

    async def wait_writable(self) -> None:
        """Until the transport is back under its high-water mark (or the peer is gone)."""
        ...


@runtime_checkable
class BodyProgress(Protocol):
    @property
    def complete(self) -> bool: ...


def _extension(scope: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    extension = (scope.get("extensions") or {}).get(name)
    return extension if isinstance(extension, Mapping) else {}


def sink_of(scope: Mapping[str, Any]) -> FrameSink | None:
    """The socket's :class:`FrameSink`, when the server offers one."""
    sink = _extension(scope, FRAMES).get("sink")
    return sink if isinstance(sink, FrameSink) else None


def frames_guarded(scope: Mapping[str, Any]) -> bool:
    """Whether the server itself limits the client's frames (see the module docstring)."""
    return _extension(scope, FRAMES).get("guarded") is True


def body_arrived(scope: Mapping[str, Any]) -> bool:
    """Whether the server reported the request's whole body received (``False`` when it
    cannot tell: another server, or not yet)."""
    # Once per update request: an attribute read, not a runtime Protocol check (microseconds).
    progress = _extension(scope, BODY).get("progress")
    return getattr(progress, "complete", False) is True


def text_frame(payload: bytes) -> bytes:
    """One complete, unmasked, unfragmented text frame carrying ``payload`` (UTF-8)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", _FIN_TEXT, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + payload
