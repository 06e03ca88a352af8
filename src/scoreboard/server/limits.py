"""The limits the server layer enforces below the app, taken from the settings once."""

from __future__ import annotations

from dataclasses import dataclass

from scoreboard.settings import Settings


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """What the protocols of ``scoreboard.server`` enforce (docs/operations.md, "Limits").

    A frozen dataclass of plain values: it is bound to the protocol classes with
    ``functools.partial`` and so travels, pickled, to uvicorn's worker processes."""

    header_timeout: float = 10.0
    """Seconds from a connection waiting for a request (or a request's first byte) to the end
    of its headers."""
    body_timeout: float = 10.0
    """Seconds from the end of the headers to the end of the body."""
    idle_timeout: float = 5.0
    """Seconds a keep-alive connection may wait for its next request's first byte."""
    max_header_bytes: int = 16 * 1024
    ws_frames_per_second: int | None = 10

    @classmethod
    def from_settings(cls, settings: Settings, *, keep_alive: float = 5.0) -> EdgeLimits:
        return cls(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            idle_timeout=min(keep_alive, settings.header_timeout),
            max_header_bytes=settings.max_header_bytes,
            ws_frames_per_second=settings.ws_max_frames_per_second,
        )
