"""Verify and repair (``scoreboard.consistency``) over every store (memory, SQLite, PostgreSQL)
and every rank index (memory, Redis): each kind of derived state is broken on purpose, behind
the store's back, and verify must find exactly that, and repair must fix it while updates keep
arriving.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from scoreboard.adapters.memory_store import MemoryScoreStore, _Row
from scoreboard.consistency import Consistency, Difference, Summary
from scoreboard.model import Audit, ScoreUpdate, Standing
from scoreboard.ports import RankIndex
from tests.contract.conftest import StoreClock, configure
from tests.contract.test_moderation_store import CONFIG, MONDAY, board_of, event_of

AUDIT = Audit("ops", "void", "event", "because")


@pytest.fixture
async def store(bare_store: Any, store_clock: StoreClock) -> Any:
    """A store with the moderation tests' boards (sums, bests, a daily board, a season)."""
    store_clock.at(MONDAY)
    await configure(bare_store, CONFIG)
    return bare_store


def consistency(store: Any, index: RankIndex | None = None, **kw: Any) -> Consistency:
    return Consistency(
        store,
        CONFIG,
        index_of=(lambda board, period: index if board.id == "main" else None),
        settle=0.0,
        **kw,
    )


async def verify(c: Consistency, board: str | None = None) -> tuple[list[Difference], Summary]:
    summary = Summary()
    found = [d async for d in c.verify(board, summary)]
    return found, summary


async def repair(c: Consistency, board: str | None = None) -> list[Difference]:
    return [d async for d in c.repair(board)]


# -- breaking a store behind its back ---------------------------------------------------------


async def sql(store: Any, statement: str, *args: Any) -> None:
    """Run ``statement`` (``?`` placeholders) on the store's own database, not through it."""
    if hasattr(store, "pool"):
        n = iter(range(1, 100))
        pg = "".join(f"${next(n)}" if ch == "?" else ch for ch in statement)
        await store.pool.execute(pg, *args)
    else:
        with sqlite3.connect(store.path) as conn:
            conn.execute(statement, args)


async def set_row(store: Any, board: str, period: str, user: str, **values: int) -> None:
    """Overwrite columns of a standings row (``score``, ``hidden``...) as a bug would."""
    if isinstance(store, MemoryScoreStore):
        table = store._standings[(board, period)]
        row = table.get(user) or _Row(Standing(user, user, 0, 1, 0), MONDAY)
        standing = row.standing._replace(
            score=values.get("score", row.standing.score),
            reached=values.get("reached", row.standing.reached),
        )
        table[user] = _Row(standing, row.updated, values.get("hidden", row.hidden))
        return
    if "score" in values:  # the sorting column along with it (every board here is desc)
        values.setdefault("rank_score", -values["score"])
    columns = ", ".join(f"{name} = ?" for name in values)
    await sql(
        store,
        f"UPDATE standings SET {columns} WHERE board_id = ? AND period_id = ? AND user_id = ?",  # noqa: S608
        *values.values(),
        board,
        period,
        user,
    )


async def play(store: Any, user: str, delta: int, metric: str = "points") -> int:
    applied = await store.apply(ScoreUpdate(user, delta, metric=metric))
    return event_of(applied) if metric == "points" else 0


# -- verify -------------------------------------------------------------------------------------


async def test_a_whole_store_verifies(store: Any, store_clock: StoreClock) -> None:
    """Sums, bests of either order, adjustments, voids, hidden users, archives: all agree."""
    await play(store, "ann", 30)
    await play(store, "bob", 50)
    voided = await play(store, "bob", 20)
    await store.void(voided, CONFIG, AUDIT)
    await store.adjust(ScoreUpdate("ann", 7, "adj-1", source="admin"), AUDIT)
    await store.apply(ScoreUpdate("cid", 61000, metric="lap_ms"))
    await store.apply(ScoreUpdate("cid", 59000, metric="lap_ms"))
    await store.set_status("cid", "hidden", CONFIG, AUDIT)
    store_clock.at(MONDAY + timedelta(days=1))  # a new day: "daily" gets an archive
    await play(store, "ann", 5)
    found, summary = await verify(consistency(store))
    assert found == []
    assert summary.differences == 0
    assert summary.boards == len(CONFIG.boards)
    assert summary.periods >= 6  # main, best, fastest: all; daily: two days; season: 1
    assert summary.line().startswith("consistent: ")


