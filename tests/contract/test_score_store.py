"""The ScoreStore contract, over memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from scoreboard.errors import ActionConflict
from scoreboard.model import HistoryQuery, ScoreUpdate, UserTotal
from scoreboard.ports import ScoreStore


async def all_totals(store: ScoreStore) -> dict[str, UserTotal]:
    return {t.user_id: t async for chunk in store.iter_totals() for t in chunk}


async def test_first_update_creates_the_user(store: ScoreStore) -> None:
    applied = await store.apply(ScoreUpdate("alice", 5, "a1", "Alice"))
    assert not applied.replayed
    total = applied.total
    assert (total.user_id, total.username, total.score, total.version) == ("alice", "Alice", 5, 1)
    assert total.reached > 0
    assert await store.get_user("alice") == total
    assert await store.get_user("nobody") is None


async def test_updates_add_up_and_advance_version_and_reached(store: ScoreStore) -> None:
    first = (await store.apply(ScoreUpdate("bob", 3))).total
    second = (await store.apply(ScoreUpdate("bob", 4))).total
    assert (second.score, second.version) == (7, 2)
    assert second.reached > first.reached
    assert second.username == "bob"  # no name in any token: the user id


async def test_a_name_is_kept_until_a_token_brings_another(store: ScoreStore) -> None:
    await store.apply(ScoreUpdate("carol", 1, username="Carol"))
    kept = (await store.apply(ScoreUpdate("carol", 1))).total
    assert kept.username == "Carol"
    renamed = (await store.apply(ScoreUpdate("carol", 1, username="C."))).total
    assert renamed.username == "C."


async def test_a_retried_action_is_applied_once(store: ScoreStore) -> None:
    first = await store.apply(ScoreUpdate("dave", 10, "act-1"))
    again = await store.apply(ScoreUpdate("dave", 10, "act-1"))
    assert again.replayed
    assert again.total == first.total
    assert (await store.get_user("dave")) == first.total


async def test_the_same_action_with_another_delta_is_a_conflict_and_changes_nothing(
    store: ScoreStore,
) -> None:
    before = (await store.apply(ScoreUpdate("erin", 10, "act-1"))).total
    with pytest.raises(ActionConflict):
        await store.apply(ScoreUpdate("erin", 11, "act-1"))
    assert await store.get_user("erin") == before
    history = await store.history(HistoryQuery("erin", limit=10))
    assert [e.delta for e in history] == [10]


async def test_action_delta_tells_an_applied_action_and_its_delta(store: ScoreStore) -> None:
    assert await store.action_delta("mia", "act-1") is None
    await store.apply(ScoreUpdate("mia", 12, "act-1"))
    assert await store.action_delta("mia", "act-1") == 12
    assert await store.action_delta("mia", "act-2") is None
    assert await store.action_delta("nina", "act-1") is None  # per user
    with pytest.raises(ActionConflict):  # refused: the recorded delta stays the first one
        await store.apply(ScoreUpdate("mia", 13, "act-1"))
    assert await store.action_delta("mia", "act-1") == 12


async def test_action_ids_are_per_user(store: ScoreStore) -> None:
    await store.apply(ScoreUpdate("frank", 1, "same"))
    other = await store.apply(ScoreUpdate("grace", 2, "same"))
    assert not other.replayed
    assert other.total.score == 2


async def test_updates_without_action_id_are_never_retries(store: ScoreStore) -> None:
    await store.apply(ScoreUpdate("heidi", 5))
    second = await store.apply(ScoreUpdate("heidi", 5))
    assert not second.replayed
    assert second.total.score == 10


async def test_concurrent_updates_of_one_user_sum_exactly(store: ScoreStore) -> None:
    results = await asyncio.gather(*(store.apply(ScoreUpdate("ivan", 1)) for _ in range(200)))
    assert (await store.get_user("ivan")) is not None
    total = await store.get_user("ivan")
    assert total is not None
    assert (total.score, total.version) == (200, 200)
    assert sorted(r.total.version for r in results) == list(range(1, 201))
    # Each acknowledged total is the one its own event produced: version n has score n.
    assert all(r.total.score == r.total.version for r in results)
    # The latest version carries the latest event: reached is the tie-breaker of the final score.
    latest = max(results, key=lambda r: r.total.version).total
    assert latest.reached == total.reached


async def test_concurrent_retries_of_one_action_apply_it_once(store: ScoreStore) -> None:
    results = await asyncio.gather(
        *(store.apply(ScoreUpdate("judy", 7, "only-once")) for _ in range(20))
    )
    assert sum(not r.replayed for r in results) == 1
    total = await store.get_user("judy")
    assert total is not None
    assert total.score == 7


async def test_iter_totals_yields_every_user_once(store: ScoreStore) -> None:
    for i in range(50):
        await store.apply(ScoreUpdate(f"user-{i:02d}", i + 1))
    await store.apply(ScoreUpdate("user-07", 100))
    totals = await all_totals(store)
    assert len(totals) == 50
    assert totals["user-07"].score == 108
    assert totals["user-07"].version == 2
    assert totals["user-49"] == await store.get_user("user-49")


async def test_profile_and_history_follow_the_events(store: ScoreStore) -> None:
    for delta, action in ((5, "a"), (7, "b"), (1, "c")):
        await store.apply(ScoreUpdate("kate", delta, action, "Kate"))
    profile = await store.profile("kate")
    assert profile is not None
    assert (profile.username, profile.score) == ("Kate", 13)
    assert profile.updated_at.tzinfo is not None
    assert await store.profile("nobody") is None

    events = await store.history(HistoryQuery("kate", limit=10))
    assert [(e.delta, e.score, e.action_id) for e in events] == [
        (5, 5, "a"),
        (7, 12, "b"),
        (1, 13, "c"),
    ]
    page = await store.history(HistoryQuery("kate", limit=2))
    rest = await store.history(
        HistoryQuery(
            "kate", since=None, until=None, after=(page[-1].at, page[-1].event_id), limit=10
        )
    )
    assert [e.action_id for e in page + rest] == ["a", "b", "c"]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await store.history(HistoryQuery("kate", since=future, limit=10)) == []

    buckets = await store.history_buckets(HistoryQuery("kate", bucket="hour", limit=10))
    assert [b.score for b in buckets][-1] == 13
    assert all(b.at.minute == 0 and b.at.second == 0 for b in buckets)


async def test_concurrent_history_is_a_running_total(store: ScoreStore) -> None:
    await asyncio.gather(*(store.apply(ScoreUpdate("leo", 2)) for _ in range(50)))
    events = await store.history(HistoryQuery("leo", limit=100))
    assert [e.score for e in events] == list(range(2, 101, 2))
