"""SQLite group commit: one update failing for a reason of its own does not sink its batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scoreboard import applying, migrate
from scoreboard.adapters.sqlite_store import SqliteScoreStore
from scoreboard.boards import BoardsConfig
from scoreboard.model import ScoreUpdate


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
