"""The views of ``/ws`` (``scoreboard.subscriptions``) over the in-memory adapters: which views a
move can change, what a ``me`` view's user is told, and one socket's outbox (newest state per
view, every event in order, bounded)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from scoreboard.adapters.memory_bus import MemoryBus
from scoreboard.adapters.memory_index import MemoryRankIndex
from scoreboard.events import StandingMoved
from scoreboard.keeper import Keeper
from scoreboard.model import RankedEntry, ScoreUpdate
from scoreboard.service import ScoreService
from scoreboard.subscriptions import BoardViews, LiveViews, MeEvent, Outbox, View, me_events, span
from tests.support.core import started_service


def moved(user: str, before: int | None, after: int | None, score: int = 0) -> StandingMoved:
    return StandingMoved("main", "all", user, user.title(), score, before, after)


# -- which views a move can change ---------------------------------------------------------------


def test_the_span_of_a_move() -> None:
    assert span(moved("a", 40, 7)) == (7, 40)
    assert span(moved("a", 7, 40)) == (7, 40)
    assert span(moved("a", 9, 9)) == (9, 9)  # the score alone: that row
    assert span(moved("a", None, 12)) == (12, None)  # a newcomer pushes everyone below down
    assert span(moved("a", 12, None)) == (12, None)
    assert span(moved("a", None, None)) is None  # unknown: every view


async def test_only_the_windows_overlapping_a_move_are_found() -> None:
    views = BoardViews("main")
    anchored = []
    for rank in range(10, 1001, 10):  # 100 around views, radius 2, at ranks 10, 20, ..., 1000
        view = View("main", "around", f"u{rank}", 2)
        view.rank = rank
        views.add(view)
        views.anchor(view)
        anchored.append(view)
    me = View("main", "me", "u505", 0)
    me.rank = 505
    views.add(me)
    views.anchor(me)
    top = View("main", "top", None, 10)
    views.add(top)
    wide = View("main", "around", "w", 25)  # a wide window: 700 +- 25
    wide.rank = 700
    views.add(wide)
    views.anchor(wide)

    assert views.affected(503, 504) == set()  # between 500 +- 2 and me at 505
    assert {v.user_id for v in views.affected(495, 505)} == {"u500", "u505"}
    assert {v.user_id for v in views.affected(673, 680)} == {"u680", "w"}
    assert views.affected(5, 9) == {top, anchored[0]}  # 10 +- 2 reaches 8
    below = views.affected(995, None)
    assert {v.user_id for v in below} == {"u1000"}
    views.remove(anchored[-1])
    assert views.affected(995, None) == set()


class CountingIndex(MemoryRankIndex):
    """The memory index, counting the rows the views read (the cost of keeping them)."""

    rows_read = 0

    async def page(self, offset: int, limit: int) -> tuple[RankedEntry, ...]:
        rows = await super().page(offset, limit)
        self.rows_read += len(rows)
        return rows


@pytest.fixture
async def board() -> AsyncIterator[tuple[ScoreService, LiveViews, CountingIndex]]:
    index = CountingIndex()
    bus = MemoryBus()
    service = await started_service(bus=bus)
    service.boards["main"].index = index
    await service.rebuild(service.boards["main"])
    views = LiveViews(service)
    keeper = Keeper(service, bus, views=views)
    await keeper.start()
    try:
        yield service, views, index
    finally:
        await keeper.stop()


async def settled(views: LiveViews) -> None:
    for _ in range(500):
        await asyncio.sleep(0)
        if all(b.worker is None and not b.work for b in views._boards.values()):
            return
    raise AssertionError("the views never settled")


async def test_a_move_reads_only_the_windows_it_can_change(
    board: tuple[ScoreService, LiveViews, CountingIndex],
) -> None:
    service, views, index = board
    for i in range(1000):  # p0000 has 1000 (rank 1) ... p0999 has 1 (rank 1000)
        await service.update(ScoreUpdate(f"p{i:04d}", 1000 - i))
    outboxes = []
    for rank in range(50, 1001, 50):  # 20 sockets, one around view each, spread over the board
        outbox = Outbox()
        await views.subscribe(outbox, "v", "main", "around", f"p{rank - 1:04d}", 3)
        outbox.take()  # the snapshot
        outboxes.append(outbox)
    await settled(views)
    index.rows_read = 0
    # p0720 (rank 721, 280) -> 305: rank 697 (behind p0695, who reached 305 first). Ranks
    # 697..721 move: only the window around rank 700 overlaps them.
    await service.update(ScoreUpdate("p0720", 25))
    await settled(views)
    changed = [i for i, o in enumerate(outboxes) if o.take() is not None]
    assert changed == [13]  # the view around rank 700
    assert index.rows_read <= 3 * (2 * 3 + 3)  # one window or so, not 20
    index.rows_read = 0
    await service.update(ScoreUpdate("p0001", 1))  # rank 2, no window there
    await settled(views)
    assert [o.take() for o in outboxes] == [None] * 20
    assert index.rows_read == 0


async def test_a_view_is_shared_and_dropped_with_its_last_subscription(
    board: tuple[ScoreService, LiveViews, CountingIndex],
) -> None:
    service, views, _ = board
    await service.update(ScoreUpdate("ann", 5))
    one, two = Outbox(), Outbox()
    a = await views.subscribe(one, "a", "main", "around", "ann", 5)
    b = await views.subscribe(two, "b", "main", "around", "ann", 5)
    assert a.view is b.view
    assert views.count() == 1
    views.unsubscribe(one, "a")
    assert views.count() == 1
    views.close(two)
    assert views.count() == 0


# -- me events --------------------------------------------------------------------------------


def kinds(events: list[MeEvent]) -> list[tuple[str, int | None]]:
    return [(e.event, e.rank) for e in events]


def test_my_own_move_is_rank_changed_and_crossing_the_top_10_says_so() -> None:
    assert kinds(me_events("me", (12, 5), (8, 9), [moved("me", 12, 8, 9)])) == [
        ("rank_changed", 8),
        ("entered_top", 8),
    ]
    assert kinds(me_events("me", (8, 9), (15, 2), [moved("me", 8, 15, 2)])) == [
        ("rank_changed", 15),
        ("left_top", 15),
    ]
    assert me_events("me", (3, 5), (3, 6), [moved("me", 3, 3, 6)]) == []  # the score alone


def test_being_passed_is_overtaken_by_whom() -> None:
    rival = moved("rival", 20, 4, 77)
    events = me_events("me", (10, 50), (11, 50), [rival])
    assert kinds(events) == [("overtaken", 11), ("left_top", 11)]
    assert events[0].by == rival
    assert events[0].score == 50
    newcomer = moved("new", None, 2, 99)  # straight from off the board
    assert kinds(me_events("me", (30, 5), (31, 5), [newcomer])) == [("overtaken", 31)]


def test_someone_above_falling_below_or_leaving_moves_me_up() -> None:
    assert kinds(me_events("me", (11, 5), (10, 5), [moved("x", 3, 20)])) == [
        ("rank_changed", 10),
        ("entered_top", 10),
    ]
    assert kinds(me_events("me", (5, 5), (4, 5), [moved("x", 2, None)])) == [("rank_changed", 4)]


def test_moves_that_do_not_cross_me_say_nothing_and_the_read_has_the_last_word() -> None:
    assert me_events("me", (5, 5), (5, 5), [moved("x", 2, 1), moved("y", 30, 9)]) == []
    # A replay that cannot explain the rank read (moves in another order, an operator's
    # action) ends in one rank_changed to what was read.
    assert kinds(me_events("me", (5, 5), (7, 5), [])) == [("rank_changed", 7)]
    assert kinds(me_events("me", (5, 5), (None, None), [])) == [
        ("rank_changed", None),
        ("left_top", None),
    ]
    assert kinds(me_events("me", (None, None), (1, 5), [moved("me", None, 1, 5)])) == [
        ("rank_changed", 1),
        ("entered_top", 1),
    ]


# -- one socket's outbox ------------------------------------------------------------------------


async def test_a_slow_socket_gets_only_the_newest_state_of_a_view_but_every_event() -> None:
    index = MemoryRankIndex()
    service = await started_service()
    service.boards["main"].index = index
    views = LiveViews(service)
    outbox = Outbox()
    sub = await views.subscribe(outbox, "t", "main", "top", None, 3)
    view = sub.view
    outbox.put("event 1")
    for score in (1, 2, 3):  # three states while the socket takes nothing
        view.show("all", (RankedEntry(1, "a", "a", score),), None)
        sub.changed()
    outbox.put("event 2")
    sent = [outbox.take() for _ in range(4)]
    assert sent[3] is None
    first = orjson.loads(sent[0] or "")
    # The snapshot's place in the order, with the newest rows and the newest seq.
    assert (first["type"], first["seq"], first["rows"][0]["score"]) == ("snapshot", 4, 3)
    assert sent[1:3] == ["event 1", "event 2"]


async def test_an_outbox_past_its_bound_closes_as_overflowed() -> None:
    outbox = Outbox(max_messages=3)
    for i in range(3):
        outbox.put(f"event {i}")
    assert not outbox.closed
    outbox.put("one too many")
    assert (outbox.closed, outbox.overflowed) == (True, True)
    assert await outbox.next() is None


async def test_next_waits_for_a_message_and_ends_on_close() -> None:
    outbox = Outbox()
    waiting = asyncio.create_task(outbox.next())
    await asyncio.sleep(0)
    outbox.put("hello")
    assert await waiting == "hello"
    waiting = asyncio.create_task(outbox.next())
    await asyncio.sleep(0)
    outbox.close()
    assert await waiting is None


async def test_a_board_no_longer_served_ends_its_subscriptions_with_an_error() -> None:
    from dataclasses import replace

    from scoreboard.boards import Board
    from tests.support.core import ONE_BOARD

    two = replace(ONE_BOARD, boards={**ONE_BOARD.boards, "extra": Board("extra", "points")})
    service = await started_service(config=two)
    views = LiveViews(service)
    outbox = Outbox()
    await views.subscribe(outbox, "x", "extra", "top", None, 5)
    await views.subscribe(outbox, "m", "main", "top", None, 5)
    outbox.take()
    outbox.take()
    await service.reconfigure(ONE_BOARD)
    views.unsettled("extra")  # what the keeper does for a board it stops following
    await settled(views)
    error = orjson.loads(outbox.take() or "")
    assert (error["type"], error["id"], error["error"]) == ("error", "x", "unknown_board")
    assert list(outbox.subscriptions) == ["m"]
    assert views.count() == 1


async def test_a_socket_that_keeps_up_is_written_directly_and_order_holds_when_it_cannot() -> None:
    service = await started_service()
    views = LiveViews(service)
    written: list[str] = []
    writable = True

    def direct(message: str) -> bool:
        if writable:
            written.append(message)
        return writable

    outbox = Outbox()
    outbox.direct = direct
    sub = await views.subscribe(outbox, "t", "main", "top", None, 3)
    assert [orjson.loads(m)["type"] for m in written] == ["snapshot"]  # straight out
    assert outbox.take() is None
    writable = False
    sub.view.show("all", (RankedEntry(1, "a", "a", 1),), None)
    sub.changed()  # cannot go out: waits
    writable = True
    outbox.put("event")  # must not overtake the waiting update
    assert len(written) == 1
    waiting = orjson.loads(outbox.take() or "")
    assert (waiting["type"], waiting["seq"]) == ("update", 2)  # not a second snapshot
    assert outbox.take() == "event"
