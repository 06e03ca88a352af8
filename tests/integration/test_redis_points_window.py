"""The Redis points window beyond the PointsWindow contract: expiry, its own clock, Redis down."""

from __future__ import annotations

import pytest

from tests.support import services

SPAN = 60.0


@pytest.mark.redis
async def test_redis_keys_expire_when_their_reservations_have_left() -> None:
    import redis.asyncio as aioredis

    from scoreboard.adapters.redis_points_window import RedisPointsWindow

    async with services.redis_keyspace() as (url, prefix):
        client = aioredis.Redis.from_url(url)
        try:
            points = RedisPointsWindow(client, prefix=prefix)
            answer = await points.reserve("alice", 10, limit=50, span=SPAN)
            assert answer.ticket is not None
            keys = sorted([k.decode() async for k in client.scan_iter(match=prefix + "*")])
            assert keys == [f"{prefix}{{alice}}", f"{prefix}{{alice}}:used"]
            for key in keys:
                assert 0 < await client.pttl(key) <= SPAN * 1000
            await points.refund(answer.ticket)
            # Shared reservations count their extra holders in the hash, and leave no field
            # behind once every holder has refunded.
            shares = [
                await points.reserve("alice", 10, limit=50, span=SPAN, action_id="q")
                for _ in range(3)
            ]
            for share in shares:
                assert share.ticket is not None
                await points.refund(share.ticket)
            assert await client.hgetall(keys[1]) == {b"used": b"0"}
            assert await client.zcard(keys[0]) == 0
        finally:
            await client.aclose()


@pytest.mark.redis
async def test_redis_on_its_own_clock_reserves_and_refunds() -> None:
    """Without a clock given, the script takes the Redis server's time (scaled mode)."""
    import redis.asyncio as aioredis

    from scoreboard.adapters.redis_points_window import RedisPointsWindow

    async with services.redis_keyspace() as (url, prefix):
        client = aioredis.Redis.from_url(url)
        try:
            points = RedisPointsWindow(client, prefix=prefix)
            first = await points.reserve("alice", 30, limit=50, span=SPAN)
            assert first.granted
            assert first.ticket is not None
            refused = await points.reserve("alice", 30, limit=50, span=SPAN)
            assert (refused.granted, refused.used) == (False, 30)
            assert SPAN - 5 < refused.reset <= SPAN
            await points.refund(first.ticket)
            assert (await points.reserve("alice", 50, limit=50, span=SPAN)).granted
        finally:
            await client.aclose()


@pytest.mark.redis
async def test_redis_down_is_unavailable() -> None:
    import redis.asyncio as aioredis

    from scoreboard.adapters.redis_points_window import RedisPointsWindow
    from scoreboard.errors import Unavailable
    from tests.support.server import free_port

    services.require_redis()  # the same skip/fail rule as the other Redis tests
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(Unavailable):
            await RedisPointsWindow(client).reserve("alice", 1, limit=50, span=SPAN)
    finally:
        await client.aclose()
