"""HTTP routes: the score update and the top 10.

The update route reads the raw body and parses it itself (``update_body``) rather than through
a FastAPI model, because the contract is stricter than model coercion; the OpenAPI schema is
still generated from the documentation models below.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Annotated

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from scoreboard.auth.decision import TOKEN_MAX, TOKEN_PATTERN, authorize
from scoreboard.boards import NAME_PATTERN
from scoreboard.bootstrap import Components
from scoreboard.errors import Banned, ScoreboardError, Unauthorized
from scoreboard.model import ACTION_ID_PATTERN, USER_ID_PATTERN, ScoreUpdate, UpdateResult
from scoreboard.web.endpoints.schemas import BoardEntry, documented_errors, links_to_the_user
from scoreboard.web.guards import body as update_body
from scoreboard.web.guards.body import read_body
from scoreboard.web.guards.client_address import client_address
from scoreboard.web.guards.limits import RateLimited
from scoreboard.web.metrics import Metrics

log = logging.getLogger("scoreboard.audit")

router = APIRouter()


class UpdateRequest(BaseModel):
    """Add ``score_delta`` to ``user_id``'s score. The token may come here or as a Bearer."""

    model_config = ConfigDict(extra="forbid")  # an unknown field is refused (no mass assignment)

    user_id: Annotated[str, Field(min_length=1, max_length=64, pattern=USER_ID_PATTERN)]
    score_delta: Annotated[int, Field(description="non-zero, within the configured range")]
    auth_token: Annotated[
        str | None,
        Field(
            max_length=TOKEN_MAX,
            pattern=TOKEN_PATTERN,
            description="JWT (compact JWS); wins over the Authorization header",
        ),
    ] = None
    action_id: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=128,
            pattern=ACTION_ID_PATTERN,
            description="idempotency key, per user across metrics: no control or invisible "
            "formatting characters",
        ),
    ] = None
    metric: Annotated[
        str | None,
        Field(
            pattern=f"^{NAME_PATTERN}$",
            description="the metric this event belongs to (default points); it feeds every "
            "board of that metric",
        ),
    ] = None


class BoardPlace(BaseModel):
    period: str
    score: int | None
    rank: int | None


class UpdateResponse(BaseModel):
    user_id: str
    new_score: int | None = Field(description="on the default board; null if not fed")
    rank: int | None = Field(description="on the default board; null if not fed or not ranked")
    boards: dict[str, BoardPlace]


class TopResponse(BaseModel):
    scores: list[BoardEntry]


def components(request: Request) -> Components:
    value: Components = request.app.state.components
    return value


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "the Authorization header must be 'Bearer <token>'", code="token_invalid"
        )
    return token.strip()


@router.post(
    "/api/scores/update",
    operation_id="update_score",
    response_model=UpdateResponse,
    responses={
        200: {"links": links_to_the_user("get_user", "get_around", "get_history", "admin_user")},
        **documented_errors(400, 401, 403, 408, 409, 413, 429, 500, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": UpdateRequest.model_json_schema(),
                }
            },
        }
    },
    summary="Add to a user's score",
)
async def update_score(request: Request) -> Response:
    """Applies the update durably, then answers with the new total and rank.

    The same ``action_id`` with the same delta again is a retry: 200 with the current result,
    nothing added. Only a 200 changes anything.
    """
    return Response(await apply_update(request), media_type="application/json")


async def apply_update(request: Request) -> bytes:
    """The update route's work; returns the body of its 200 (the hot path answers with it)."""
    parts = components(request)
    started = time.perf_counter()
    metrics: Metrics = request.app.state.metrics
    guard = parts.update_limits
    address = client_address(request)
    user_id: str | None = None
    try:
        await guard.check_address(address)
        settings = parts.settings
        body = update_body.parse(await read_body(request, settings.max_body, settings.body_timeout))
        user_id = body.user_id
        update = ScoreUpdate(body.user_id, body.score_delta, body.action_id, metric=body.metric)
        metric = parts.service.validate(update)
        token = body.auth_token if body.auth_token is not None else bearer(request)
        if token is None:
            raise Unauthorized("an auth_token or a Bearer token is required", code="token_missing")
        update = await authorize(parts.verifier, parts.settings.auth_mode, token, update)
        try:
            await guard.check_user(update.user_id)
            # The grant's delta in grant mode. A retry adds nothing, so it costs no points.
            applied = None
            if update.action_id is not None:
                applied = functools.partial(parts.service.already_applied, update)
            reservation = await guard.reserve(
                update.user_id,
                update.delta,
                limit=metric.velocity_limit,
                metric=metric.name,
                action_id=update.action_id,
                applied=applied,
            )
        except RateLimited:
            # A ban is answered before the limits: a banned user never learns a limit. Asked
            # of the store only on this refusal; an admitted update meets the ban in its commit.
            if await parts.service.is_banned(update.user_id):
                raise Banned("this user is banned: their updates are refused") from None
            raise
        try:
            result = await parts.service.update(update)
        except BaseException:  # not applied: the points go back
            await reservation.refund()
            raise
        if result.replayed:
            await reservation.refund()
    except ScoreboardError as exc:
        metrics.update_done(exc.code, started)
        log.warning(
            "update rejected",
            extra={"reason": exc.code, "user_id": user_id, "client": address},
        )
        raise
    metrics.update_done("accepted", started)
    return answer(result, parts.service.default_board)


def answer(result: UpdateResult, default_board: str) -> bytes:
    """The 200's body: the default board's score and rank (``null`` when the metric does not
    feed it), and the user's place on every board the update fed."""
    default = result.on(default_board)
    return orjson.dumps(
        {
            "user_id": result.user_id,
            "new_score": None if default is None else default.score,
            "rank": None if default is None else default.rank,
            "boards": {
                b.board: {"period": b.period, "score": b.score, "rank": b.rank}
                for b in result.boards
            },
        }
    )


@router.get(
    "/api/scores/top10", operation_id="top10", response_model=TopResponse, summary="The top 10"
)
async def top10(request: Request) -> Response:
    """At most 10 entries, best first; equal scores ranked by who reached the score first.
    The body is encoded once per board change and served from memory."""
    return Response(
        components(request).service.current_board().top_body, media_type="application/json"
    )
