"""The PointsWindow contract, over memory and Redis, on a clock the tests set.

The velocity limit rests on it: "at most N points in any 60 s". Every test places reservations
at chosen instants (``clock.at``); none sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from scoreboard.model import PointsReservation
from scoreboard.ports import PointsWindow
from tests.support.clock import FakeClock

SPAN = 60.0


async def reserve(points: PointsWindow, amount: int, limit: int = 50, key: str = "alice") -> bool:
    return (await points.reserve(key, amount, limit=limit, span=SPAN)).granted


async def test_points_reserved_before_a_window_edge_still_count_after_it(
    points: PointsWindow, clock: FakeClock
) -> None:
    """+49 at 58 s and +50 at 61.5 s are 99 points in 3.5 s: a fixed minute lets both through."""
    clock.at(58)
    assert await reserve(points, 49)
    clock.at(61.5)
    refused = await points.reserve("alice", 50, limit=50, span=SPAN)
    assert not refused.granted
    assert refused.used == 49
    assert refused.reset == pytest.approx(56.5)  # when the 49 leave: 58 + 60 - 61.5
    assert refused.ticket is None
    assert await reserve(points, 1)  # what is left of the budget is still there


async def test_points_leave_the_window_exactly_span_seconds_after_they_were_reserved(
    points: PointsWindow, clock: FakeClock
) -> None:
    clock.at(0)
    assert await reserve(points, 50)
    clock.at(59.5)
    refused = await points.reserve("alice", 1, limit=50, span=SPAN)
    assert not refused.granted
    assert refused.reset == pytest.approx(0.5)
    clock.at(60)
    assert await reserve(points, 50)
    assert not await reserve(points, 1)


async def test_reset_is_when_enough_points_have_left_for_the_reservation(
    points: PointsWindow, clock: FakeClock
) -> None:
    for at, amount in ((0, 20), (10, 20), (20, 10)):
        clock.at(at)
        assert await reserve(points, amount)
    clock.at(30)
    # 25 more need 25 points to leave: the 20 of 0 s are not enough, those of 10 s are.
    refused = await points.reserve("alice", 25, limit=50, span=SPAN)
    assert (refused.granted, refused.used) == (False, 50)
    assert refused.reset == pytest.approx(10 + SPAN - 30)
    clock.at(10 + SPAN)
    assert await reserve(points, 25)


async def test_a_reservation_larger_than_the_limit_never_fits_and_holds_nothing(
    points: PointsWindow, clock: FakeClock
) -> None:
    refused = await points.reserve("alice", 51, limit=50, span=SPAN)
    assert (refused.granted, refused.used, refused.reset) == (False, 0, SPAN)
    assert await reserve(points, 50)


async def test_a_refused_reservation_holds_nothing(points: PointsWindow, clock: FakeClock) -> None:
    assert await reserve(points, 30)
    for _ in range(5):
        assert not await reserve(points, 21)
    assert await reserve(points, 20)


async def test_windows_are_per_key(points: PointsWindow, clock: FakeClock) -> None:
    assert await reserve(points, 50, key="alice")
    assert await reserve(points, 50, key="bob")
    assert not await reserve(points, 1, key="alice")


async def test_a_refund_gives_back_exactly_its_reservation_once(
    points: PointsWindow, clock: FakeClock
) -> None:
    first = await points.reserve("alice", 30, limit=50, span=SPAN)
    clock.at(1)
    second = await points.reserve("alice", 20, limit=50, span=SPAN)
    assert first.ticket is not None
    assert second.ticket is not None
    assert second.used == 30
    await points.refund(first.ticket)
    await points.refund(first.ticket)  # twice: still only its 30 points
    assert not await reserve(points, 31)
    assert await reserve(points, 30)
    # The 20 of 1 s are still held; they leave at 61 s, the refunded 30 of 0 s count nowhere.
    clock.at(60.5)
    assert not await reserve(points, 1)


async def test_refunding_a_reservation_that_left_the_window_gives_nothing_back(
    points: PointsWindow, clock: FakeClock
) -> None:
    old = await points.reserve("alice", 50, limit=50, span=SPAN)
    assert old.ticket is not None
    clock.at(SPAN)
    assert await reserve(points, 50)
    await points.refund(old.ticket)
    assert not await reserve(points, 1)


async def test_concurrent_reservations_never_hold_more_than_the_limit(
    points_factory: Callable[[], PointsWindow], clock: FakeClock
) -> None:
    """Several processes (Redis: one connection each) reserving at once."""
    windows = [points_factory() for _ in range(4)]
    answers = await asyncio.gather(
        *(windows[i % 4].reserve("alice", 7, limit=100, span=SPAN) for i in range(200))
    )
    assert sum(a.granted for a in answers) == 14  # 14 * 7 = 98; a 15th would be 105
    # Each granted reservation saw what the ones before it held: 0, 7, ..., 91.
    assert sorted(a.used for a in answers if a.granted) == list(range(0, 98, 7))
    assert not await reserve(windows[0], 3, limit=100)
    assert await reserve(windows[1], 2, limit=100)


async def test_concurrent_refunds_and_reservations_keep_the_sum_exact(
    points_factory: Callable[[], PointsWindow], clock: FakeClock
) -> None:
    windows = [points_factory() for _ in range(4)]
    held = [await windows[0].reserve("alice", 10, limit=100, span=SPAN) for _ in range(10)]
    tickets = [a.ticket for a in held if a.ticket is not None]
    assert len(tickets) == 10
    # Refund five while 20 others race for the room they free.
    results = await asyncio.gather(
        *(windows[i % 4].refund(t) for i, t in enumerate(tickets[:5])),
        *(windows[i % 4].reserve("alice", 10, limit=100, span=SPAN) for i in range(20)),
    )
    granted = sum(r.granted for r in results if isinstance(r, PointsReservation))
    assert granted <= 5
    # Whatever the interleaving, 5 + granted reservations are held and the rest is free.
    free = 100 - 10 * (5 + granted)
    if free:
        assert await reserve(windows[0], free, limit=100)
    assert not await reserve(windows[0], 1, limit=100)


async def test_the_same_action_asked_for_again_shares_its_reservation(
    points: PointsWindow, clock: FakeClock
) -> None:
    first = await points.reserve("alice", 30, limit=50, span=SPAN, action_id="quest-1")
    clock.at(10)
    again = await points.reserve("alice", 30, limit=50, span=SPAN, action_id="quest-1")
    assert again.granted  # though 30 + 30 is over the budget: it adds nothing
    assert again.used == 30
    assert again.ticket is not None
    assert first.ticket is not None
    assert again.ticket.at == first.ticket.at  # held from the first one's time
    assert await reserve(points, 20)  # the 30 are held once
    assert not await reserve(points, 1)
    # Another delta is another reservation (the store will call it a conflict).
    assert not (await points.reserve("alice", 31, limit=50, span=SPAN, action_id="quest-1")).granted
    # Per key: bob's quest-1 is his own.
    assert not (await points.reserve("bob", 60, limit=50, span=SPAN, action_id="quest-1")).granted


async def test_a_shared_reservation_is_held_until_every_sharer_refunded(
    points: PointsWindow, clock: FakeClock
) -> None:
    first = await points.reserve("alice", 30, limit=50, span=SPAN, action_id="quest-1")
    again = await points.reserve("alice", 30, limit=50, span=SPAN, action_id="quest-1")
    assert first.ticket is not None
    assert again.ticket is not None
    await points.refund(first.ticket)  # the first one failed; the retry may still apply it
    assert not await reserve(points, 21)
    await points.refund(again.ticket)
    assert await reserve(points, 50)


async def test_a_shared_reservation_still_leaves_span_after_the_first_one(
    points: PointsWindow, clock: FakeClock
) -> None:
    first = await points.reserve("alice", 50, limit=50, span=SPAN, action_id="quest-1")
    clock.at(59)
    kept = await points.reserve("alice", 50, limit=50, span=SPAN, action_id="quest-1")
    assert kept.granted
    clock.at(SPAN)
    # Left with the first one's time: quest-1 again is a new reservation, and a stale refund
    # of the old one gives nothing back.
    renewed = await points.reserve("alice", 50, limit=50, span=SPAN, action_id="quest-1")
    assert (renewed.granted, renewed.used) == (True, 0)
    assert first.ticket is not None
    await points.refund(first.ticket)
    assert not await reserve(points, 1)
    # The old sharers went with the old reservation: the new one has one holder.
    assert renewed.ticket is not None
    await points.refund(renewed.ticket)
    assert await reserve(points, 50)


async def test_concurrent_reservations_of_one_action_hold_its_points_once(
    points_factory: Callable[[], PointsWindow], clock: FakeClock
) -> None:
    windows = [points_factory() for _ in range(4)]
    answers = await asyncio.gather(
        *(
            windows[i % 4].reserve("alice", 50, limit=50, span=SPAN, action_id="quest-1")
            for i in range(50)
        )
    )
    assert all(a.granted for a in answers)
    tickets = [a.ticket for a in answers if a.ticket is not None]
    assert len({t.at for t in tickets}) == 1
    assert not await reserve(windows[0], 1)
    await asyncio.gather(*(windows[i % 4].refund(t) for i, t in enumerate(tickets[:49])))
    assert not await reserve(windows[0], 1)  # one holder left: still held
    await windows[0].refund(tickets[49])
    assert await reserve(windows[0], 50)


async def test_forget_drops_a_keys_window_and_no_other(points: PointsWindow) -> None:
    await points.reserve("eve", 60, limit=100, span=60)
    await points.reserve("bob", 60, limit=100, span=60)
    await points.forget("eve")
    assert (await points.reserve("eve", 100, limit=100, span=60)).granted
    assert not (await points.reserve("bob", 50, limit=100, span=60)).granted
    await points.forget("nobody")  # nothing to forget is no error
