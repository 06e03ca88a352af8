"""Public reads of the default board beyond the top 10 (pages, one user, around a user), with
the seed's shapes, and a user's history of a metric. The same reads of any board and period are
``endpoints.boards``; both are this module's bodies.

Query parameters are typed here (FastAPI's 422 becomes our 400 in ``web.errors``); the ranges
and the meaning are the service's. A history cursor is a position: ``MICROS.ID``, the time of
the page's last event in microseconds since 1970 (UTC) and its id, so a page boundary never
repeats or skips an event; a bucket page's is ``MICROS``, where the next page starts. Clients
pass ``next_cursor`` back as it is, but any value of that shape is a position the server can
answer from: the OpenAPI document can state the rule exactly, which it could not for a token
that is valid only if this service issued it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from scoreboard.boards import DEFAULT_METRIC, NAME_PATTERN
from scoreboard.errors import InvalidRequest
from scoreboard.model import (
    BUCKETS,
    USER_ID_MAX,
    USER_ID_PATTERN,
    Entry,
    HistoryQuery,
    RankedEntry,
)
from scoreboard.service import HISTORY_MAX, PAGE_MAX, RADIUS_MAX, ScoreService
from scoreboard.web.endpoints.schemas import (
    BoardEntry,
    ErrorBody,
    json_response,
    links_to_the_user,
)

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A parameter is invalid"},
}
_ERRORS_404: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": ErrorBody, "description": "The user has no score"},
}

_INTEGER_PARAMS = ("offset", "limit", "radius")
_TIME: dict[str, Any] = {"format": "date-time"}
_DIGITS_MAX = 9
OFFSET_MAX = 10**_DIGITS_MAX - 1  # the most an integer parameter of at most 9 digits can say

# Documented here and checked by the service (with its own error code), not by FastAPI.
UserId = Annotated[
    str,
    Path(
        description="1-64 of A-Za-z0-9_-.:@",
        json_schema_extra={"pattern": USER_ID_PATTERN, "minLength": 1, "maxLength": USER_ID_MAX},
        examples=["alice"],
    ),
]


class PageResponse(BaseModel):
    scores: list[BoardEntry]
    total: int
    offset: int
    limit: int


class UserResponse(BaseModel):
    user_id: str
    username: str
    score: int
    rank: int
    updated_at: str


class AroundResponse(BaseModel):
    user_id: str
    rank: int
    scores: list[BoardEntry]


class HistoryEvent(BaseModel):
    at: str
    delta: int
    score: int
    action_id: str


class HistoryPointBody(BaseModel):
    at: str
    score: int


class HistoryResponse(BaseModel):
    user_id: str
    bucket: str | None
    events: list[HistoryEvent] | None = None
    points: list[HistoryPointBody] | None = None
    next_cursor: str | None


def service_of(request: Request) -> ScoreService:
    # FastAPI would take "5.0" or " 5" for an integer; the contract says anything but digits
    # is a 400, so every integer parameter is checked as text first.
    for name in _INTEGER_PARAMS:
        value = request.query_params.get(name)
        if value is not None and not (
            value.isascii() and value.isdigit() and len(value) <= _DIGITS_MAX
        ):
            raise InvalidRequest(f"{name} must be a whole number", code="invalid_parameter")
    service: ScoreService = request.app.state.components.service
    return service


def entries_body(entries: tuple[RankedEntry, ...]) -> list[dict[str, Any]]:
    return [
        {"rank": e.rank, "user_id": e.user_id, "username": e.username, "score": e.score}
        for e in entries
    ]


def page_body(
    entries: tuple[RankedEntry, ...], total: int, offset: int, limit: int
) -> dict[str, Any]:
    return {"scores": entries_body(entries), "total": total, "offset": offset, "limit": limit}


def user_body(entry: Entry, rank: int) -> dict[str, Any]:
    standing = entry.standing
    return {
        "user_id": standing.user_id,
        "username": standing.username,
        "score": standing.score,
        "rank": rank,
        "updated_at": iso(entry.updated_at),
    }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))?",
    re.ASCII,
)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""No score event is older (its time is the server's clock), so earlier times mean this one."""
LATEST = datetime.max.replace(tzinfo=UTC)