async def test_a_wrong_total_is_found_and_repaired(store: Any) -> None:
    event = await play(store, "ann", 30)
    await play(store, "bob", 50)
    await set_row(store, "main", "all", "ann", score=999)

    found, summary = await verify(consistency(store))
    assert found == [
        Difference(
            "main", "all", "ann", "standings", f"30 by event {event}", f"999 by event {event}"
        )
    ]
    assert summary.differences == 1
    assert found[0].line() == (
        f'board=main period=all user=ann store=standings expected="30 by event {event}"'
        f' found="999 by event {event}"'
    )
    assert await verify(consistency(store), "best") == ([], await _summary(store, "best"))

    assert [d.user_id for d in await repair(consistency(store))] == ["ann"]
    assert (await verify(consistency(store)))[0] == []
    assert await board_of(store, "main", "all") == [(1, "bob", "bob", 50), (2, "ann", "ann", 30)]
    entries = await store.audit_page(limit=1)
    assert entries[0].action == "repair"
    assert entries[0].details["users"] == ["ann"]


async def _summary(store: Any, board: str) -> Summary:
    return (await verify(consistency(store), board))[1]


async def test_a_row_kept_for_a_voided_event_is_found_and_repaired(store: Any) -> None:
    kept = await play(store, "ann", 30)
    gone = await play(store, "eve", 40)
    await store.void(gone, CONFIG, AUDIT)
    # The row a bug left standing: the voided event's effect, shown.
    await set_row(store, "main", "all", "eve", score=40, reached=gone, hidden=0)

    found, _ = await verify(consistency(store), "main")
    assert found == [
        Difference("main", "all", "eve", "standings", "nothing", f"40 by event {gone}")
    ]
    await repair(consistency(store), "main")
    assert (await verify(consistency(store)))[0] == []
    assert await board_of(store, "main", "all") == [(1, "ann", "ann", 30)]
    assert await store.entry("main", "all", "eve") is None
    assert kept


async def test_a_hidden_users_row_shown_is_found(store: Any) -> None:
    event = await play(store, "ann", 30)
    await store.set_status("ann", "hidden", CONFIG, AUDIT)
    await set_row(store, "main", "all", "ann", hidden=0)
    found, _ = await verify(consistency(store), "main")
    assert found == [
        Difference(
            "main",
            "all",
            "ann",
            "standings",
            f"30 by event {event}, hidden",
            f"30 by event {event}",
        )
    ]
    await repair(consistency(store), "main")
    assert await board_of(store, "main", "all") == []
    assert (await verify(consistency(store)))[0] == []


async def test_an_archive_is_verified_and_repaired(store: Any, store_clock: StoreClock) -> None:
    event = await play(store, "ann", 30)
    store_clock.at(MONDAY + timedelta(days=1))
    await play(store, "ann", 5)
    monday = "2026-11-30"
    await set_row(store, "daily", monday, "ann", score=1)
    found, _ = await verify(consistency(store), "daily")
    assert found == [
        Difference(
            "daily", monday, "ann", "standings", f"30 by event {event}", f"1 by event {event}"
        )
    ]
    await repair(consistency(store), "daily")
    assert (await verify(consistency(store)))[0] == []
    assert await board_of(store, "daily", monday) == [(1, "ann", "ann", 30)]


async def test_an_unknown_board_is_refused(store: Any) -> None:
    from scoreboard.errors import NotFound

    with pytest.raises(NotFound):
        await verify(consistency(store), "nope")


# -- the rank index -----------------------------------------------------------------------------


@pytest.fixture
async def loaded(store: Any, index_factory: Callable[..., RankIndex]) -> tuple[Any, RankIndex]:
    """``main``'s index, loaded from the store as a process does at its start."""
    for user, delta in (("ann", 30), ("bob", 50), ("cid", 10)):
        await play(store, user, delta)
    index = index_factory()
    standings = [s async for chunk in store.iter_standings("main", "all") for s in chunk]
    await index.load("all", standings)
    return store, index


async def drop_member(index: Any, user: str) -> None:
    if hasattr(index, "client"):  # Redis: the member goes, its version stays
        keys = index.keys_of("all")
        member = await index.client.hget(keys[1], user)
        await index.client.zrem(keys[0], member)
        await index.client.hdel(keys[1], user)
    else:
        standing = index._users.pop(user)
        index._keys.remove(index._key(standing))


async def set_index_score(index: Any, user: str, score: int) -> None:
    if hasattr(index, "client"):  # Redis: the member's score only, as a lost write would
        keys = index.keys_of("all")
        member = await index.client.hget(keys[1], user)
        await index.client.zadd(keys[0], {member: -score})
    else:
        standing = index._users[user]
        index._keys.remove(index._key(standing))
        index._users[user] = stale = standing._replace(score=score)
        index._keys.add(index._key(stale))


