"""The :class:`~scoreboard.ports.Outbox` on SQLite: the outbox half of ``SqliteScoreStore``.

Every write runs on the store's one writer thread, in a transaction of its own between update
batches (``BEGIN IMMEDIATE``), so a claim is exclusive without more: one process writes a
SQLite file. A lease still guards a delivery against a second sender in that process (a claim
while an attempt is in flight), and makes a delivery held by a sender that died due again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from scoreboard.model import Audit
from scoreboard.webhooks import Claimed, Delivery, Notice, Webhook, dump_list, fan_out, webhook_of

T = TypeVar("T")

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # as sqlite_store's: SQLAlchemy's DateTime text on SQLite
_WEBHOOK_COLUMNS = (
    "id, url, events, boards, secret, old_secret, old_secret_until, enabled, created_at,"
    " disabled_at"
)
_DELIVERY_COLUMNS = (
    "id, message_id, webhook_id, event, payload, status, attempts, next_at, created_at,"
    " last_error, delivered_at, user_id"
)


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def _webhook(row: sqlite3.Row | tuple[Any, ...]) -> Webhook:
    names = [c.strip() for c in _WEBHOOK_COLUMNS.split(",")]
    return webhook_of(dict(zip(names, row, strict=True)), _time)


def _delivery(row: tuple[Any, ...]) -> Delivery:
    i, message_id, webhook_id, event, payload, status, attempts, next_at, created = row[:9]
    last_error, delivered_at, user_id = row[9:]
    return Delivery(
        i,
        message_id,
        webhook_id,
        event,
        payload,
        status,
        attempts,
        _time(next_at) or datetime.min.replace(tzinfo=UTC),
        _time(created) or datetime.min.replace(tzinfo=UTC),
        last_error,
        _time(delivered_at),
        user_id,
    )


def enqueue_in(conn: sqlite3.Connection, notice: Notice, now: datetime) -> int:
    """Queue ``notice`` in the caller's transaction (a void's, or one of its own)."""
    rows = conn.execute(
        f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE enabled"  # noqa: S608 (constant SQL)
    ).fetchall()
    stamp = _text(now)
    added = 0
    for webhook, message_id, body in fan_out([_webhook(r) for r in rows], notice, now):
        added += conn.execute(
            "INSERT INTO webhook_deliveries (message_id, webhook_id, event, event_key, user_id,"
            " payload, status, attempts, next_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)"
            " ON CONFLICT (webhook_id, event_key) DO NOTHING",
            (message_id, webhook.id, notice.event, notice.key, notice.user_id, body, stamp, stamp),
        ).rowcount
    return added


def forget_in(conn: sqlite3.Connection, user_id: str) -> None:
    """Delete the deliveries about ``user_id`` (an erasure), in the caller's transaction."""
    conn.execute("DELETE FROM webhook_deliveries WHERE user_id = ?", (user_id,))


