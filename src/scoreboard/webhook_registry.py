"""What operators do to webhooks (``/api/admin/webhooks``): register, list, delete, enable,
rotate a secret, read deliveries and send one again. Each change is one transaction with its
audit row (no ``reason``: the audit says which key did what to which webhook).

A new webhook's secret is returned once, by :meth:`WebhookRegistry.create`, and by
:meth:`rotate`; no read shows it again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from scoreboard.errors import InvalidRequest, NotFound
from scoreboard.model import Audit
from scoreboard.ports import Outbox
from scoreboard.webhooks import (
    EVENTS,
    ROTATION_OVERLAP,
    Delivery,
    Policy,
    Resolver,
    Webhook,
    new_id,
    new_secret,
)

DELIVERIES_MAX = 100
WEBHOOKS_MAX = 100
"""Registered webhooks at most: each event is queued for every one of them."""


class WebhookRegistry:
    def __init__(
        self,
        outbox: Outbox,
        policy: Policy,
        resolver: Resolver,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.outbox = outbox
        self.policy = policy
        self._resolve = resolver
        self._clock = clock
        self._on_queued = on_queued

    async def create(
        self, key: str, url: str, events: Sequence[str], boards: Sequence[str] | None
    ) -> Webhook:
        """``InvalidRequest`` for a URL the policy refuses (nothing is stored then), an
        unknown event, or an empty list."""
        checked = await self.policy.check_url(url, self._resolve)
        if not events or any(e not in EVENTS for e in events):
            raise InvalidRequest(
                f"events must be some of {', '.join(EVENTS)}", code="invalid_events"
            )
        if boards is not None and not boards:
            raise InvalidRequest("boards must be null (every board) or a non-empty list")
        if len(await self.outbox.webhooks()) >= WEBHOOKS_MAX:
            raise InvalidRequest(f"at most {WEBHOOKS_MAX} webhooks", code="too_many_webhooks")
        webhook = Webhook(
            new_id(),
            checked,
            tuple(dict.fromkeys(events)),
            None if boards is None else tuple(dict.fromkeys(boards)),
            new_secret(),
            self._clock(),
        )
        details: dict[str, object] = {
            "url": webhook.url,
            "events": list(webhook.events),
            "boards": None if webhook.boards is None else list(webhook.boards),
        }
        await self.outbox.add_webhook(webhook, self._audit(key, "webhook_create", webhook, details))
        return webhook

    async def all(self) -> list[Webhook]:
        return await self.outbox.webhooks()

    async def get(self, webhook_id: str) -> Webhook:
        webhook = await self.outbox.webhook(webhook_id)
        if webhook is None:
            raise NotFound(f"there is no webhook '{webhook_id}'", code="unknown_webhook")
        return webhook

    async def delete(self, key: str, webhook_id: str) -> None:
        webhook = await self.get(webhook_id)
        audit = self._audit(key, "webhook_delete", webhook, {"url": webhook.url})
        if not await self.outbox.delete_webhook(webhook_id, audit):
            raise NotFound(f"there is no webhook '{webhook_id}'", code="unknown_webhook")

    async def enable(self, key: str, webhook_id: str) -> bool:
        """``False`` when it was enabled already (nothing recorded)."""
        webhook = await self.get(webhook_id)
        if webhook.enabled:
            return False
        on = replace(webhook, enabled=True, disabled_at=None)
        await self._update(on, self._audit(key, "webhook_enable", webhook, {}))
        self._on_queued()
        return True

    async def rotate(self, key: str, webhook_id: str) -> Webhook:
        """A new secret signs from now on; the current one signs alongside it for
        ``ROTATION_OVERLAP`` (receivers switch within it)."""
        webhook = await self.get(webhook_id)
        until = self._clock() + ROTATION_OVERLAP
        rotated = replace(
            webhook, secret=new_secret(), old_secret=webhook.secret, old_secret_until=until
        )
        details: dict[str, object] = {"old_secret_until": until.isoformat()}
        await self._update(rotated, self._audit(key, "webhook_rotate_secret", webhook, details))
        return rotated

    async def deliveries(
        self, webhook_id: str, *, limit: int, before: int | None
    ) -> list[Delivery]:
        await self.get(webhook_id)
        if not 1 <= limit <= DELIVERIES_MAX:
            raise InvalidRequest(f"limit must be 1-{DELIVERIES_MAX}", code="invalid_limit")
        return await self.outbox.deliveries(webhook_id, limit=limit, before=before)

    async def redeliver(self, key: str, webhook_id: str, delivery_id: int) -> None:
        webhook = await self.get(webhook_id)
        audit = self._audit(key, "webhook_redeliver", webhook, {"delivery": delivery_id})
        if not await self.outbox.redeliver(webhook_id, delivery_id, audit):
            raise NotFound(
                f"webhook '{webhook_id}' has no delivery {delivery_id}", code="unknown_delivery"
            )
        self._on_queued()

    async def _update(self, webhook: Webhook, audit: Audit) -> None:
        if not await self.outbox.update_webhook(webhook, audit):
            raise NotFound(f"there is no webhook '{webhook.id}'", code="unknown_webhook")

    @staticmethod
    def _audit(key: str, action: str, webhook: Webhook, details: dict[str, object]) -> Audit:
        return Audit(key, action, f"webhook:{webhook.id}", None, details)