async def test_a_missing_index_member_is_found_and_repaired(
    loaded: tuple[Any, RankIndex],
) -> None:
    store, index = loaded
    await drop_member(index, "bob")
    found, _ = await verify(consistency(store, index), "main")
    assert found == [Difference("main", "all", "bob", "index", "50 as bob", "absent")]
    await repair(consistency(store, index), "main")
    assert (await verify(consistency(store, index)))[0] == []
    assert [(e.user_id, e.score) for e in await index.top(10)] == [
        ("bob", 50),
        ("ann", 30),
        ("cid", 10),
    ]


async def test_a_stale_index_score_is_found_and_repaired(loaded: tuple[Any, RankIndex]) -> None:
    store, index = loaded
    await set_index_score(index, "cid", 70)
    found, _ = await verify(consistency(store, index), "main")
    assert found == [Difference("main", "all", "cid", "index", "10 as cid", "70 as cid")]
    await repair(consistency(store, index), "main")
    assert (await verify(consistency(store, index)))[0] == []
    assert [(e.user_id, e.score) for e in await index.top(10)] == [
        ("bob", 50),
        ("ann", 30),
        ("cid", 10),
    ]


async def test_a_wrong_total_in_both_is_repaired_and_announced(
    store: Any, index_factory: Callable[..., RankIndex]
) -> None:
    """A wrong row that reached the index (loaded from it): both are found, both repaired, and
    the new top is announced as an update's would be."""
    event = await play(store, "ann", 30)
    await play(store, "bob", 50)
    await set_row(store, "main", "all", "ann", score=999)
    index = index_factory()
    standings = [s async for chunk in store.iter_standings("main", "all") for s in chunk]
    await index.load("all", standings)
    announced: list[tuple[str, int, list[str]]] = []

    async def announce(board: Any, top: Any, user: str, score: int) -> None:
        announced.append((user, score, [e.user_id for e in top.top]))

    found, _ = await verify(consistency(store, index), "main")
    assert found == [
        Difference(
            "main", "all", "ann", "standings", f"30 by event {event}", f"999 by event {event}"
        ),
        Difference("main", "all", "ann", "index", "30 as ann", "999 as ann"),
    ]
    await repair(consistency(store, index, announce=announce), "main")
    assert (await verify(consistency(store, index)))[0] == []
    assert announced == [("ann", 30, ["bob", "ann"])]


async def test_an_index_write_after_a_repair_is_kept(loaded: tuple[Any, RankIndex]) -> None:
    """The repair's version is newer than what the index held, older than a later update's."""
    store, index = loaded
    await drop_member(index, "ann")
    await repair(consistency(store, index), "main")
    applied = await store.apply(ScoreUpdate("ann", 1))
    (main,) = [b for b in applied.boards if b.board == "main"]
    assert main.standing is not None
    await index.apply("all", main.standing)
    assert (await verify(consistency(store, index)))[0] == []
    assert await index.rank("ann") == 2


# -- repair while updates arrive ----------------------------------------------------------------


async def test_a_repair_under_updates_loses_nothing(store: Any) -> None:
    """Every user's row is wrong; updates keep arriving for them while repair runs: afterwards
    each total is exactly the sum of their acknowledged updates."""
    users = [f"u{n}" for n in range(40)]
    for user in users:
        await play(store, user, 10)
    for user in users:
        await set_row(store, "main", "all", user, score=-5)
    acknowledged = {user: 10 for user in users}
    done = asyncio.Event()

    async def updates() -> None:
        n = 0
        while not done.is_set() or n < 200:
            user = users[n % len(users)]
            await store.apply(ScoreUpdate(user, 1, f"a{n}"))
            acknowledged[user] += 1
            n += 1
            await asyncio.sleep(0)

    writer = asyncio.create_task(updates())
    await asyncio.sleep(0.01)
    before = sum(acknowledged.values())
    repaired = await repair(consistency(store))
    during = sum(acknowledged.values()) - before
    done.set()
    await writer
    if not isinstance(store, MemoryScoreStore):  # whose calls never wait, so never interleave
        assert during > 0  # updates were acknowledged while the repair ran
    assert {d.user_id for d in repaired} <= set(users)
    assert (await verify(consistency(store)))[0] == []
    shown = {s.user_id: s.score for s in await store.page("main", "all", 0, 100)}
    assert shown == acknowledged


async def test_a_member_nobody_has_events_for_is_found_and_forgotten(
    loaded: tuple[Any, RankIndex],
) -> None:
    """An erased user's leftover (an index write that landed after the erasure's sweeps)."""
    store, index = loaded
    await index.apply("all", Standing("ghost", "ghost", 40, 3, 10**9))
    found, _ = await verify(consistency(store, index), "main")
    assert found == [Difference("main", "all", "ghost", "index", "absent", "40 as ghost")]
    await repair(consistency(store, index), "main")
    assert (await verify(consistency(store, index)))[0] == []
    assert await index.rank("ghost") is None