class SqliteOutbox:
    _clock: Callable[[], datetime]

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    def _audit_in(self, conn: sqlite3.Connection, audit: Audit) -> None:
        raise NotImplementedError

    async def add_webhook(self, webhook: Webhook, audit: Audit) -> None:
        def add(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO webhooks ({_WEBHOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                _webhook_values(webhook),
            )
            self._audit_in(conn, audit)

        await self._transaction(add)

    async def webhooks(self) -> list[Webhook]:
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, id"  # noqa: S608
            ).fetchall()
        )
        return [_webhook(r) for r in rows]

    async def webhook(self, webhook_id: str) -> Webhook | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?",  # noqa: S608
                (webhook_id,),
            ).fetchone()
        )
        return None if row is None else _webhook(row)

    async def delete_webhook(self, webhook_id: str, audit: Audit) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,))
            if not conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount:
                return False
            self._audit_in(conn, audit)
            return True

        return await self._transaction(delete)

    async def update_webhook(self, webhook: Webhook, audit: Audit) -> bool:
        def update(conn: sqlite3.Connection) -> bool:
            done = conn.execute(
                "UPDATE webhooks SET secret = ?, old_secret = ?, old_secret_until = ?,"
                " enabled = ?, disabled_at = ? WHERE id = ?",
                (
                    webhook.secret,
                    webhook.old_secret,
                    _maybe_text(webhook.old_secret_until),
                    int(webhook.enabled),
                    _maybe_text(webhook.disabled_at),
                    webhook.id,
                ),
            ).rowcount
            if done:
                self._audit_in(conn, audit)
            return bool(done)

        return await self._transaction(update)

    async def enqueue(self, notice: Notice) -> int:
        # Most sites register no webhook: then a top-10 change, which an update awaits, costs a
        # read on the reader connection, not a turn of the writer that updates queue on.
        enabled = await self._read(
            lambda c: c.execute("SELECT 1 FROM webhooks WHERE enabled LIMIT 1").fetchone()
        )
        if enabled is None:
            return 0
        now = self._clock()
        return await self._transaction(lambda c: enqueue_in(c, notice, now))

    async def forget(self, user_id: str) -> None:
        await self._transaction(lambda c: forget_in(c, user_id))

    async def deliveries(
        self, webhook_id: str, *, limit: int, before: int | None = None
    ) -> list[Delivery]:
        args = (webhook_id, 2**63 - 1 if before is None else before, limit)
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"  # noqa: S608
                " WHERE webhook_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
                args,
            ).fetchall()
        )
        return [_delivery(r) for r in rows]

    async def claim(self, *, limit: int, lease: float) -> list[Claimed]:
        now = self._clock()
        stamp, until = _text(now), _text(now + timedelta(seconds=lease))

        def claim(conn: sqlite3.Connection) -> list[Claimed]:
            rows = conn.execute(
                f"SELECT {', '.join('d.' + c.strip() for c in _DELIVERY_COLUMNS.split(','))}"  # noqa: S608
                " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
                " WHERE d.status = 'pending' AND d.next_at <= ? AND w.enabled"
                " AND (d.lease_until IS NULL OR d.lease_until <= ?) ORDER BY d.next_at, d.id"
                " LIMIT ?",
                (stamp, stamp, limit),
            ).fetchall()
            claimed = []
            webhooks: dict[str, Webhook] = {}
            for row in rows:
                delivery = _delivery(row)
                conn.execute(
                    "UPDATE webhook_deliveries SET lease_until = ? WHERE id = ?",
                    (until, delivery.id),
                )
                if delivery.webhook_id not in webhooks:
                    found = conn.execute(
                        f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?",  # noqa: S608
                        (delivery.webhook_id,),
                    ).fetchone()
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
        now = _text(self._clock())
        if delivered:
            statement = (
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,"
                " delivered_at = ?, last_error = NULL, lease_until = NULL WHERE id = ?"
            )
            args: tuple[Any, ...] = (now, delivery_id)
        else:
            statement = (
                "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1,"
                " last_error = ?, next_at = COALESCE(?, next_at), lease_until = NULL"
                " WHERE id = ?"
            )
            status = "pending" if next_at is not None else "failed"
            args = (status, error, _maybe_text(next_at), delivery_id)
        await self._transaction(lambda c: c.execute(statement, args))

    async def redeliver(self, webhook_id: str, delivery_id: int, audit: Audit) -> bool:
        now = _text(self._clock())

        def redeliver(conn: sqlite3.Connection) -> bool:
            done = conn.execute(
                "UPDATE webhook_deliveries SET status = 'pending', next_at = ?,"
                " lease_until = NULL WHERE id = ? AND webhook_id = ?",
                (now, delivery_id, webhook_id),
            ).rowcount
            if done:
                self._audit_in(conn, audit)
            return bool(done)

        return await self._transaction(redeliver)


def _maybe_text(moment: datetime | None) -> str | None:
    return None if moment is None else _text(moment)


def _webhook_values(webhook: Webhook) -> tuple[Any, ...]:
    return (
        webhook.id,
        webhook.url,
        dump_list(webhook.events),
        dump_list(webhook.boards),
        webhook.secret,
        webhook.old_secret,
        _maybe_text(webhook.old_secret_until),
        int(webhook.enabled),
        _text(webhook.created_at),
        _maybe_text(webhook.disabled_at),
    )
