"""Redis pub/sub bus (scaled mode): board events reach every process, this one included.

Each process holds **one** pub/sub connection, opened by :meth:`RedisBus.open`, and one reader
task that hands each message to the local subscribers' queues; any number of local subscribers
share it. The channel of a board is ``{prefix}{<board>}:events`` and the payload is
the event's ``to_bytes`` (``events.decode_event`` reads both kinds).

Pub/sub is at most once, which the bus contract allows: every event carries the whole top, so the
next one heals a lost one. A publish that fails on the connection is logged and dropped rather
than failing the update that caused it (that update is already committed). If the subscription's
connection drops, the reader reconnects with a growing delay and subscribes again; events
published meanwhile are lost, and the next board change brings every process up to date.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scoreboard.events import BoardChanged, BoardEvent, decode_event

log = logging.getLogger(__name__)

_QUEUE_LIMIT = 1024
# RuntimeError: a command sent on a connection whose transport the peer just reset can fail
# with uvloop's "unable to perform operation on <TCPTransport closed=True>" before redis-py
# notices; seen in tests/faults when Redis dies under load. Inside a Redis call it means only
# that.
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError, RuntimeError)
_RETRY_MAX = 2.0


class RedisBus:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "scoreboard:") -> None:
        self.client = client
        self.prefix = prefix
        self._queues: dict[str, set[asyncio.Queue[BoardEvent]]] = defaultdict(set)
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        # redis-py's PubSub connects on the first SUBSCRIBE; two at once would open two
        # connections and lose one of them.
        self._subscribing = asyncio.Lock()
        self._listening: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def channel(self, board: str) -> str:
        return f"{self.prefix}{{{board}}}:events"

    async def open(self) -> None:
        self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None

    async def publish(self, event: BoardEvent) -> None:
        try:
            await self.client.publish(self.channel(event.board), event.to_bytes())
        except _UNAVAILABLE as exc:
            what = event.seq if isinstance(event, BoardChanged) else "move"
            log.warning("board event %s not published: %s", what, exc)

    async def subscribe(self, board: str) -> AsyncIterator[BoardEvent]:
        pubsub = self._pubsub
        if pubsub is None:
            raise RuntimeError("RedisBus.open() has not run")
        queue: asyncio.Queue[BoardEvent] = asyncio.Queue(_QUEUE_LIMIT)
        first = not self._queues[board]
        self._queues[board].add(queue)
        try:
            if first:
                await self._subscribe(pubsub, board)
            while True:
                yield await queue.get()
        finally:
            self._queues[board].discard(queue)

    async def _subscribe(self, pubsub: aioredis.client.PubSub, board: str) -> None:
        async with self._subscribing:
            await self._subscribe_locked(pubsub, board)

    async def _subscribe_locked(self, pubsub: aioredis.client.PubSub, board: str) -> None:
        delay = 0.05
        while True:
            try:
                await pubsub.subscribe(self.channel(board))
                self._listening[board].set()
                break
            except _UNAVAILABLE as exc:
                log.warning("cannot subscribe to board events yet: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(pubsub))

    async def listening(self, board: str) -> None:
        """Return once a subscription to ``board`` has been sent to Redis: from then on, events
        published by any process reach this one (``bootstrap`` waits for it before serving)."""
        await self._listening[board].wait()

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        delay = 0.05
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
            except _UNAVAILABLE as exc:
                # redis-py reconnects and subscribes again on the next read; wait a bit first.
                log.warning("board event subscription lost, reconnecting: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            delay = 0.05
            if message is None or message.get("type") != "message":
                continue
            try:
                event = decode_event(message["data"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignored a malformed board event: %s", exc)
                continue
            for queue in tuple(self._queues.get(event.board, ())):
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(event)
