"""Periods over time, on the in-memory adapters with a clock the test moves: the keeper starts a
board's next period at its boundary without any update, takes up a manual rollover and a new
configuration made by another process (through the shared store), and every update lands in the
period in which it was committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scoreboard import applying
from scoreboard.adapters.memory_bus import MemoryBus
from scoreboard.adapters.memory_store import MemoryScoreStore
from scoreboard.boards import Board, BoardsConfig, Metric
from scoreboard.errors import NotFound, Unavailable
from scoreboard.events import EncodedBoard
from scoreboard.keeper import Keeper
from scoreboard.model import ScoreUpdate
from scoreboard.service import ScoreService
from tests.support.core import started_service

POINTS = Metric("points", 1, 1000, None)
CONFIG = BoardsConfig(
    {"points": POINTS},
    {
        "main": Board("main", "All time"),
        "today": Board("today", "Today", reset="daily", timezone="Europe/Berlin"),
        "season": Board("season", "Season", reset="manual"),
    },
)
CHECK = 0.02
"""The keeper's check interval here: short, so that a test waits a fraction of a second."""


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass(eq=False)
class Recorder:
    boards: list[EncodedBoard] = field(default_factory=list)
    told_to_go: int = 0

    def deliver(self, board: EncodedBoard) -> None:
        self.boards.append(board)

    def go_away(self) -> None:
        self.told_to_go += 1

    def started(self) -> list[tuple[str, str | None]]:
        return [
            (b.event.period, b.event.previous) for b in self.boards if b.event.previous is not None
        ]


async def until(condition: object, seconds: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.005)


@dataclass
class Process:
    service: ScoreService
    keeper: Keeper
    bus: MemoryBus


# Berlin: 23:00 UTC is midnight in winter.
BEFORE_MIDNIGHT = datetime(2026, 11, 30, 22, 59, 59, 500_000, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(BEFORE_MIDNIGHT)


@pytest.fixture
def store(clock: Clock) -> MemoryScoreStore:
    return MemoryScoreStore(clock)


@pytest.fixture
async def process(store: MemoryScoreStore, clock: Clock) -> AsyncIterator[Process]:
    async with running(store, clock) as value:
        yield value


class running:
    """A process: a service on ``store`` with its keeper's loops running."""

    def __init__(self, store: MemoryScoreStore, clock: Clock) -> None:
        self.store, self.clock = store, clock

    async def __aenter__(self) -> Process:
        bus = MemoryBus()
        service = await started_service(self.store, CONFIG, clock=self.clock, bus=bus)
        self.keeper = Keeper(service, bus, check_interval=CHECK, clock=self.clock)
        await self.keeper.start(await self.store.config_version())
        return Process(service, self.keeper, bus)

    async def __aexit__(self, *_: object) -> None:
        await self.keeper.stop()


def watch(service: ScoreService, board: str) -> Recorder:
    recorder = Recorder()
    service.live_board(board).subscribe(recorder)
    return recorder


def scores(place: object) -> object:
    return None if place is None else (place.period, place.score)  # type: ignore[attr-defined]


async def test_the_next_day_starts_at_local_midnight_without_any_update(
    process: Process, clock: Clock
) -> None:
    service = process.service
    await service.update(ScoreUpdate("alice", 10))
    today, main = watch(service, "today"), watch(service, "main")
    published = asyncio.create_task(anext(aiter(process.bus.subscribe("today"))))
    await asyncio.sleep(0)  # subscribed
    assert service.next_boundary() == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    await asyncio.sleep(5 * CHECK)
    assert today.started() == []  # half a second before midnight: nothing yet
    clock.now = datetime(2026, 11, 30, 23, 0, 0, 1000, tzinfo=UTC)
    await until(lambda: today.started())
    assert today.started() == [("2026-12-01", "2026-11-30")]
    started = today.boards[-1]
    assert started.event.rankings == ()
    assert started.board.update is not None
    assert started.board.update.startswith('{"type":"PERIOD_STARTED"')
    assert started.seed.update == started.board.update  # /ws/scoreboard gets the same message
    # The same event went on the bus, for the other processes' sockets.
    event = await asyncio.wait_for(published, 1)
    assert (event.period, event.previous) == ("2026-12-01", "2026-11-30")
    assert main.started() == []  # all time never ends
    assert service.served("today").period.id == "2026-12-01"
    assert service.next_boundary() == datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    # Yesterday is an archive; today starts empty; all time goes on.
    period, archive = await service.top("today", "2026-11-30")
    assert (period.id, [(e.user_id, e.score) for e in archive]) == ("2026-11-30", [("alice", 10)])
    assert (await service.top("today"))[1] == ()
    after = await service.update(ScoreUpdate("alice", 5))
    assert scores(after.on("today")) == ("2026-12-01", 5)
    assert scores(after.on("main")) == ("all", 15)


async def test_an_update_committed_after_the_boundary_counts_in_the_new_period(
    store: MemoryScoreStore, clock: Clock
) -> None:
    """Before the process's timer fires: the commit's clock decides, and the index follows."""
    service = await started_service(store, CONFIG, clock=clock)
    await service.update(ScoreUpdate("alice", 10))
    clock.now = datetime(2026, 11, 30, 23, 0, 0, 5, tzinfo=UTC)
    answer = await service.update(ScoreUpdate("bob", 7))
    assert scores(answer.on("today")) == ("2026-12-01", 7)
    assert answer.on("today").rank == 1  # type: ignore[union-attr]
    await service.roll_clock()
    assert service.served("today").period.id == "2026-12-01"
    assert [(e.user_id, e.score) for e in (await service.top("today"))[1]] == [("bob", 7)]
    old = (await service.top("today", "2026-11-30"))[1]
    assert [(e.user_id, e.score) for e in old] == [("alice", 10)]
    await service.roll_clock()  # nothing more to start
    assert [(e.user_id, e.score) for e in (await service.top("today"))[1]] == [("bob", 7)]


async def test_a_day_of_25_hours_ends_at_local_midnight(store: MemoryScoreStore) -> None:
    """The night Berlin leaves summer time (2026-10-25): the day lasts 25 hours."""
    clock = Clock(datetime(2026, 10, 25, 12, 0, tzinfo=UTC))
    service = await started_service(MemoryScoreStore(clock), CONFIG, clock=clock)
    period = service.served("today").period
    assert period.id == "2026-10-25"
    assert period.starts_at == datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    assert service.next_boundary() == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)


