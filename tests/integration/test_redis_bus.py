"""The Redis bus beyond the Bus contract: malformed messages, a killed subscription, a Redis
that is down, and when it is listening."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from tests.contract.test_bus import Listener, _true, event, until_listening
from tests.support import services
from tests.support.timing import async_wait_until


@pytest.fixture
async def redis_space() -> AsyncIterator[tuple[str, str]]:
    async with services.redis_keyspace() as space:
        yield space


@pytest.mark.redis
async def test_redis_bus_ignores_malformed_messages(redis_space: tuple[str, str]) -> None:
    import redis.asyncio as aioredis

    from scoreboard.adapters.redis_bus import RedisBus

    url, prefix = redis_space
    client = aioredis.Redis.from_url(url)
    bus = RedisBus(client, prefix=prefix)
    await bus.open()
    listener = Listener(bus)
    try:
        await until_listening(bus, listener)
        await client.publish(bus.channel("main"), b"not json")
        await client.publish(bus.channel("main"), b'{"board": "main"}')
        await bus.publish(event(9))
        await async_wait_until(lambda: _true(listener.seqs() == [9]), 5, "the good event")
    finally:
        await listener.stop()
        await bus.close()
        await client.aclose()


@pytest.mark.redis
async def test_redis_bus_subscribes_again_after_its_connection_is_killed(
    redis_space: tuple[str, str],
) -> None:
    import redis.asyncio as aioredis

    from scoreboard.adapters.redis_bus import RedisBus

    url, prefix = redis_space
    name = prefix.replace(":", "-") + "bus"
    client = aioredis.Redis.from_url(url, client_name=name)
    admin = aioredis.Redis.from_url(url)
    bus = RedisBus(client, prefix=prefix)
    await bus.open()
    listener = Listener(bus)
    try:
        await until_listening(bus, listener)
        # Kill only our own subscription's connection (by its name), never anyone else's.
        killed = 0
        for entry in await admin.client_list(_type="pubsub"):
            if entry.get("name") == name:
                killed += int(await admin.client_kill_filter(_id=entry["id"]))
        assert killed == 1

        async def heard_after_reconnect() -> bool:
            await bus.publish(event(11))
            return 11 in listener.seqs()

        await async_wait_until(heard_after_reconnect, 10, "the bus to resubscribe")
    finally:
        await listener.stop()
        await bus.close()
        await client.aclose()
        await admin.aclose()


@pytest.mark.redis
async def test_redis_publish_without_redis_is_dropped_logged_and_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At most once: the update that caused the event stands; the loss is a warning line
    (counted as a Redis error by the metrics' log handler)."""
    import redis.asyncio as aioredis

    from scoreboard.adapters.redis_bus import RedisBus
    from tests.support.server import free_port

    services.require_redis()
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    bus = RedisBus(client)
    await bus.open()
    try:
        with caplog.at_level(logging.WARNING, logger="scoreboard.adapters.redis_bus"):
            await bus.publish(event(1))
    finally:
        await bus.close()
        await client.aclose()
    (record,) = [r for r in caplog.records if r.name == "scoreboard.adapters.redis_bus"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("board event 1 not published")


@pytest.mark.redis
async def test_redis_bus_says_when_it_listens(redis_space: tuple[str, str]) -> None:
    """After ``listening()`` one publish is enough: no event is lost to a late subscription."""
    import redis.asyncio as aioredis

    from scoreboard.adapters.redis_bus import RedisBus

    url, prefix = redis_space
    client = aioredis.Redis.from_url(url)
    bus = RedisBus(client, prefix=prefix)
    await bus.open()
    listener = Listener(bus)
    try:
        await asyncio.wait_for(bus.listening("main"), 5)
        await bus.publish(event(5))
        await async_wait_until(lambda: _true(listener.seqs() == [5]), 5, "the one event")
    finally:
        await listener.stop()
        await bus.close()
        await client.aclose()
