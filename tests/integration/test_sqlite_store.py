"""SQLite group commit: one update failing for a reason of its own does not sink its batch; a
rollover by another process and the batches are serialized with the times they record."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scoreboard import applying, migrate
from scoreboard.adapters.sqlite_store import SqliteScoreStore
from scoreboard.boards import Board, BoardsConfig
from scoreboard.model import HistoryQuery, ScoreUpdate


async def test_a_failing_update_is_undone_alone_and_the_rest_of_its_batch_commits(
    tmp_path: Path,
) -> None:
    database = tmp_path / "s.db"
    migrate.upgrade(f"sqlite:///{database}")
    store = SqliteScoreStore(database)
    await store.open()
    await applying.apply(store, BoardsConfig.default(1, 1000, None))
    await store.load_config()

    async def score(user: str) -> int | None:
        entry = await store.entry("main", "all", user)
        return None if entry is None else entry.standing.score

    try:
        # A lone surrogate cannot be encoded for SQLite: that one update fails mid-way, after
        # its user row would have been inserted.
        results = await asyncio.gather(
            store.apply(ScoreUpdate("alice", 1)),
            store.apply(ScoreUpdate("mallory", 1, username="\ud800")),
            store.apply(ScoreUpdate("bob", 2)),
            return_exceptions=True,
        )
        assert not isinstance(results[0], BaseException)
        assert isinstance(results[1], UnicodeEncodeError)
        assert not isinstance(results[2], BaseException)
        assert await store.profile("mallory") is None  # its partial writes were undone
        assert (await score("alice"), await score("bob")) == (1, 2)
        with pytest.raises(UnicodeEncodeError):  # and the store still works afterwards
            await store.apply(ScoreUpdate("mallory", 1, username="\ud800"))
        await store.apply(ScoreUpdate("alice", 1))
        assert await score("alice") == 2
    finally:
        await store.close()


# -- a rollover by another process (``scoreboard boards rollover``) ----------------------------

SEASONS = BoardsConfig(
    BoardsConfig.default(1, 1000, None).metrics,
    {"main": Board("main", "All time"), "season": Board("season", "Season", reset="manual")},
)


class Interleaving:
    """A store's clock, and the moment another process can write in between: after the next
    reading of the time (and before the store does anything with it), ``then`` runs once.

    ``then`` writes on a connection of its own that does not wait for the write lock: when the
    store holds the lock as it reads the time, nothing can come in between, and ``then`` finds
    the database locked (it returns ``False``)."""

    def __init__(self) -> None:
        self.then: Callable[[], bool] | None = None
        self.wrote: bool | None = None

    def __call__(self) -> datetime:
        moment = datetime.now(UTC)
        then, self.then = self.then, None
        if then is not None:
            self.wrote = then()
        return moment


def elsewhere(database: Path, *statements: tuple[str, tuple[object, ...]]) -> bool:
    """``statements`` in one transaction of another connection, unless the lock is taken."""
    conn = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # database is locked
            return False
        for sql, args in statements:
            conn.execute(sql, args)
        conn.execute("COMMIT")
        return True
    finally:
        conn.close()


def text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def seasons_of(database: Path) -> dict[str, tuple[str, str | None]]:
    with closing(sqlite3.connect(database)) as conn:
        rows = conn.execute(
            "SELECT period_id, starts_at, ends_at FROM periods WHERE board_id = 'season'"
        ).fetchall()
    return {period: (starts, ends) for period, starts, ends in rows}


def holds(season: tuple[str, str | None], at: str) -> bool:
    starts, ends = season
    return starts <= at and (ends is None or at < ends)


async def seasons_store(database: Path, clock: Callable[[], datetime]) -> SqliteScoreStore:
    migrate.upgrade(f"sqlite:///{database}")
    store = SqliteScoreStore(database, clock=clock)
    await store.open()
    await applying.apply(store, SEASONS)
    await store.load_config()
    return store


async def test_an_update_committed_after_a_rollover_has_a_time_in_the_new_season(
    tmp_path: Path,
) -> None:
    """Another process rolls the season over between the moment a batch reads the clock and
    the moment it holds the write lock: the batch counts in the new season, so its events'
    time must not be before that season's start."""
    database = tmp_path / "s.db"
    clock = Interleaving()
    store = await seasons_store(database, clock)
    try:
        await store.apply(ScoreUpdate("ann", 1))

        def roll_over() -> bool:
            now = text(datetime.now(UTC))
            return elsewhere(
                database,
                (
                    "UPDATE periods SET ends_at = ? WHERE board_id = 'season' AND period_id = '1'",
                    (now,),
                ),
                ("INSERT INTO periods VALUES ('season', '2', ?, NULL)", (now,)),
            )

        clock.then = roll_over
        applied = await store.apply(ScoreUpdate("ann", 2))
        assert clock.wrote is not None  # the clock was read (and the other process tried)
        if not clock.wrote:  # the store read the time holding the lock: roll over now
            assert roll_over()
        (season,) = [b.period for b in applied.boards if b.board == "season"]
        at = text((await store.history(HistoryQuery("ann")))[-1].at)
        assert holds(seasons_of(database)[season], at), (season, at, seasons_of(database))
    finally:
        await store.close()


async def test_a_rollover_ends_the_season_after_the_updates_committed_before_it(
    tmp_path: Path,
) -> None:
    """An update commits between the moment the rollover reads the clock and the moment it
    holds the write lock: it counted in the closing season, so that season must end after its
    time."""
    database = tmp_path / "s.db"
    server = await seasons_store(database, lambda: datetime.now(UTC))
    clock = Interleaving()
    command = SqliteScoreStore(database, clock=clock)  # ``scoreboard boards rollover``'s
    await command.open()
    try:
        await server.apply(ScoreUpdate("bea", 1))

        def update() -> bool:  # what the server's writer commits for bea +2, in season 1
            now = text(datetime.now(UTC))
            return elsewhere(
                database,
                (
                    "INSERT INTO scores (user_id, metric, score_delta, action_id, created_at,"
                    " score_after) VALUES ('bea', 'points', 2, 'a2', ?, 3)",
                    (now,),
                ),
                (
                    "UPDATE standings SET score = score + 2, rank_score = rank_score - 2,"
                    " version = version + 1, updated_at = ? WHERE user_id = 'bea'",
                    (now,),
                ),
            )

        clock.then = update
        closed, _ = await command.rollover(SEASONS.boards["season"])
        assert clock.wrote is not None  # False: the rollover read the time holding the lock
        seasons = seasons_of(database)
        assert seasons["1"][1] == text(closed.ends_at)
        counted = await server.entry("season", "1", "bea")
        assert counted is not None
        assert counted.standing.version == (2 if clock.wrote else 1)
        events = await server.history(HistoryQuery("bea"))
        assert all(holds(seasons["1"], text(e.at)) for e in events), (events, seasons)
    finally:
        await command.close()
        await server.close()
