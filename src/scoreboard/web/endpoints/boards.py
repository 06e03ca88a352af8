"""Every board and its periods: ``/api/boards``, and the reads of the default board's seed
endpoints for any board and period (``?period=ID``, the current one by default). Every answer
names its ``board`` and ``period``.

A board id or period id that is not of a valid form is a 400 (``invalid_board``,
``invalid_period``: a week on a daily board); a well-formed one that does not exist is a 404
(``unknown_board``, ``unknown_period``: never started, or deleted by ``keep``). The current
period's reads are served by the board's rank index; an archive's from the store.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from scoreboard import exports
from scoreboard.boards import NAME_PATTERN
from scoreboard.errors import InvalidRequest, NotFound
from scoreboard.model import BUCKETS, TOP_K, PeriodSummary
from scoreboard.past import Past, PastBoard
from scoreboard.periods import Period
from scoreboard.service import PAGE_MAX, PERIODS_MAX, RADIUS_MAX, ScoreService, Served
from scoreboard.web.endpoints.reads import (
    OFFSET_MAX,
    UserId,
    entries_body,
    iso,
    page_body,
    parse_time,
    service_of,
    user_body,
)
from scoreboard.web.endpoints.schemas import BoardEntry, ErrorBody, json_response
from scoreboard.web.guards.client_address import client_address
from scoreboard.web.guards.limits import RequestLimit

router = APIRouter()

_BOARD_RE = re.compile(NAME_PATTERN)
_PERIOD_PATTERN = (
    r"^(all|[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-W[0-9]{2}|[0-9]{4}-[0-9]{2}|[1-9][0-9]{0,9})$"
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A parameter is invalid (board, period, ...)"},
    404: {"model": ErrorBody, "description": "No such board, period or user"},
}

BoardId = Annotated[
    str,
    Path(
        description="1-64 of a-z0-9_-",
        json_schema_extra={"pattern": f"^{NAME_PATTERN}$"},
        examples=["main"],
    ),
]
PeriodId = Annotated[
    str | None,
    Query(
        description="the period to read (default: the current one): all, YYYY-MM-DD, YYYY-Www, "
        "YYYY-MM or a season number, as the board's reset makes them",
        json_schema_extra={"pattern": _PERIOD_PATTERN},
        examples=["all"],
    ),
]

At = Annotated[
    str | None,
    Query(
        description="read the board as it stood at this instant (RFC 3339; without an offset, "
        "UTC), in the period that held it: events voided since do not count, users hidden, "
        "banned or erased since are not shown. Not with period (400); a time after now reads "
        "as now",
        # The document says date-time (an offset); the server also reads a time without one
        # as UTC, as issue 16 asks: more lenient than the document, never less.
        json_schema_extra={"format": "date-time"},
        examples=["2026-11-27T18:00:00Z"],
    ),
]


class PeriodBody(BaseModel):
    id: str
    starts_at: str | None
    ends_at: str | None


class BoardBody(BaseModel):
    id: str
    title: str
    metric: str
    aggregate: str
    order: str
    reset: str
    timezone: str
    period: PeriodBody


class BoardsResponse(BaseModel):
    boards: list[BoardBody]


class BoardTopResponse(BaseModel):
    board: str
    period: str | None
    scores: list[BoardEntry]


class BoardPageResponse(BaseModel):
    board: str
    period: str | None
    scores: list[BoardEntry]
    total: int
    offset: int
    limit: int


class BoardUserResponse(BaseModel):
    board: str
    period: str
    user_id: str
    username: str
    score: int
    rank: int
    updated_at: str


class BoardAroundResponse(BaseModel):
    board: str
    period: str
    user_id: str
    rank: int
    scores: list[BoardEntry]


class Leader(BaseModel):
    user_id: str
    username: str
    score: int


class PeriodSummaryBody(BaseModel):
    id: str
    starts_at: str | None
    ends_at: str | None
    entries: int
    leader: Leader | None


class PeriodsResponse(BaseModel):
    periods: list[PeriodSummaryBody]
    next: str | None


def _served(request: Request, board: str) -> tuple[ScoreService, Served]:
    if _BOARD_RE.fullmatch(board) is None:
        raise InvalidRequest(f"board must be {NAME_PATTERN}", code="invalid_board")
    service = service_of(request)
    return service, service.served(board)


def _past(request: Request) -> Past:
    components = request.app.state.components
    return Past(components.store, checkpoints=components.checkpoints)


def _at(request: Request, board: str, at: str, period: str | None) -> tuple[Past, Served, datetime]:
    """The past reads, the board, and the instant ``at`` (``period`` with it is a 400)."""
    if period is not None:
        raise InvalidRequest("at and period exclude each other", code="invalid_parameter")
    moment = parse_time(at, "at")
    assert moment is not None
    _, served = _served(request, board)
    return _past(request), served, moment


def _period_id(past: PastBoard) -> str | None:
    return None if past.period is None else past.period.id


def period_body(period: Period) -> dict[str, str | None]:
    return {
        "id": period.id,
        "starts_at": None if period.starts_at is None else iso(period.starts_at),
        "ends_at": None if period.ends_at is None else iso(period.ends_at),
    }


def board_body(served: Served) -> dict[str, Any]:
    board = served.board
    return {
        "id": board.id,
        "title": board.title,
        "metric": board.metric,
        "aggregate": board.aggregate,
        "order": board.order,
        "reset": board.reset,
        "timezone": board.timezone,
        "period": period_body(served.period),
    }


def _in_order(service: ScoreService) -> list[Served]:
    """The default board first, then the others by id."""
    default = service.boards.get(service.default_board)
    others = [s for board_id, s in sorted(service.boards.items()) if s is not default]
    return ([default] if default is not None else []) + others


@router.get(
    "/api/boards",
    operation_id="list_boards",
    response_model=BoardsResponse,
    summary="Every board, with its current period",
)
async def list_boards(request: Request) -> Response:
    """The default board first."""
    return json_response({"boards": [board_body(s) for s in _in_order(service_of(request))]})


@router.get(
    "/api/boards/{board}",
    operation_id="get_board",
    response_model=BoardBody,
    responses=_ERRORS,
    summary="One board, with its current period",
)
async def get_board(request: Request, board: BoardId) -> Response:
    _, served = _served(request, board)
    return json_response(board_body(served))


@router.get(
    "/api/boards/{board}/top10",
    operation_id="board_top10",
    response_model=BoardTopResponse,
    responses=_ERRORS,
    summary="A board's top 10",
)
async def board_top10(
    request: Request, board: BoardId, period: PeriodId = None, at: At = None
) -> Response:
    """The current period's is encoded once per change and served from memory; ``at``'s is
    recomputed from the events (``period`` is ``null`` before the board's first season)."""
    if at is not None:
        reads, served, moment = _at(request, board, at, period)
        past, ranked = await reads.top(served.board, moment, TOP_K)
        return json_response(
            {"board": board, "period": _period_id(past), "scores": entries_body(tuple(ranked))}
        )
    service, served = _served(request, board)
    if period is None or period == served.period.id:
        return Response(served.live.current.board.top_body, media_type="application/json")
    found, entries = await service.top(board, period)
    return json_response({"board": board, "period": found.id, "scores": entries_body(entries)})


@router.get(
    "/api/boards/{board}/scores",
    operation_id="board_scores",
    response_model=BoardPageResponse,
    responses=_ERRORS,
    summary="A page of a board",
)
async def board_scores(
    request: Request,
    board: BoardId,
    period: PeriodId = None,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX, examples=[0])] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, examples=[10])] = 10,
    at: At = None,
) -> Response:
    if at is not None:
        service_of(request)  # the integer parameters' check
        reads, served, moment = _at(request, board, at, period)
        past, ranked = await reads.page(served.board, moment, offset, limit)
        body = page_body(tuple(ranked), len(past.tallies), offset, limit)
        return json_response({"board": board, "period": _period_id(past), **body})
    service, _ = _served(request, board)
    found, entries, total = await service.page(board, period, offset, limit)
    return json_response(
        {"board": board, "period": found.id, **page_body(entries, total, offset, limit)}
    )


