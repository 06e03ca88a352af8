"""The AdminStore contract (operators' actions), over memory, SQLite and PostgreSQL.

A void or a restore recomputes every standing its event fed, archives included; the tests hold
each store to a model: the standings recomputed from the events that count, by the ranking
rule, for every board and period.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scoreboard.boards import Board, BoardsConfig, Metric
from scoreboard.errors import ActionConflict, Banned, Conflict, NotFound
from scoreboard.model import Applied, Audit, HistoryQuery, ScoreUpdate, rank_key
from tests.contract.conftest import StoreClock, configure

POINTS = Metric("points", -1000, 1000)
LAPS = Metric("lap_ms", 1, 3_600_000)
CONFIG = BoardsConfig(
    {"points": POINTS, "lap_ms": LAPS},
    {
        "main": Board("main", "All time"),
        "daily": Board("daily", "Today", reset="daily", timezone="Europe/Berlin"),
        "best": Board("best", "Best single", aggregate="best"),
        "fastest": Board("fastest", "Fastest lap", metric="lap_ms", aggregate="best", order="asc"),
        "season": Board("season", "Season", reset="manual"),
    },
)
MONDAY = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
KEY = "ops"


def event_of(applied: Applied) -> int:
    """The id of the event an update stored (the ``reached`` of its standing on a sum)."""
    (main,) = [b for b in applied.boards if b.board in ("main", "fastest")]
    return main.standing.reached


def audit(action: str = "test", target: str = "x", **details: Any) -> Audit:
    return Audit(KEY, action, target, "because", details)


@pytest.fixture
async def store(bare_store: Any, store_clock: StoreClock) -> Any:
    store_clock.at(MONDAY)
    await configure(bare_store, CONFIG)
    return bare_store


async def board_of(store: Any, board: str, period: str) -> list[tuple[str, str, int, int]]:
    """What the public sees of a board in a period: (rank, user, name, score), and the count."""
    page = await store.page(board, period, 0, 100)
    assert await store.count(board, period) == len(page)
    return [(n + 1, s.user_id, s.username, s.score) for n, s in enumerate(page)]


async def every_board(store: Any, periods: dict[str, list[str]]) -> dict[tuple[str, str], Any]:
    return {(b, p): await board_of(store, b, p) for b, ps in periods.items() for p in ps}


# -- voids and restores ----------------------------------------------------------------------


async def test_a_void_recomputes_every_board_and_period_it_fed_archives_included(
    store: Any, store_clock: StoreClock
) -> None:
    await store.apply(ScoreUpdate("ann", 10, "a1"))
    bad = await store.apply(ScoreUpdate("bob", 500, "b1"))
    await store.apply(ScoreUpdate("bob", 5, "b2"))
    await store.rollover(CONFIG.boards["season"])  # season 1 is an archive now
    store_clock.at(MONDAY + timedelta(days=1))  # and 2026-11-30 a day gone
    await store.apply(ScoreUpdate("bob", 7, "b3"))
    where = {
        "main": ["all"],
        "daily": ["2026-11-30", "2026-12-01"],
        "best": ["all"],
        "season": ["1", "2"],
    }
    before = await every_board(store, where)
    assert before[("season", "1")] == [(1, "bob", "bob", 505), (2, "ann", "ann", 10)]
    event_id = event_of(bad)
    done = await store.void(event_id, CONFIG, audit("void", f"event:{event_id}"))
    assert done.changed
    places = {(m.board, m.period): m.standing for m in done.moved}
    assert set(places) == {
        ("main", "all"),
        ("daily", "2026-11-30"),
        ("best", "all"),
        ("season", "1"),
    }
    assert places[("season", "1")].score == 5
    assert places[("best", "all")].score == 7  # bob's best is now his 7
    after = await every_board(store, where)
    assert after[("main", "all")] == [(1, "bob", "bob", 12), (2, "ann", "ann", 10)]
    assert after[("season", "1")] == [(1, "ann", "ann", 10), (2, "bob", "bob", 5)]
    assert after[("daily", "2026-11-30")] == [(1, "ann", "ann", 10), (2, "bob", "bob", 5)]
    assert after[("daily", "2026-12-01")] == before[("daily", "2026-12-01")]
    assert after[("season", "2")] == before[("season", "2")]
    # The history no longer has it, and the totals after each event are recomputed.
    history = await store.history(HistoryQuery("bob"))
    assert [(e.delta, e.score) for e in history] == [(5, 5), (7, 12)]
    event = await store.event(event_id)
    assert event.voided
    # A second void is nothing to do; a restore brings every board back as it was.
    assert not (await store.void(event_id, CONFIG, audit())).changed
    restored = await store.void(event_id, CONFIG, audit("restore"), restore=True)
    assert restored.changed
    assert await every_board(store, where) == before
    assert [(e.delta, e.score) for e in await store.history(HistoryQuery("bob"))] == [
        (500, 500),
        (5, 505),
        (7, 512),
    ]
    assert not (await store.void(event_id, CONFIG, audit(), restore=True)).changed
    assert [e.action for e in await store.audit_page(limit=10)] == ["restore", "void"]


async def test_voiding_every_event_of_a_standing_takes_it_off_until_the_next_event(
    store: Any,
) -> None:
    lap = await store.apply(ScoreUpdate("ann", 61_000, "l1", metric="lap_ms"))
    await store.apply(ScoreUpdate("bob", 65_000, "l2", metric="lap_ms"))
    done = await store.void(event_of(lap), CONFIG, audit())
    (moved,) = done.moved
    assert (moved.board, moved.standing) == ("fastest", None)
    assert await board_of(store, "fastest", "all") == [(1, "bob", "bob", 65_000)]
    assert await store.entry("fastest", "all", "ann") is None
    assert await store.standing_of("fastest", "all", "ann") is None
    assert [
        s.user_id for c in [x async for x in store.iter_standings("fastest", "all")] for s in c
    ] == ["bob"]
    again = await store.apply(ScoreUpdate("ann", 70_000, "l3", metric="lap_ms"))
    (place,) = again.boards
    assert place.shown
    assert place.standing.score == 70_000
    assert place.standing.version > moved.version  # a rank index takes it after the removal
    assert await board_of(store, "fastest", "all") == [
        (1, "bob", "bob", 65_000),
        (2, "ann", "ann", 70_000),
    ]


async def test_void_and_restore_against_a_model_of_random_histories(
    store: Any, store_clock: StoreClock
) -> None:
    rng = random.Random(7)
    users = ["u1", "u2", "u3", "u4"]
    events: list[tuple[int, str, int, str]] = []  # id, user, delta, day
    for n in range(40):
        day = "2026-11-30" if n < 20 else "2026-12-01"
        store_clock.at(MONDAY + timedelta(days=0 if n < 20 else 1, seconds=n))
        user, delta = rng.choice(users), rng.choice([-20, -5, 5, 10, 30, 60])
        applied = await store.apply(ScoreUpdate(user, delta, f"r{n}"))
        events.append((event_of(applied), user, delta, day))
    voided: set[int] = set()
    for _ in range(12):
        event_id = rng.choice(events)[0]
        restore = event_id in voided
        assert (await store.void(event_id, CONFIG, audit(), restore=restore)).changed
        voided ^= {event_id}
        for board, period in (
            ("main", "all"),
            ("daily", "2026-11-30"),
            ("daily", "2026-12-01"),
            ("best", "all"),
        ):
            model: dict[str, tuple[int, int]] = {}  # user -> (aggregate, reached)
            for eid, user, delta, day in events:
                if eid in voided or (board == "daily" and day != period):
                    continue
                if board == "best":
                    if user not in model or delta > model[user][0]:
                        model[user] = (delta, eid)
                else:
                    model[user] = (model.get(user, (0, 0))[0] + delta, eid)
            ranked = sorted(model.items(), key=lambda kv: rank_key(kv[1][0], kv[1][1], kv[0]))
            got = await store.page(board, period, 0, 100)
            assert [(s.user_id, s.score) for s in got] == [(u, v[0]) for u, v in ranked], (
                board,
                period,
            )


# -- adjustments -----------------------------------------------------------------------------


async def test_an_adjustment_counts_on_sums_only_and_once(store: Any) -> None:
    await store.apply(ScoreUpdate("ann", 40, "a1"))
    update = ScoreUpdate("ann", -25, "fix-1", metric="points", source="admin")
    applied = await store.adjust(update, audit("adjust", "ann", delta=-25))
    assert {b.board for b in applied.boards} == {"main", "daily", "season"}
    assert (await store.entry("main", "all", "ann")).standing.score == 15
    assert (await store.entry("best", "all", "ann")).standing.score == 40
    again = await store.adjust(update, audit("adjust", "ann"))
    assert again.replayed
    assert (await store.entry("main", "all", "ann")).standing.score == 15
    assert [e.action for e in await store.audit_page(limit=10)] == ["adjust"]
    (latest, first) = await store.events_of("ann", limit=10)
    assert (latest.source, latest.delta, first.source) == ("admin", -25, "user")
    with pytest.raises(ActionConflict):
        await store.adjust(ScoreUpdate("ann", -26, "fix-1", source="admin"), audit())


# -- hiding, banning, renaming -------------------------------------------------------------


async def test_a_hidden_user_is_on_no_board_but_their_updates_count(store: Any) -> None:
    await store.apply(ScoreUpdate("ann", 50, "a1"))
    await store.apply(ScoreUpdate("bob", 30, "b1"))
    await store.apply(ScoreUpdate("cat", 10, "c1"))
    done = await store.set_status("ann", "hidden", CONFIG, audit("hide", "ann"))
    assert done.changed
    assert {(m.board, m.standing) for m in done.moved} >= {("main", None), ("season", None)}
    assert await board_of(store, "main", "all") == [(1, "bob", "bob", 30), (2, "cat", "cat", 10)]
    assert await store.entry("main", "all", "ann") is None
    cat = (await store.entry("main", "all", "cat")).standing
    assert await store.rank_of("main", "all", "desc", cat) == 2  # the ranks below close up
    (summary,) = await store.periods("main", limit=5)
    assert (summary.entries, summary.leader.user_id) == (2, "bob")
    counted = await store.apply(ScoreUpdate("ann", 5, "a2"))
    assert not any(b.shown for b in counted.boards)
    assert [b.standing.score for b in counted.boards if b.board == "main"] == [55]
    assert (await store.standing_of("main", "all", "ann"))[1] is False
    assert not (await store.set_status("ann", "hidden", CONFIG, audit())).changed
    shown = await store.set_status("ann", "active", CONFIG, audit("unhide", "ann"))
    assert {m.standing.score for m in shown.moved if m.board == "main"} == {55}
    assert (await board_of(store, "main", "all"))[0] == (1, "ann", "ann", 55)
    assert (await store.profile("ann")).status == "active"


async def test_a_standings_time_is_its_events_whatever_an_operator_did_to_it(
    store: Any, store_clock: StoreClock
) -> None:
    """A standing's ``updated_at`` (a user's public ``updated_at``) is the time of the event
    that made it, as an update and a refill leave it: a hide, a ban, a rename and their undoing
    leave it; a void or a restore gives the time of the last event that counts (on a best board,
    of the run that counts). Lifting an action gives back exactly what was read before it."""
    times = [MONDAY + timedelta(minutes=n) for n in range(10)]
    store_clock.at(times[0])
    first = event_of(await store.apply(ScoreUpdate("ann", 10, "a1")))
    store_clock.at(times[1])
    second = event_of(await store.apply(ScoreUpdate("ann", 5, "a2")))

    async def seen() -> dict[str, tuple[int, datetime]]:
        entries = {b: await store.entry(b, "all", "ann") for b in ("main", "best")}
        return {b: (e.standing.score, e.updated_at) for b, e in entries.items()}

    before = await seen()
    assert before == {"main": (15, times[1]), "best": (10, times[0])}
    store_clock.at(times[2])
    await store.set_status("ann", "hidden", CONFIG, audit("hide", "ann"))
    await store.set_status("ann", "active", CONFIG, audit("unhide", "ann"))
    await store.set_status("ann", "banned", CONFIG, audit("ban", "ann"))
    await store.set_status("ann", "active", CONFIG, audit("unban", "ann"))
    await store.rename("ann", "Ann", audit("rename", "ann"))
    assert await seen() == before
    store_clock.at(times[3])
    await store.void(second, CONFIG, audit("void", str(second)))
    assert await seen() == {"main": (10, times[0]), "best": (10, times[0])}
    await store.void(first, CONFIG, audit("void", str(first)))
    store_clock.at(times[4])
    await store.void(second, CONFIG, audit("restore", str(second)), restore=True)
    assert await seen() == {"main": (5, times[1]), "best": (5, times[1])}
    await store.void(first, CONFIG, audit("restore", str(first)), restore=True)
    assert await seen() == before


async def test_a_banned_users_updates_are_refused_and_change_nothing(store: Any) -> None:
    await store.apply(ScoreUpdate("ann", 50, "a1"))
    await store.set_status("ann", "banned", CONFIG, audit("ban", "ann"))
    before = await board_of(store, "main", "all"), await store.events_of("ann", limit=10)
    for update in (ScoreUpdate("ann", 5, "a2"), ScoreUpdate("ann", 50, "a1")):  # a replay too
        with pytest.raises(Banned):
            await store.apply(update)
    assert (await board_of(store, "main", "all"), await store.events_of("ann", limit=10)) == before
    assert (await store.profile("ann")).status == "banned"
    # An operator's adjustment still applies to a banned user.
    await store.adjust(ScoreUpdate("ann", 1, "fix", source="admin"), audit())
    await store.set_status("ann", "active", CONFIG, audit("unban", "ann"))
    assert (await board_of(store, "main", "all")) == [(1, "ann", "ann", 51)]


async def test_a_rename_is_locked_against_tokens_until_unlocked(store: Any) -> None:
    await store.apply(ScoreUpdate("ann", 50, "a1", "Slur"))
    done = await store.rename("ann", "Player 1", audit("rename", "ann"))
    assert [m.standing.username for m in done.moved if m.board == "main"] == ["Player 1"]
    await store.apply(ScoreUpdate("ann", 1, "a2", "Slur again"))
    assert (await board_of(store, "main", "all"))[0][2] == "Player 1"
    assert (await store.profile("ann")).name_locked
    assert not (await store.rename("ann", "Player 1", audit())).changed
    assert (await store.rename("ann", None, audit("unlock_name", "ann"))).changed
    assert not (await store.rename("ann", None, audit())).changed
    await store.apply(ScoreUpdate("ann", 1, "a3", "Annie"))
    assert (await board_of(store, "main", "all"))[0][2] == "Annie"


async def test_actions_on_unknown_users_and_events_are_not_found(store: Any) -> None:
    with pytest.raises(NotFound):
        await store.void(999, CONFIG, audit())
    with pytest.raises(NotFound):
        await store.set_status("nobody", "hidden", CONFIG, audit())
    with pytest.raises(NotFound):
        await store.rename("nobody", "X", audit())
    with pytest.raises(NotFound):
        await store.erase("nobody", "erased:x", audit())
    assert await store.audit_page(limit=10) == []


# -- erasure -------------------------------------------------------------------------------


async def test_erasure_removes_the_user_everywhere_and_hashes_them_in_the_audit(
    store: Any,
) -> None:
    first = await store.apply(ScoreUpdate("eve", 50, "e1", "Eve"))
    await store.apply(ScoreUpdate("eve", 61_000, "e2", metric="lap_ms"))
    await store.apply(ScoreUpdate("bob", 20, "b1"))
    await store.rollover(CONFIG.boards["season"])
    await store.set_status("eve", "hidden", CONFIG, audit("hide", "eve"))
    event = event_of(first)
    await store.void(event, CONFIG, audit("void", f"event:{event}", user_id="eve"))
    await store.record(audit("note", "board:main", about="evening"))  # "eve" inside a word
    pairs = await store.erase("eve", "erased:abc", audit("erase", "erased:abc"))
    assert set(pairs) >= {("main", "all"), ("fastest", "all"), ("season", "1")}
    assert await store.profile("eve") is None
    assert await store.events_of("eve", limit=10) == []
    assert await store.event(event) is None
    assert await store.history(HistoryQuery("eve")) == []
    for board, period in pairs:
        assert await store.standing_of(board, period, "eve") is None
    entries = await store.audit_page(limit=10)
    assert [(e.action, e.target) for e in entries] == [
        ("erase", "erased:abc"),
        ("note", "board:main"),
        ("void", f"event:{event}"),
        ("hide", "erased:abc"),
    ]
    assert entries[2].details == {"user_id": "erased:abc"}
    assert entries[1].details == {"about": "evening"}
    # The id is free: a later update starts a new user from zero.
    again = await store.apply(ScoreUpdate("eve", 3, "e1"))
    assert [b.standing.score for b in again.boards if b.board == "main"] == [3]
    assert (await store.profile("eve")).status == "active"


# -- the audit and admin keys ----------------------------------------------------------------


async def test_the_audit_pages_newest_first(store: Any) -> None:
    for n in range(5):
        await store.record(audit("note", f"t{n}", n=n))
    first = await store.audit_page(limit=2)
    assert [e.target for e in first] == ["t4", "t3"]
    assert first[0].details == {"n": 4}
    assert (first[0].key, first[0].reason) == (KEY, "because")
    rest = await store.audit_page(limit=10, before=first[-1].id)
    assert [e.target for e in rest] == ["t2", "t1", "t0"]


async def test_admin_keys(store: Any, store_clock: StoreClock) -> None:
    await store.add_key("alice", "a" * 64)
    with pytest.raises(Conflict):
        await store.add_key("alice", "b" * 64)
    await store.add_key("bob", "c" * 64)
    assert [k.name for k in await store.keys()] == ["alice", "bob"]
    found = await store.key_by_hash("a" * 64)
    assert (found.name, found.last_used_at, found.key_hash) == ("alice", MONDAY, "a" * 64)
    store_clock.at(MONDAY + timedelta(seconds=30))
    assert (await store.key_by_hash("a" * 64)).last_used_at == MONDAY  # at most once a minute
    assert await store.key_by_hash("d" * 64) is None
    assert await store.revoke_key("alice")
    assert not await store.revoke_key("alice")
    assert not await store.revoke_key("nobody")
    revoked = await store.key_by_hash("a" * 64)
    assert revoked.revoked_at == MONDAY + timedelta(seconds=30)


async def test_concurrent_updates_and_voids_of_one_user_lose_nothing(store: Any) -> None:
    first = [await store.apply(ScoreUpdate("ann", 10, f"seed{n}")) for n in range(10)]
    seeded = [event_of(a) for a in first]

    async def update(n: int) -> None:
        await store.apply(ScoreUpdate("ann", n + 1, f"c{n}"))

    async def void(event_id: int, n: int) -> None:
        await store.void(event_id, CONFIG, audit(), restore=n % 3 == 0)

    await asyncio.gather(
        *(update(n) for n in range(40)),
        *(void(e, n) for n, e in enumerate(seeded)),
    )
    events = await store.events_of("ann", limit=100)
    assert len(events) == 50
    counted = sum(e.delta for e in events if not e.voided)
    assert {e.event_id for e in events if e.voided} <= set(seeded)
    assert (await store.entry("main", "all", "ann")).standing.score == counted
    history = await store.history(HistoryQuery("ann", limit=100))
    assert history[-1].score == counted
    assert [h.score for h in history] == list(itertools.accumulate(h.delta for h in history))


# -- exports ---------------------------------------------------------------------------------


async def test_iter_ranked_walks_the_board_in_rank_order_in_chunks(store: Any) -> None:
    for user, delta in [("a", 5), ("b", 9), ("c", 5), ("d", 7), ("e", 9), ("f", 1), ("g", 5)]:
        await store.apply(ScoreUpdate(user, delta, f"x-{user}"))
    hidden_event = await store.apply(ScoreUpdate("h", 100, "x-h"))
    await store.set_status("h", "hidden", CONFIG, audit())
    voided = await store.apply(ScoreUpdate("v", 50, "x-v"))
    await store.void(event_of(voided), CONFIG, audit())
    chunks = [c async for c in store.iter_ranked("main", "all", chunk=2)]
    assert [len(c) for c in chunks] == [2, 2, 2, 1]
    rows = [r for c in chunks for r in c]
    page = await store.page("main", "all", 0, 100)
    assert [(r.rank, r.user_id, r.score) for r in rows] == [
        (n + 1, s.user_id, s.score) for n, s in enumerate(page)
    ]
    assert [r.user_id for r in rows] == ["b", "e", "d", "a", "c", "g", "f"]  # ties: first
    events = {e.event_id: e.at for u in "abcdefg" for e in await store.events_of(u, limit=5)}
    for row, standing in zip(rows, page, strict=True):
        assert row.reached_at == events[standing.reached]
    assert hidden_event.user_id not in [r.user_id for r in rows]
    assert [c async for c in store.iter_ranked("main", "nope")] == []
