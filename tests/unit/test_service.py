"""The service over the in-memory adapters: the order of an update and what it publishes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from scoreboard import applying
from scoreboard.adapters.memory_bus import MemoryBus
from scoreboard.adapters.memory_index import MemoryRankIndex
from scoreboard.adapters.memory_store import MemoryScoreStore
from scoreboard.boards import Board, BoardsConfig
from scoreboard.errors import ActionConflict, InvalidRequest, ScoreOutOfRange, Unavailable
from scoreboard.events import BoardChanged, EncodedBoard
from scoreboard.model import MAX_SCORE, HistoryQuery, ScoreUpdate, Standing, Top
from scoreboard.service import ScoreService
from tests.support.core import ONE_BOARD, on_main, started_service


class Recorder:
    """A live-board subscriber that keeps every board it is handed."""

    def __init__(self) -> None:
        self.boards: list[EncodedBoard] = []

    def deliver(self, board: EncodedBoard) -> None:
        self.boards.append(board)


async def make_service(store: MemoryScoreStore | None = None) -> ScoreService:
    return await started_service(store)


def top(service: ScoreService) -> list[tuple[str, int]]:
    return [(e.user_id, e.score) for e in service.current_board().event.rankings]


async def test_update_returns_total_and_rank() -> None:
    service = await make_service()
    await service.update(ScoreUpdate("alice", 10))
    result = await service.update(ScoreUpdate("bob", 5))
    assert on_main(result) == (5, 2)
    result = await service.update(ScoreUpdate("bob", 6))
    assert on_main(result) == (11, 1)


async def test_ties_go_to_who_reached_the_score_first() -> None:
    service = await make_service()
    await service.update(ScoreUpdate("zed", 7))
    await service.update(ScoreUpdate("amy", 7))
    assert top(service) == [("zed", 7), ("amy", 7)]
    await service.update(ScoreUpdate("zed", 1))
    await service.update(ScoreUpdate("amy", 1))
    assert top(service) == [("zed", 8), ("amy", 8)]


async def turn() -> None:
    """Let the event loop turn once: the live board fans out once per turn."""
    await asyncio.sleep(0)


async def test_each_top_change_gets_the_next_seq_and_reaches_subscribers() -> None:
    service = await make_service()
    recorder = Recorder()
    service.live.subscribe(recorder)
    for i in range(3):
        await service.update(ScoreUpdate(f"u{i}", 10 + i))
        await turn()
    assert [b.event.seq for b in recorder.boards] == [1, 2, 3]
    last = recorder.boards[-1]
    assert last.update is not None
    assert '"SCORE_UPDATE"' in last.update
    assert [e.user_id for e in last.event.rankings] == ["u2", "u1", "u0"]


async def test_updates_below_the_top_10_publish_nothing() -> None:
    service = await make_service()
    for i in range(10):
        await service.update(ScoreUpdate(f"top{i}", 100 + i))
    await turn()  # their fan-out, before the recorder listens
    recorder = Recorder()
    service.live.subscribe(recorder)
    result = await service.update(ScoreUpdate("minnow", 1))
    await turn()
    assert on_main(result)[1] == 11
    assert recorder.boards == []
    # ...but climbing into the top 10 does.
    await service.update(ScoreUpdate("minnow", 200))
    await turn()
    assert [b.event.rankings[0].user_id for b in recorder.boards] == ["minnow"]


async def test_retry_with_same_action_adds_nothing_and_returns_current_result() -> None:
    store = MemoryScoreStore()
    service = await make_service(store)
    first = await service.update(ScoreUpdate("alice", 5, action_id="a1"))
    await service.update(ScoreUpdate("alice", 3))
    again = await service.update(ScoreUpdate("alice", 5, action_id="a1"))
    assert on_main(first)[0] == 5
    assert on_main(again)[0] == 8  # the current total, not 13
    assert store.event_count == 2


async def test_same_action_with_another_delta_is_a_conflict_and_changes_nothing() -> None:
    store = MemoryScoreStore()
    service = await make_service(store)
    await service.update(ScoreUpdate("alice", 5, action_id="a1"))
    board = service.current_board()
    with pytest.raises(ActionConflict):
        await service.update(ScoreUpdate("alice", 6, action_id="a1"))
    assert store.event_count == 1
    assert service.current_board() is board


@pytest.mark.parametrize(
    "update",
    [
        ScoreUpdate("alice", 0),
        ScoreUpdate("alice", 1001),
        ScoreUpdate("alice", -1),
        ScoreUpdate("bad id", 5),
        ScoreUpdate("alice", 5, action_id=""),
        ScoreUpdate("alice", 5, action_id="line\nbreak"),
    ],
)
async def test_invalid_updates_change_nothing(update: ScoreUpdate) -> None:
    store = MemoryScoreStore()
    service = await make_service(store)
    with pytest.raises(InvalidRequest):
        await service.update(update)
    assert store.event_count == 0
    assert top(service) == []


async def test_start_rebuilds_the_board_from_the_store() -> None:
    store = MemoryScoreStore()
    first = await make_service(store)
    await first.update(ScoreUpdate("alice", 5))
    await first.update(ScoreUpdate("bob", 9))
    second = await make_service(store)  # a restart: new index, same store
    assert top(second) == [("bob", 9), ("alice", 5)]
    assert (await second.served("main").index.rank("alice")) == 2


async def test_bus_events_from_other_processes_reach_the_live_board() -> None:
    service = await make_service()
    recorder = Recorder()
    service.live.subscribe(recorder)
    remote = BoardChanged("main", 7, "x", 3, ())
    assert service.live.offer(remote)
    assert not service.live.offer(remote)  # a duplicate is dropped by seq
    await turn()
    assert [b.event.seq for b in recorder.boards] == [7]


async def test_changes_in_one_loop_turn_reach_subscribers_as_one_fan_out_of_the_newest() -> None:
    service = await make_service()
    recorder = Recorder()
    service.live.subscribe(recorder)
    fan_outs: list[int] = []
    service.live.on_fan_out = lambda seconds, changes: fan_outs.append(changes)
    for i in range(3):  # the in-memory store never suspends: one turn for all three
        await service.update(ScoreUpdate(f"u{i}", 10 + i))
    assert recorder.boards == []  # nobody waited for a fan-out, the updates included
    assert service.current_board().event.seq == 3  # ...but reads see the newest board at once
    await turn()
    assert [b.event.seq for b in recorder.boards] == [3]
    assert fan_outs == [3]
    await service.update(ScoreUpdate("u0", 100))
    await turn()
    assert [b.event.seq for b in recorder.boards] == [3, 4]
    assert fan_outs == [3, 1]


async def test_concurrent_updates_of_one_user_all_count() -> None:
    service = await make_service()
    await asyncio.gather(*(service.update(ScoreUpdate("alice", 1)) for _ in range(200)))
    assert top(service) == [("alice", 200)]


async def test_history_lists_events_with_running_totals_and_buckets() -> None:
    start = datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    now = [start]
    store = MemoryScoreStore(clock=lambda: now[0])
    service = await make_service(store)
    for delta, minutes in zip((1, 2, 3, 4), (0, 30, 70, 1500), strict=True):
        now[0] = start + timedelta(minutes=minutes)
        await service.update(ScoreUpdate("alice", delta, action_id=f"a{delta}"))
    events = await service.history(HistoryQuery("alice", limit=10))
    assert [(e.delta, e.score, e.action_id) for e in events] == [
        (1, 1, "a1"),
        (2, 3, "a2"),
        (3, 6, "a3"),
        (4, 10, "a4"),
    ]
    second = await service.history(
        HistoryQuery(
            "alice", since=None, until=None, after=(events[1].at, events[1].event_id), limit=10
        )
    )
    assert [e.delta for e in second] == [3, 4]
    hours = await service.history_buckets(HistoryQuery("alice", bucket="hour", limit=9))
    assert [(p.at.day, p.at.hour, p.score) for p in hours] == [(1, 10, 3), (1, 11, 6), (2, 11, 10)]
    days = await service.history_buckets(HistoryQuery("alice", bucket="day", limit=9))
    assert [(p.at.day, p.score) for p in days] == [(1, 6), (2, 10)]
    late = await service.history_buckets(
        HistoryQuery(
            "alice", bucket="day", since=datetime(2026, 1, 2, tzinfo=UTC), until=None, limit=9
        )
    )
    assert [(p.at.day, p.score) for p in late] == [(2, 10)]


async def test_a_history_window_that_ends_before_it_starts_is_empty() -> None:
    service = await make_service()
    await service.update(ScoreUpdate("alice", 1))
    at = datetime.now(UTC) - timedelta(days=1)
    for since, until in ((at, at), (at + timedelta(seconds=1), at)):
        assert (
            await service.history(
                HistoryQuery("alice", since=since, until=until, after=None, limit=9)
            )
            == []
        )
        assert (
            await service.history_buckets(
                HistoryQuery("alice", bucket="hour", since=since, until=until, limit=9)
            )
            == []
        )
    with pytest.raises(InvalidRequest):  # a bad bucket is still a bad request
        await service.history_buckets(
            HistoryQuery("alice", bucket="week", since=at, until=at, limit=9)
        )


class DownIndex(MemoryRankIndex):
    """A rank index whose backend has gone away (as Redis can)."""

    down = False

    async def apply_and_rank(
        self, period: str, standing: Standing
    ) -> tuple[Top | None, int | None]:
        if self.down:
            raise Unavailable("the rank index is unavailable")
        return await super().apply_and_rank(period, standing)

    async def rank(self, user_id: str) -> int | None:
        if self.down:
            raise Unavailable("the rank index is unavailable")
        return await super().rank(user_id)


async def test_a_committed_update_is_answered_even_when_the_index_is_down() -> None:
    store = MemoryScoreStore()
    index = DownIndex()
    service = ScoreService(store, MemoryBus(), lambda board, live: index)
    await service.start(await applying.settle(store, ONE_BOARD, may_change=True))
    await service.update(ScoreUpdate("alice", 10))
    await service.update(ScoreUpdate("bob", 4))
    index.down = True
    result = await service.update(ScoreUpdate("carol", 7))
    assert on_main(result) == (7, 2)  # ranked from the store
    assert store.event_count == 3


async def test_a_total_past_max_score_is_refused_by_the_store() -> None:
    store = MemoryScoreStore()
    service = await started_service(store, BoardsConfig.default(1, 2**31 - 1, None))
    # Reaching the cap by updates would take millions of them: start alice just below it.
    await service.update(ScoreUpdate("alice", 1))
    store._totals[("alice", "points")] = MAX_SCORE - 5
    row = store._standings[("main", "all")]["alice"]
    row.standing = Standing("alice", "alice", MAX_SCORE - 5, 1, 1)
    with pytest.raises(ScoreOutOfRange):
        await service.update(ScoreUpdate("alice", 6))
    assert on_main(await service.update(ScoreUpdate("alice", 5)))[0] == MAX_SCORE


async def test_already_applied_tells_an_update_that_would_add_nothing() -> None:
    service = await make_service()
    assert not await service.already_applied(ScoreUpdate("alice", 5, "quest-1"))
    await service.update(ScoreUpdate("alice", 5, "quest-1"))
    assert await service.already_applied(ScoreUpdate("alice", 5, "quest-1"))  # a replay
    assert await service.already_applied(ScoreUpdate("alice", 6, "quest-1"))  # a conflict
    assert not await service.already_applied(ScoreUpdate("bob", 5, "quest-1"))
    await service.update(ScoreUpdate("alice", 5))
    assert not await service.already_applied(ScoreUpdate("alice", 5))  # no action_id: never


# -- a manual board's new season ---------------------------------------------------------------

SEASONS = BoardsConfig(
    ONE_BOARD.metrics,
    {"main": Board("main", "All time"), "season": Board("season", "Season", reset="manual")},
)


class SlowStore(MemoryScoreStore):
    """A store whose reads of a board's standings wait for ``gate`` once it is set, as a real
    store's reads take a while."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None
        self.reading = asyncio.Event()

    async def iter_standings(self, board: str, period: str) -> AsyncIterator[list[Standing]]:
        if self.gate is not None:
            self.reading.set()
            await self.gate.wait()
        async for chunk in super().iter_standings(board, period):
            yield chunk


