"""The Outbox contract (webhooks and their deliveries), over memory, SQLite and PostgreSQL.

Queued once per (webhook, event) however often an event is queued; claimed by one caller at a
time until its lease runs out; a void's delivery is queued with the void, and an erasure takes
the deliveries about the user with it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scoreboard import webhooks
from scoreboard.model import Audit, ScoreUpdate
from tests.contract.conftest import StoreClock

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def audit(action: str = "webhook_create") -> Audit:
    return Audit("ops", action, "webhook:x", None, {})


def hook(
    webhook_id: str = "wh_1", events: tuple[str, ...] = webhooks.EVENTS, boards: Any = None
) -> webhooks.Webhook:
    return webhooks.Webhook(
        webhook_id,
        "https://example.com/hook",
        events,
        boards,
        webhooks.new_secret(),
        NOW,
    )


def entered(user: str = "alice", seq: int = 1) -> webhooks.Notice:
    (notice,) = webhooks.top_changes("main", "all", seq, [], [_Row(1, user, user, 5)], NOW)
    return notice


class _Row:
    def __init__(self, rank: int, user_id: str, username: str, score: int) -> None:
        self.rank, self.user_id, self.username, self.score = rank, user_id, username, score


@pytest.fixture
async def outbox(store: Any, store_clock: StoreClock) -> Any:
    store_clock.at(NOW)
    return store


async def test_a_webhook_is_stored_and_audited(outbox: Any) -> None:
    await outbox.add_webhook(hook(boards=("main",)), audit())
    (found,) = await outbox.webhooks()
    assert found == await outbox.webhook("wh_1")
    assert found.boards == ("main",)
    assert found.events == webhooks.EVENTS
    assert found.enabled
    assert found.created_at == NOW
    assert [e.action for e in await outbox.audit_page(limit=10)] == ["webhook_create"]
    assert await outbox.webhook("wh_nope") is None


async def test_an_event_is_queued_once_per_webhook(outbox: Any) -> None:
    await outbox.add_webhook(hook("wh_1"), audit())
    await outbox.add_webhook(hook("wh_2", events=("period.closed",)), audit())
    await outbox.add_webhook(hook("wh_3", boards=("other",)), audit())
    assert await outbox.enqueue(entered()) == 1
    assert await outbox.enqueue(entered()) == 0  # another process knew it too
    (delivery,) = await outbox.deliveries("wh_1", limit=10)
    assert delivery.status == "pending"
    assert delivery.attempts == 0
    assert delivery.event == "top.entered"
    assert delivery.message_id.startswith("msg_")
    assert '"user_id":"alice"' in delivery.payload
    assert await outbox.deliveries("wh_2", limit=10) == []
    assert await outbox.deliveries("wh_3", limit=10) == []


async def test_deliveries_page_newest_first(outbox: Any) -> None:
    await outbox.add_webhook(hook(), audit())
    for seq in range(1, 6):
        await outbox.enqueue(entered(f"u{seq}", seq))
    first = await outbox.deliveries("wh_1", limit=2)
    second = await outbox.deliveries("wh_1", limit=2, before=first[-1].id)
    rest = await outbox.deliveries("wh_1", limit=2, before=second[-1].id)
    ids = [d.id for d in first + second + rest]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 5


async def test_a_claim_holds_a_delivery_until_settled_or_its_lease_ends(
    outbox: Any, store_clock: StoreClock
) -> None:
    await outbox.add_webhook(hook(), audit())
    await outbox.enqueue(entered())
    (claimed,) = await outbox.claim(limit=10, lease=30)
    assert claimed.webhook.id == "wh_1"
    assert await outbox.claim(limit=10, lease=30) == []  # held
    store_clock.at(NOW + timedelta(seconds=31))
    (again,) = await outbox.claim(limit=10, lease=30)  # the holder died: due again
    assert again.delivery.id == claimed.delivery.id
    retry_at = NOW + timedelta(minutes=5)
    await outbox.settle(again.delivery.id, delivered=False, error="HTTP 500", next_at=retry_at)
    assert await outbox.claim(limit=10, lease=30) == []  # not due yet
    store_clock.at(retry_at)
    (third,) = await outbox.claim(limit=10, lease=30)
    await outbox.settle(third.delivery.id, delivered=True)
    (done,) = await outbox.deliveries("wh_1", limit=1)
    assert (done.status, done.attempts, done.last_error) == ("delivered", 2, None)
    assert done.delivered_at == retry_at
    assert await outbox.claim(limit=10, lease=30) == []


async def test_concurrent_claims_never_share_a_delivery(outbox: Any) -> None:
    await outbox.add_webhook(hook(), audit())
    for seq in range(1, 21):
        await outbox.enqueue(entered(f"u{seq}", seq))
    results = await asyncio.gather(*(outbox.claim(limit=3, lease=30) for _ in range(10)))
    ids = [c.delivery.id for claimed in results for c in claimed]
    assert len(ids) == len(set(ids)) == 20


async def test_given_up_redelivered_disabled(outbox: Any) -> None:
    await outbox.add_webhook(hook(), audit())
    await outbox.enqueue(entered())
    (claimed,) = await outbox.claim(limit=1, lease=30)
    await outbox.settle(claimed.delivery.id, delivered=False, error="timeout", next_at=None)
    (failed,) = await outbox.deliveries("wh_1", limit=1)
    assert (failed.status, failed.last_error) == ("failed", "timeout")
    assert not await outbox.redeliver("wh_1", failed.id + 1000, audit("webhook_redeliver"))
    assert await outbox.redeliver("wh_1", failed.id, audit("webhook_redeliver"))
    webhook = await outbox.webhook("wh_1")
    off = webhooks.Webhook(**{**_fields(webhook), "enabled": False, "disabled_at": NOW})
    assert await outbox.update_webhook(off, audit("webhook_disable"))
    assert await outbox.claim(limit=1, lease=30) == []  # a disabled endpoint is not sent to
    assert await outbox.enqueue(entered("bob", 2)) == 0  # nor queued for
    assert await outbox.update_webhook(webhook, audit("webhook_enable"))
    (claimed,) = await outbox.claim(limit=1, lease=30)
    assert claimed.delivery.id == failed.id


async def test_a_rotation_keeps_the_old_secret(outbox: Any) -> None:
    webhook = hook()
    await outbox.add_webhook(webhook, audit())
    rotated = webhooks.Webhook(
        **{
            **_fields(webhook),
            "secret": webhooks.new_secret(),
            "old_secret": webhook.secret,
            "old_secret_until": NOW + webhooks.ROTATION_OVERLAP,
        }
    )
    assert await outbox.update_webhook(rotated, audit("webhook_rotate_secret"))
    assert await outbox.webhook("wh_1") == rotated
    assert rotated.secrets_at(NOW) == (rotated.secret, webhook.secret)
    assert rotated.secrets_at(NOW + webhooks.ROTATION_OVERLAP) == (rotated.secret,)


async def test_deleting_a_webhook_deletes_its_deliveries(outbox: Any) -> None:
    await outbox.add_webhook(hook(), audit())
    await outbox.enqueue(entered())
    assert await outbox.delete_webhook("wh_1", audit("webhook_delete"))
    assert not await outbox.delete_webhook("wh_1", audit("webhook_delete"))
    assert await outbox.webhooks() == []
    assert await outbox.deliveries("wh_1", limit=10) == []
    assert [e.action for e in await outbox.audit_page(limit=10)] == [
        "webhook_delete",
        "webhook_create",
    ]


async def test_a_void_queues_its_delivery_in_its_transaction(outbox: Any) -> None:
    await outbox.add_webhook(hook(events=("score.voided",)), audit())
    applied = await outbox.apply(ScoreUpdate("alice", 5, "a1", username="Alice"))
    event_id = applied.boards[0].standing.reached
    config, _ = await outbox.load_config()
    notice = webhooks.score_voided(event_id, "alice", "points", 5, ["main"])
    done = await outbox.void(event_id, config, audit("void"), notice=notice)
    assert done.changed
    (delivery,) = await outbox.deliveries("wh_1", limit=10)
    assert delivery.event == "score.voided"
    assert f'"event_id":{event_id}' in delivery.payload
    again = await outbox.void(event_id, config, audit("void"), notice=notice)
    assert not again.changed  # nothing changed: nothing queued
    assert len(await outbox.deliveries("wh_1", limit=10)) == 1


async def test_an_erasure_deletes_the_deliveries_about_the_user(outbox: Any) -> None:
    await outbox.add_webhook(hook(), audit())
    await outbox.apply(ScoreUpdate("alice", 5, "a1", username="Alice"))
    await outbox.enqueue(entered("alice", 1))
    await outbox.enqueue(entered("bob", 2))
    await outbox.erase("alice", "erased:x", audit("erase"))
    (left,) = await outbox.deliveries("wh_1", limit=10)
    assert '"user_id":"bob"' in left.payload
    # Queued just after the erasure (a late top change), deleted by the second sweep.
    await outbox.enqueue(entered("alice", 3))
    await outbox.forget("alice")
    (left,) = await outbox.deliveries("wh_1", limit=10)
    assert '"user_id":"bob"' in left.payload


def _fields(webhook: Any) -> dict[str, Any]:
    return {name: getattr(webhook, name) for name in webhooks.Webhook.__slots__}
