"""The velocity limit of ``web.limits`` on an in-process points window and a clock set by hand:
at most N points per user in any 60 s, wherever the minute boundaries fall."""

from __future__ import annotations

import pytest

from scoreboard.adapters.limit_storage import LocalStorage
from scoreboard.adapters.memory_points_window import MemoryPointsWindow
from scoreboard.web.guards.limits import RateLimited, UpdateLimits
from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def window(clock: FakeClock) -> MemoryPointsWindow:
    return MemoryPointsWindow(clock)


def velocity(limit: int | None, window: MemoryPointsWindow) -> UpdateLimits:
    return UpdateLimits(LocalStorage(), window, per_user=None, per_address=None, velocity=limit)


async def refused(guard: UpdateLimits, delta: int) -> RateLimited:
    with pytest.raises(RateLimited) as caught:
        await guard.reserve("alice", delta)
    assert caught.value.code == "velocity_limited"
    return caught.value


async def test_points_gained_just_before_a_minute_edge_still_count_after_it(
    window: MemoryPointsWindow, clock: FakeClock
) -> None:
    """A fixed minute opened at 0 s let +48 at 58 s and +50 at 61.5 s through: 98 points in
    3.5 s against a limit of 50."""
    guard = velocity(50, window)
    await guard.reserve("alice", 1)  # opened a fixed window at 0 s
    clock.at(58)
    await guard.reserve("alice", 48)
    clock.at(61.5)
    refusal = await refused(guard, 50)
    # The 1 of 0 s has left; the 48 of 58 s leave at 118 s, 56.5 s from now.
    assert refusal.headers() == {
        "Retry-After": "57",
        "RateLimit-Limit": "50",
        "RateLimit-Remaining": "2",
        "RateLimit-Reset": "57",
    }
    await guard.reserve("alice", 2)
    await refused(guard, 1)


async def test_points_come_back_exactly_60_s_after_they_were_gained(
    window: MemoryPointsWindow, clock: FakeClock
) -> None:
    guard = velocity(50, window)
    await guard.reserve("alice", 50)
    clock.at(59.5)
    assert (await refused(guard, 1)).headers()["Retry-After"] == "1"
    clock.at(60)
    await guard.reserve("alice", 50)
    await refused(guard, 1)


async def test_a_refund_gives_the_points_back_once(
    window: MemoryPointsWindow, clock: FakeClock
) -> None:
    guard = velocity(50, window)
    first = await guard.reserve("alice", 30)
    await guard.reserve("alice", 20)
    await first.refund()
    await first.refund()
    await refused(guard, 31)
    await guard.reserve("alice", 30)


async def test_negative_deltas_and_a_limit_turned_off_reserve_nothing(
    window: MemoryPointsWindow,
) -> None:
    await velocity(50, window).reserve("alice", -1000)
    unlimited = velocity(None, window)
    for _ in range(3):
        await unlimited.reserve("alice", 1000)
    await velocity(50, window).reserve("alice", 50)  # nothing of the above was held


async def test_a_refused_update_whose_action_was_applied_goes_on_unreserved(
    window: MemoryPointsWindow, clock: FakeClock
) -> None:
    guard = velocity(50, window)
    await guard.reserve("alice", 50, action_id="quest-2")

    async def applied() -> bool:
        return True

    async def not_applied() -> bool:
        return False

    # quest-1 was applied more than 60 s ago (its reservation left): a retry adds nothing.
    retry = await guard.reserve("alice", 30, action_id="quest-1", applied=applied)
    await retry.refund()  # nothing was reserved, so nothing comes back
    with pytest.raises(RateLimited):
        await guard.reserve("alice", 30, action_id="quest-3", applied=not_applied)
    await refused(guard, 1)
