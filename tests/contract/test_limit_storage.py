"""The rate-limit storage contract, over the in-process storage and ``limits``' Redis storage.

``web.guards.limits`` counts update requests per user and per address with ``limits``' moving
window over one of these storages (``bootstrap`` chooses). What it relies on, on both: exactly
the limit passes in a window, keys are independent, the window's stats say what is left and
when it frees, and the counts are shared by everyone using the storage (in Redis: every
process). The in-process storage's behaviour at chosen instants is in
tests/unit/test_limit_storage.py (a clock it is given); here time is real and windows short.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import limits
import pytest
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

from scoreboard.adapters.limit_storage import LocalStorage
from tests.support import services

STORAGES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=STORAGES)
async def storage_factory(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Storage]]:
    """Makes storages over the same counters: for Redis each is another process's connection."""
    if request.param == "memory":
        shared = LocalStorage()
        yield lambda: shared
        return
    import redis.asyncio as aioredis
    from limits.aio.storage import RedisStorage

    async with services.redis_keyspace() as (url, prefix):
        clients: list[aioredis.Redis] = []

        def make() -> Storage:
            # As bootstrap builds it: over a client's connection pool, closed with the client.
            client = aioredis.Redis.from_url(url)
            clients.append(client)
            return RedisStorage(
                "async+" + url,
                implementation="redispy",
                key_prefix=prefix + "limits",
                wrap_exceptions=True,
                connection_pool=client.connection_pool,  # type: ignore[arg-type]
            )

        try:
            yield make
        finally:
            for client in clients:
                await client.aclose()


async def test_exactly_the_limit_passes_and_keys_are_independent(
    storage_factory: Callable[[], Storage],
) -> None:
    limiter = MovingWindowRateLimiter(storage_factory())
    item = limits.parse("3/minute")
    assert [await limiter.hit(item, "address", "a") for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert await limiter.hit(item, "address", "b")
    assert await limiter.hit(item, "user", "a")  # another limit's key of the same identity


async def test_window_stats_say_what_is_left_and_when_it_frees(
    storage_factory: Callable[[], Storage],
) -> None:
    limiter = MovingWindowRateLimiter(storage_factory())
    item = limits.parse("2/minute")
    before = time.time()
    await limiter.hit(item, "user", "alice")
    stats = await limiter.get_window_stats(item, "user", "alice")
    assert stats.remaining == 1
    assert before + 59 <= stats.reset_time <= time.time() + 61
    await limiter.hit(item, "user", "alice")
    assert (await limiter.get_window_stats(item, "user", "alice")).remaining == 0


async def test_every_user_of_the_storage_shares_the_counts(
    storage_factory: Callable[[], Storage],
) -> None:
    """Two processes (two storages over the same counters) let the limit through in all."""
    first = MovingWindowRateLimiter(storage_factory())
    second = MovingWindowRateLimiter(storage_factory())
    item = limits.parse("10/minute")
    allowed = await asyncio.gather(
        *(limiter.hit(item, "user", "bob") for limiter in [first, second] * 10)
    )
    assert allowed.count(True) == 10


async def test_hits_leave_the_window_when_it_moves_on(
    storage_factory: Callable[[], Storage],
) -> None:
    limiter = MovingWindowRateLimiter(storage_factory())
    item = limits.parse("2/second")
    assert await limiter.hit(item, "user", "carol")
    assert await limiter.hit(item, "user", "carol")
    assert not await limiter.hit(item, "user", "carol")

    async def freed() -> bool:
        return await limiter.test(item, "user", "carol")

    deadline = time.monotonic() + 3
    while not await freed():
        assert time.monotonic() < deadline, "the window never moved on"
        await asyncio.sleep(0.05)
    assert await limiter.hit(item, "user", "carol")
