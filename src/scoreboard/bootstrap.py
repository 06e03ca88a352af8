"""The composition root: the only place that chooses adapters (by URL scheme) and wires them.

Routes and the command line receive a :class:`Components`; they never build adapters. Nothing
connects at import time: :func:`running` opens everything and closes it again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from scoreboard import applying
from scoreboard.auth.jwks import JwksKeys
from scoreboard.auth.keys import algorithms_for_key, load_public_key
from scoreboard.auth.secret import load_or_create_erasure_key, load_or_create_secret
from scoreboard.auth.verify import TokenVerifier
from scoreboard.boards import (
    DEFAULT_METRIC,
    Board,
    BoardsConfig,
    BoardsConfigError,
    Metric,
    load_config,
)
from scoreboard.broadcast import LiveBoard
from scoreboard.consistency import Consistency, Watch
from scoreboard.courier import Courier, resolve
from scoreboard.events import BoardChanged
from scoreboard.keeper import Keeper
from scoreboard.model import Top
from scoreboard.moderation import Moderation
from scoreboard.ports import Bus, Checkpoints, PointsWindow, RankIndex, SharedIndex, Store
from scoreboard.service import IndexFactory, ScoreService
from scoreboard.settings import Settings
from scoreboard.subscriptions import LiveViews
from scoreboard.web.guards.limits import UpdateLimits
from scoreboard.web.metrics import Metrics
from scoreboard.webhook_registry import WebhookRegistry
from scoreboard.webhooks import Notice, Policy

if TYPE_CHECKING:
    from limits.aio.storage import Storage

log = logging.getLogger(__name__)

# Redis answers in well under a millisecond; a call that takes this long means Redis is gone or
# hung. Every update makes Redis calls (index, limiter, bus), and everything in Redis is derived
# or fails open, so the update then goes on without it: a short deadline keeps a hung Redis from
# holding each update for seconds.
_REDIS_TIMEOUT = 0.5
_REDIS_CONNECTIONS = 64


class ConfigurationError(Exception):
    """The settings ask for something this build cannot do; the message is one line."""


@dataclass
class Components:
    settings: Settings
    store: Store
    bus: Bus
    service: ScoreService
    moderation: Moderation
    """The operators' actions (``/api/admin``)."""
    verifier: TokenVerifier
    update_limits: UpdateLimits
    """The update route's rate and velocity limits, over in-process memory, or Redis (shared
    between processes) when configured."""
    boards: BoardsConfig
    """The boards this process was configured with (``SCOREBOARD_BOARDS``, or the default
    one board); what it serves is settled with the database when it starts (``applying``)."""
    shared_indexes: dict[str, SharedIndex] = field(default_factory=dict)
    """The boards' indexes again when they are shared between processes (Redis), by board id,
    for what only such an index needs: rebuilds after a flush, and the readiness check."""
    webhooks: WebhookRegistry | None = None
    """The operators' webhooks (``/api/admin/webhooks``)."""
    courier: Courier | None = None
    """Sends the outbox's deliveries, in every serving process."""
    keeper: Keeper | None = None
    watch: Watch | None = None
    """The background consistency check, and the taking up of repairs made elsewhere."""
    views: LiveViews | None = None
    """The ``/ws`` views of this process's sockets."""
    checkpoints: Checkpoints | None = None
    """The store's checkpoints for reading the past (``None``: a store without them)."""
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def boards_of(settings: Settings) -> BoardsConfig:
    """The boards the settings describe: ``SCOREBOARD_BOARDS``'s file, or one board ``main``
    (the sum of ``points``, never reset). ``BoardsConfigError`` (one line) for a bad file, and
    for a ``SCOREBOARD_DEFAULT_BOARD`` that is not among the boards."""
    points = Metric(DEFAULT_METRIC, settings.min_delta, settings.max_delta, settings.velocity_limit)
    if settings.boards is None:
        config = BoardsConfig.default(
            settings.min_delta, settings.max_delta, settings.velocity_limit
        )
    else:
        config = load_config(settings.boards, points_defaults=points)
    if settings.default_board not in config.boards:
        raise BoardsConfigError(
            f"SCOREBOARD_DEFAULT_BOARD: there is no board '{settings.default_board}' "
            f"(boards: {', '.join(config.boards)})"
        )
    return config


