"""Reads of the past from checkpoints (``Checkpoints`` on SQLite and PostgreSQL) give the
recount's answer, on random histories: checkpoints taken between updates, then voids,
restores, hidden, banned and erased users (one who comes back), renames, a season's
rollover and events committed with a clock set back (dated before a checkpoint they follow).

The recount (``Past`` without checkpoints) is itself held to a brute-force model in
``test_past.py``; here every read is compared with it at many instants, and the test also
checks that the checkpoints did answer most of them (a fast path that always fell back would
pass the comparison and prove nothing)."""

from __future__ import annotations

import contextlib
import random
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoreboard.boards import Board
from scoreboard.errors import Banned
from scoreboard.model import Audit, ScoreUpdate
from scoreboard.past import Past
from scoreboard.ports import Checkpoints
from tests.contract.conftest import StoreClock, configure
from tests.contract.test_moderation_store import CONFIG, MONDAY
from tests.support import services

FAR = datetime(2100, 1, 1, tzinfo=UTC)
SIZE = 4
"""Rows per checkpoint: small, so that users fall below a checkpoint's last row."""
USERS = [f"u{i}" for i in range(7)]
INSTANTS = 40
"""Instants read per history (a sample when there are more): each is read many ways."""
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass
class History:
    events: list[tuple[int, str, datetime]] = field(default_factory=list)
    instants: list[datetime] = field(default_factory=list)


async def _checkpoint(store: Any, at: datetime) -> None:
    past = Past(store, clock=lambda: at)
    targets = []
    for board in CONFIG.boards.values():
        period = await past.period_at(board, at)
        if period is not None and await store.period(board.id, period.id) is not None:
            targets.append((board, period))
    await store.take_checkpoints(targets, SIZE)


def _audit(action: str, target: str) -> Audit:
    return Audit("ops", action, target, "because", {})


