"""The RankIndex contract, over memory and Redis; then what only the shared Redis index does."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from scoreboard.model import RankedEntry, Standing, rank_key
from scoreboard.ports import RankIndex


def t(
    user: str, score: int, version: int = 1, reached: int = 1, name: str | None = None
) -> Standing:
    return Standing(user, name or user, score, version, reached)


def ids(entries: tuple[RankedEntry, ...]) -> list[str]:
    return [e.user_id for e in entries]


async def test_higher_score_first(index: RankIndex) -> None:
    await index.apply("all", t("low", 5, reached=1))
    await index.apply("all", t("high", 9, reached=2))
    assert ids(await index.top(10)) == ["high", "low"]
    assert [e.rank for e in await index.top(10)] == [1, 2]


async def test_equal_scores_rank_who_reached_it_first(index: RankIndex) -> None:
    # Written in the opposite order of reaching, with user ids that sort the other way too.
    await index.apply("all", t("aaa", 50, reached=300))
    await index.apply("all", t("zzz", 50, reached=20))
    await index.apply("all", t("mmm", 50, reached=1000))
    assert ids(await index.top(10)) == ["zzz", "aaa", "mmm"]
    assert await index.rank("zzz") == 1
    assert await index.rank("mmm") == 3


async def test_reached_compares_as_a_number_not_as_text(index: RankIndex) -> None:
    await index.apply("all", t("ten", 7, reached=10))
    await index.apply("all", t("nine", 7, reached=9))
    assert ids(await index.top(10)) == ["nine", "ten"]


async def test_an_older_version_never_overwrites_a_newer_one(index: RankIndex) -> None:
    await index.apply("all", t("amy", 30, version=3, reached=30))
    assert await index.apply("all", t("amy", 20, version=2, reached=20)) is None
    assert await index.apply("all", t("amy", 99, version=3, reached=99)) is None  # same version too
    assert [(e.user_id, e.score) for e in await index.top(10)] == [("amy", 30)]
    await index.apply("all", t("amy", 40, version=4, reached=40))
    assert [(e.user_id, e.score) for e in await index.top(10)] == [("amy", 40)]
    assert await index.size() == 1


async def test_out_of_order_writes_from_many_writers_end_at_the_newest(
    index_factory: Callable[..., RankIndex],
) -> None:
    writers = [index_factory() for _ in range(3)]  # for Redis: three "processes"
    versions = [t("bo", v * 10, version=v, reached=v) for v in range(1, 31)]
    shuffled = versions[:]
    random.Random(7).shuffle(shuffled)
    await asyncio.gather(*(writers[i % 3].apply("all", total) for i, total in enumerate(shuffled)))
    top = await writers[0].top(1)
    assert [(e.user_id, e.score) for e in top] == [("bo", 300)]


async def test_page_and_rank_agree_with_the_ranking_rule(index: RankIndex) -> None:
    rng = random.Random(3)
    totals = [
        t(f"u{i:03d}", rng.randint(0, 20), version=1, reached=rng.randint(1, 10_000) * 1000 + i)
        for i in range(120)
    ]
    for total in totals:
        await index.apply("all", total)
    expected = [
        x.user_id for x in sorted(totals, key=lambda x: rank_key(x.score, x.reached, x.user_id))
    ]
    assert await index.size() == 120
    assert ids(await index.page(0, 120)) == expected
    page = await index.page(37, 10)
    assert ids(page) == expected[37:47]
    assert [e.rank for e in page] == list(range(38, 48))
    assert ids(await index.page(115, 10)) == expected[115:]
    assert await index.page(500, 10) == ()
    for position in (0, 1, 57, 119):
        assert await index.rank(expected[position]) == position + 1
    assert await index.rank("nobody") is None


async def test_seq_advances_only_when_the_top_changes(
    index_factory: Callable[..., RankIndex],
) -> None:
    index = index_factory(top_k=3)
    seq0 = (await index.board()).seq
    first = await index.apply("all", t("a", 30, reached=1))
    assert first is not None
    assert first.seq == seq0 + 1
    assert ids(first.top) == ["a"]
    for i, user in enumerate(("b", "c")):
        moved = await index.apply("all", t(user, 20 - i, reached=2 + i))
        assert moved is not None
    board = await index.board()
    assert board.seq == seq0 + 3
    assert ids(board.top) == ["a", "b", "c"]

    # Outside the top 3: nothing published, seq unchanged.
    assert await index.apply("all", t("d", 5, reached=10)) is None
    assert await index.apply("all", t("d", 6, version=2, reached=11)) is None
    # A new version of a top user with the same score, reach and name: the top is the same.
    assert await index.apply("all", t("c", 19, version=2, reached=3)) is None
    assert (await index.board()).seq == seq0 + 3

    # Entering the top, a new order, a new name: each one is one seq.
    entered = await index.apply("all", t("d", 25, version=3, reached=12))
    assert entered is not None
    assert (entered.seq, ids(entered.top)) == (seq0 + 4, ["a", "d", "b"])
    renamed = await index.apply("all", t("a", 30, version=2, reached=1, name="Ada"))
    assert renamed is not None
    assert renamed.seq == seq0 + 5
    assert renamed.top[0] == RankedEntry(1, "a", "Ada", 30)
    assert await index.board() == renamed


async def test_load_keeps_the_version_rule_and_advances_seq_once(index: RankIndex) -> None:
    await index.apply("all", t("x", 100, version=5, reached=50))
    seq = (await index.board()).seq
    await index.load(
        "all", [t("x", 1, version=4, reached=4), t("y", 50, reached=7), t("z", 60, reached=8)]
    )
    board = await index.board()
    assert [(e.user_id, e.score) for e in board.top] == [("x", 100), ("z", 60), ("y", 50)]
    assert board.seq == seq + 1
    await index.load("all", [t("y", 50, reached=7)])  # nothing new: seq stays
    assert (await index.board()).seq == seq + 1


async def test_clear_empties_the_board(index: RankIndex) -> None:
    await index.apply("all", t("a", 1))
    await index.clear()
    assert await index.size() == 0
    assert await index.top(10) == ()
    assert await index.rank("a") is None


async def test_large_scores_stay_exact(index: RankIndex) -> None:
    big = 2**53 - 1
    await index.apply("all", t("big", big, reached=2))
    await index.apply("all", t("bigger", big, version=1, reached=1))
    await index.apply("all", t("neg", -(2**50), reached=3))
    assert [(e.user_id, e.score) for e in await index.top(10)] == [
        ("bigger", big),
        ("big", big),
        ("neg", -(2**50)),
    ]


async def test_concurrent_top_changes_get_distinct_consecutive_seqs(
    index_factory: Callable[..., RankIndex],
) -> None:
    writers = [index_factory() for _ in range(4)]
    seq0 = (await writers[0].board()).seq
    # Arrival order is up to the writers; each write that changes the top takes the next seq.
    boards = await asyncio.gather(
        *(writers[i % 4].apply("all", t(f"p{i}", 100 + i, reached=i + 1)) for i in range(40))
    )
    seqs = sorted(b.seq for b in boards if b is not None)
    assert len(seqs) >= 10
    assert seqs == list(range(seq0 + 1, seq0 + 1 + len(seqs)))  # no gap, no duplicate
    assert (await writers[1].board()).seq == seqs[-1]
    # A higher seq always carries a newer top: the leader's score rises with seq.
    by_seq = sorted((b for b in boards if b is not None), key=lambda b: b.seq)
    leaders = [b.top[0].score for b in by_seq]
    assert leaders == sorted(leaders)


async def test_pages_across_ties_show_every_user_once_in_order(index: RankIndex) -> None:
    # 30 users on three scores only: every page boundary falls inside a run of equal scores.
    totals = [t(f"p{i:02d}", 10 * (i % 3), version=1, reached=1000 - i) for i in range(30)]
    for total in totals:
        await index.apply("all", total)
    expected = [
        x.user_id for x in sorted(totals, key=lambda x: rank_key(x.score, x.reached, x.user_id))
    ]
    for size in (1, 4, 7, 10):
        walked = []
        for offset in range(0, 30, size):
            walked += ids(await index.page(offset, size))
        assert walked == expected, size


async def test_apply_and_rank_answers_the_rank_after_the_write(index: RankIndex) -> None:
    for i in range(15):
        await index.apply("all", t(f"r{i:02d}", 100 + i, reached=i + 1))
    moved, rank = await index.apply_and_rank("all", t("climber", 107, reached=100))
    assert rank == 9  # below the eight above 107 and r07, who reached 107 first
    assert moved is not None  # entered the top 10
    moved, rank = await index.apply_and_rank("all", t("r00", 1000, version=2, reached=200))
    assert (rank, moved is not None) == (1, True)
    # A stale write stores nothing and reports the rank the index holds.
    moved, rank = await index.apply_and_rank("all", t("r00", 5, version=1, reached=1))
    assert (moved, rank) == (None, 1)
    assert rank == await index.rank("r00")


async def test_apply_and_move_answers_the_ranks_before_and_after_the_write(
    index: RankIndex,
) -> None:
    for i in range(30):  # r00 has 100 (rank 30) ... r29 has 129 (rank 1)
        await index.apply("all", t(f"r{i:02d}", 100 + i, reached=i + 1))
    # Below the top: no new top, ranks 25 -> 13 (behind r18, who reached 118 first).
    placed = await index.apply_and_move("all", t("r05", 118, version=2, reached=100))
    assert (placed.top, placed.before, placed.after, placed.stored) == (None, 25, 13, True)
    # A new user: not ranked before.
    placed = await index.apply_and_move("all", t("new", 1, reached=101))
    assert (placed.before, placed.after, placed.stored) == (None, 31, True)
    # Into the top: the new top comes with it.
    placed = await index.apply_and_move("all", t("new", 500, version=2, reached=102))
    assert (placed.before, placed.after, placed.stored) == (31, 1, True)
    assert placed.top is not None
    assert placed.top.top[0].user_id == "new"
    # A stale write is not stored.
    placed = await index.apply_and_move("all", t("new", 2, version=1, reached=103))
    assert (placed.top, placed.stored) == (None, False)
    assert await index.rank("new") == 1
    # Another period's write: nothing.
    placed = await index.apply_and_move("another", t("x", 1))
    assert placed == (None, None, None, False)


# -- periods and order -------------------------------------------------------------------------


async def test_a_new_period_starts_empty_with_the_next_seq_once(
    index_factory: Callable[..., RankIndex],
) -> None:
    first, second = index_factory(), index_factory()  # for Redis: two processes
    await first.apply("all", t("a", 5))
    before = await first.board()
    started = await first.start_period("2026-12-01")
    assert (started.seq, started.top, started.period) == (before.seq + 1, (), "2026-12-01")
    again = await second.start_period("2026-12-01")  # the other process, a moment later
    assert again.seq == started.seq
    assert await second.size() == 0
    assert await second.rank("a") is None


async def test_a_period_started_elsewhere_is_answered_with_the_seq_it_started_with(
    index_factory: Callable[..., RankIndex],
) -> None:
    """Every process asks its index to start a new period and announces ``PERIOD_STARTED`` with
    what it gets. One that asks after the period has changed (the first process already wrote
    to it) must get the start's seq and top, or processes announce the period twice, with two
    seqs."""
    first, second = index_factory(), index_factory()  # for Redis: two processes
    await first.apply("all", t("a", 5))
    started = await first.start_period("2026-12-01")
    moved = await first.apply("2026-12-01", t("b", 7))
    assert moved is not None
    assert moved.seq == started.seq + 1
    again = await second.start_period("2026-12-01")
    assert (again.seq, again.top, again.period) == (started.seq, (), "2026-12-01")
    assert await second.rank("b") == 1  # the period's data, as it is now, for reads
    assert (await second.board()).seq == moved.seq


async def test_a_write_for_another_period_stores_nothing(index: RankIndex) -> None:
    await index.start_period("2026-12-01")
    assert await index.apply_and_rank("2026-11-30", t("late", 50)) == (None, None)
    assert await index.size() == 0
    moved, rank = await index.apply_and_rank("2026-12-01", t("now", 5))
    assert moved is not None
    assert (moved.period, rank) == ("2026-12-01", 1)


async def test_an_ascending_board_ranks_the_lowest_first(
    index_factory: Callable[..., RankIndex],
) -> None:
    index = index_factory(order="asc")
    await index.apply("all", t("slow", 70_000, reached=1))
    await index.apply("all", t("fast", 58_000, reached=3))
    await index.apply("all", t("tied", 58_000, reached=2))
    assert [(e.user_id, e.score) for e in await index.top(10)] == [
        ("tied", 58_000),
        ("fast", 58_000),
        ("slow", 70_000),
    ]
    assert await index.rank("slow") == 3


async def test_a_removed_user_leaves_the_board_and_a_late_write_stays_out(
    index: RankIndex,
) -> None:
    await index.apply("all", t("amy", 30, version=3, reached=30))
    await index.apply("all", t("bob", 20, version=1, reached=5))
    before = await index.board()
    top = await index.remove("all", "amy", 4)
    assert top is not None
    assert top.seq == before.seq + 1
    assert ids(top.top) == ["bob"]
    assert await index.rank("amy") is None
    assert await index.size() == 1
    # A write of the standing as it was before the removal (an update in flight) is late.
    assert await index.apply("all", t("amy", 35, version=4, reached=31)) is None
    assert await index.remove("all", "amy", 4) is None  # again: nothing to do
    assert ids(await index.top(10)) == ["bob"]
    # The standing after it (shown again: unhidden) comes back.
    back = await index.apply("all", t("amy", 35, version=5, reached=31))
    assert back is not None
    assert ids(back.top) == ["amy", "bob"]


async def test_removing_below_the_top_changes_no_seq(
    index_factory: Callable[..., RankIndex],
) -> None:
    index = index_factory(top_k=2)
    for n, user in enumerate(["a", "b", "c"], start=1):
        await index.apply("all", t(user, 100 - n, reached=n))
    seq = (await index.board()).seq
    assert await index.remove("all", "c", 2) is None
    assert (await index.board()).seq == seq
    assert await index.size() == 2
    assert await index.remove("other-period", "a", 9) is None
    assert await index.size() == 2


async def test_forget_erases_a_user_and_the_id_can_start_again(index: RankIndex) -> None:
    await index.apply("all", t("eve", 50, version=7, reached=9, name="Eve"))
    await index.apply("all", t("bob", 20, version=1, reached=5))
    await index.remove("all", "bob", 2)
    top = await index.forget("eve")
    assert top is not None
    assert ids(top.top) == []
    assert await index.forget("eve") is None
    # No version is kept: the same id is a new user whose first standing has version 1.
    again = await index.apply("all", t("eve", 3, version=1, reached=40))
    assert again is not None
    assert [(e.user_id, e.username, e.score) for e in again.top] == [("eve", "eve", 3)]
    await index.forget("bob")
    assert await index.apply("all", t("bob", 1, version=1, reached=41)) is not None