def parse_time(value: str | None, name: str) -> datetime | None:
    """An RFC 3339 date-time (the OpenAPI ``date-time`` format), as UTC, within
    ``EARLIEST``..``LATEST``: a time outside them selects the same events as that bound. A time
    without an offset is read as UTC, for every parameter that takes a time (``at``, ``since``,
    ``until``: issue 16 asks them to read alike); the document still says ``date-time``, so a
    client that follows it sends an offset, and the server is only more lenient than that.

    A leap second (``23:59:60`` in UTC) is the last microsecond of the minute before it.
    """
    if value is None:
        return None
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise _bad_time(name)
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    fraction, sign, offset_hours, offset_minutes = match.group(7, 8, 9, 10)
    offset = timedelta()
    if sign is not None:
        if int(offset_hours) > 23 or int(offset_minutes) > 59:
            raise _bad_time(name)
        offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
        offset = -offset if sign == "-" else offset
    leap = second == 60
    try:
        # Year 0 (valid in RFC 3339, not in Python) is a leap year like 2000, and before EARLIEST.
        local = datetime(year or 2000, month, day, hour, minute, 59 if leap else second)
    except ValueError:
        raise _bad_time(name) from None
    if year == 0:
        return EARLIEST
    try:
        moment = (local - offset).replace(tzinfo=UTC)
    except OverflowError:  # past year 1 or 9999 once in UTC
        return EARLIEST if offset > timedelta() else LATEST
    if leap:
        if (moment.hour, moment.minute) != (23, 59):
            raise _bad_time(name)
        moment = moment.replace(microsecond=999_999)
    elif fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return min(max(moment, EARLIEST), LATEST)


def _bad_time(name: str) -> InvalidRequest:
    return InvalidRequest(
        f"{name} must be an RFC 3339 time (without an offset: UTC), e.g. 2026-11-27T10:00:00Z",
        code="invalid_time",
    )


CURSOR_PATTERN = r"^[0-9]{1,16}(\.[0-9]{1,18})?$"
"""Up to year 2286, and event ids below 10^18 (inside a signed 64-bit column)."""
_CURSOR_RE = re.compile(CURSOR_PATTERN)
_MICROSECOND = timedelta(microseconds=1)


def cursor_at(moment: datetime, event_id: int | None = None) -> str:
    micros = max(0, (moment - EARLIEST) // _MICROSECOND)
    return f"{micros}" if event_id is None else f"{micros}.{event_id}"


def _position(cursor: str) -> tuple[datetime, int]:
    """The cursor's time and event id (0 when it has none: the page starts at that time)."""
    if _CURSOR_RE.fullmatch(cursor) is None:
        raise InvalidRequest(
            "cursor must be a next_cursor of this API (MICROS or MICROS.ID)", code="invalid_cursor"
        )
    micros, _, event_id = cursor.partition(".")
    return EARLIEST + int(micros) * _MICROSECOND, int(event_id or 0)


@router.get(
    "/api/scores",
    operation_id="board_page",
    response_model=PageResponse,
    responses=_ERRORS,
    summary="A page of the board",
)
async def board_page(
    request: Request,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX, examples=[0])] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, examples=[10])] = 10,
) -> Response:
    """Entries ``offset`` to ``offset + limit - 1`` (0-based), with 1-based ranks."""
    service = service_of(request)
    _, entries, total = await service.page(service.default_board, None, offset, limit)
    return json_response(page_body(entries, total, offset, limit))


