"""Documentation models and response descriptions shared by the endpoints' OpenAPI entries.

The routes answer with bytes they encode themselves (``orjson``); these models only describe
the answers in ``/openapi.json`` (``web.openapi`` holds the document to what the server does).
"""

from __future__ import annotations

import orjson
from pydantic import BaseModel
from starlette.responses import Response


def json_response(data: object) -> Response:
    """A 200 with ``data`` as JSON (``orjson``: exact integers, no spaces)."""
    return Response(orjson.dumps(data), media_type="application/json")


class BoardEntry(BaseModel):
    rank: int
    user_id: str
    username: str
    score: int


class ErrorBody(BaseModel):
    error: str
    message: str


def documented_errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    """The ``responses`` of a route for these error statuses: the JSON error body, and the
    headers a 429 and a 503 carry."""
    text = {
        400: "Invalid request data; nothing changed",
        401: "Missing, invalid or expired token, or a token of another user; nothing changed",
        403: "Forbidden: a banned user's update, or an address the admin API refuses; nothing "
        "changed",
        404: "No such user, event or board",
        408: "The body did not arrive within SCOREBOARD_BODY_TIMEOUT; nothing changed",
        409: "Conflicts with what exists (an action_id used with another score_delta, a "
        "rollover of a board that resets by itself); nothing changed",
        413: "Body over the size limit; nothing changed",
        429: "Over a rate or velocity limit (the code says which); nothing changed, retry "
        "after Retry-After",
        500: "Unexpected error",
        503: "The store is unavailable; nothing changed, retry after Retry-After",
    }
    integer = {"schema": {"type": "integer"}, "required": True}
    headers: dict[int, dict[str, object]] = {
        429: {
            "Retry-After": {**integer, "description": "Seconds until a retry can succeed"},
            "RateLimit-Limit": {**integer, "description": "The limit that was reached"},
            "RateLimit-Remaining": {**integer, "description": "What is left of it"},
            "RateLimit-Reset": {**integer, "description": "Seconds until it resets"},
        },
        503: {"Retry-After": {**integer, "description": "Seconds to wait before a retry"}},
    }
    return {
        s: {
            "model": ErrorBody,
            "description": text[s],
            **({"headers": headers[s]} if s in headers else {}),
        }
        for s in statuses
    }


def links_to_the_user(*operations: str) -> dict[str, object]:
    """OpenAPI links from a 200 naming a ``user_id`` to the reads about that user: clients (and
    Schemathesis' stateful phase) learn where the answer leads."""
    return {
        operation: {"operationId": operation, "parameters": {"user_id": "$response.body#/user_id"}}
        for operation in operations
    }
