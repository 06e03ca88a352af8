"""The composition root: the only place that chooses adapters (by URL scheme) and wires them.

Routes and the command line receive a :class:`Components`; they never build adapters. Nothing
connects at import time: :func:`running` opens everything and closes it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from scoreboard.ports import Bus, RankIndex, ScoreStore
from scoreboard.service import ScoreService
from scoreboard.settings import Settings
from scoreboard.tokens import TokenVerifier, load_or_create_secret

log = logging.getLogger(__name__)


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
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)


def build(settings: Settings) -> Components:
    store = _build_store(settings)
    from scoreboard.adapters.memory_bus import MemoryBus
    from scoreboard.adapters.memory_index import MemoryRankIndex

    index: RankIndex = MemoryRankIndex()
    bus: Bus = MemoryBus()
    service = ScoreService(
        store, index, bus, min_delta=settings.min_delta, max_delta=settings.max_delta
    )
    verifier = TokenVerifier(
        load_or_create_secret(settings),
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    return Components(settings, store, index, bus, service, verifier)


def _build_store(settings: Settings) -> ScoreStore:
    if settings.is_sqlite:
        from scoreboard.adapters.sqlite_store import SqliteScoreStore, sqlite_path

        return SqliteScoreStore(sqlite_path(settings.database_url))
    raise ConfigurationError(
        "SCOREBOARD_DATABASE_URL: PostgreSQL is not supported by this build yet; use sqlite:///PATH"
    )


@contextlib.asynccontextmanager
async def running(components: Components) -> AsyncIterator[Components]:
    """Open the adapters, build the index and the live board, follow the bus; close on exit."""
    await components.store.open()
    await components.bus.open()
    try:
        await components.service.start()
        components._tasks.append(asyncio.create_task(_follow_bus(components.service)))
        yield components
    finally:
        for task in components._tasks:
            task.cancel()
        await asyncio.gather(*components._tasks, return_exceptions=True)
        components._tasks.clear()
        await components.bus.close()
        await components.store.close()


async def _follow_bus(service: ScoreService) -> None:
    """Board events from every process go to this process's live board (and so its sockets).
    Our own events come back too and are dropped there by their ``seq``."""
    async for event in service.bus.subscribe(service.board):
        service.live.offer(event)
