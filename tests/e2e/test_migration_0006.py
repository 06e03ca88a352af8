"""Migration 0006 (webhooks) upgrades a database at 0005 in place, and its downgrade gives
0005 back (house style, rule 18), on SQLite and on PostgreSQL.

0006 only adds two tables, so the data of a 0005 database is made by this checkout's store
through its real paths (updates on several boards, a void, a rename, an admin key, the audit)
and the database is then taken down to 0005: its schema must be exactly a fresh 0005's, every
row kept. Upgraded again, every row is as it was, the webhook tables are empty, and the store
serves it: the same standings and audit, and webhooks can be registered and queued for.

The downgrade drops the webhooks and their deliveries (nothing older can hold them): an
operator who goes back to 0005 registers them again after upgrading (docs/webhooks.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scoreboard import webhooks
from scoreboard.boards import Board, BoardsConfig, Metric
from scoreboard.model import Audit, ScoreUpdate
from tests.support import migrations, services

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
CONFIG = BoardsConfig(
    {"points": Metric("points", -100, 1000)},
    {
        "main": Board("main", "All time"),
        "best": Board("best", "Best single", aggregate="best"),
        "season": Board("season", "Season", reset="manual"),
    },
)
TABLES: dict[str, tuple[list[str], str]] = {
    "users": (["user_id", "username", "status", "name_locked"], "user_id"),
    "scores": (["score_id", "user_id", "score_delta", "action_id", "source"], "score_id"),
    "totals": (["user_id", "metric", "total"], "user_id, metric"),
    "standings": (
        ["board_id", "period_id", "user_id", "score", "version", "hidden"],
        "board_id, period_id, user_id",
    ),
    "audit": (["id", "key_name", "action", "target", "reason", "details"], "id"),
    "admin_keys": (["name", "key_hash"], "name"),
}


@contextlib.contextmanager
def database(kind: str, tmp_path: Path, name: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / name}"
    else:
        with services.postgres_database(migrate=False) as url:
            yield url


def store_of(url: str) -> Any:
    if url.startswith("sqlite"):
        from scoreboard.adapters.sqlite_store import SqliteScoreStore, sqlite_path

        return SqliteScoreStore(sqlite_path(url))
    from scoreboard.adapters.postgres_store import PostgresScoreStore

    return PostgresScoreStore(url)


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: migrations.rows(url, t, names, order) for t, (names, order) in TABLES.items()}


async def fill(url: str) -> None:
    from scoreboard import applying

    store = store_of(url)
    await store.open()
    try:
        await applying.apply(store, CONFIG)
        await store.load_config()
        applied = None
        for n, user in enumerate(["alice", "bob", "carol", "dave"] * 3):
            applied = await store.apply(ScoreUpdate(user, 10 * n - 20, f"a{n}", username=user))
        assert applied is not None
        await store.void(
            applied.boards[0].standing.reached, CONFIG, Audit("ops", "void", "event", "r", {})
        )
        await store.rename("bob", "Robert", Audit("ops", "rename", "bob", "r", {"to": "Robert"}))
        await store.add_key("ops", "0" * 64)
    finally:
        await store.close()


@pytest.mark.parametrize("kind", BACKENDS)
async def test_0005_upgrades_in_place_and_downgrades_back(kind: str, tmp_path: Path) -> None:
    with database(kind, tmp_path, "fresh.db") as fresh, database(kind, tmp_path, "db.db") as url:
        migrations.upgrade(fresh, "0005")
        schema_0005 = migrations.schema(fresh)
        migrations.upgrade(url)
        await fill(url)
        migrations.downgrade(url, "0005")
        assert migrations.revision(url) == "0005"
        assert migrations.schema(url) == schema_0005
        before = snapshot(url)
        assert before["scores"]
        assert before["audit"]
        assert before["standings"]

        migrations.upgrade(url)
        assert migrations.revision(url) == migrations.head()
        assert snapshot(url) == before
        assert migrations.rows(url, "webhooks", ["id"], "id") == []

        store = store_of(url)
        await store.open()
        try:
            await store.load_config()
            page = await store.page("main", "all", 0, 10)
            assert [s.user_id for s in page]
            assert "Robert" in [s.username for s in page]
            assert [e.action for e in await store.audit_page(limit=10)] == ["rename", "void"]
            now = datetime.now(UTC)
            hook = webhooks.Webhook(
                "wh_1", "https://example.com/", webhooks.EVENTS, None, webhooks.new_secret(), now
            )
            await store.add_webhook(hook, Audit("ops", "webhook_create", "webhook:wh_1"))
            assert await store.enqueue(webhooks.period_closed("main", "all", [], now)) == 1
        finally:
            await store.close()

        # Down again: the webhooks go, everything else stays (their audit rows included).
        migrations.downgrade(url, "0005")
        assert migrations.schema(url) == schema_0005
        after = snapshot(url)
        assert after["audit"][-1][2] == "webhook_create"
        assert {**after, "audit": after["audit"][:-1]} == before
