"""``SCOREBOARD_ALLOWED_ORIGINS``: the web origins whose pages may use this service.

One list for both the WebSocket ``Origin`` check and CORS. Unset (empty), any origin is allowed:
the board is public, and updates are authorized by a token, never by a cookie, so another site's
page gains nothing it could not do with curl. Origins compare exactly as browsers send them
(scheme, host and a non-default port, no trailing slash), case-insensitively.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from scoreboard.web.errors import error_response


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


class JsonCorsMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, except that a refused preflight gets the service's JSON
    error body (``cors_refused``) instead of a plain-text one, like every other refusal."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-type", "content-length")
        }
        return error_response(400, "cors_refused", bytes(response.body).decode(), headers)
