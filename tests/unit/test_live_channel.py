"""SocketFeed (``web.live.channel``): one socket's "latest board" slot and its sink.

The slow-client rules alone, without a socket: a board goes straight out when the socket can
take it and nothing older waits; otherwise it waits in the slot, which keeps only the newest;
nothing older than what was sent is sent again. Time is the feed's injected clock."""

from __future__ import annotations

import asyncio

from scoreboard.events import BoardChanged, EncodedBoard
from scoreboard.model import RankedEntry
from scoreboard.web.extensions import text_frame
from scoreboard.web.live.channel import SocketFeed, frame_of, message_of


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class Sink:
    """A socket's sink whose transport is writable or not, as the test says."""

    def __init__(self) -> None:
        self.writable = True
        self.frames: list[bytes] = []

    @property
    def open(self) -> bool:
        return True

    @property
    def closed_for(self) -> str | None:
        return None

    def write(self, frame: bytes) -> bool:
        if not self.writable:
            return False
        self.frames.append(frame)
        return True

    async def wait_writable(self) -> None:
        return None


def board(seq: int) -> EncodedBoard:
    event = BoardChanged("main", seq, "alice", seq, (RankedEntry(1, "alice", "alice", seq),))
    return EncodedBoard.build(event)


async def test_a_board_the_socket_can_take_goes_straight_out_framed_once() -> None:
    feed, sink = SocketFeed(), Sink()
    feed.attach(sink)
    first = board(1)
    feed.deliver(first)
    assert sink.frames == [text_frame(message_of(first).encode())]
    assert frame_of(first) is frame_of(first)  # one frame per board, whatever the sockets
    assert feed.sent == 1


async def test_a_socket_that_cannot_take_it_holds_only_the_newest_board() -> None:
    clock = Clock()
    feed, sink = SocketFeed(clock), Sink()
    feed.attach(sink)
    sink.writable = False
    for seq in (1, 2, 3):
        feed.deliver(board(seq))
        clock.now += 1
    assert sink.frames == []
    assert feed.delivered_at == 52.0  # when the newest arrived
    taken = await asyncio.wait_for(feed.next(), 1)
    assert taken is not None
    assert taken.event.seq == 3  # the burst coalesced: 1 and 2 are skipped


async def test_while_a_board_waits_newer_ones_wait_behind_it_not_past_it() -> None:
    """Order: a board written straight out past a waiting one would be overtaken by it."""
    feed, sink = SocketFeed(), Sink()
    feed.attach(sink)
    sink.writable = False
    feed.deliver(board(1))
    sink.writable = True
    feed.deliver(board(2))
    assert sink.frames == []  # not past the waiting board
    taken = await asyncio.wait_for(feed.next(), 1)
    assert taken is not None
    assert taken.event.seq == 2


async def test_nothing_older_than_what_was_sent_is_sent_again() -> None:
    feed, sink = SocketFeed(), Sink()
    feed.attach(sink)
    feed.sent = 5  # the SNAPSHOT the socket got
    feed.deliver(board(4))
    feed.deliver(board(5))
    assert sink.frames == []
    feed.deliver(board(6))
    assert len(sink.frames) == 1


async def test_before_a_sink_is_attached_boards_wait_for_the_writer() -> None:
    feed = SocketFeed()
    feed.deliver(board(1))
    taken = await asyncio.wait_for(feed.next(), 1)
    assert taken is not None
    assert taken.event.seq == 1


async def test_a_closed_feed_ends_its_writer_and_going_away_says_why() -> None:
    feed = SocketFeed()
    waiting = asyncio.create_task(feed.next())
    await asyncio.sleep(0)
    feed.go_away()
    assert await asyncio.wait_for(waiting, 1) is None
    assert feed.going_away
