"""The Bus contract, over memory and Redis pub/sub.

The bus is at most once and a subscription starts "from now on", so a test cannot know the exact
moment a subscriber listens: it publishes a probe until the subscriber has one, then the events
it asserts on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from scoreboard.events import BoardChanged
from scoreboard.model import RankedEntry
from scoreboard.ports import Bus
from tests.support.timing import async_wait_until


def event(seq: int, board: str = "main") -> BoardChanged:
    return BoardChanged(
        board, seq, "alice", seq * 10, (RankedEntry(1, "alice", "Alice", seq * 10),)
    )


class Listener:
    """Collects what one subscription receives, in a task."""

    def __init__(self, bus: Bus, board: str = "main") -> None:
        self.got: list[BoardChanged] = []
        self._iterator: AsyncIterator[BoardChanged] = bus.subscribe(board)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for received in self._iterator:
            self.got.append(received)

    def seqs(self) -> list[int]:
        return [e.seq for e in self.got if e.seq > 0]

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until_listening(publisher: Bus, *listeners: Listener) -> None:
    """Publish probes (seq 0) until every listener has received one."""

    async def all_heard() -> bool:
        if all(any(e.seq == 0 for e in listener.got) for listener in listeners):
            return True
        await publisher.publish(event(0))
        return False

    await async_wait_until(all_heard, 5, "the subscriptions to start")


async def open_bus(make: Callable[[], Bus]) -> Bus:
    bus = make()
    await bus.open()
    return bus


async def test_an_event_reaches_the_subscriber_whole(bus_factory: Callable[[], Bus]) -> None:
    bus = await open_bus(bus_factory)
    listener = Listener(bus)
    try:
        await until_listening(bus, listener)
        sent = event(7)
        await bus.publish(sent)
        await async_wait_until(lambda: _true(listener.seqs() == [7]), 5, "event 7")
        assert listener.got[-1] == sent
    finally:
        await listener.stop()


async def test_every_subscriber_gets_every_event_in_order(bus_factory: Callable[[], Bus]) -> None:
    bus = await open_bus(bus_factory)
    listeners = [Listener(bus) for _ in range(3)]
    try:
        await until_listening(bus, *listeners)
        for seq in range(1, 51):
            await bus.publish(event(seq))
        for listener in listeners:
            await async_wait_until(
                lambda heard=listener: _true(len(heard.seqs()) == 50), 5, "50 events"
            )
            assert listener.seqs() == list(range(1, 51))
    finally:
        for listener in listeners:
            await listener.stop()


async def test_events_of_another_board_are_not_delivered(bus_factory: Callable[[], Bus]) -> None:
    bus = await open_bus(bus_factory)
    main = Listener(bus, "main")
    weekly = Listener(bus, "weekly")
    try:
        await until_listening(bus, main)
        await bus.publish(event(1, board="weekly"))
        await bus.publish(event(2, board="main"))
        await async_wait_until(lambda: _true(main.seqs() == [2]), 5, "the main board's event")
        await async_wait_until(lambda: _true(weekly.seqs() == [1]), 5, "the weekly board's event")
        assert all(e.board == "weekly" for e in weekly.got)
    finally:
        await main.stop()
        await weekly.stop()


async def test_a_publish_reaches_every_process(bus_factory: Callable[[], Bus]) -> None:
    """For Redis, three buses are three processes' connections; for memory, the one bus."""
    buses = [await open_bus(bus_factory) for _ in range(3)]
    listeners = [Listener(bus) for bus in buses]
    try:
        await until_listening(buses[0], *listeners)
        await buses[2].publish(event(3))
        for listener in listeners:
            await async_wait_until(lambda heard=listener: _true(heard.seqs() == [3]), 5, "event 3")
    finally:
        for listener in listeners:
            await listener.stop()


async def _true(value: bool) -> bool:
    return value
