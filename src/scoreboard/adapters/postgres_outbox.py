"""The :class:`~scoreboard.ports.Outbox` on PostgreSQL: the outbox half of
``PostgresScoreStore`` (scaled mode: many processes send from one outbox).

**One sender per delivery.** :meth:`PostgresOutbox.claim` takes due rows with ``FOR UPDATE
SKIP LOCKED`` and sets their ``lease_until`` in the same statement: two processes claiming at
once skip each other's rows, and a row leased by one is not due for another until the lease
runs out (the holder died between claim and settle: the delivery is sent again, which
at-least-once allows and receivers deduplicate by ``webhook-id``).

**Queued once.** ``ON CONFLICT (webhook_id, event_key) DO NOTHING``: every process that learns
of an event (a period closing, seen by each process's clock) may queue it; one row is made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from scoreboard.model import Audit
from scoreboard.webhooks import Claimed, Delivery, Notice, Webhook, dump_list, fan_out, webhook_of

T = TypeVar("T")
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

_WEBHOOK_COLUMNS = (
    "id, url, events, boards, secret, old_secret, old_secret_until, enabled, created_at,"
    " disabled_at"
)
_DELIVERY_COLUMNS = (
    "id, message_id, webhook_id, event, payload, status, attempts, next_at, created_at,"
    " last_error, delivered_at, user_id"
)

# Due rows not held by another sender, leased in the same statement; SKIP LOCKED: a row another
# process is claiming right now is passed over, not waited for.
_CLAIM = (
    "UPDATE webhook_deliveries SET lease_until = $2 WHERE id IN ("  # noqa: S608 (constant)
    " SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
    " WHERE d.status = 'pending' AND d.next_at <= $1 AND w.enabled"
    " AND (d.lease_until IS NULL OR d.lease_until <= $1)"
    " ORDER BY d.next_at, d.id LIMIT $3 FOR UPDATE OF d SKIP LOCKED)"
    f" RETURNING {_DELIVERY_COLUMNS}"
)


def _time(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _webhook(row: asyncpg.Record) -> Webhook:
    return webhook_of(dict(row.items()), _time)


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        row["id"],
        row["message_id"],
        row["webhook_id"],
        row["event"],
        row["payload"],
        row["status"],
        row["attempts"],
        row["next_at"].astimezone(UTC),
        row["created_at"].astimezone(UTC),
        row["last_error"],
        _time(row["delivered_at"]),
        row["user_id"],
    )


async def enqueue_in(c: Connection, notice: Notice, now: datetime) -> int:
    """Queue ``notice`` in the caller's transaction (a void's, or one of its own)."""
    rows = await c.fetch(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE enabled")  # noqa: S608
    added = 0
    for webhook, message_id, body in fan_out([_webhook(r) for r in rows], notice, now):
        status = await c.execute(
            "INSERT INTO webhook_deliveries (message_id, webhook_id, event, event_key, user_id,"
            " payload, status, attempts, next_at, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)"
            " ON CONFLICT (webhook_id, event_key) DO NOTHING",
            message_id,
            webhook.id,
            notice.event,
            notice.key,
            notice.user_id,
            body,
            now,
        )
        added += int(status.rsplit(" ", 1)[-1])
    return added


async def forget_in(c: Connection, user_id: str) -> None:
    """Delete the deliveries about ``user_id`` (an erasure), in the caller's transaction."""
    await c.execute("DELETE FROM webhook_deliveries WHERE user_id = $1", user_id)