async def test_a_new_season_is_announced_before_any_change_in_it() -> None:
    """Another process rolled the season over; this one takes it up with the first update that
    commits in it, and meanwhile (the store is slow) a second update commits in it: sockets and
    other processes hear of the new season first, then of the changes in it."""
    store = SlowStore()
    bus = MemoryBus()
    service = await started_service(store, SEASONS, bus=bus)
    recorder = Recorder()
    service.live_board("season").subscribe(recorder)
    published: list[BoardChanged] = []

    async def listen() -> None:
        async for event in bus.subscribe("season"):
            if isinstance(event, BoardChanged):  # not the moves the bus carries for /ws
                published.append(event)

    listener = asyncio.create_task(listen())
    await turn()
    await service.update(ScoreUpdate("ann", 5))
    await store.rollover(SEASONS.boards["season"])  # ``scoreboard boards rollover``
    store.gate = asyncio.Event()
    first = asyncio.create_task(service.update(ScoreUpdate("bob", 7)))
    await store.reading.wait()
    second = await service.update(ScoreUpdate("cat", 9))
    await turn()
    store.gate.set()
    await first
    await turn()
    listener.cancel()

    assert second.on("season") is not None
    assert second.on("season").period == "2"
    for events in ([b.event for b in recorder.boards], published):
        of_season_2 = [(e.previous, e.seq) for e in events if e.period == "2"]
        assert of_season_2[0][0] == "1", of_season_2  # PERIOD_STARTED, before anything else
        assert [seq for _, seq in of_season_2] == sorted({seq for _, seq in of_season_2})
    assert [e.user_id for e in service.current_board("season").event.rankings] == ["cat", "bob"]


