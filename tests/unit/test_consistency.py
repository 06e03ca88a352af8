"""The rule verify recomputes standings by, the differences it describes, and the background
check of ``serve`` (``Watch``) over the in-memory adapters."""

from __future__ import annotations

import random

from scoreboard.adapters.memory_store import MemoryScoreStore, _Row
from scoreboard.boards import Board
from scoreboard.consistency import (
    Consistency,
    Difference,
    Tally,
    Watch,
    index_difference,
    row_difference,
    tally,
)
from scoreboard.model import LedgerEvent, RankedEntry, ScoreUpdate, StoredRow
from tests.support.core import started_service

SUM = Board("main", "All time")
BEST = Board("best", "Best", aggregate="best")
FASTEST = Board("fastest", "Fastest", aggregate="best", order="asc")


def event(n: int, user: str, delta: int, **kw: object) -> LedgerEvent:
    values = {"source": "user", "voided": False, "user_shown": True, **kw}
    return LedgerEvent(
        n, user, delta, str(values["source"]), bool(values["voided"]), bool(values["user_shown"])
    )


EVENTS = [
    event(1, "ann", 30),
    event(2, "bob", 50, user_shown=False),  # bob is hidden: every event of his says so
    event(3, "ann", 50),
    event(4, "ann", 20, voided=True),
    event(5, "ann", 90, source="admin"),
    event(6, "bob", 10, user_shown=False),
]


def made(board: Board) -> dict[str, Tally]:
    out: dict[str, Tally] = {}
    tally(board, EVENTS, out)
    return out


def test_a_sum_adds_what_counts_and_is_reached_by_the_last() -> None:
    assert made(SUM) == {"ann": Tally(170, 5, True), "bob": Tally(60, 6, False)}


def test_a_best_keeps_the_first_to_reach_it_and_ignores_adjustments() -> None:
    assert made(BEST) == {"ann": Tally(50, 3, True), "bob": Tally(50, 2, False)}
    assert made(FASTEST) == {"ann": Tally(30, 1, True), "bob": Tally(10, 6, False)}


def test_a_row_is_described_as_the_events_make_it() -> None:
    row = StoredRow("ann", "Ann", 999, -999, 5, 3, 0)
    assert row_difference(SUM, "all", "ann", Tally(170, 5, True), row) == Difference(
        "main", "all", "ann", "standings", "170 by event 5", "999 by event 5"
    )
    assert row_difference(SUM, "all", "ann", Tally(999, 5, True), row) is None
    empty = row._replace(hidden=2)
    assert row_difference(SUM, "all", "ann", None, empty) is None
    assert row_difference(SUM, "all", "ann", None, row) == Difference(
        "main", "all", "ann", "standings", "nothing", "999 by event 5"
    )
    unsorted = row._replace(rank_score=-1)
    found = row_difference(SUM, "all", "ann", Tally(999, 5, True), unsorted)
    assert found is not None
    assert found.found == "999 by event 5, ranked as 1"
    hidden = row_difference(SUM, "all", "ann", Tally(999, 5, False), row)
    assert hidden is not None
    assert hidden.expected == "999 by event 5, hidden"


def test_an_index_entry_is_held_to_the_shown_standing_and_name() -> None:
    entry = RankedEntry(1, "ann", "Ann", 170)
    assert index_difference(SUM, "all", "ann", Tally(170, 5, True), "Ann", entry) is None
    assert index_difference(SUM, "all", "ann", Tally(170, 5, False), "Ann", None) is None
    stale = index_difference(SUM, "all", "ann", Tally(171, 6, True), "Ann", entry)
    assert stale == Difference("main", "all", "ann", "index", "171 as Ann", "170 as Ann")
    renamed = index_difference(SUM, "all", "ann", Tally(170, 5, True), "Anna", entry)
    assert renamed is not None
    assert renamed.found == "170 as Ann"
    shown = index_difference(SUM, "all", "ann", Tally(170, 5, False), "Ann", entry)
    assert shown is not None
    assert shown.expected == "absent"


async def test_the_background_check_counts_a_broken_row_and_only_it() -> None:
    store = MemoryScoreStore()
    service = await started_service(store)
    for user, delta in (("ann", 30), ("bob", 50)):
        await service.update(ScoreUpdate(user, delta))
    counted: list[int] = []
    watch = Watch(service, store, 6, on_difference=counted.append, settle=0.0)
    watch.rng = random.Random(7)
    for _ in range(20):
        assert await watch.sample() == []
    table = store._standings[("main", "all")]
    row = table["ann"]
    table["ann"] = _Row(row.standing._replace(score=7), row.updated, row.hidden)
    found = [d for _ in range(20) for d in await watch.sample()]
    assert found
    assert {(d.user_id, d.store) for d in found} == {("ann", "standings")}


async def test_a_repair_made_elsewhere_reaches_this_process_index() -> None:
    """An embedded server's index, behind a repair that another process (the command) made."""
    store = MemoryScoreStore()
    service = await started_service(store)
    await service.update(ScoreUpdate("ann", 30))
    await service.update(ScoreUpdate("bob", 50))
    watch = Watch(service, store, 0, settle=0.0)
    await watch.start()
    try:
        served = service.boards["main"]
        # The index took a wrong row (ann at 999) before anybody noticed.
        table = store._standings[("main", "all")]
        row = table["ann"]
        wrong = row.standing._replace(score=999, version=row.standing.version + 1)
        table["ann"] = _Row(wrong, row.updated, row.hidden)
        await served.index.apply("all", wrong._replace(username="ann"))
        assert service.config is not None
        repaired = [d async for d in Consistency(store, service.config, settle=0.0).repair()]
        assert [d.user_id for d in repaired] == ["ann"]
        await watch.follow()
        assert [(e.user_id, e.score) for e in await served.index.top(10)] == [
            ("bob", 50),
            ("ann", 30),
        ]
        assert [(e.user_id, e.score) for e in service.current_board("main").event.rankings] == [
            ("bob", 50),
            ("ann", 30),
        ]
    finally:
        await watch.stop()