class PostgresOutbox:
    _clock: Callable[[], datetime]

    async def _guard(self, use: Callable[[Connection], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _transaction(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        async def run(c: Connection) -> T:
            async with c.transaction():
                return await fn(c)

        return await self._guard(run)

    async def _audit_in(self, c: Connection, audit: Audit) -> None:
        raise NotImplementedError

    async def add_webhook(self, webhook: Webhook, audit: Audit) -> None:
        async def add(c: Connection) -> None:
            await c.execute(
                f"INSERT INTO webhooks ({_WEBHOOK_COLUMNS})"  # noqa: S608
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                webhook.id,
                webhook.url,
                dump_list(webhook.events),
                dump_list(webhook.boards),
                webhook.secret,
                webhook.old_secret,
                webhook.old_secret_until,
                webhook.enabled,
                webhook.created_at,
                webhook.disabled_at,
            )
            await self._audit_in(c, audit)

        await self._transaction(add)

    async def webhooks(self) -> list[Webhook]:
        rows = await self._guard(
            lambda c: c.fetch(
                f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, id"  # noqa: S608
            )
        )
        return [_webhook(r) for r in rows]

    async def webhook(self, webhook_id: str) -> Webhook | None:
        row = await self._guard(
            lambda c: c.fetchrow(
                f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1",  # noqa: S608
                webhook_id,
            )
        )
        return None if row is None else _webhook(row)

    async def delete_webhook(self, webhook_id: str, audit: Audit) -> bool:
        async def delete(c: Connection) -> bool:
            status = await c.execute("DELETE FROM webhooks WHERE id = $1", webhook_id)
            if status.endswith(" 0"):
                return False
            await self._audit_in(c, audit)
            return True

        return await self._transaction(delete)

    async def update_webhook(self, webhook: Webhook, audit: Audit) -> bool:
        async def update(c: Connection) -> bool:
            status = await c.execute(
                "UPDATE webhooks SET secret = $2, old_secret = $3, old_secret_until = $4,"
                " enabled = $5, disabled_at = $6 WHERE id = $1",
                webhook.id,
                webhook.secret,
                webhook.old_secret,
                webhook.old_secret_until,
                webhook.enabled,
                webhook.disabled_at,
            )
            if status.endswith(" 0"):
                return False
            await self._audit_in(c, audit)
            return True

        return await self._transaction(update)

    async def enqueue(self, notice: Notice) -> int:
        now = self._clock()
        return await self._transaction(lambda c: enqueue_in(c, notice, now))

    async def forget(self, user_id: str) -> None:
        await self._guard(lambda c: forget_in(c, user_id))

    async def deliveries(
        self, webhook_id: str, *, limit: int, before: int | None = None
    ) -> list[Delivery]:
        rows = await self._guard(
            lambda c: c.fetch(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"  # noqa: S608
                " WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                webhook_id,
                2**63 - 1 if before is None else before,
                limit,
            )
        )
        return [_delivery(r) for r in rows]

    async def claim(self, *, limit: int, lease: float) -> list[Claimed]:
        now = self._clock()
        until = now + timedelta(seconds=lease)

        async def claim(c: Connection) -> list[Claimed]:
            rows = await c.fetch(
                _CLAIM,
                now,
                until,
                limit,
            )
            claimed = []
            webhooks: dict[str, Webhook] = {}
            for row in sorted(rows, key=lambda r: (r["next_at"], r["id"])):
                delivery = _delivery(row)
                if delivery.webhook_id not in webhooks:
                    found = await c.fetchrow(
                        f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1",  # noqa: S608
                        delivery.webhook_id,
                    )
                    assert found is not None  # the join found it, and the row is locked
                    webhooks[delivery.webhook_id] = _webhook(found)
                claimed.append(Claimed(delivery, webhooks[delivery.webhook_id]))
            return claimed

        return await self._transaction(claim)

    async def settle(
        self,
        delivery_id: int,
        *,
        delivered: bool,
        error: str | None = None,
        next_at: datetime | None = None,
    ) -> None:
        now = self._clock()
        if delivered:
            statement = (
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,"
                " delivered_at = $2, last_error = NULL, lease_until = NULL WHERE id = $1"
            )
            args: tuple[Any, ...] = (delivery_id, now)
        else:
            statement = (
                "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1,"
                " last_error = $3, next_at = COALESCE($4, next_at), lease_until = NULL"
                " WHERE id = $1"
            )
            status = "pending" if next_at is not None else "failed"
            args = (delivery_id, status, error, next_at)
        await self._guard(lambda c: c.execute(statement, *args))

    async def redeliver(self, webhook_id: str, delivery_id: int, audit: Audit) -> bool:
        now = self._clock()

        async def redeliver(c: Connection) -> bool:
            status = await c.execute(
                "UPDATE webhook_deliveries SET status = 'pending', next_at = $3,"
                " lease_until = NULL WHERE id = $1 AND webhook_id = $2",
                delivery_id,
                webhook_id,
                now,
            )
            if status.endswith(" 0"):
                return False
            await self._audit_in(c, audit)
            return True

        return await self._transaction(redeliver)