def build(settings: Settings, *, metrics: Metrics | None = None) -> Components:
    """Choose the adapters. Supported combinations (``docs/deploy.md`` says why):

    - SQLite, no Redis: embedded mode, one process.
    - PostgreSQL, no Redis: one process (the memory index and bus are per process).
    - SQLite + Redis: one process (a SQLite file has one writer; useful to try Redis alone).
    - PostgreSQL + Redis: scaled mode, any number of processes on any number of machines.

    ``metrics`` (the app's) observe the store's commits and the limits' refusals.
    """
    boards = boards_of(settings)
    store = _build_store(settings, metrics.committed if metrics is not None else None)
    closers: list[Callable[[], Awaitable[None]]] = []
    shared: dict[str, SharedIndex] = {}
    indexes: IndexFactory
    bus: Bus
    limit_storage: Storage
    velocity_window: PointsWindow
    if settings.redis_url is not None:
        import redis.asyncio as aioredis
        from limits.aio.storage import RedisStorage

        from scoreboard.adapters.redis_bus import RedisBus
        from scoreboard.adapters.redis_index import RedisRankIndex
        from scoreboard.adapters.redis_points_window import RedisPointsWindow

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

        def redis_index(board: Board, live: LiveBoard) -> RankIndex:
            # The shared seq never falls below what this process has shown (see redis_index).
            index = RedisRankIndex(
                client,
                prefix=settings.redis_prefix,
                board=board.id,
                order=board.order,
                seq_floor=lambda: live.seq,
            )
            shared[board.id] = index
            return index

        indexes = redis_index
        bus = RedisBus(client, prefix=settings.redis_prefix)
        velocity_window = RedisPointsWindow(client, prefix=f"{settings.redis_prefix}velocity:")
        # The limiter shares the client's connection pool (closed with it).
        limit_storage = RedisStorage(
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

        def memory_index(board: Board, live: LiveBoard) -> RankIndex:
            return MemoryRankIndex(order=board.order)

        indexes = memory_index
        bus = MemoryBus()
        limit_storage = LocalStorage()
        velocity_window = MemoryPointsWindow()
    service = ScoreService(
        store,
        bus,
        indexes,
        default_board=settings.default_board,
        on_fan_out=metrics.fanned_out if metrics is not None else None,
    )
    views = LiveViews(service)
    verifier = verifier_from_settings(settings)
    limits = UpdateLimits.from_settings(settings, limit_storage, velocity_window, metrics)

    async def forget_limits(user_id: str) -> None:
        config = service.config
        await limits.forget(user_id, config.metrics if config is not None else [DEFAULT_METRIC])

    async def forget_tokens(user_id: str) -> None:
        verifier.forget(user_id)

    moderation = Moderation(
        service,
        store,
        erasure_key=load_or_create_erasure_key(settings),
        forgetters=[forget_limits, forget_tokens, store.forget],
    )
    policy = webhook_policy(settings)
    courier = Courier(
        store,
        policy,
        poll=settings.webhook_poll,
        on_attempt=metrics.webhook_attempted if metrics is not None else _ignore_outcome,
    )

    async def notify(notice: Notice) -> None:
        # After the commit that made the event: a store that fails here loses this one
        # notice (logged), never the update (docs/webhooks.md, "Guarantees").
        try:
            if await store.enqueue(notice):
                courier.poke()
        except Exception:
            log.exception("webhook event not queued", extra={"key": notice.key})

    service.notify = notify
    moderation.on_queued = courier.poke
    checkpoints = store if isinstance(store, Checkpoints) else None
    return Components(
        settings,
        store,
        bus,
        service,
        moderation,
        verifier,
        limits,
        boards,
        shared_indexes=shared,
        webhooks=WebhookRegistry(store, policy, resolve, on_queued=courier.poke),
        courier=courier,
        keeper=Keeper(
            service,
            bus,
            shared,
            views=views,
            checkpoints=checkpoints,
            checkpoint_interval=settings.checkpoint_interval,
            checkpoint_rows=settings.checkpoint_rows,
        ),
        views=views,
        checkpoints=checkpoints,
        watch=Watch(
            service,
            store,
            settings.consistency_sample,
            on_difference=metrics.consistency_errors.inc if metrics is not None else _ignore,
            shared=shared,
        ),
        _closers=closers,
    )


def _ignore_outcome(outcome: str) -> None:
    pass


def _ignore(n: int) -> None:
    return None


def webhook_policy(settings: Settings) -> Policy:
    hosts = {h.strip().lower() for h in settings.webhook_allow_hosts.split(",") if h.strip()}
    return Policy(
        allow_hosts=frozenset(hosts),
        retry_window=timedelta(hours=settings.webhook_retry_hours),
        retry_base=settings.webhook_retry_base,
        lease=settings.webhook_lease,
    )


def store_of(settings: Settings) -> Store:
    """The store alone, not opened, for the command line (``boards``, ``export``, ``keys``,
    ``verify``): an operator's command waits out a busy server instead of failing within the
    deadline a request has."""
    if settings.is_sqlite:
        return _build_store(settings, None)
    from scoreboard.adapters.postgres_store import COMMAND_CALL_TIMEOUT, PostgresScoreStore

    size = settings.database_pool_size
    return PostgresScoreStore(
        settings.database_url,
        min_size=min(2, size),
        max_size=size,
        call_timeout=COMMAND_CALL_TIMEOUT,
    )


@contextlib.asynccontextmanager
async def consistency_of(
    settings: Settings, *, settle: float | None = None
) -> AsyncIterator[Consistency]:
    """Verify and repair (``scoreboard verify``, ``repair``) on the store and, when Redis is
    configured, on the boards' shared rank indexes, announcing a top a repair changed on the
    bus as an update would. ``Unavailable``, or ``NotFound`` when no configuration is stored."""
    from scoreboard.consistency import SETTLE
    from scoreboard.errors import NotFound

    store = store_of(settings)
    await store.open()
    closers: list[Callable[[], Awaitable[None]]] = [store.close]
    try:
        config, _ = await store.load_config()
        if config is None:
            raise NotFound("no boards configuration is stored yet: start the server once first")
        index_of = None
        announce = None
        if settings.redis_url is not None:
            import redis.asyncio as aioredis

            from scoreboard.adapters.redis_bus import RedisBus
            from scoreboard.adapters.redis_index import RedisRankIndex

            client = aioredis.Redis.from_url(
                settings.redis_url, socket_timeout=5.0, socket_connect_timeout=5.0
            )
            closers.append(client.aclose)
            bus = RedisBus(client, prefix=settings.redis_prefix)
            prefix = settings.redis_prefix

            def redis_index(board: Board, period: str) -> RankIndex:
                return RedisRankIndex(
                    client, prefix=prefix, board=board.id, order=board.order, period=period
                )

            async def publish(board: Board, top: Top, user_id: str, score: int) -> None:
                event = BoardChanged(board.id, top.seq, user_id, score, top.top, period=top.period)
                await bus.publish(event)

            index_of, announce = redis_index, publish
        yield Consistency(
            store,
            config,
            index_of=index_of,
            announce=announce,
            settle=SETTLE if settle is None else settle,
        )
    finally:
        for close in reversed(closers):
            await close()


async def settle_boards(settings: Settings) -> BoardsConfig:
    """Settle the boards file with the database as a starting process will (``applying``), so
    that ``serve`` refuses with one line before the server starts: a file that would
    reinterpret a board's history, or, in scaled mode, one that differs from the stored one.
    ``applying.ConfigurationRefused`` or ``BoardsConfigError``."""
    store = store_of(settings)
    await store.open()
    try:
        return await applying.settle(store, boards_of(settings), may_change=not settings.is_scaled)
    finally:
        await store.close()


def _build_store(settings: Settings, on_commit: Callable[[int], None] | None) -> Store:
    if settings.is_sqlite:
        from scoreboard.adapters.sqlite_store import SqliteScoreStore, sqlite_path

        return SqliteScoreStore(sqlite_path(settings.database_url), on_commit=on_commit)
    from scoreboard.adapters.postgres_store import PostgresScoreStore

    size = settings.database_pool_size
    return PostgresScoreStore(settings.database_url, min_size=min(2, size), max_size=size)


@contextlib.asynccontextmanager
async def running(components: Components) -> AsyncIterator[Components]:
    """Open the adapters, build the index and the live board, start the keeper; close on exit."""
    await components.store.open()
    await components.bus.open()
    try:
        # Embedded mode applies its file; scaled mode serves what is stored (see applying).
        config = await applying.settle(
            components.store, components.boards, may_change=not components.settings.is_scaled
        )
        await components.service.start(config)
        if components.keeper is not None:
            await components.keeper.start(await components.store.config_version())
        if components.watch is not None:
            await components.watch.start()
        if components.courier is not None:
            await components.courier.start()
        yield components
    finally:
        if components.courier is not None:
            await components.courier.stop()
        if components.watch is not None:
            await components.watch.stop()
        await components.moderation.stop()
        if components.keeper is not None:
            await components.keeper.stop()
        await components.bus.close()
        await components.store.close()
        for close in components._closers:
            await close()


def verifier_from_settings(settings: Settings) -> TokenVerifier:
    """The verifier the settings describe. ``ValueError`` (one line) for a key that cannot be
    used; the JWKS URL is not fetched here but when the first token needs it."""
    algorithms = settings.token_algorithms
    public_key = load_public_key(settings.jwt_public_key) if settings.jwt_public_key else None
    if public_key is not None:
        fitting = algorithms_for_key(public_key)
        if settings.jwt_algorithms is None:  # derived: the algorithm of the key's kind
            algorithms = fitting
        misfits = sorted(set(algorithms) - set(fitting) - {"HS256"})
        if misfits:
            raise ValueError(
                f"SCOREBOARD_JWT_PUBLIC_KEY: the key does not fit {', '.join(misfits)}"
            )
    jwks = JwksKeys(settings.jwks_url) if settings.jwks_url else None
    secret = load_or_create_secret(settings) if "HS256" in algorithms else None
    return TokenVerifier(
        secret,
        public_key=public_key,
        jwks=jwks,
        algorithms=algorithms,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway=settings.jwt_leeway,
        max_ttl=settings.jwt_max_ttl,
    )
