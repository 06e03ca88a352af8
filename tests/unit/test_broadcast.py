"""LiveBoard (``broadcast``): the newest board of a process, fanned out once per loop turn.

Time is the board's injected clock; the event loop is the test's own."""

from __future__ import annotations

import asyncio

import pytest

from scoreboard.broadcast import LiveBoard
from scoreboard.events import BoardChanged, EncodedBoard
from scoreboard.model import RankedEntry


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.seqs: list[int] = []

    def deliver(self, board: EncodedBoard) -> None:
        self.seqs.append(board.event.seq)


def changed(seq: int, user: str = "alice", score: int = 10) -> BoardChanged:
    return BoardChanged("main", seq, user, score, (RankedEntry(1, user, user, score),))


def empty() -> BoardChanged:
    return BoardChanged("main", 0, "", 0, ())


async def test_only_newer_boards_are_taken_and_reads_see_them_at_once() -> None:
    live = LiveBoard(empty())
    assert live.offer(changed(2))
    assert live.current.event.seq == 2  # before any fan-out
    assert not live.offer(changed(2))  # the same seq again (our own echo from the bus)
    assert not live.offer(changed(1))  # an older one (a late message)
    assert live.seq == 2


async def test_the_changes_of_one_loop_turn_reach_subscribers_as_one_newest_board() -> None:
    clock = Clock()
    live = LiveBoard(empty(), clock=clock)
    recorder = Recorder()
    live.subscribe(recorder)
    fan_outs: list[tuple[float, int]] = []
    live.on_fan_out = lambda seconds, changes: fan_outs.append((seconds, changes))
    for seq in (1, 2, 3):
        live.offer(changed(seq))
        clock.now += 0.001
    assert recorder.seqs == []  # not yet: the fan-out runs on the loop's next turn
    await asyncio.sleep(0)
    assert recorder.seqs == [3]
    ((seconds, changes),) = fan_outs
    assert changes == 3
    assert seconds == pytest.approx(0.003)  # timed from the oldest change it carried


async def test_a_failing_subscriber_costs_no_one_else_their_board() -> None:
    class Broken:
        def deliver(self, board: EncodedBoard) -> None:
            raise RuntimeError("a socket's bug")

    live = LiveBoard(empty())
    first, second = Recorder(), Recorder()
    for subscriber in (first, Broken(), second):
        live.subscribe(subscriber)
    live.offer(changed(1))
    await asyncio.sleep(0)
    assert first.seqs == second.seqs == [1]


async def test_an_unsubscribed_socket_gets_nothing_more() -> None:
    live = LiveBoard(empty())
    recorder = Recorder()
    live.subscribe(recorder)
    live.offer(changed(1))
    await asyncio.sleep(0)
    live.unsubscribe(recorder)
    live.offer(changed(2))
    await asyncio.sleep(0)
    assert recorder.seqs == [1]
    assert live.subscriber_count == 0


def test_a_board_no_update_caused_is_sent_as_a_snapshot() -> None:
    """A rebuilt index or a catch-up after lost messages has no ``user_id``: no SCORE_UPDATE."""
    live = LiveBoard(empty())
    live.offer(BoardChanged("main", 5, "", 0, (RankedEntry(1, "bob", "Bob", 7),)))  # no loop
    assert live.current.update is None
    assert '"type":"SNAPSHOT"' in live.current.snapshot
    live.offer(changed(6))
    assert live.current.update is not None
    assert '"type":"SCORE_UPDATE"' in live.current.update


def test_without_an_event_loop_the_fan_out_happens_at_once() -> None:
    live = LiveBoard(empty())
    recorder = Recorder()
    live.subscribe(recorder)
    live.offer(changed(1))
    assert recorder.seqs == [1]


async def test_a_new_period_is_not_merged_into_a_later_board_of_the_same_turn() -> None:
    """``PERIOD_STARTED`` is news of its own: merged into the next board of the period (a
    change committed at the same moment), sockets would never hear that the period started."""
    live = LiveBoard(empty())
    recorder = Recorder()
    live.subscribe(recorder)
    live.offer(changed(1))
    live.offer(BoardChanged("main", 2, "", 0, (), period="2", previous="1"))
    for seq in (3, 4):
        live.offer(BoardChanged("main", seq, "bob", seq, (), period="2"))
    await asyncio.sleep(0)
    assert recorder.seqs == [2, 4]
    assert live.current.event.seq == 4