class SlowIndex(MemoryRankIndex):
    """An index whose ``start_period`` waits for ``gate`` once it is set (a shared index is a
    round trip away)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None
        self.starting = asyncio.Event()

    async def start_period(self, period: str) -> Top:
        if self.gate is not None:
            self.starting.set()
            await self.gate.wait()
        return await super().start_period(period)


async def test_updates_that_take_a_new_season_up_at_once_announce_it_once() -> None:
    """Several updates commit in a season this process has not taken up yet, while its index
    is slow to start it: one ``PERIOD_STARTED``, and each answer ranks in the new season."""
    store = MemoryScoreStore()
    slow = SlowIndex()
    bus = MemoryBus()
    service = ScoreService(
        store, bus, lambda board, live: slow if board.id == "season" else MemoryRankIndex()
    )
    await service.start(await applying.settle(store, SEASONS, may_change=True))
    published: list[BoardChanged] = []

    async def listen() -> None:
        async for event in bus.subscribe("season"):
            if isinstance(event, BoardChanged):  # not the moves the bus carries for /ws
                published.append(event)

    listener = asyncio.create_task(listen())
    await turn()
    await service.update(ScoreUpdate("ann", 5))
    await store.rollover(SEASONS.boards["season"])
    slow.gate = asyncio.Event()
    first = asyncio.create_task(service.update(ScoreUpdate("bob", 7)))
    await slow.starting.wait()
    others = [asyncio.create_task(service.update(ScoreUpdate(u, 9))) for u in ("cat", "dan")]
    await turn()
    slow.gate.set()
    results = await asyncio.gather(first, *others)
    await turn()
    listener.cancel()

    started = [e for e in published if e.previous is not None]
    assert [(e.previous, e.period) for e in started] == [("1", "2")]
    places = [r.on("season") for r in results]
    assert [(p.period, p.rank) for p in places if p is not None] == [("2", 3), ("2", 1), ("2", 2)]
    assert [e.user_id for e in service.current_board("season").event.rankings] == [
        "cat",
        "dan",
        "bob",
    ]
