"""``/api/admin/webhooks``: operators' webhooks (``scoreboard.webhook_registry``), behind the
admin gate like every ``/api/admin`` route (``endpoints.admin``), ``Cache-Control: no-store``
on every answer. No route takes a ``reason``; each change is audited with the key's name.

The secret is in the answer of ``POST /api/admin/webhooks`` and of ``rotate-secret`` only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.responses import Response

from scoreboard.boards import NAME_PATTERN
from scoreboard.web.endpoints.admin import KeyName, admin_key, private
from scoreboard.web.endpoints.reads import iso
from scoreboard.web.endpoints.schemas import documented_errors
from scoreboard.webhook_registry import DELIVERIES_MAX, WebhookRegistry
from scoreboard.webhooks import EVENTS, URL_MAX, Delivery, Webhook

router = APIRouter(
    prefix="/api/admin/webhooks",
    tags=["admin"],
    dependencies=[Depends(admin_key)],
    responses=documented_errors(400, 401, 403, 404, 429, 503),
)

WebhookId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=32,
        pattern=r"^wh_[0-9a-f]{1,29}$",
        examples=["wh_0123456789abcdef"],
    ),
]
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1, examples=[1])]
EventName = Annotated[StrictStr, Field(json_schema_extra={"enum": list(EVENTS)})]
BoardName = Annotated[StrictStr, Field(pattern=f"^{NAME_PATTERN}$")]


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[
        StrictStr,
        Field(
            min_length=1,
            max_length=URL_MAX,
            description="https, to a public address (or a host in SCOREBOARD_WEBHOOK_ALLOW_HOSTS)",
        ),
    ]
    events: Annotated[list[EventName], Field(min_length=1, max_length=len(EVENTS))]
    boards: Annotated[
        list[BoardName] | None, Field(min_length=1, max_length=100, description="null: every board")
    ] = None


def registry_of(request: Request) -> WebhookRegistry:
    value: WebhookRegistry | None = request.app.state.components.webhooks
    assert value is not None
    return value


def _webhook(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": list(webhook.events),
        "boards": None if webhook.boards is None else list(webhook.boards),
        "enabled": webhook.enabled,
        "created_at": iso(webhook.created_at),
        "disabled_at": None if webhook.disabled_at is None else iso(webhook.disabled_at),
        "old_secret_until": (
            None if webhook.old_secret_until is None else iso(webhook.old_secret_until)
        ),
    }


def _delivery(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "message_id": delivery.message_id,
        "event": delivery.event,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "created_at": iso(delivery.created_at),
        "next_at": iso(delivery.next_at) if delivery.status == "pending" else None,
        "delivered_at": None if delivery.delivered_at is None else iso(delivery.delivered_at),
    }


_LINKS = {
    200: {
        "links": {
            operation: {
                "operationId": operation,
                "parameters": {"webhook_id": "$response.body#/id"},
            }
            for operation in (
                "admin_webhook_deliveries",
                "admin_webhook_enable",
                "admin_webhook_rotate_secret",
                "admin_webhook_delete",
            )
        }
    }
}


@router.post(
    "",
    operation_id="admin_webhook_create",
    summary="Register a webhook (its secret is shown once)",
    responses=_LINKS,  # type: ignore[arg-type]
)
async def create(request: Request, key: KeyName, body: Annotated[CreateBody, Body()]) -> Response:
    """200 (as every action here) with the webhook and its ``secret``, which no read shows
    again."""
    webhook = await registry_of(request).create(key, body.url, body.events, body.boards)
    return private({**_webhook(webhook), "secret": webhook.secret})


@router.get("", operation_id="admin_webhooks", summary="Every webhook (no secrets)")
async def listing(request: Request) -> Response:
    found = await registry_of(request).all()
    return private({"webhooks": [_webhook(w) for w in found]})


@router.delete(
    "/{webhook_id}",
    operation_id="admin_webhook_delete",
    summary="Delete a webhook and its deliveries",
)
async def delete(request: Request, key: KeyName, webhook_id: WebhookId) -> Response:
    await registry_of(request).delete(key, webhook_id)
    return private({"id": webhook_id, "deleted": True})


@router.get(
    "/{webhook_id}/deliveries",
    operation_id="admin_webhook_deliveries",
    summary="A webhook's deliveries, newest first",
)
async def deliveries(
    request: Request,
    webhook_id: WebhookId,
    limit: Annotated[int, Query(ge=1, le=DELIVERIES_MAX, examples=[50])] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="the next of the previous page")
    ] = None,
) -> Response:
    found = await registry_of(request).deliveries(webhook_id, limit=limit, before=before)
    more = len(found) == limit
    return private(
        {"deliveries": [_delivery(d) for d in found], "next": found[-1].id if more else None}
    )


@router.post(
    "/{webhook_id}/enable",
    operation_id="admin_webhook_enable",
    summary="Enable a webhook again (after it was disabled)",
)
async def enable(request: Request, key: KeyName, webhook_id: WebhookId) -> Response:
    changed = await registry_of(request).enable(key, webhook_id)
    return private({"id": webhook_id, "enabled": True, "changed": changed})


@router.post(
    "/{webhook_id}/rotate-secret",
    operation_id="admin_webhook_rotate_secret",
    summary="A new secret; the old one signs alongside it for 24 h",
)
async def rotate(request: Request, key: KeyName, webhook_id: WebhookId) -> Response:
    webhook = await registry_of(request).rotate(key, webhook_id)
    return private({**_webhook(webhook), "secret": webhook.secret})


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    operation_id="admin_webhook_redeliver",
    summary="Send a delivery again (now, whatever its status)",
)
async def redeliver(
    request: Request, key: KeyName, webhook_id: WebhookId, delivery_id: DeliveryId
) -> Response:
    await registry_of(request).redeliver(key, webhook_id, delivery_id)
    return private({"id": delivery_id, "status": "pending"})
