"""The :class:`~scoreboard.ports.Outbox` in memory: the outbox half of ``MemoryScoreStore``
(embedded tests and the unit tier). Nothing survives the process, which is the point of the
other adapters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from scoreboard.model import Audit
from scoreboard.webhooks import Claimed, Delivery, Notice, Webhook, fan_out


class MemoryOutbox:
    _clock: Callable[[], datetime]

    def __init__(self) -> None:
        self._webhooks: dict[str, Webhook] = {}
        self._deliveries: dict[int, Delivery] = {}
        self._delivery_keys: set[tuple[str, str]] = set()
        self._leases: dict[int, datetime] = {}
        self._next_delivery = 1

    def _record(self, audit: Audit, now: datetime) -> None:
        raise NotImplementedError

    async def add_webhook(self, webhook: Webhook, audit: Audit) -> None:
        self._webhooks[webhook.id] = webhook
        self._record(audit, self._clock())

    async def webhooks(self) -> list[Webhook]:
        return sorted(self._webhooks.values(), key=lambda w: (w.created_at, w.id))

    async def webhook(self, webhook_id: str) -> Webhook | None:
        return self._webhooks.get(webhook_id)

    async def delete_webhook(self, webhook_id: str, audit: Audit) -> bool:
        if self._webhooks.pop(webhook_id, None) is None:
            return False
        for delivery_id, delivery in list(self._deliveries.items()):
            if delivery.webhook_id == webhook_id:
                del self._deliveries[delivery_id]
        self._delivery_keys = {k for k in self._delivery_keys if k[0] != webhook_id}
        self._record(audit, self._clock())
        return True

    async def update_webhook(self, webhook: Webhook, audit: Audit) -> bool:
        if webhook.id not in self._webhooks:
            return False
        self._webhooks[webhook.id] = webhook
        self._record(audit, self._clock())
        return True

    def _enqueue(self, notice: Notice, now: datetime) -> int:
        added = 0
        for webhook, message_id, body in fan_out(list(self._webhooks.values()), notice, now):
            if (webhook.id, notice.key) in self._delivery_keys:
                continue
            self._delivery_keys.add((webhook.id, notice.key))
            delivery_id = self._next_delivery
            self._next_delivery += 1
            self._deliveries[delivery_id] = Delivery(
                delivery_id,
                message_id,
                webhook.id,
                notice.event,
                body,
                "pending",
                0,
                now,
                now,
                user_id=notice.user_id,
            )
            added += 1
        return added

    async def enqueue(self, notice: Notice) -> int:
        return self._enqueue(notice, self._clock())

    def _forget_deliveries(self, user_id: str) -> None:
        for delivery_id, delivery in list(self._deliveries.items()):
            if delivery.user_id == user_id:
                del self._deliveries[delivery_id]

    async def forget(self, user_id: str) -> None:
        self._forget_deliveries(user_id)

    async def deliveries(
        self, webhook_id: str, *, limit: int, before: int | None = None
    ) -> list[Delivery]:
        found = [
            d
            for i, d in sorted(self._deliveries.items(), reverse=True)
            if d.webhook_id == webhook_id and (before is None or i < before)
        ]
        return found[:limit]

    async def claim(self, *, limit: int, lease: float) -> list[Claimed]:
        now = self._clock()
        claimed: list[Claimed] = []
        for delivery_id, delivery in sorted(self._deliveries.items()):
            if len(claimed) >= limit:
                break
            webhook = self._webhooks.get(delivery.webhook_id)
            held = self._leases.get(delivery_id)
            if (
                delivery.status != "pending"
                or delivery.next_at > now
                or (held is not None and held > now)
                or webhook is None
                or not webhook.enabled
            ):
                continue
            self._leases[delivery_id] = now + timedelta(seconds=lease)
            claimed.append(Claimed(delivery, webhook))
        return claimed

    async def settle(
        self,
        delivery_id: int,
        *,
        delivered: bool,
        error: str | None = None,
        next_at: datetime | None = None,
    ) -> None:
        delivery = self._deliveries.get(delivery_id)
        self._leases.pop(delivery_id, None)
        if delivery is None:
            return
        now = self._clock()
        attempts = delivery.attempts + 1
        if delivered:
            delivery = replace(
                delivery, status="delivered", attempts=attempts, delivered_at=now, last_error=None
            )
        else:
            delivery = replace(
                delivery,
                status="pending" if next_at is not None else "failed",
                attempts=attempts,
                last_error=error,
                next_at=next_at or delivery.next_at,
            )
        self._deliveries[delivery_id] = delivery

    async def redeliver(self, webhook_id: str, delivery_id: int, audit: Audit) -> bool:
        delivery = self._deliveries.get(delivery_id)
        if delivery is None or delivery.webhook_id != webhook_id:
            return False
        now = self._clock()
        self._deliveries[delivery_id] = replace(delivery, status="pending", next_at=now)
        self._leases.pop(delivery_id, None)
        self._record(audit, now)
        return True
