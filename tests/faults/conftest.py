"""Fault tests: real servers, and a PostgreSQL and Redis of their own to break.

The private PostgreSQL and Redis are started once per session (an ``initdb`` costs seconds) and
each test gets a fresh database and key prefix; a fixture starts them again if an earlier test
left one stopped. The machine's shared servers are never touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.private_services import PrivatePostgres, PrivateRedis, _accepts


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().init().start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def private_redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.remove()


@pytest.fixture
def pg(private_pg: PrivatePostgres) -> PrivatePostgres:
    if not _accepts(private_pg.port):
        private_pg.start()
    return private_pg


@pytest.fixture
def redis_server(private_redis_server: PrivateRedis) -> PrivateRedis:
    """The private Redis, running and empty: each test's servers use the default key prefix,
    and a board left by an earlier test would otherwise mix with this one's."""
    if private_redis_server.proc is None or private_redis_server.proc.poll() is not None:
        private_redis_server.start()
    private_redis_server.flushall()
    return private_redis_server


@pytest.fixture
def database_url(pg: PrivatePostgres) -> str:
    return pg.create_database(f"faults_{uuid.uuid4().hex[:12]}")
