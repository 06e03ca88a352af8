"""Every adapter of a port, built fresh per test on a key space of its own.

The store fixtures run over memory, SQLite and PostgreSQL; the index, bus and points window
fixtures over memory and Redis. PostgreSQL and Redis come from ``tests.support.services`` (skip
when absent, fail in CI).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scoreboard import applying
from scoreboard.adapters.memory_bus import MemoryBus
from scoreboard.adapters.memory_index import MemoryRankIndex
from scoreboard.adapters.memory_points_window import MemoryPointsWindow
from scoreboard.adapters.memory_store import MemoryScoreStore
from scoreboard.boards import BoardsConfig
from scoreboard.ports import Bus, PointsWindow, RankIndex, ScoreStore
from tests.support import services
from tests.support.clock import FakeClock

STORES = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
]
INDEXES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]
BUSES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]
POINTS_WINDOWS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


class StoreClock:
    """The time a store commits at: real time, unless a test sets it (``at``)."""

    def __init__(self) -> None:
        self.fixed: datetime | None = None

    def at(self, moment: datetime) -> None:
        self.fixed = moment

    def __call__(self) -> datetime:
        return self.fixed or datetime.now(UTC)


@pytest.fixture
def store_clock() -> StoreClock:
    return StoreClock()


@pytest.fixture(params=STORES)
async def bare_store(
    request: pytest.FixtureRequest, tmp_path: Path, store_clock: StoreClock
) -> AsyncIterator[ScoreStore]:
    """A store with no board configuration applied yet, on ``store_clock``."""
    kind = request.param
    if kind == "memory":
        yield MemoryScoreStore(store_clock)
    elif kind == "sqlite":
        from scoreboard.adapters.sqlite_store import SqliteScoreStore
        from scoreboard.migrate import upgrade

        path = tmp_path / "contract.db"
        upgrade(f"sqlite:///{path}")
        sqlite = SqliteScoreStore(path, clock=store_clock)
        await sqlite.open()
        yield sqlite
        await sqlite.close()
    else:
        from scoreboard.adapters.postgres_store import PostgresScoreStore

        with services.postgres_database() as url:
            pg = PostgresScoreStore(url, clock=store_clock)
            await pg.open()
            try:
                yield pg
            finally:
                await pg.close()


@pytest.fixture
async def store(bare_store: ScoreStore) -> ScoreStore:
    """A store serving the seed's one board, ``main``: the all-time sum of ``points``."""
    await configure(bare_store, BoardsConfig.default(-(2**31 - 1), 2**31 - 1, None))
    return bare_store


async def configure(store: ScoreStore, config: BoardsConfig) -> None:
    """Apply ``config`` as ``serve`` would (new boards filled), and load it."""
    await applying.apply(store, config)
    await store.load_config()


class RedisSpace:
    """Builds Redis adapters that share one key prefix, like processes of one deployment."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.prefix = prefix
        self.clients: list[Any] = []
        self._new_client: Callable[[], Any] = lambda: aioredis.Redis.from_url(url)

    def client(self) -> Any:
        client = self._new_client()
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


@pytest.fixture(params=INDEXES)
async def index_factory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., RankIndex]]:
    """Makes indexes of one board; for Redis, several of them share it like processes do."""
    if request.param == "memory":
        shared: list[MemoryRankIndex] = []

        def memory(top_k: int = 10, order: str = "desc") -> RankIndex:
            # Memory indexes are per process: "another process" is not a thing, so share one.
            if not shared:
                shared.append(MemoryRankIndex(top_k=top_k, order=order))
            return shared[0]

        yield memory
    else:
        from scoreboard.adapters.redis_index import RedisRankIndex

        async with services.redis_keyspace() as (url, prefix):
            holder = RedisSpace(url, prefix)

            def redis(top_k: int = 10, order: str = "desc") -> RankIndex:
                return RedisRankIndex(holder.client(), prefix=prefix, top_k=top_k, order=order)

            # As at a process's start: an empty store's rebuild marks it built.
            await RedisRankIndex(holder.client(), prefix=prefix).load("all", ())
            try:
                yield redis
            finally:
                await holder.close()


@pytest.fixture
def index(index_factory: Callable[..., RankIndex]) -> RankIndex:
    return index_factory()


@pytest.fixture(params=BUSES)
async def bus_factory(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Bus]]:
    """Makes buses; for Redis each one is another process's connection to the same server."""
    opened: list[Bus] = []
    if request.param == "memory":
        shared = MemoryBus()

        def memory() -> Bus:
            return shared

        yield memory
        return
    from scoreboard.adapters.redis_bus import RedisBus

    async with services.redis_keyspace() as (url, prefix):
        holder = RedisSpace(url, prefix)

        def redis() -> Bus:
            bus = RedisBus(holder.client(), prefix=prefix)
            opened.append(bus)
            return bus

        try:
            yield redis
        finally:
            for bus in opened:
                await bus.close()
            await holder.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=POINTS_WINDOWS)
async def points_factory(
    request: pytest.FixtureRequest, clock: FakeClock
) -> AsyncIterator[Callable[[], PointsWindow]]:
    """Makes points windows on ``clock``; for Redis each one is another process's connection
    to the same keys, as in scaled mode."""
    if request.param == "memory":
        shared = MemoryPointsWindow(clock)  # per process: "another process" is this one

        yield lambda: shared
        return
    from scoreboard.adapters.redis_points_window import RedisPointsWindow

    async with services.redis_keyspace() as (url, prefix):
        holder = RedisSpace(url, prefix)
        try:
            yield lambda: RedisPointsWindow(holder.client(), prefix=prefix, clock=clock)
        finally:
            await holder.close()


@pytest.fixture
def points(points_factory: Callable[[], PointsWindow]) -> PointsWindow:
    return points_factory()