async def test_a_manual_rollover_by_another_process_is_taken_up(
    process: Process, store: MemoryScoreStore
) -> None:
    """``scoreboard boards rollover`` writes the store; every running process follows."""
    service = process.service
    await service.update(ScoreUpdate("alice", 10))
    season = watch(service, "season")
    closed, opened = await store.rollover(CONFIG.boards["season"])
    assert (closed.id, opened.id) == ("1", "2")
    await until(lambda: season.started())
    assert season.started() == [("2", "1")]
    assert service.served("season").period.id == "2"
    assert (await service.top("season"))[1] == ()
    assert [e.score for e in (await service.top("season", "1"))[1]] == [10]


async def test_a_manual_rollover_in_this_process_reaches_the_others(
    store: MemoryScoreStore, clock: Clock
) -> None:
    async with running(store, clock) as one, running(store, clock) as two:
        first, second = watch(one.service, "season"), watch(two.service, "season")
        await one.service.rollover("season")
        await until(lambda: first.started())  # this process's own sockets: the next turn
        assert first.started() == [("2", "1")]
        await until(lambda: second.started())
        assert second.started() == [("2", "1")]
        assert two.service.served("season").period.id == "2"


async def test_a_new_configuration_is_taken_up_boards_added_and_removed(
    process: Process, store: MemoryScoreStore
) -> None:
    service = process.service
    await service.update(ScoreUpdate("alice", 10))
    await service.update(ScoreUpdate("bob", 30))
    today = watch(service, "today")
    weekly = Board("weekly", "This week", reset="weekly", timezone="Europe/Berlin")
    config = BoardsConfig(
        CONFIG.metrics,
        {"main": CONFIG.boards["main"], "weekly": weekly, "season": CONFIG.boards["season"]},
    )
    await applying.apply(store, config)
    await until(lambda: "weekly" in service.boards and "today" not in service.boards)
    # The new board is filled from the stored events of its current period (this week).
    assert [(e.user_id, e.score) for e in (await service.top("weekly"))[1]] == [
        ("bob", 30),
        ("alice", 10),
    ]
    # The removed board's sockets are told to go; its reads are 404; its data stays.
    assert today.told_to_go == 1
    with pytest.raises(NotFound):
        service.served("today")
    answer = await service.update(ScoreUpdate("alice", 1))
    assert {b.board for b in answer.boards} == {"main", "weekly", "season"}
    # Added back: filled again from the events of its period, the one it missed included.
    await applying.apply(store, CONFIG)
    await until(lambda: "today" in service.boards)
    assert [(e.user_id, e.score) for e in (await service.top("today"))[1]] == [
        ("bob", 30),
        ("alice", 11),
    ]


