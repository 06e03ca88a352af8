"""The PostgreSQL store beyond the ScoreStore contract: a server that is down, the migrations."""

from __future__ import annotations

import pytest

from scoreboard.errors import Unavailable
from scoreboard.model import ScoreUpdate
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