async def _run(store: Any, clock: StoreClock, ops: list[tuple[Any, ...]]) -> History:
    """Apply ``ops`` (see :func:`_ops`) from MONDAY on; what happened, and instants to read."""
    history = History()
    at = MONDAY
    for n, op in enumerate(ops):
        kind = op[0]
        if kind in ("update", "late"):
            _, user, delta, minutes = op
            at += timedelta(minutes=minutes)
            moment = at - timedelta(minutes=minutes // 2 + 1) if kind == "late" else at
            clock.at(moment)
            metric = "lap_ms" if delta > 1000 else "points"
            try:
                await store.apply(ScoreUpdate(user, delta, f"a{n}", metric=metric))
            except Banned:
                clock.at(at)
                continue
            (newest,) = await store.events_of(user, limit=1)
            history.events.append((newest.event_id, user, newest.at))
            history.instants += [newest.at, newest.at - timedelta(microseconds=1)]
            clock.at(at)
        elif kind == "checkpoint":
            await _checkpoint(store, at)
            history.instants.append(at)
        elif kind in ("void", "restore") and history.events:
            event_id, user, _ = history.events[op[1] % len(history.events)]
            audit = Audit("ops", kind, f"event:{event_id}", "because", {"user_id": user})
            with contextlib.suppress(Exception):  # an erased user's event
                await store.void(event_id, CONFIG, audit, restore=kind == "restore")
        elif kind in ("hidden", "banned", "active"):
            action = {"hidden": "hide", "banned": "ban", "active": "unhide"}[kind]
            with contextlib.suppress(Exception):  # not a user (yet, or any more)
                await store.set_status(op[1], kind, CONFIG, _audit(action, op[1]))
        elif kind == "rename":
            with contextlib.suppress(Exception):
                await store.rename(op[1], f"New {op[1]}", _audit("rename", op[1]))
        elif kind == "erase":
            with contextlib.suppress(Exception):
                await store.erase(op[1], f"erased:{op[1]}", _audit("erase", f"erased:{op[1]}"))
        elif kind == "rollover":
            clock.at(at)
            await store.rollover(CONFIG.boards["season"])
    history.instants += [MONDAY - timedelta(hours=1), at + timedelta(days=1)]
    return history


async def _compare(store: Any, history: History) -> tuple[int, int]:
    """Every read at every instant, from checkpoints and recounted: the same. (Reads served
    from a checkpoint, all reads.)"""
    fast = Past(store, checkpoints=store, backward=False, clock=lambda: FAR)
    slow = Past(store, backward=False, clock=lambda: FAR)
    back = Past(store, clock=lambda: FAR)  # a user's rank read backward from now
    served = reads = 0
    instants = sorted(set(history.instants))
    if len(instants) > INSTANTS:  # the same sample every run
        instants = sorted(random.Random(len(instants)).sample(instants, INSTANTS))
    for board in CONFIG.boards.values():
        for at in instants:
            expected = await slow.board_at(board, at)
            for k in (1, 3, 10):
                found, top = await fast.top(board, at, k)
                _, want = await slow.top(board, at, k)
                assert top == want, (board.id, at, k)
                assert found.period == expected.period
                if k == 3:
                    reads += 1
                    served += found.replayed
            _, page = await fast.page(board, at, 1, 3)
            assert page == (await slow.page(board, at, 1, 3))[1], (board.id, at)
            for user in [*USERS, "nobody"]:
                want = await _user(slow, board, at, user)
                assert await _user(fast, board, at, user) == want, (board.id, at, user)
                assert await _user(back, board, at, user) == want, (board.id, at, user)
    return served, reads


async def _user(past: Past, board: Board, at: datetime, user: str) -> Any:
    try:
        _, entry, rank = await past.user(board, at, user)
    except LookupError:
        return None
    return rank, entry


def _random_ops(seed: int, count: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    ops: list[tuple[Any, ...]] = []
    for _ in range(count):
        roll = rng.random()
        user = rng.choice(USERS)
        if roll < 0.55:
            delta = rng.choice([-20, -5, 3, 10, 50, 100, rng.randrange(1001, 90_000)])
            ops.append(("update", user, delta, rng.randrange(1, 90)))
        elif roll < 0.62:
            ops.append(("late", user, rng.choice([5, 40, 100]), rng.randrange(2, 30)))
        elif roll < 0.80:
            ops.append(("checkpoint",))
        elif roll < 0.86:
            ops.append((rng.choice(["void", "restore"]), rng.randrange(1000)))
        elif roll < 0.92:
            ops.append((rng.choice(["hidden", "banned", "active"]), user))
        elif roll < 0.95:
            ops.append(("rename", user))
        elif roll < 0.98:
            ops.append(("erase", user))
        else:
            ops.append(("rollover",))
    return ops


@pytest.fixture
async def store(bare_store: Any, store_clock: StoreClock) -> Any:
    store_clock.at(MONDAY)
    await configure(bare_store, CONFIG)
    return bare_store


@pytest.mark.parametrize("bare_store", BACKENDS, indirect=True)
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_reads_from_checkpoints_are_the_recounts(
    store: Any, store_clock: StoreClock, seed: int
) -> None:
    assert isinstance(store, Checkpoints)
    history = await _run(store, store_clock, _random_ops(seed, 80))
    served, reads = await _compare(store, history)
    assert served > reads // 4, (served, reads)  # checkpoints answered a good share


@pytest.mark.parametrize("bare_store", BACKENDS, indirect=True)
async def test_a_void_after_a_checkpoint_is_replayed(store: Any, store_clock: StoreClock) -> None:
    """The checkpoint had ann first; a void after it takes her event back, at every instant
    after the checkpoint as before it."""
    for minute, (user, delta) in enumerate([("ann", 50), ("bob", 20), ("cid", 10)], 1):
        store_clock.at(MONDAY + timedelta(minutes=minute))
        await store.apply(ScoreUpdate(user, delta, f"a{minute}"))
    await _checkpoint(store, MONDAY + timedelta(minutes=5))
    (event,) = await store.events_of("ann", limit=1)
    audit = Audit("ops", "void", f"event:{event.event_id}", "because", {})
    await store.void(event.event_id, CONFIG, audit)
    fast = Past(store, checkpoints=store, clock=lambda: FAR)
    found, top = await fast.top(CONFIG.boards["main"], MONDAY + timedelta(minutes=10), 2)
    assert found.replayed
    assert [(e.user_id, e.score) for e in top] == [("bob", 20), ("cid", 10)]


@pytest.mark.parametrize("bare_store", BACKENDS, indirect=True)
async def test_an_event_dated_before_the_checkpoint_it_follows_counts(
    store: Any, store_clock: StoreClock
) -> None:
    """A clock set back: bob's event commits after the checkpoint, dated before it. Read
    before the keeper's next turn (found among the events since its mark) and after it (kept
    with the checkpoint), it counts at every instant from its date."""
    store_clock.at(MONDAY + timedelta(minutes=10))
    await store.apply(ScoreUpdate("ann", 50, "a1"))
    await _checkpoint(store, MONDAY + timedelta(minutes=10))
    store_clock.at(MONDAY + timedelta(minutes=5))
    await store.apply(ScoreUpdate("bob", 70, "b1"))
    fast = Past(store, checkpoints=store, clock=lambda: FAR)
    board = CONFIG.boards["main"]
    for turn in range(2):
        found, top = await fast.top(board, MONDAY + timedelta(minutes=20), 2)
        assert found.replayed, turn
        assert [(e.user_id, e.score) for e in top] == [("bob", 70), ("ann", 50)], turn
        store_clock.at(MONDAY + timedelta(minutes=30))
        await store.take_checkpoints([], SIZE)  # a turn with nothing to write: the seal


@pytest.mark.parametrize("bare_store", BACKENDS, indirect=True)
async def test_a_board_reconfigured_since_does_not_read_an_old_shape(
    store: Any, store_clock: StoreClock
) -> None:
    store_clock.at(MONDAY + timedelta(minutes=1))
    await store.apply(ScoreUpdate("ann", 50, "a1"))
    await _checkpoint(store, MONDAY + timedelta(minutes=1))
    other = Board("main", "All time", aggregate="best")
    period = await Past(store).period_at(other, MONDAY)
    assert period is not None
    assert await store.replay(other, period, MONDAY + timedelta(minutes=2)) is None
    same = await store.replay(CONFIG.boards["main"], period, MONDAY + timedelta(minutes=2))
    assert same is not None
    assert [r.user_id for r in same.rows] == ["ann"]


# -- random histories (hypothesis), a fresh database per example ------------------------------


@contextlib.asynccontextmanager
async def _fresh(
    backend: str, template: str, folder: Path, clock: StoreClock
) -> AsyncIterator[Any]:
    if backend == "sqlite":
        from scoreboard.adapters.sqlite_store import SqliteScoreStore

        path = folder / f"example-{random.getrandbits(48):x}.db"
        shutil.copy(template, path)
        sqlite = SqliteScoreStore(path, clock=clock)
        await sqlite.open()
        try:
            yield sqlite
        finally:
            await sqlite.close()
            path.unlink()
    else:
        from scoreboard.adapters.postgres_store import PostgresScoreStore

        with services.postgres_database(copy_of=template) as url:
            pg = PostgresScoreStore(url, clock=clock)
            await pg.open()
            try:
                yield pg
            finally:
                await pg.close()


@contextlib.contextmanager
def _template(backend: str, folder: Path) -> Iterator[str]:
    from scoreboard.migrate import upgrade

    if backend == "sqlite":
        path = folder / "template.db"
        upgrade(f"sqlite:///{path}")
        yield str(path)
    else:
        with services.postgres_database() as url:
            yield url


_OP = st.one_of(
    st.tuples(
        st.just("update"),
        st.sampled_from(USERS[:5]),
        st.sampled_from([-20, -5, 3, 10, 50, 100, 1500, 60_000]),
        st.integers(1, 120),
    ),
    st.tuples(
        st.just("late"), st.sampled_from(USERS[:5]), st.sampled_from([5, 40]), st.integers(2, 30)
    ),
    st.just(("checkpoint",)),
    st.tuples(st.sampled_from(["void", "restore"]), st.integers(0, 50)),
    st.tuples(
        st.sampled_from(["hidden", "banned", "active", "rename", "erase"]),
        st.sampled_from(USERS[:5]),
    ),
    st.just(("rollover",)),
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_histories_read_from_checkpoints_as_recounted(backend: str, tmp_path: Path) -> None:
    import asyncio

    examples = 25 if backend == "sqlite" else 12
    with _template(backend, tmp_path) as template:

        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(ops=st.lists(_OP, min_size=1, max_size=30))
        def check(ops: list[tuple[Any, ...]]) -> None:
            async def run() -> None:
                clock = StoreClock()
                clock.at(MONDAY)
                async with _fresh(backend, template, tmp_path, clock) as store:
                    await configure(store, CONFIG)
                    history = await _run(store, clock, ops)
                    await _compare(store, history)

            asyncio.run(run())

        check()
