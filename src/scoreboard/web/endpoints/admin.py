"""``/api/admin``: what operators do, with an admin key (``web.guards.admin``).

Every route takes ``Authorization: Bearer sbk_...``; every answer, errors included, carries
``Cache-Control: no-store``. Each action that changes a user, an event or a board takes a
``reason`` (1-500 characters) and is recorded in the audit with the key's name. Bodies are
strict: a JSON object with exactly the documented fields, of the documented types. The meaning
of each action is ``scoreboard.moderation``'s.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr
from starlette.responses import Response

from scoreboard.boards import NAME_PATTERN
from scoreboard.errors import InvalidRequest
from scoreboard.model import (
    ACTION_ID_PATTERN,
    DEFAULT_METRIC,
    DELTA_LIMIT,
    USER_ID_PATTERN,
    USERNAME_MAX,
    USERNAME_PATTERN,
    AuditEntry,
    EventRecord,
)
from scoreboard.moderation import AUDIT_MAX, EVENTS_MAX, REASON_MAX, REASON_PATTERN, Moderation
from scoreboard.web.endpoints.boards import period_body
from scoreboard.web.endpoints.reads import iso
from scoreboard.web.endpoints.schemas import documented_errors, links_to_the_user
from scoreboard.web.endpoints.update import answer
from scoreboard.web.guards.admin import AdminGate

NO_STORE = {"Cache-Control": "no-store"}
_BOARD_RE = re.compile(NAME_PATTERN)
SECURITY: list[dict[str, list[str]]] = [{"adminKey": []}]


async def admin_key(request: Request) -> str:
    """The name of the admin key the request carries (the gate refuses otherwise)."""
    gate: AdminGate = request.app.state.admin_gate
    return await gate.admit(request)


router = APIRouter(
    prefix="/api/admin",
    tags=["admin"],
    dependencies=[Depends(admin_key)],
    responses=documented_errors(400, 401, 403, 404, 409, 429, 503),
)

KeyName = Annotated[str, Depends(admin_key)]
UserId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        json_schema_extra={"pattern": USER_ID_PATTERN},
        examples=["alice"],
    ),
]
EventId = Annotated[int, Path(ge=1, le=2**63 - 1, examples=[42])]
Reason = Annotated[
    StrictStr,
    Field(
        min_length=1,
        max_length=REASON_MAX,
        pattern=REASON_PATTERN,
        description="why: kept in the audit",
    ),
]


def _json_integer(value: object) -> object:
    """A JSON Schema integer: a number with no fractional part however written (``5.0`` is 5),
    as the update body takes it; not a string, not a boolean."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if type(value) is not int:
        raise ValueError("must be an integer")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReasonBody(_Strict):
    reason: Reason


class AdjustBody(_Strict):
    metric: Annotated[StrictStr, Field(pattern=f"^{NAME_PATTERN}$")] = DEFAULT_METRIC
    delta: Annotated[
        int,
        BeforeValidator(_json_integer),
        Field(
            json_schema_extra={"minimum": -DELTA_LIMIT, "maximum": DELTA_LIMIT},
            description="non-zero; may be negative",
        ),
    ]
    action_id: Annotated[
        StrictStr,
        Field(min_length=1, max_length=128, pattern=ACTION_ID_PATTERN),
    ]
    reason: Reason


class RenameBody(_Strict):
    username: Annotated[
        StrictStr,
        Field(
            min_length=1,
            max_length=USERNAME_MAX,
            json_schema_extra={"pattern": USERNAME_PATTERN},
            description="no control or invisible characters, no spaces at either end",
        ),
    ]
    reason: Reason


def moderation_of(request: Request) -> Moderation:
    value: Moderation = request.app.state.components.moderation
    return value


def private(data: object) -> Response:
    return Response(orjson.dumps(data), media_type="application/json", headers=NO_STORE)


def _event(event: EventRecord) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "metric": event.metric,
        "delta": event.delta,
        "action_id": event.action_id,
        "source": event.source,
        "created_at": iso(event.at),
        "voided": event.voided,
    }


def _entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "key": entry.key,
        "action": entry.action,
        "target": entry.target,
        "reason": entry.reason,
        "details": entry.details,
    }


# -- reads -----------------------------------------------------------------------------------


@router.get(
    "/users/{user_id}",
    operation_id="admin_user",
    summary="A user, on every board",
    responses={
        200: {
            "links": links_to_the_user(
                "admin_events",
                "admin_adjust",
                "admin_rename",
                "admin_unlock_name",
                "admin_hide",
                "admin_unhide",
                "admin_ban",
                "admin_unban",
                "admin_erase",
            )
        }
    },
)
async def admin_user(request: Request, user_id: UserId) -> Response:
    """Profile, status, and the current score and rank on every board (rank ``null`` when not
    ranked: no entry, or hidden)."""
    view = await moderation_of(request).user(user_id)
    profile = view.profile
    return private(
        {
            "user_id": profile.user_id,
            "username": profile.username,
            "created_at": iso(profile.created_at),
            "status": profile.status,
            "name_locked": profile.name_locked,
            "boards": [
                {"board": p.board, "period": p.period, "score": p.score, "rank": p.rank}
                for p in view.boards
            ],
        }
    )


