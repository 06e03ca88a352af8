"""SQLite group commit: one update failing for a reason of its own does not sink its batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scoreboard import migrate
from scoreboard.adapters.sqlite_store import SqliteScoreStore
from scoreboard.model import ScoreUpdate


async def test_a_failing_update_is_undone_alone_and_the_rest_of_its_batch_commits(
    tmp_path: Path,
) -> None:
    database = tmp_path / "s.db"
    migrate.upgrade(f"sqlite:///{database}")
    store = SqliteScoreStore(database)
    await store.open()
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
        assert await store.get_user("mallory") is None  # its partial writes were undone
        alice, bob = await store.get_user("alice"), await store.get_user("bob")
        assert alice is not None
        assert bob is not None
        assert (alice.score, bob.score) == (1, 2)
        with pytest.raises(UnicodeEncodeError):  # and the store still works afterwards
            await store.apply(ScoreUpdate("mallory", 1, username="\ud800"))
        assert (await store.apply(ScoreUpdate("alice", 1))).total.score == 2
    finally:
        await store.close()
