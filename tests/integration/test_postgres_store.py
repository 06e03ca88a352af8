"""The PostgreSQL store beyond the ScoreStore contract: a server that is down, the migrations,
a rollover by another process and the times the updates around it record."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from scoreboard import applying
from scoreboard.boards import Board, BoardsConfig
from scoreboard.errors import Unavailable
from scoreboard.model import HistoryQuery, ScoreUpdate
from tests.support import services


@pytest.mark.postgres
async def test_postgres_down_is_unavailable() -> None:
    from scoreboard.adapters.postgres_store import PostgresScoreStore

    services.require_postgres()  # the same skip/fail rule as the other PostgreSQL tests
    # A port nobody listens on: connection refused, as when the server is down.
    from tests.support.server import free_port

    store = PostgresScoreStore(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    with pytest.raises(Unavailable):
        await store.open()
    with pytest.raises(Unavailable):
        await store.apply(ScoreUpdate("x", 1))


@pytest.mark.postgres
def test_migrations_run_twice_and_create_the_event_sequence() -> None:
    import psycopg

    from scoreboard.migrate import upgrade

    with services.postgres_database() as url:
        upgrade(url)  # already at head: nothing to do, no error
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_get_serial_sequence('scores', 'score_id')").fetchone()
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    assert row[0] == "public.scores_score_id_seq"  # named in postgres_store._APPLY
    assert version is not None


# -- a rollover by another process (``scoreboard boards rollover``) ----------------------------

SEASONS = BoardsConfig(
    BoardsConfig.default(1, 1000, None).metrics,
    {"main": Board("main", "All time"), "season": Board("season", "Season", reset="manual")},
)


class Interleaving:
    """A store's clock, and the moment another process can write in between: after the next
    reading of the time (and before the store does anything with it), ``then`` runs once.
    ``then`` takes its table lock without waiting: when the store holds the lock that would
    keep it out, it returns ``False`` (nothing came in between)."""

    def __init__(self) -> None:
        self.then: Callable[[], bool] | None = None
        self.wrote: bool | None = None

    def __call__(self) -> datetime:
        moment = datetime.now(UTC)
        then, self.then = self.then, None
        if then is not None:
            self.wrote = then()
        return moment


def elsewhere(url: str, lock: str, *statements: tuple[str, tuple[object, ...]]) -> bool:
    """``statements`` in one transaction of another session, after ``LOCK TABLE scores IN
    {lock} MODE NOWAIT``; ``False`` when that lock is not available."""
    import psycopg

    with psycopg.connect(url) as conn:
        try:
            conn.execute(f"LOCK TABLE scores IN {lock} MODE NOWAIT")
        except psycopg.errors.LockNotAvailable:
            return False
        for sql, args in statements:
            conn.execute(sql, args)
    return True


def seasons_of(url: str) -> dict[str, tuple[datetime, datetime | None]]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT period_id, starts_at, ends_at FROM periods WHERE board_id = 'season'"
        ).fetchall()
    return {period: (starts, ends) for period, starts, ends in rows}


def holds(season: tuple[datetime, datetime | None], at: datetime) -> bool:
    starts, ends = season
    return starts <= at and (ends is None or at < ends)


@contextlib.asynccontextmanager
async def seasons_store(clock: Callable[[], datetime]) -> AsyncIterator[tuple[str, Any]]:
    from scoreboard.adapters.postgres_store import PostgresScoreStore

    with services.postgres_database() as url:
        store = PostgresScoreStore(url, clock=clock)
        await store.open()
        try:
            await applying.apply(store, SEASONS)
            await store.load_config()
            yield url, store
        finally:
            await store.close()


@pytest.mark.postgres
async def test_an_update_held_up_by_a_rollover_has_a_time_in_the_new_season() -> None:
    """Another process rolls the season over after an update read the clock and before its
    statement runs (it waits for the rollover's lock): the update counts in the new season, so
    its event's time must not be before that season's start."""
    clock = Interleaving()
    async with seasons_store(clock) as (url, store):
        await store.apply(ScoreUpdate("ann", 1))

        def roll_over() -> bool:
            now = datetime.now(UTC)
            return elsewhere(
                url,
                "SHARE ROW EXCLUSIVE",
                (
                    "UPDATE periods SET ends_at = %s WHERE board_id = 'season' AND period_id = '1'",
                    (now,),
                ),
                ("INSERT INTO periods VALUES ('season', '2', %s, NULL)", (now,)),
            )

        clock.then = roll_over
        applied = await store.apply(ScoreUpdate("ann", 2))
        assert clock.wrote
        (season,) = [b.period for b in applied.boards if b.board == "season"]
        assert season == "2"
        at = (await store.history(HistoryQuery("ann")))[-1].at
        assert holds(seasons_of(url)[season], at), (at, seasons_of(url))


@pytest.mark.postgres
async def test_a_rollover_ends_the_season_after_the_updates_committed_before_it() -> None:
    """An update commits after the rollover read the clock and before it holds its lock: the
    update counted in the closing season, so that season must end after its time."""
    from scoreboard.adapters.postgres_store import PostgresScoreStore

    async with seasons_store(lambda: datetime.now(UTC)) as (url, server):
        await server.apply(ScoreUpdate("bea", 1))
        clock = Interleaving()
        command = PostgresScoreStore(url, clock=clock)  # ``scoreboard boards rollover``'s
        await command.open()
        try:

            def update() -> bool:  # what the server commits for bea +2, in season 1
                now = datetime.now(UTC)
                return elsewhere(
                    url,
                    "ROW EXCLUSIVE",
                    (
                        "INSERT INTO scores (user_id, metric, score_delta, action_id,"
                        " created_at, score_after) VALUES ('bea', 'points', 2, 'a2', %s, 3)",
                        (now,),
                    ),
                    (
                        "UPDATE standings SET score = score + 2, rank_score = rank_score - 2,"
                        " version = version + 1, updated_at = %s WHERE user_id = 'bea'",
                        (now,),
                    ),
                )

            clock.then = update
            closed, _ = await command.rollover(SEASONS.boards["season"])
        finally:
            await command.close()
        assert clock.wrote is not None  # False: the rollover read the time holding its lock
        seasons = seasons_of(url)
        assert seasons["1"][1] == closed.ends_at
        counted = await server.entry("season", "1", "bea")
        assert counted is not None
        assert counted.standing.version == (2 if clock.wrote else 1)
        events = await server.history(HistoryQuery("bea"))
        assert all(holds(seasons["1"], e.at) for e in events), (events, seasons)