async def test_a_day_closed_by_the_clock_is_a_webhook_event_with_its_final_top(
    process: Process, clock: Clock
) -> None:

    from scoreboard.webhooks import Notice

    service = process.service
    told: list[Notice] = []

    async def notify(notice: Notice) -> None:
        told.append(notice)

    service.notify = notify
    await service.update(ScoreUpdate("alice", 10))
    await service.update(ScoreUpdate("bob", 20))
    entered = [(n.event, n.data["board"], n.user_id) for n in told]
    assert ("top.entered", "today", "alice") in entered
    assert ("top.entered", "today", "bob") in entered
    told.clear()
    clock.now += timedelta(seconds=1)  # midnight in Berlin

    await until(lambda: any(n.event == "period.closed" for n in told))
    (closed,) = [n for n in told if n.event == "period.closed"]
    assert closed.key == "period.closed:today:2026-11-30"
    assert closed.data["period"] == "2026-11-30"
    assert [(r["rank"], r["user_id"], r["score"]) for r in closed.data["top"]] == [
        (1, "bob", 20),
        (2, "alice", 10),
    ]


async def test_a_day_that_ended_while_no_process_ran_is_closed_when_one_starts(
    store: MemoryScoreStore, clock: Clock
) -> None:
    """Down across midnight: the process that starts next says the day closed, once; a second
    start in the same day says nothing more (the current day is then the newest recorded)."""
    from scoreboard.adapters.memory_index import MemoryRankIndex
    from scoreboard.webhooks import Notice

    async with running(store, clock) as process:
        await process.service.update(ScoreUpdate("alice", 10))
        await process.service.update(ScoreUpdate("bob", 20))
    clock.now += timedelta(hours=2)  # 00:59 in Berlin: the server was down at midnight

    async def restart() -> list[Notice]:
        told: list[Notice] = []

        async def notify(notice: Notice) -> None:
            told.append(notice)

        service = ScoreService(
            store, MemoryBus(), lambda b, live: MemoryRankIndex(order=b.order), clock=clock
        )
        service.notify = notify  # as the composition root sets it, before start
        await service.start(await applying.settle(store, CONFIG, may_change=False))
        return told

    told = await restart()
    (closed,) = [n for n in told if n.event == "period.closed"]
    assert closed.key == "period.closed:today:2026-11-30"
    assert [(r["rank"], r["user_id"], r["score"]) for r in closed.data["top"]] == [
        (1, "bob", 20),
        (2, "alice", 10),
    ]
    assert [n for n in await restart() if n.event == "period.closed"] == []


@dataclass
class Taken:
    """A fake ``Checkpoints`` (the memory store has none): what the keeper asked for."""

    turns: list[list[tuple[str, str]]] = field(default_factory=list)
    fail: bool = False

    async def take_checkpoints(self, boards: Any, size: int) -> int:
        self.turns.append([(board.id, period.id) for board, period in boards])
        if self.fail:
            raise Unavailable("the store is down")
        return len(boards)

    async def replay(self, board: Any, period: Any, until: Any) -> None:
        return None


async def test_the_keeper_checkpoints_every_served_boards_current_period(
    store: MemoryScoreStore, clock: Clock
) -> None:
    """Each turn names every served board with its current period, and a failing turn is only
    logged: the next one comes all the same."""
    bus = MemoryBus()
    service = await started_service(store, CONFIG, clock=clock, bus=bus)
    taken = Taken(fail=True)
    keeper = Keeper(service, bus, clock=clock, checkpoints=taken, checkpoint_interval=CHECK)
    await keeper.start(await store.config_version())
    try:
        await until(lambda: len(taken.turns) >= 2)
    finally:
        await keeper.stop()
    assert sorted(taken.turns[-1]) == [("main", "all"), ("season", "1"), ("today", "2026-11-30")]
    taken.fail = False
    assert await keeper.take_checkpoints() == 3