@router.get(
    "/api/boards/{board}/users/{user_id}",
    operation_id="board_user",
    response_model=BoardUserResponse,
    responses=_ERRORS,
    summary="One user's score and rank on a board",
)
async def board_user(
    request: Request, board: BoardId, user_id: UserId, period: PeriodId = None, at: At = None
) -> Response:
    if at is not None:
        service, _ = _served(request, board)
        service.check_user_id(user_id)
        reads, served, moment = _at(request, board, at, period)
        try:
            past, entry, rank = await reads.user(served.board, moment, user_id)
        except LookupError:
            raise NotFound(f"no score for user '{user_id}' then", code="unknown_user") from None
        body = {"board": board, "period": _period_id(past), **user_body(entry, rank)}
        return json_response(body)
    service, _ = _served(request, board)
    found, entry, rank = await service.user(board, period, user_id)
    return json_response({"board": board, "period": found.id, **user_body(entry, rank)})


@router.get(
    "/api/boards/{board}/users/{user_id}/around",
    operation_id="board_around",
    response_model=BoardAroundResponse,
    responses=_ERRORS,
    summary="The entries around a user on a board",
)
async def board_around(
    request: Request,
    board: BoardId,
    user_id: UserId,
    period: PeriodId = None,
    radius: Annotated[int, Query(ge=1, le=RADIUS_MAX, examples=[5])] = 5,
) -> Response:
    service, _ = _served(request, board)
    found, rank, entries = await service.around(board, period, user_id, radius)
    return json_response(
        {
            "board": board,
            "period": found.id,
            "user_id": user_id,
            "rank": rank,
            "scores": entries_body(entries),
        }
    )


class TrajectoryPoint(BaseModel):
    at: str
    score: int | None
    rank: int | None


