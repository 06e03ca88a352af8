"""``SCOREBOARD_ALLOWED_ORIGINS``: the web origins whose pages may use this service.

One list for both the WebSocket ``Origin`` check and CORS. Unset (empty), any origin is allowed:
the board is public, and updates are authorized by a token, never by a cookie, so another site's
page gains nothing it could not do with curl. Origins compare exactly as browsers send them
(scheme, host and a non-default port, no trailing slash), case-insensitively.
"""

from __future__ import annotations


class AllowedOrigins:
    __slots__ = ("_origins",)

    def __init__(self, origins: frozenset[str] | None) -> None:
        self._origins = origins

    @classmethod
    def parse(cls, text: str) -> AllowedOrigins:
        items = frozenset(
            part.strip().rstrip("/").lower() for part in text.split(",") if part.strip()
        )
        return cls(items or None)

    @property
    def any(self) -> bool:
        return self._origins is None

    def as_list(self) -> list[str]:
        """For CORS: ``["*"]`` when any origin is allowed."""
        return ["*"] if self._origins is None else sorted(self._origins)

    def allows(self, origin: str | None) -> bool:
        """Whether a socket with this ``Origin`` header may open. No header means no browser
        page is involved (browsers always send it on a WebSocket handshake): allowed."""
        if self._origins is None or origin is None:
            return True
        return origin.strip().rstrip("/").lower() in self._origins