@router.get(
    "/api/users/{user_id}",
    operation_id="get_user",
    response_model=UserResponse,
    responses={200: {"links": links_to_the_user("get_around", "get_history")}, **_ERRORS_404},
    summary="One user's score and rank",
)
async def user(request: Request, user_id: UserId) -> Response:
    service = service_of(request)
    _, entry, rank = await service.user(service.default_board, None, user_id)
    return json_response(user_body(entry, rank))


@router.get(
    "/api/users/{user_id}/around",
    operation_id="get_around",
    response_model=AroundResponse,
    responses={200: {"links": links_to_the_user("get_user", "get_history")}, **_ERRORS_404},
    summary="The entries around a user",
)
async def around(
    request: Request,
    user_id: UserId,
    radius: Annotated[int, Query(ge=1, le=RADIUS_MAX, examples=[5])] = 5,
) -> Response:
    """The entries ranked ``radius`` above to ``radius`` below the user."""
    service = service_of(request)
    _, rank, entries = await service.around(service.default_board, None, user_id, radius)
    return json_response({"user_id": user_id, "rank": rank, "scores": entries_body(entries)})


@router.get(
    "/api/users/{user_id}/history",
    operation_id="get_history",
    response_model=HistoryResponse,
    responses=_ERRORS,
    summary="A user's score over time",
)
async def history(
    request: Request,
    user_id: UserId,
    since: Annotated[
        str | None,
        Query(
            description="inclusive (without an offset: UTC)",
            json_schema_extra=_TIME,
            examples=["2026-11-27T10:00:00Z"],
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(
            description="exclusive (without an offset: UTC)",
            json_schema_extra=_TIME,
            examples=["2026-11-28T10:00:00Z"],
        ),
    ] = None,
    bucket: Annotated[
        str | None,
        Query(
            description="hour or day",
            json_schema_extra={"enum": list(BUCKETS)},
            examples=["hour"],
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            description="next_cursor of the previous page",
            json_schema_extra={"pattern": CURSOR_PATTERN},
            examples=["1764237600000000.42"],
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=HISTORY_MAX, examples=[100])] = 100,
    metric: Annotated[
        str,
        Query(
            description="the metric whose events to read",
            json_schema_extra={"pattern": f"^{NAME_PATTERN}$"},
            examples=[DEFAULT_METRIC],
        ),
    ] = DEFAULT_METRIC,
) -> Response:
    """Without ``bucket``: each event (``at``, ``delta``, ``score`` after it, ``action_id``),
    oldest first, paged by ``next_cursor``. With ``bucket=hour|day``: the score at the end of
    each hour or day (UTC) in which it changed; buckets where nothing changed are left out."""
    service = service_of(request)
    start = parse_time(since, "since")
    end = parse_time(until, "until")
    if bucket is None:
        after = _position(cursor) if cursor is not None else None
        query = HistoryQuery(
            user_id, since=start, until=end, after=after, limit=limit, metric=metric
        )
        events = await service.history(query)
        next_cursor = None
        if len(events) == limit:
            last = events[-1]
            next_cursor = cursor_at(last.at, last.event_id)
        return json_response(
            {
                "user_id": user_id,
                "bucket": None,
                "events": [
                    {"at": iso(e.at), "delta": e.delta, "score": e.score, "action_id": e.action_id}
                    for e in events
                ],
                "next_cursor": next_cursor,
            }
        )
    if cursor is not None:  # a bucket cursor is where the next page starts (an id is moot)
        start = _position(cursor)[0]
    query = HistoryQuery(user_id, since=start, until=end, limit=limit, bucket=bucket, metric=metric)
    points = await service.history_buckets(query)
    next_cursor = None
    if len(points) == limit:
        step = 3600 if bucket == "hour" else 86400
        following = datetime.fromtimestamp(points[-1].at.timestamp() + step, UTC)
        next_cursor = cursor_at(following)
    return json_response(
        {
            "user_id": user_id,
            "bucket": bucket,
            "points": [{"at": iso(p.at), "score": p.score} for p in points],
            "next_cursor": next_cursor,
        }
    )