class TrajectoryResponse(BaseModel):
    board: str
    user_id: str
    bucket: str
    points: list[TrajectoryPoint]


_TIME: dict[str, Any] = {"format": "date-time"}


@router.get(
    "/api/boards/{board}/users/{user_id}/trajectory",
    operation_id="board_trajectory",
    response_model=TrajectoryResponse,
    responses=_ERRORS,
    summary="A user's score and rank over time on a board",
)
async def board_trajectory(
    request: Request,
    board: BoardId,
    user_id: UserId,
    bucket: Annotated[
        str,
        Query(
            description="hour or day, of the board's time zone",
            json_schema_extra={"enum": list(BUCKETS)},
            examples=["hour"],
        ),
    ] = "hour",
    since: Annotated[
        str | None,
        Query(
            description="inclusive, without an offset UTC (default: the current period's "
            "start; on a board that never resets, a day of hours or 30 days before until)",
            json_schema_extra=_TIME,
            examples=["2026-11-27T00:00:00Z"],
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(
            description="exclusive, without an offset UTC (default and at most: now)",
            json_schema_extra=_TIME,
            examples=["2026-11-28T00:00:00Z"],
        ),
    ] = None,
) -> Response:
    """One point per hour or day from ``since`` to ``until``: ``at`` the bucket's start, the
    user's ``score`` and ``rank`` as the bucket ended (``null``: not on the board then). A
    window of more than 1,000 buckets is a 400 (``too_many_points``): ask for ``bucket=day``
    or a shorter window. A hidden, banned or unknown user has no points."""
    if bucket not in BUCKETS:
        raise InvalidRequest("bucket must be 'hour' or 'day'", code="invalid_bucket")
    start = parse_time(since, "since")
    end = parse_time(until, "until")
    service, served = _served(request, board)
    service.check_user_id(user_id)
    reads = _past(request)
    points = await reads.trajectory(
        served.board, user_id, start, end, "hour" if bucket == "hour" else "day"
    )
    return json_response(
        {
            "board": board,
            "user_id": user_id,
            "bucket": bucket,
            "points": [{"at": iso(p.at), "score": p.score, "rank": p.rank} for p in points],
        }
    )


@router.get(
    "/api/boards/{board}/periods",
    operation_id="board_periods",
    response_model=PeriodsResponse,
    responses=_ERRORS,
    summary="A board's periods, newest first",
)
async def board_periods(
    request: Request,
    board: BoardId,
    limit: Annotated[int, Query(ge=1, le=PERIODS_MAX, examples=[20])] = 20,
    before: Annotated[
        str | None,
        Query(
            description="the next value of the previous page",
            json_schema_extra={"pattern": _PERIOD_PATTERN},
            examples=["all"],
        ),
    ] = None,
) -> Response:
    """The current period included, with each period's entries and leader. Paged like every
    newest-first list: ``limit``, ``before``, and ``next`` in the answer."""
    service, _ = _served(request, board)
    found = await service.periods(board, limit=limit, before=before)
    more = len(found) == limit
    return json_response(
        {
            "periods": [_summary(p) for p in found],
            "next": found[-1].id if more and found else None,
        }
    )


def _summary(summary: PeriodSummary) -> dict[str, Any]:
    leader = summary.leader
    return {
        "id": summary.id,
        "starts_at": None if summary.starts_at is None else iso(summary.starts_at),
        "ends_at": None if summary.ends_at is None else iso(summary.ends_at),
        "entries": summary.entries,
        "leader": None
        if leader is None
        else {"user_id": leader.user_id, "username": leader.username, "score": leader.score},
    }


ExportFormat = Annotated[
    str,
    Query(
        description="csv (for spreadsheets: formula-like text cells get a leading ') or "
        "ndjson (lossless)",
        json_schema_extra={"enum": list(exports.FORMATS)},
        examples=["csv"],
    ),
]


@router.get(
    "/api/boards/{board}/export",
    operation_id="board_export",
    response_class=StreamingResponse,  # CSV or NDJSON (documented below), never JSON
    responses={
        **_ERRORS,
        200: {
            "description": "Every row of the period in rank order: rank, user_id, username, "
            "score, reached_at",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
        429: {"model": ErrorBody, "description": "Over SCOREBOARD_RATE_LIMIT_EXPORT"},
    },
    summary="A period of a board as a file",
)
async def board_export(
    request: Request,
    board: BoardId,
    period: PeriodId = None,
    format: ExportFormat = "csv",
) -> Response:
    """Streamed in constant memory, a chunk of rows at a time; limited per client address."""
    if format not in exports.FORMATS:
        raise InvalidRequest("format must be csv or ndjson", code="invalid_format")
    service, _ = _served(request, board)
    found, chunks = await service.export(board, period)
    limit: RequestLimit = request.app.state.export_limit
    await limit.check(client_address(request))
    name = f"{board}-{found.id}.{format}"
    return StreamingResponse(
        exports.encode(chunks, format),
        media_type=exports.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