@router.get(
    "/users/{user_id}/events",
    operation_id="admin_events",
    summary="A user's events, newest first",
    responses={
        200: {
            "links": {
                operation: {
                    "operationId": operation,
                    "parameters": {"event_id": "$response.body#/events/0/event_id"},
                }
                for operation in ("admin_void", "admin_restore")
            }
        }
    },
)
async def admin_events(
    request: Request,
    user_id: UserId,
    limit: Annotated[int, Query(ge=1, le=EVENTS_MAX, examples=[50])] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="the next of the previous page")
    ] = None,
) -> Response:
    events = await moderation_of(request).events(user_id, limit=limit, before=before)
    more = len(events) == limit
    return private(
        {"events": [_event(e) for e in events], "next": events[-1].event_id if more else None}
    )


@router.get("/audit", operation_id="admin_audit", summary="The audit trail, newest first")
async def admin_audit(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=AUDIT_MAX, examples=[50])] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="the next of the previous page")
    ] = None,
) -> Response:
    entries = await moderation_of(request).audit(limit=limit, before=before)
    more = len(entries) == limit
    return private(
        {"entries": [_entry(e) for e in entries], "next": entries[-1].id if more else None}
    )


# -- actions ---------------------------------------------------------------------------------


@router.post(
    "/events/{event_id}/void",
    operation_id="admin_void",
    summary="Void an event on every board and period it fed",
)
async def admin_void(
    request: Request, event_id: EventId, key: KeyName, body: Annotated[ReasonBody, Body()]
) -> Response:
    changed = await moderation_of(request).void(event_id, key, body.reason)
    return private({"event_id": event_id, "voided": True, "changed": changed})


@router.post(
    "/events/{event_id}/restore", operation_id="admin_restore", summary="Restore a voided event"
)
async def admin_restore(
    request: Request, event_id: EventId, key: KeyName, body: Annotated[ReasonBody, Body()]
) -> Response:
    changed = await moderation_of(request).void(event_id, key, body.reason, restore=True)
    return private({"event_id": event_id, "voided": False, "changed": changed})


@router.post(
    "/users/{user_id}/adjust",
    operation_id="admin_adjust",
    summary="Add an operator's event (sum boards only)",
)
async def admin_adjust(
    request: Request, user_id: UserId, key: KeyName, body: Annotated[AdjustBody, Body()]
) -> Response:
    moderation = moderation_of(request)
    result = await moderation.adjust(
        user_id, body.metric, body.delta, body.action_id, key, body.reason
    )
    return Response(
        answer(result, moderation.service.default_board),
        media_type="application/json",
        headers=NO_STORE,
    )


@router.post(
    "/users/{user_id}/rename",
    operation_id="admin_rename",
    summary="Replace a display name and lock it",
)
async def admin_rename(
    request: Request, user_id: UserId, key: KeyName, body: Annotated[RenameBody, Body()]
) -> Response:
    changed = await moderation_of(request).rename(user_id, body.username, key, body.reason)
    return private(
        {"user_id": user_id, "username": body.username, "name_locked": True, "changed": changed}
    )


@router.post(
    "/users/{user_id}/unlock-name",
    operation_id="admin_unlock_name",
    summary="Let the user's token name them again",
)
async def admin_unlock_name(
    request: Request, user_id: UserId, key: KeyName, body: Annotated[ReasonBody, Body()]
) -> Response:
    changed = await moderation_of(request).rename(user_id, None, key, body.reason)
    return private({"user_id": user_id, "name_locked": False, "changed": changed})


def _status_route(action: str, summary: str) -> None:
    async def route(
        request: Request, user_id: UserId, key: KeyName, body: Annotated[ReasonBody, Body()]
    ) -> Response:
        moderation = moderation_of(request)
        changed = await moderation.set_status(user_id, action, key, body.reason)
        profile = await moderation.service.store.profile(user_id)
        status = profile.status if profile is not None else None
        return private({"user_id": user_id, "status": status, "changed": changed})

    route.__name__ = f"admin_{action}"
    router.add_api_route(
        f"/users/{{user_id}}/{action}",
        route,
        methods=["POST"],
        operation_id=f"admin_{action}",
        summary=summary,
    )


_status_route("hide", "Hide a user from every public read and live board")
_status_route("unhide", "Show a hidden user again")
_status_route("ban", "Hide a user and refuse their updates")
_status_route("unban", "Lift a ban")


@router.delete(
    "/users/{user_id}",
    operation_id="admin_erase",
    summary="Erase a user everywhere (cannot be undone)",
)
async def admin_erase(
    request: Request, user_id: UserId, key: KeyName, body: Annotated[ReasonBody, Body()]
) -> Response:
    erased_as = await moderation_of(request).erase(user_id, key, body.reason)
    return private({"erased": True, "audit_target": erased_as})


@router.post(
    "/boards/{board}/rollover",
    operation_id="admin_rollover",
    summary="Start the next season of a manual board",
)
async def admin_rollover(
    request: Request,
    key: KeyName,
    body: Annotated[ReasonBody, Body()],
    board: Annotated[str, Path(json_schema_extra={"pattern": f"^{NAME_PATTERN}$"})],
) -> Response:
    if _BOARD_RE.fullmatch(board) is None:
        raise InvalidRequest(f"board must be {NAME_PATTERN}", code="invalid_board")
    closed, opened = await moderation_of(request).rollover(board, key, body.reason)
    return private({"board": board, "closed": period_body(closed), "opened": period_body(opened)})
