"""The one place where errors become HTTP responses: ``{"error": code, "message": sentence}``.

Every error the service raises on purpose is a ``ScoreboardError`` (the core's, and the edge's
own: a limit's ``RateLimited``, the body's ``BodyTimeout``); :data:`STATUS` gives each its status
and :data:`HEADERS` the headers its answer carries. Anything else is a bug: a plain 500, the
detail in the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from scoreboard.errors import (
    ActionConflict,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ScoreboardError,
    ScoreOutOfRange,
    Unauthorized,
    Unavailable,
)
from scoreboard.web.guards.body import BodyTimeout
from scoreboard.web.guards.limits import RateLimited

log = logging.getLogger(__name__)

STATUS: dict[type[ScoreboardError], int] = {
    InvalidRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    BodyTimeout: 408,
    ActionConflict: 409,
    ScoreOutOfRange: 409,
    Conflict: 409,
    PayloadTooLarge: 413,
    RateLimited: 429,
    Unavailable: 503,
}
"""Each error class's status; a subclass takes its nearest listed ancestor's."""

HEADERS: dict[type[ScoreboardError], Callable[[Any], Mapping[str, str]]] = {
    # Retry-After and the RateLimit-* fields of the limit that refused.
    RateLimited: lambda error: error.headers(),
    # The rest of the body may still be on its way: it is not read, the connection ends.
    BodyTimeout: lambda error: {"Connection": "close"},
    Unavailable: lambda error: {"Retry-After": "1"},
}
"""The headers an error's answer carries, by class (nearest listed ancestor)."""

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = orjson.dumps({"error": code, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def status_of(error: ScoreboardError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def headers_of(error: ScoreboardError) -> Mapping[str, str] | None:
    for cls in type(error).__mro__:
        if cls in HEADERS:
            return HEADERS[cls](error)
    return None


def response_for(error: ScoreboardError) -> Response:
    return error_response(status_of(error), error.code, error.message, headers_of(error))


ADMIN_PREFIX = "/api/admin/"


def _private(request: Request, response: Response) -> Response:
    """An admin route's answer, error or not, is never stored by a cache."""
    if request.url.path.startswith(ADMIN_PREFIX):
        response.headers["Cache-Control"] = "no-store"
    return response


async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ScoreboardError)
    return _private(request, response_for(exc))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = {
        404: "there is nothing at this path",
        405: f"{request.method} is not allowed here",
    }.get(exc.status_code, str(exc.detail))
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed(request, (headers or {}).get("Allow"))}
    return _private(request, error_response(exc.status_code, code, message, _with_head(headers)))


def _allowed(request: Request, first: str | None) -> str:
    """Every method the document gives this path. Starlette's 405 names only the methods of
    the first route that matched the path, and a path may have several (GET and DELETE of a
    user under /api/admin)."""
    methods = [m.strip() for m in (first or "").split(",") if m.strip()]
    document = request.app.openapi()
    for template, operations in document.get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods += [m.upper() for m in operations if m.upper() not in methods]
    return ", ".join(methods)


def _with_head(headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """A 405's ``Allow``: every path that answers GET answers HEAD too (``web.hot_paths``)."""
    allow = (headers or {}).get("Allow")
    if allow is None:
        return headers
    methods = [method.strip() for method in allow.split(",")]
    if "GET" in methods and "HEAD" not in methods:
        return {**(headers or {}), "Allow": ", ".join([*methods, "HEAD"])}
    return headers


async def _validation(request: Request, exc: Exception) -> Response:
    # FastAPI's 422 for parameters it validated itself: our contract says 400.
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = f"invalid {where}: {first.get('msg', '')}"
    return _private(request, error_response(400, "invalid_request", message))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _private(request, error_response(500, "internal_error", "an unexpected error occurred"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(ScoreboardError, _domain)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)
