"""The ScoreStore contract, over memory, SQLite and PostgreSQL.

The ``store`` fixture serves the seed's one board (``main``: the all-time sum of ``points``);
the boards tests apply configurations of their own to a ``bare_store``, on a clock they set.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from scoreboard.boards import Board, BoardsConfig, Metric
from scoreboard.errors import ActionConflict, ConfigChanged
from scoreboard.model import Applied, HistoryQuery, ScoreUpdate, Standing
from scoreboard.ports import ScoreStore
from tests.contract.conftest import StoreClock, configure


def on(applied: Applied, board: str = "main") -> Standing:
    (found,) = [b for b in applied.boards if b.board == board]
    assert found.standing is not None
    return found.standing


async def standing(store: ScoreStore, user: str, board: str = "main", period: str = "all"):
    entry = await store.entry(board, period, user)
    return None if entry is None else entry.standing


async def everyone(store: ScoreStore, board: str = "main", period: str = "all") -> dict:
    return {s.user_id: s async for chunk in store.iter_standings(board, period) for s in chunk}


# -- one board: the seed's contract ------------------------------------------------------------


async def test_first_update_creates_the_user_and_their_entry(store: ScoreStore) -> None:
    applied = await store.apply(ScoreUpdate("alice", 5, "a1", "Alice"))
    assert not applied.replayed
    assert (applied.user_id, applied.username) == ("alice", "Alice")
    entry = on(applied)
    assert (entry.user_id, entry.username, entry.score, entry.version) == ("alice", "Alice", 5, 1)
    assert entry.reached > 0
    assert await standing(store, "alice") == entry
    assert await standing(store, "nobody") is None


async def test_updates_add_up_and_advance_version_and_reached(store: ScoreStore) -> None:
    first = on(await store.apply(ScoreUpdate("bob", 3)))
    second = on(await store.apply(ScoreUpdate("bob", 4)))
    assert (second.score, second.version) == (7, 2)
    assert second.reached > first.reached
    assert second.username == "bob"  # no name in any token: the user id


async def test_a_name_is_kept_until_a_token_brings_another(store: ScoreStore) -> None:
    await store.apply(ScoreUpdate("carol", 1, username="Carol"))
    kept = await store.apply(ScoreUpdate("carol", 1))
    assert (kept.username, on(kept).username) == ("Carol", "Carol")
    renamed = await store.apply(ScoreUpdate("carol", 1, username="C."))
    assert on(renamed).username == "C."
    profile = await store.profile("carol")
    assert profile is not None
    assert profile.username == "C."


async def test_a_retried_action_is_applied_once(store: ScoreStore) -> None:
    first = await store.apply(ScoreUpdate("dave", 10, "act-1"))
    again = await store.apply(ScoreUpdate("dave", 10, "act-1"))
    assert again.replayed
    assert on(again) == on(first)
    assert await standing(store, "dave") == on(first)


async def test_the_same_action_with_another_delta_or_metric_is_a_conflict_and_changes_nothing(
    store: ScoreStore,
) -> None:
    before = on(await store.apply(ScoreUpdate("erin", 10, "act-1")))
    with pytest.raises(ActionConflict):
        await store.apply(ScoreUpdate("erin", 11, "act-1"))
    with pytest.raises(ActionConflict):
        await store.apply(ScoreUpdate("erin", 10, "act-1", metric="laps"))
    assert await standing(store, "erin") == before
    history = await store.history(HistoryQuery("erin", limit=10))
    assert [e.delta for e in history] == [10]


async def test_action_delta_tells_an_applied_action_and_its_delta(store: ScoreStore) -> None:
    assert await store.action_delta("mia", "act-1") is None
    await store.apply(ScoreUpdate("mia", 12, "act-1"))
    assert await store.action_delta("mia", "act-1") == 12
    assert await store.action_delta("mia", "act-2") is None
    assert await store.action_delta("nina", "act-1") is None  # per user
    with pytest.raises(ActionConflict):  # refused: the recorded delta stays the first one
        await store.apply(ScoreUpdate("mia", 13, "act-1"))
    assert await store.action_delta("mia", "act-1") == 12


async def test_action_ids_are_per_user(store: ScoreStore) -> None:
    await store.apply(ScoreUpdate("frank", 1, "same"))
    other = await store.apply(ScoreUpdate("grace", 2, "same"))
    assert not other.replayed
    assert on(other).score == 2


async def test_updates_without_action_id_are_never_retries(store: ScoreStore) -> None:
    await store.apply(ScoreUpdate("heidi", 5))
    second = await store.apply(ScoreUpdate("heidi", 5))
    assert not second.replayed
    assert on(second).score == 10


async def test_concurrent_updates_of_one_user_sum_exactly(store: ScoreStore) -> None:
    results = await asyncio.gather(*(store.apply(ScoreUpdate("ivan", 1)) for _ in range(200)))
    total = await standing(store, "ivan")
    assert total is not None
    assert (total.score, total.version) == (200, 200)
    assert sorted(on(r).version for r in results) == list(range(1, 201))
    # Each acknowledged standing is the one its own event produced: version n has score n.
    assert all(on(r).score == on(r).version for r in results)
    # The latest version carries the latest event: reached is the tie-breaker of the final score.
    latest = max((on(r) for r in results), key=lambda s: s.version)
    assert latest.reached == total.reached


async def test_concurrent_retries_of_one_action_apply_it_once(store: ScoreStore) -> None:
    results = await asyncio.gather(
        *(store.apply(ScoreUpdate("judy", 7, "only-once")) for _ in range(20))
    )
    assert sum(not r.replayed for r in results) == 1
    total = await standing(store, "judy")
    assert total is not None
    assert total.score == 7


async def test_iter_standings_yields_every_user_once(store: ScoreStore) -> None:
    for i in range(50):
        await store.apply(ScoreUpdate(f"user-{i:02d}", i + 1))
    await store.apply(ScoreUpdate("user-07", 100))
    found = await everyone(store)
    assert len(found) == 50
    assert (found["user-07"].score, found["user-07"].version) == (108, 2)
    assert found["user-49"] == await standing(store, "user-49")
    assert await store.count("main", "all") == 50


async def test_pages_and_ranks_follow_the_ranking_rule(store: ScoreStore) -> None:
    for user, delta in (("a", 5), ("b", 9), ("c", 5), ("d", 1)):
        await store.apply(ScoreUpdate(user, delta))
    page = await store.page("main", "all", 0, 10)
    assert [(s.user_id, s.score) for s in page] == [("b", 9), ("a", 5), ("c", 5), ("d", 1)]
    assert [s.user_id for s in await store.page("main", "all", 1, 2)] == ["a", "c"]
    for rank, entry in enumerate(page, start=1):
        assert await store.rank_of("main", "all", "desc", entry) == rank


async def test_profile_and_history_follow_the_events(store: ScoreStore) -> None:
    for delta, action in ((5, "a"), (7, "b"), (1, "c")):
        await store.apply(ScoreUpdate("kate", delta, action, "Kate"))
    profile = await store.profile("kate")
    assert profile is not None
    assert profile.username == "Kate"
    assert profile.created_at.tzinfo is not None
    assert await store.profile("nobody") is None

    events = await store.history(HistoryQuery("kate", limit=10))
    assert [(e.delta, e.score, e.action_id) for e in events] == [
        (5, 5, "a"),
        (7, 12, "b"),
        (1, 13, "c"),
    ]
    page = await store.history(HistoryQuery("kate", limit=2))
    rest = await store.history(
        HistoryQuery("kate", after=(page[-1].at, page[-1].event_id), limit=10)
    )
    assert [e.action_id for e in page + rest] == ["a", "b", "c"]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await store.history(HistoryQuery("kate", since=future, limit=10)) == []

    buckets = await store.history_buckets(HistoryQuery("kate", bucket="hour", limit=10))
    assert [b.score for b in buckets][-1] == 13
    assert all(b.at.minute == 0 and b.at.second == 0 for b in buckets)


async def test_concurrent_history_is_a_running_total(store: ScoreStore) -> None:
    await asyncio.gather(*(store.apply(ScoreUpdate("leo", 2)) for _ in range(50)))
    events = await store.history(HistoryQuery("leo", limit=100))
    assert [e.score for e in events] == list(range(2, 101, 2))


# -- many boards -------------------------------------------------------------------------------

POINTS = Metric("points", -1000, 1000)
LAPS = Metric("lap_ms", 1, 3_600_000)
BOARDS = BoardsConfig(
    {"points": POINTS, "lap_ms": LAPS},
    {
        "main": Board("main", "All time"),
        "daily": Board("daily", "Today", reset="daily", timezone="Europe/Berlin", keep=2),
        "weekly": Board("weekly", "This week", reset="weekly"),
        "best": Board("best", "Best single", aggregate="best"),
        "fastest": Board("fastest", "Fastest lap", metric="lap_ms", aggregate="best", order="asc"),
        "season": Board("season", "Season", reset="manual"),
    },
)
MONDAY = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # 13:00 in Berlin, ISO week 49


@pytest.fixture
async def boards(bare_store: ScoreStore, store_clock: StoreClock) -> ScoreStore:
    store_clock.at(MONDAY)
    await configure(bare_store, BOARDS)
    return bare_store


async def test_one_update_moves_the_user_on_every_board_of_its_metric(
    boards: ScoreStore,
) -> None:
    applied = await boards.apply(ScoreUpdate("alice", 50, "a1"))
    places = {b.board: (b.period, b.standing.score if b.standing else None) for b in applied.boards}
    assert places == {
        "main": ("all", 50),
        "daily": ("2026-11-30", 50),
        "weekly": ("2026-W49", 50),
        "best": ("all", 50),
        "season": ("1", 50),
    }
    lap = await boards.apply(ScoreUpdate("alice", 61_000, "lap-1", metric="lap_ms"))
    assert [(b.board, b.standing.score if b.standing else None) for b in lap.boards] == [
        ("fastest", 61_000)
    ]
    assert await boards.count("main", "all") == 1
    assert await boards.count("fastest", "all") == 1


async def test_best_keeps_the_better_event_and_an_equal_one_does_not_replace_it(
    boards: ScoreStore,
) -> None:
    first = await boards.apply(ScoreUpdate("bob", 40, metric="points"))
    worse = await boards.apply(ScoreUpdate("bob", 30))
    (best,) = [b for b in worse.boards if b.board == "best"]
    assert (best.changed, best.standing and best.standing.score) == (False, 40)
    equal = await boards.apply(ScoreUpdate("bob", 40))
    (same,) = [b for b in equal.boards if b.board == "best"]
    assert not same.changed
    assert same.standing == on(first, "best")  # the first to reach 40 keeps it
    better = await boards.apply(ScoreUpdate("bob", 45))
    assert on(better, "best").score == 45
    assert on(better, "main").score == 155  # the sum counts every event


async def test_a_lowest_time_board_keeps_the_lowest_and_ranks_lowest_first(
    boards: ScoreStore,
) -> None:
    for user, lap in (("a", 61_000), ("b", 59_500), ("a", 58_000), ("c", 59_500), ("b", 70_000)):
        await boards.apply(ScoreUpdate(user, lap, metric="lap_ms"))
    page = await boards.page("fastest", "all", 0, 10)
    assert [(s.user_id, s.score) for s in page] == [("a", 58_000), ("b", 59_500), ("c", 59_500)]
    for rank, entry in enumerate(page, start=1):
        assert await boards.rank_of("fastest", "all", "asc", entry) == rank


async def test_events_count_in_the_period_of_their_commit_in_the_boards_zone(
    boards: ScoreStore, store_clock: StoreClock
) -> None:
    store_clock.at(datetime(2026, 11, 30, 22, 59, 59, tzinfo=UTC))  # 23:59:59 in Berlin
    late = await boards.apply(ScoreUpdate("carol", 5))
    store_clock.at(datetime(2026, 11, 30, 23, 0, 0, tzinfo=UTC))  # midnight in Berlin
    early = await boards.apply(ScoreUpdate("carol", 7))
    assert [b.period for b in late.boards if b.board == "daily"] == ["2026-11-30"]
    assert [b.period for b in early.boards if b.board == "daily"] == ["2026-12-01"]
    assert on(early, "daily").score == 7  # a new period starts from nothing
    assert on(early, "main").score == 12
    assert on(early, "weekly").score == 12  # the same ISO week in UTC
    assert (await standing(boards, "carol", "daily", "2026-11-30")).score == 5


async def test_a_replay_answers_the_current_periods_standings(
    boards: ScoreStore, store_clock: StoreClock
) -> None:
    await boards.apply(ScoreUpdate("dana", 5, "quest"))
    store_clock.at(MONDAY + timedelta(days=1))
    again = await boards.apply(ScoreUpdate("dana", 5, "quest"))
    assert again.replayed
    places = {b.board: (b.period, b.standing) for b in again.boards}
    assert places["daily"] == ("2026-12-01", None)  # nothing yet in today's period
    assert places["main"][1] is not None
    assert places["main"][1].score == 5


async def test_a_manual_rollover_starts_the_next_season_and_the_periods_list_it(
    boards: ScoreStore, store_clock: StoreClock
) -> None:
    await boards.apply(ScoreUpdate("erin", 5))
    assert (await boards.seasons())["season"].id == "1"
    store_clock.at(MONDAY + timedelta(hours=1))
    closed, opened = await boards.rollover(BOARDS.boards["season"])
    assert (closed.id, opened.id) == ("1", "2")
    assert closed.ends_at == opened.starts_at == MONDAY + timedelta(hours=1)
    assert (await boards.seasons())["season"].id == "2"
    after = await boards.apply(ScoreUpdate("erin", 3))
    assert [
        (b.period, b.standing and b.standing.score) for b in after.boards if b.board == "season"
    ] == [("2", 3)]
    listed = await boards.periods("season", limit=10)
    assert [(p.id, p.entries) for p in listed] == [("2", 1), ("1", 1)]
    assert listed[1].leader is not None
    assert (listed[1].leader.user_id, listed[1].leader.score) == ("erin", 5)
    assert [p.id for p in await boards.periods("season", limit=10, before="2")] == ["1"]
    found = await boards.period("season", "1")
    assert found is not None
    assert found.ends_at == MONDAY + timedelta(hours=1)
    assert await boards.period("season", "3") is None


async def test_keep_deletes_the_oldest_archives_but_not_the_events(
    boards: ScoreStore, store_clock: StoreClock
) -> None:
    for day in range(4):
        store_clock.at(MONDAY + timedelta(days=day))
        await boards.apply(ScoreUpdate("fred", day + 1))
    store_clock.at(MONDAY + timedelta(days=3, hours=1))
    for day in range(4):  # the keeper records each period as it starts
        period = (MONDAY + timedelta(days=day)).strftime("%Y-%m-%d")
        assert await boards.period("daily", period) is not None
    deleted = await boards.prune("daily", 2)
    assert deleted == ["2026-11-30"]  # closed ones: 11-30, 12-01, 12-02; keep the newest 2
    assert await boards.period("daily", "2026-11-30") is None
    assert await standing(boards, "fred", "daily", "2026-11-30") is None
    assert (await standing(boards, "fred", "daily", "2026-12-01")).score == 2
    events = await boards.history(HistoryQuery("fred", limit=10))
    assert len(events) == 4


async def test_a_board_added_later_is_filled_from_the_stored_events_of_its_period(
    boards: ScoreStore, store_clock: StoreClock
) -> None:
    for user, delta in (("gus", 5), ("hal", 9), ("gus", 7)):
        await boards.apply(ScoreUpdate(user, delta))
    grown = BoardsConfig(
        BOARDS.metrics,
        {
            **BOARDS.boards,
            "best-today": Board("best-today", "Best today", aggregate="best", reset="daily"),
        },
    )
    await configure(boards, grown)
    page = await boards.page("best-today", "2026-11-30", 0, 10)
    assert [(s.user_id, s.score) for s in page] == [("hal", 9), ("gus", 7)]
    later = await boards.apply(ScoreUpdate("gus", 20))
    assert on(later, "best-today").score == 20  # and fed from now on


async def test_a_board_added_back_is_filled_again_with_what_it_missed(
    boards: ScoreStore,
) -> None:
    """Removed, its data stays; added back, its current period is rebuilt from the events, the
    ones committed while it was away included (not left as it was when it went)."""
    await boards.apply(ScoreUpdate("gus", 5))
    await boards.apply(ScoreUpdate("hal", 3))
    without = BoardsConfig(
        BOARDS.metrics, {k: v for k, v in BOARDS.boards.items() if k != "weekly"}
    )
    await configure(boards, without)
    assert await boards.count("weekly", "2026-W49") == 2  # the data stays
    away = await boards.apply(ScoreUpdate("hal", 10))
    assert "weekly" not in [b.board for b in away.boards]
    await configure(boards, BOARDS)
    page = await boards.page("weekly", "2026-W49", 0, 10)
    assert [(s.user_id, s.score) for s in page] == [("hal", 13), ("gus", 5)]
    back = await boards.apply(ScoreUpdate("gus", 20))
    assert on(back, "weekly").score == 25


async def test_a_configuration_applied_since_is_refused(boards: ScoreStore) -> None:
    _, version = await boards.load_config()
    with pytest.raises(ConfigChanged):
        await boards.apply_config(BOARDS, expected_version=version - 1, fill=[])
    assert (await boards.load_config())[1] == version


async def test_a_process_still_on_an_old_configuration_counts_with_the_new_one(
    boards: ScoreStore,
) -> None:
    """Another process applied a configuration: this store's next update counts with it (the
    store reads the applied version at commit)."""
    smaller = BoardsConfig(BOARDS.metrics, {"main": BOARDS.boards["main"]})
    _, version = await boards.load_config()
    await boards.apply_config(smaller, expected_version=version, fill=[])  # "elsewhere"
    applied = await boards.apply(ScoreUpdate("ivy", 5))
    assert [b.board for b in applied.boards] == ["main"]
