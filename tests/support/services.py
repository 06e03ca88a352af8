"""The real PostgreSQL and Redis the contract and integration tiers run against.

Both are expected on this machine (PostgreSQL on 127.0.0.1:5432, user ``postgres``, trust auth;
Redis on 127.0.0.1:6379); ``SCOREBOARD_TEST_POSTGRES`` / ``SCOREBOARD_TEST_REDIS`` point
elsewhere. When one is unreachable a test that needs it skips with a one-line reason, except with
``CI=true``: there it fails, so CI can never go green by skipping them.

Every test gets a key space of its own and cleans it: a uniquely named PostgreSQL database,
dropped afterwards, and a unique Redis key prefix whose keys are deleted afterwards. Redis
databases: the contract tests use ``CONTRACT_REDIS_DB``, the integration tests
``INTEGRATION_REDIS_DB``, and the one test file that ``FLUSHDB``s uses ``FLUSHABLE_REDIS_DB``
alone. Nothing here ever touches database 0 or flushes the whole server.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest

POSTGRES = os.environ.get(
    "SCOREBOARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS = os.environ.get("SCOREBOARD_TEST_REDIS", "redis://127.0.0.1:6379")
CONTRACT_REDIS_DB = 15
INTEGRATION_REDIS_DB = 14
FLUSHABLE_REDIS_DB = 13
"""Only tests/e2e/test_two_processes.py uses it, and it ``FLUSHDB``s it: the suite runs on several
workers with every file's tests kept on one worker (``--dist loadfile``), so a flush there can
only hit keys of the test doing it."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip the test with ``reason``, or fail it in CI (where every service must be up)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: tests needing it must run, not skip)", pytrace=False)
    pytest.skip(reason)


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def require_postgres() -> str:
    """The server URL (its ``postgres`` database), or skip/fail when it does not answer."""
    if not _reachable(POSTGRES, 5432):
        unavailable(f"PostgreSQL not reachable at {POSTGRES}")
    return POSTGRES


def require_redis() -> str:
    if not _reachable(REDIS, 6379):
        unavailable(f"Redis not reachable at {REDIS}")
    return REDIS


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path="/" + name).geturl()


@contextlib.contextmanager
def postgres_database(migrate: bool = True, copy_of: str | None = None) -> Iterator[str]:
    """A fresh, uniquely named database (migrated by default); dropped on exit. ``copy_of``:
    the URL of a database to copy instead (nobody may be connected to it), left as it is."""
    import psycopg

    server = require_postgres()
    name = f"scoreboard_test_{uuid.uuid4().hex[:12]}"
    template = "" if copy_of is None else f' TEMPLATE "{urlsplit(copy_of).path.lstrip("/")}"'
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{template}')
    url = _with_database(server, name)
    try:
        if migrate and copy_of is None:
            from scoreboard.migrate import upgrade

            upgrade(url)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_url(db: int) -> str:
    return f"{require_redis().rstrip('/')}/{db}"


def unique_prefix() -> str:
    return f"sbtest:{uuid.uuid4().hex[:12]}:"


@contextlib.asynccontextmanager
async def redis_keyspace(db: int = CONTRACT_REDIS_DB) -> AsyncIterator[tuple[str, str]]:
    """``(url, prefix)``: a Redis database URL and a key prefix nobody else uses; every key
    under the prefix is deleted on exit."""
    url = redis_url(db)
    prefix = unique_prefix()
    try:
        yield url, prefix
    finally:
        await delete_keys(url, prefix)


async def delete_keys(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
