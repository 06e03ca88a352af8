"""The past reads (``scoreboard.past``) over every store (memory, SQLite, PostgreSQL), held to a
model: the board at ``T`` recomputed here by brute force from the events the test applied,
after voids, a hidden user and an erasure (the past as we know it now)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scoreboard.boards import Board
from scoreboard.errors import Banned, InvalidRequest, NotFound
from scoreboard.model import Audit, ScoreUpdate, rank_key
from scoreboard.past import Past, buckets
from tests.contract.conftest import StoreClock, configure
from tests.contract.test_moderation_store import CONFIG, MONDAY

AUDIT = Audit("ops", "test", "x", "because")
FAR = datetime(2100, 1, 1, tzinfo=UTC)


@dataclass
class Event:
    event_id: int
    user: str
    metric: str
    delta: int
    at: datetime
    voided: bool = False


@dataclass
class Model:
    events: list[Event]
    seasons: list[tuple[str, datetime, datetime | None]]
    hidden: set[str]
    erased: set[str]

    def period(self, board: Board, at: datetime) -> tuple[str | None, datetime | None, Any]:
        if board.reset == "never":
            return "all", None, None
        if board.reset == "daily":  # Europe/Berlin in winter: UTC+1
            local = (at + timedelta(hours=1)).date()
            start = datetime(local.year, local.month, local.day, tzinfo=UTC) - timedelta(hours=1)
            return local.isoformat(), start, start + timedelta(days=1)
        for season, start, end in self.seasons:
            if start <= at and (end is None or at < end):
                return season, start, end
        return None, None, None

    def board(self, board: Board, at: datetime) -> tuple[str | None, list[tuple[str, int]]]:
        """(period id, [(user, score)] in rank order) by brute force."""
        period, start, end = self.period(board, at)
        if period is None:
            return None, []
        found: dict[str, tuple[int, int]] = {}
        for e in sorted(self.events, key=lambda e: e.event_id):
            if (
                e.metric != board.metric
                or e.voided
                or e.user in self.erased
                or e.at > at
                or (start is not None and e.at < start)
                or (end is not None and e.at >= end)
            ):
                continue
            old = found.get(e.user)
            if old is None:
                found[e.user] = (e.delta, e.event_id)
            elif board.aggregate == "sum":
                found[e.user] = (old[0] + e.delta, e.event_id)
            elif rank_key(e.delta, 0, "", board.order) < rank_key(old[0], 0, "", board.order):
                found[e.user] = (e.delta, e.event_id)
        shown = [(u, s, r) for u, (s, r) in found.items() if u not in self.hidden]
        shown.sort(key=lambda x: rank_key(x[1], x[2], x[0], board.order))
        return period, [(u, s) for u, s, _ in shown]


@pytest.fixture
async def store(bare_store: Any, store_clock: StoreClock) -> Any:
    store_clock.at(MONDAY)
    await configure(bare_store, CONFIG)
    return bare_store


async def _workload(store: Any, store_clock: StoreClock, seed: int) -> Model:
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(7)]
    model = Model([], [("1", MONDAY, None)], set(), set())
    at = MONDAY
    for n in range(70):
        at += timedelta(minutes=rng.randrange(1, 60))
        store_clock.at(at)
        user = rng.choice(users)
        if rng.random() < 0.3:
            metric, delta = "lap_ms", rng.randrange(1000, 90_000)
        else:
            metric, delta = "points", rng.choice([-20, -5, 3, 10, 50, 100])
        await store.apply(ScoreUpdate(user, delta, f"a{n}", metric=metric))
        (newest,) = await store.events_of(user, limit=1)
        model.events.append(Event(newest.event_id, user, metric, delta, at))
        if n in (25, 50):
            closed, opened = await store.rollover(CONFIG.boards["season"])
            season, start, _ = model.seasons[-1]
            model.seasons[-1] = (season, start, closed.ends_at)
            model.seasons.append((opened.id, opened.starts_at, None))
    for event in rng.sample(model.events, 6):
        await store.void(event.event_id, CONFIG, AUDIT)
        event.voided = True
    await store.set_status("u1", "hidden", CONFIG, AUDIT)
    model.hidden.add("u1")
    await store.erase("u2", "erased-u2", AUDIT)
    model.erased.add("u2")
    return model


async def test_the_board_at_any_instant_is_the_models(store: Any, store_clock: StoreClock) -> None:
    model = await _workload(store, store_clock, seed=16)
    past = Past(store, clock=lambda: FAR)
    instants = [MONDAY - timedelta(hours=1), MONDAY]
    instants += [e.at for e in model.events[::7]]
    instants += [e.at - timedelta(microseconds=1) for e in model.events[3::11]]
    instants += [s[1] for s in model.seasons] + [model.events[-1].at + timedelta(days=1)]
    for board in CONFIG.boards.values():
        for at in instants:
            period, expected = model.board(board, at)
            found, top = await past.top(board, at, 10)
            assert (found.period.id if found.period else None) == period, (board.id, at)
            assert [(e.user_id, e.score) for e in top] == expected[:10], (board.id, at)
            assert [e.rank for e in top] == list(range(1, len(top) + 1))
            _, page = await past.page(board, at, 2, 3)
            assert [(e.user_id, e.score) for e in page] == expected[2:5]
            assert len(found.tallies) == len(expected)
            for rank, (user, score) in enumerate(expected, 1):
                _, entry, got = await past.user(board, at, user)
                assert (got, entry.standing.score) == (rank, score), (board.id, at, user)
            for gone in ("u1", "u2", "nobody"):
                with pytest.raises(LookupError):
                    await past.user(board, at, gone)


async def test_names_are_todays_and_updated_at_is_the_reaching_event(
    store: Any, store_clock: StoreClock
) -> None:
    store_clock.at(MONDAY + timedelta(minutes=1))
    await store.apply(ScoreUpdate("ann", 5, "a1", username="Ann"))
    store_clock.at(MONDAY + timedelta(minutes=2))
    await store.apply(ScoreUpdate("ann", 5, "a2", username="Annie"))
    past = Past(store, clock=lambda: FAR)
    _, entry, rank = await past.user(
        CONFIG.boards["main"], MONDAY + timedelta(minutes=1, seconds=30), "ann"
    )
    assert (entry.standing.username, entry.standing.score, rank) == ("Annie", 5, 1)
    assert entry.updated_at == MONDAY + timedelta(minutes=1)


async def test_the_future_reads_as_now(store: Any, store_clock: StoreClock) -> None:
    store_clock.at(MONDAY + timedelta(seconds=2))
    await store.apply(ScoreUpdate("ann", 5, "a1"))
    past = Past(store, clock=lambda: MONDAY + timedelta(seconds=1))
    found, top = await past.top(CONFIG.boards["main"], MONDAY + timedelta(days=1), 10)
    assert (found.at, top) == (MONDAY + timedelta(seconds=1), [])


async def test_a_trajectory_is_the_models_rank_at_each_bucket_end(
    store: Any, store_clock: StoreClock
) -> None:
    model = await _workload(store, store_clock, seed=7)
    end = model.events[-1].at + timedelta(hours=2)
    past = Past(store, clock=lambda: end)
    for board_id in ("main", "daily", "season"):
        board = CONFIG.boards[board_id]
        for user in ("u0", "u3"):
            points = await past.trajectory(board, user, MONDAY, end, "hour")
            starts = buckets(board.timezone, "hour", MONDAY, end)
            assert [p.at for p in points] == starts
            for point in points:
                moment = min(point.at + timedelta(hours=1), end) - timedelta(microseconds=1)
                _, expected = model.board(board, moment)
                ranks = {u: (r, s) for r, (u, s) in enumerate(expected, 1)}
                rank, score = ranks.get(user, (None, None))
                assert (point.rank, point.score) == (rank, score), (board_id, user, point.at)
        assert await past.trajectory(board, "u1", MONDAY, end, "hour") == []  # hidden
        assert await past.trajectory(board, "u2", MONDAY, end, "hour") == []  # erased


async def test_more_than_a_thousand_points_asks_for_a_coarser_bucket(store: Any) -> None:
    await store.apply(ScoreUpdate("u0", 5, "a1"))
    past = Past(store, clock=lambda: FAR)
    board = CONFIG.boards["main"]
    with pytest.raises(InvalidRequest, match="bucket=day"):
        await past.trajectory(board, "u0", MONDAY, MONDAY + timedelta(hours=1001), "hour")
    points = await past.trajectory(board, "u0", MONDAY, MONDAY + timedelta(hours=1000), "hour")
    assert len(points) == 1000
    assert {(p.score, p.rank) for p in points} == {(5, 1)}


async def test_a_trajectory_over_events_committed_out_of_time_order(
    store: Any, store_clock: StoreClock
) -> None:
    """A clock set back (or concurrent commits) gives a later event id an earlier time: the
    points it belongs to are recounted, so each is still the board at its instant."""
    # Different users: PostgreSQL keeps each user's own events in time order.
    steps = ((150, "ann", 10), (30, "bob", 5), (90, "cid", 20), (20, "dan", 1))
    for minutes, user, delta in steps:
        store_clock.at(MONDAY + timedelta(minutes=minutes))
        await store.apply(ScoreUpdate(user, delta, f"{user}{minutes}"))
    end = MONDAY + timedelta(hours=4)
    past = Past(store, clock=lambda: end)
    board = CONFIG.boards["main"]
    for user in ("ann", "bob", "cid", "dan"):
        points = await past.trajectory(board, user, MONDAY, end, "hour")
        for point in points:
            moment = point.at + timedelta(hours=1) - timedelta(microseconds=1)
            at = await past.board_at(board, moment)
            found = at.tallies.get(user)
            expected = (None if found is None else found.score, at.rank(user))
            assert (point.score, point.rank) == expected, (user, point)
    dan = await past.trajectory(board, "dan", MONDAY, end, "hour")
    assert [(p.score, p.rank) for p in dan] == [(1, 2), (1, 3), (1, 4), (1, 4)]


async def _random_history(store: Any, store_clock: StoreClock, seed: int) -> list[datetime]:
    """Updates on both metrics, adjustments, voids and restores, hidden, banned and erased users
    (one back afterwards), all interleaved in time: the instants of the history."""
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(8)]
    at = MONDAY
    instants = [MONDAY - timedelta(minutes=1)]
    events: list[int] = []
    for n in range(90):
        at += timedelta(minutes=rng.randrange(1, 8))
        store_clock.at(at)
        instants += [at, at - timedelta(microseconds=1)]
        user = rng.choice(users)
        roll = rng.random()
        try:
            if roll < 0.55:
                metric = "lap_ms" if rng.random() < 0.35 else "points"
                delta = rng.randrange(1000, 90_000) if metric == "lap_ms" else rng.choice(DELTAS)
                await store.apply(ScoreUpdate(user, delta, f"a{n}", metric=metric))
            elif roll < 0.65:
                delta = rng.choice([-30, 7, 25])
                await store.adjust(ScoreUpdate(user, delta, f"j{n}", source="admin"), AUDIT)
            elif roll < 0.80 and events:
                await store.void(rng.choice(events), CONFIG, AUDIT, restore=rng.random() < 0.3)
            elif roll < 0.93:
                status = rng.choice(["hidden", "banned", "active", "active"])
                await store.set_status(user, status, CONFIG, AUDIT)
            else:
                await store.erase(user, f"erased-{user}-{n}", AUDIT)
        except (Banned, NotFound):  # a banned user's update, a void of an erased event
            pass
        else:
            if roll < 0.65:
                (newest,) = await store.events_of(user, limit=1)
                events.append(newest.event_id)
    return instants


DELTAS = [-20, -5, 3, 10, 10, 50, 100]


@pytest.mark.parametrize("seed", [3, 16, 29])
async def test_a_rank_read_backward_from_now_is_the_recounts(
    store: Any, store_clock: StoreClock, seed: int
) -> None:
    """Every user's rank at many instants, read backward from the present standings, against
    the recount (and the path did answer: most instants are in the current period)."""
    instants = await _random_history(store, store_clock, seed)
    now = instants[-2] + timedelta(minutes=1)
    back = Past(store, clock=lambda: now)
    slow = Past(store, clock=lambda: now, backward=False)
    served = reads = 0
    for board in CONFIG.boards.values():
        for at in [*random.Random(seed).sample(instants, 30), now]:
            for user in [*(f"u{i}" for i in range(8)), "nobody"]:
                want = await _rank(slow, board, at, user)
                got = await _rank(back, board, at, user)
                assert got[1:] == want[1:], (board.id, at, user)
                reads += 1
                served += got[0]
    assert served > reads // 2, (served, reads)


async def _rank(past: Past, board: Board, at: datetime, user: str) -> tuple[bool, Any, Any]:
    """(read backward, rank, entry); ``None`` for a user not on the board then."""
    try:
        found, entry, rank = await past.user(board, at, user)
    except LookupError:
        return past.backward, None, None
    return found.backward, rank, entry


async def test_too_many_events_after_the_instant_fall_back(
    store: Any, store_clock: StoreClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for minutes, user, delta in ((1, "ann", 10), (2, "bob", 30), (3, "ann", 25), (4, "cid", 5)):
        store_clock.at(MONDAY + timedelta(minutes=minutes))
        await store.apply(ScoreUpdate(user, delta, f"{user}{minutes}"))
    past = Past(store, clock=lambda: MONDAY + timedelta(hours=1))
    board = CONFIG.boards["main"]
    at = MONDAY + timedelta(minutes=2, seconds=30)
    found, _, rank = await past.user(board, at, "ann")
    assert (found.backward, rank) == (True, 2)
    monkeypatch.setattr("scoreboard.past.BACKWARD_MOST", 1)
    found, _, rank = await past.user(board, at, "ann")
    assert (found.backward, rank) == (False, 2)
