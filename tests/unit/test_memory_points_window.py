"""MemoryPointsWindow beyond the contract (tests/contract/test_points_window.py): its memory is
bounded by the keys that reserved within the last span, with no sweep over every key."""

from __future__ import annotations

from scoreboard.adapters.memory_points_window import MemoryPointsWindow
from tests.support.clock import FakeClock

SPAN = 60.0


async def test_keys_whose_reservations_all_left_the_window_are_forgotten() -> None:
    clock = FakeClock()
    points = MemoryPointsWindow(clock)
    for i in range(1000):
        assert (await points.reserve(f"idle{i}", 5, limit=50, span=SPAN)).granted
    clock.at(30)
    assert (await points.reserve("recent", 5, limit=50, span=SPAN)).granted
    assert len(points) == 1001
    clock.at(SPAN)  # the 1,000 reserved at 0 s have left; "recent" has not
    assert (await points.reserve("busy", 5, limit=50, span=SPAN)).granted
    assert len(points) == 2
    clock.at(30 + SPAN)
    assert (await points.reserve("busy", 5, limit=50, span=SPAN)).granted
    assert len(points) == 1


async def test_a_key_reserved_again_is_kept_as_long_as_its_newest_reservation() -> None:
    clock = FakeClock()
    points = MemoryPointsWindow(clock)
    assert (await points.reserve("alice", 5, limit=50, span=SPAN)).granted
    assert (await points.reserve("bob", 5, limit=50, span=SPAN)).granted
    clock.at(50)
    assert (await points.reserve("alice", 5, limit=50, span=SPAN)).granted
    clock.at(SPAN + 1)  # bob's only reservation left; alice's of 50 s has not
    assert (await points.reserve("carol", 5, limit=50, span=SPAN)).granted
    assert len(points) == 2
    refused = await points.reserve("alice", 50, limit=50, span=SPAN)
    assert (refused.granted, refused.used) == (False, 5)


async def test_refused_keys_with_nothing_held_take_no_memory() -> None:
    points = MemoryPointsWindow(FakeClock())
    for i in range(100):
        assert not (await points.reserve(f"u{i}", 51, limit=50, span=SPAN)).granted
    assert len(points) == 0
