"""The composition root: the only place that chooses adapters (by URL scheme) and wires them.

Routes and the command line receive a :class:`Components`; they never build adapters. Nothing
connects at import time: :func:`running` opens everything and closes it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard

from scoreboard.errors import Unavailable
from scoreboard.events import BoardChanged
from scoreboard.model import Board
from scoreboard.ports import Bus, PointsWindow, RankIndex, ScoreStore
from scoreboard.service import ScoreService
from scoreboard.settings import Settings
from scoreboard.tokens import TokenVerifier, verifier_from_settings

if TYPE_CHECKING:
    from limits.aio.storage import Storage

    from scoreboard.adapters.redis_index import RedisRankIndex

log = logging.getLogger(__name__)

# Redis answers in well under a millisecond; a call that takes this long means Redis is gone or
# hung. Every update makes Redis calls (index, limiter, bus), and everything in Redis is derived
# or fails open, so the update then goes on without it: a short deadline keeps a hung Redis from
# holding each update for seconds.
_REDIS_TIMEOUT = 0.5
_SUBSCRIBE_TIMEOUT = 5.0
_REDIS_CONNECTIONS = 64
_INDEX_CHECK_INTERVAL = 1.0


class ConfigurationError(Exception):
    """The settings ask for something this build cannot do; the message is one line."""


@dataclass
class Components:
    settings: Settings
    store: ScoreStore
    index: RankIndex
    bus: Bus
    service: ScoreService
    verifier: TokenVerifier
    velocity_window: PointsWindow
    """The velocity limit's points: in-process memory, or Redis (shared) when configured."""
    rate_limit_storage: Storage | None = None
    """Counters of the rate limits: in-process memory, or Redis (shared) when configured."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def build(settings: Settings, *, on_commit: Callable[[int], None] | None = None) -> Components:
    """Choose the adapters. Supported combinations (``docs/deploy.md`` says why):

    - SQLite, no Redis: embedded mode, one process.
    - PostgreSQL, no Redis: one process (the memory index and bus are per process).
    - SQLite + Redis: one process (a SQLite file has one writer; useful to try Redis alone).
    - PostgreSQL + Redis: scaled mode, any number of processes on any number of machines.

    ``on_commit`` observes the size of each store commit (SQLite store; for metrics).
    """
    store = _build_store(settings, on_commit)
    closers: list[Callable[[], Awaitable[None]]] = []
    index: RankIndex
    bus: Bus
    redis_index = None
    if settings.redis_url is not None:
        import redis.asyncio as aioredis

        from scoreboard.adapters.redis_bus import RedisBus
        from scoreboard.adapters.redis_index import RedisRankIndex

        # A blocking pool: under a burst, a request waits (up to the timeout) for one of the
        # pool's connections. redis-py's default pool raises MaxConnectionsError past 100
        # connections instead, which failed updates under 300 concurrent requests.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=_REDIS_CONNECTIONS,
            timeout=_REDIS_TIMEOUT,
            socket_timeout=_REDIS_TIMEOUT,
            socket_connect_timeout=_REDIS_TIMEOUT,
        )
        client = aioredis.Redis.from_pool(pool)
        closers.append(client.aclose)
        index = redis_index = RedisRankIndex(client, prefix=settings.redis_prefix)
        bus = RedisBus(client, prefix=settings.redis_prefix)
        from scoreboard.adapters.redis_points_window import RedisPointsWindow

        velocity_window: PointsWindow = RedisPointsWindow(
            client, prefix=f"{settings.redis_prefix}velocity:"
        )
        from limits.aio.storage import RedisStorage

        # The limiter shares the client's connection pool (closed with it).
        limit_storage: Storage = RedisStorage(
            "async+" + settings.redis_url,
            implementation="redispy",
            key_prefix=f"{settings.redis_prefix}limits",
            wrap_exceptions=True,
            connection_pool=client.connection_pool,  # type: ignore[arg-type]  # typed too narrowly
        )
    else:
        from scoreboard.adapters.limit_storage import LocalStorage
        from scoreboard.adapters.memory_bus import MemoryBus
        from scoreboard.adapters.memory_index import MemoryRankIndex
        from scoreboard.adapters.memory_points_window import MemoryPointsWindow

        index = MemoryRankIndex()
        bus = MemoryBus()
        limit_storage = LocalStorage()
        velocity_window = MemoryPointsWindow()
    service = ScoreService(
        store, index, bus, min_delta=settings.min_delta, max_delta=settings.max_delta
    )
    if redis_index is not None:
        # The shared seq never falls below what this process has shown (see redis_index).
        redis_index.seq_floor = lambda: _seen_seq(service)
    verifier = verifier_from_settings(settings)
    return Components(
        settings,
        store,
        index,
        bus,
        service,
        verifier,
        velocity_window,
        rate_limit_storage=limit_storage,
        _closers=closers,
    )


def _seen_seq(service: ScoreService) -> int:
    try:
        return service.live.seq
    except RuntimeError:  # before start(): nothing shown yet
        return 0


def _build_store(settings: Settings, on_commit: Callable[[int], None] | None) -> ScoreStore:
    if settings.is_sqlite:
        from scoreboard.adapters.sqlite_store import SqliteScoreStore, sqlite_path

        return SqliteScoreStore(sqlite_path(settings.database_url), on_commit=on_commit)
    from scoreboard.adapters.postgres_store import PostgresScoreStore

    return PostgresScoreStore(settings.database_url)


@contextlib.asynccontextmanager
async def running(components: Components) -> AsyncIterator[Components]:
    """Open the adapters, build the index and the live board, follow the bus; close on exit."""
    await components.store.open()
    await components.bus.open()
    try:
        index = components.index
        if _is_redis_index(index, components):
            await index.load(())  # marks the shared index built, even for an empty store
        await components.service.start()
        components._tasks.append(asyncio.create_task(_follow_bus(components.service)))
        await _listening(components)
        if _is_redis_index(index, components):
            components._tasks.append(asyncio.create_task(_keep_index_whole(components, index)))
        yield components
    finally:
        for task in components._tasks:
            task.cancel()
        await asyncio.gather(*components._tasks, return_exceptions=True)
        components._tasks.clear()
        await components.bus.close()
        await components.store.close()
        for close in components._closers:
            await close()


async def _listening(components: Components) -> None:
    """Serve only once the bus delivers other processes' board events here; otherwise a
    process could report healthy and miss the first changes made elsewhere."""
    if components.settings.redis_url is None:
        return
    from scoreboard.adapters.redis_bus import RedisBus

    bus = components.bus
    if isinstance(bus, RedisBus):
        try:
            await asyncio.wait_for(bus.listening(components.service.board), _SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            log.warning("serving before the board event subscription is confirmed")


async def _follow_bus(service: ScoreService) -> None:
    """Board events from every process go to this process's live board (and so its sockets).
    Our own events come back too and are dropped there by their ``seq``."""
    async for event in service.bus.subscribe(service.board):
        service.live.offer(event)


def _catch_up(service: ScoreService, shared: Board) -> None:
    if shared.seq > service.live.seq:
        log.warning(
            "live board behind the shared seq; resending the board",
            extra={"seq": service.live.seq, "shared_seq": shared.seq},
        )
        service.live.offer(BoardChanged(service.board, shared.seq, "", 0, shared.top))


def _is_redis_index(index: RankIndex, components: Components) -> TypeGuard[RedisRankIndex]:
    if components.settings.redis_url is None:
        return False  # and redis is never imported in embedded mode
    from scoreboard.adapters.redis_index import RedisRankIndex

    return isinstance(index, RedisRankIndex)


async def _keep_index_whole(components: Components, index: RedisRankIndex) -> None:
    """Rebuild the shared index from the store whenever it is found lost (flushed, restarted,
    or a write failed on the connection), and check for that every second even when idle.
    The service keeps serving meanwhile; the rebuilt board is announced like any change.

    The same once-a-second read compares this process's live board with the shared ``seq``:
    when bus messages were lost (pub/sub is at most once; a subscription that reconnects
    misses what was published meanwhile), the process takes the shared board and its sockets
    get it as a SNAPSHOT. Only a seq already shared one check earlier counts (an event may be
    on its way for a few milliseconds), so a page stays behind for at most about two seconds.
    """
    service = components.service
    seen_before = 0
    while True:
        lost = await index.wait_lost(_INDEX_CHECK_INTERVAL)
        try:
            if not lost:
                built, shared = await index.observe()
                if built:
                    # Behind a seq seen a whole check ago: its message was lost, not late.
                    if service.live.seq < seen_before:
                        _catch_up(service, shared)
                    seen_before = shared.seq
                    continue
            started = time.monotonic()
            board = await index.rebuild(components.store.iter_totals())
            users = await index.size()
        except Unavailable as exc:  # Redis or the store is down: try again shortly
            log.warning("rank index rebuild postponed: %s", exc)
            await asyncio.sleep(_INDEX_CHECK_INTERVAL)
            index.mark_lost()
            continue
        log.warning(
            "rank index rebuilt from the store",
            extra={"users": users, "seconds": round(time.monotonic() - started, 3)},
        )
        event = BoardChanged(service.board, board.seq, "", 0, board.top)
        service.live.offer(event)
        await components.bus.publish(event)
