"""The Redis rank index beyond the RankIndex contract: derived data that can vanish (a flush, a
restarted counter, a Redis that is down)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from scoreboard import applying
from scoreboard.boards import BoardsConfig
from scoreboard.model import Applied, Standing
from tests.contract.test_rank_index import ids, t
from tests.support import services


def main_standing(applied: Applied) -> Standing:
    (place,) = applied.boards
    assert place.standing is not None
    return place.standing


@pytest.fixture
async def redis_index_space() -> AsyncIterator[tuple[str, str]]:
    async with services.redis_keyspace() as space:
        yield space


def _redis(url: str, prefix: str, floor: Callable[[], int] | None = None) -> object:
    import redis.asyncio as aioredis

    from scoreboard.adapters.redis_index import RedisRankIndex

    return RedisRankIndex(aioredis.Redis.from_url(url), prefix=prefix, seq_floor=floor)


@pytest.mark.redis
async def test_redis_flush_is_detected_healed_and_seq_never_goes_back(
    redis_index_space: tuple[str, str],
) -> None:
    from scoreboard.adapters.memory_store import MemoryScoreStore
    from scoreboard.adapters.redis_index import RedisRankIndex
    from scoreboard.model import ScoreUpdate

    url, prefix = redis_index_space
    store = MemoryScoreStore()
    await applying.apply(store, BoardsConfig.default(1, 1000, None))
    shown = 0  # the live board's seq of this "process"
    index = _redis(url, prefix, lambda: shown)
    assert isinstance(index, RedisRankIndex)
    try:
        await index.load("all", ())
        assert await index.check()
        for i in range(15):
            applied = await store.apply(ScoreUpdate(f"u{i}", 10 + i))
            board = await index.apply("all", main_standing(applied))
            if board is not None:
                shown = board.seq
        before = await index.board()
        assert before.seq == shown > 0

        await services.delete_keys(url, prefix)  # what FLUSHDB does to our keys
        assert not await index.check()
        assert await index.wait_lost(0)

        # A write before the rebuild is kept but announces no (half-empty) top.
        late = main_standing(await store.apply(ScoreUpdate("late", 1000)))
        assert await index.apply("all", late) is None
        assert await index.wait_lost(0)

        rebuilt = await index.rebuild("all", store.iter_standings("main", "all"))
        assert await index.check()
        assert rebuilt.seq > shown
        assert rebuilt.top[0].user_id == "late"
        assert ids(rebuilt.top)[1:] == ids(before.top)[:9]
        assert await index.size() == 16
    finally:
        await index.client.aclose()


@pytest.mark.redis
async def test_redis_seq_floor_of_any_process_lifts_a_restarted_counter(
    redis_index_space: tuple[str, str],
) -> None:
    from scoreboard.adapters.redis_index import RedisRankIndex

    url, prefix = redis_index_space
    quiet = _redis(url, prefix, lambda: 500)  # a process whose clients saw seq 500
    busy = _redis(url, prefix)
    assert isinstance(quiet, RedisRankIndex)
    assert isinstance(busy, RedisRankIndex)
    try:
        await busy.load("all", ())
        await quiet.check()  # the idle process's periodic check
        moved = await busy.apply("all", t("a", 1))
        assert moved is not None
        assert moved.seq == 501
    finally:
        await quiet.client.aclose()
        await busy.client.aclose()


@pytest.mark.redis
async def test_redis_down_is_unavailable_and_asks_for_a_rebuild() -> None:
    import redis.asyncio as aioredis

    from scoreboard.adapters.redis_index import RedisRankIndex
    from scoreboard.errors import Unavailable
    from tests.support.server import free_port

    services.require_redis()
    index = RedisRankIndex(aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0"))
    try:
        with pytest.raises(Unavailable):
            await index.apply("all", t("a", 1))
        assert await index.wait_lost(0)
    finally:
        await index.client.aclose()
