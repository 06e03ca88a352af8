"""LocalStorage: the limits library's strategies over the in-process storage."""

from __future__ import annotations

import limits
import pytest
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from scoreboard.adapters import limit_storage
from scoreboard.adapters.limit_storage import LocalStorage


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_moving_window_lets_exactly_the_limit_through_in_any_window(clock: Clock) -> None:
    limiter = MovingWindowRateLimiter(LocalStorage(clock))
    item = limits.parse("3/minute")
    assert [await limiter.hit(item, "u") for _ in range(4)] == [True, True, True, False]
    clock.now += 30
    assert not await limiter.hit(item, "u")  # all three still inside the last 60 s
    assert await limiter.hit(item, "other")  # per key
    clock.now += 30.5
    assert await limiter.hit(item, "u")  # the first three have left the window
    stats = await limiter.get_window_stats(item, "u")
    assert stats.remaining == 2


async def test_fixed_window_counts_costs_and_resets(clock: Clock) -> None:
    storage = LocalStorage(clock)
    limiter = FixedWindowRateLimiter(storage)
    item = limits.RateLimitItemPerMinute(1000)
    assert await limiter.hit(item, "velocity", "u", cost=600)
    assert not await limiter.hit(item, "velocity", "u", cost=500)
    await storage.incr(item.key_for("velocity", "u"), item.get_expiry(), amount=-500)  # refund
    assert await limiter.hit(item, "velocity", "u", cost=400)
    clock.now += 61
    assert await storage.get(item.key_for("velocity", "u")) == 0
    assert await limiter.hit(item, "velocity", "u", cost=1000)


async def test_idle_keys_are_swept(clock: Clock) -> None:
    storage = LocalStorage(clock)
    limiter = MovingWindowRateLimiter(storage)
    item = limits.parse("5/second")
    for i in range(100):
        await limiter.hit(item, f"user{i}")
    clock.now += 7200
    for _ in range(limit_storage._SWEEP_EVERY):
        await limiter.hit(item, "busy")
        clock.now += 1
    assert len(storage._hits) == 1  # only "busy" is left of 101 keys
