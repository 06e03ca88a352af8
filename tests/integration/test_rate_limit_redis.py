"""Rate limits in scaled mode: two real server processes, one PostgreSQL database, one Redis.

Each limit is global: however the requests are spread over the processes, no more than the limit
get through (here exactly the limit: the library's Redis scripts and the points window's are
atomic). Keys live under a
prefix of this test's own in ``INTEGRATION_REDIS_DB`` and are deleted afterwards. With
``CI=true`` a missing PostgreSQL or Redis fails these tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import services
from tests.support.server import ServerProcess
from tests.support.timing import scaled
from tests.support.tokens import token

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

LIMIT = 100


USER_LIMIT_ONLY = {
    "SCOREBOARD_RATE_LIMIT_USER": f"{LIMIT}/minute",
    "SCOREBOARD_RATE_LIMIT_IP": "",
    "SCOREBOARD_VELOCITY_LIMIT": "",
}
VELOCITY_ONLY = {
    "SCOREBOARD_RATE_LIMIT_USER": "",
    "SCOREBOARD_RATE_LIMIT_IP": "",
    "SCOREBOARD_VELOCITY_LIMIT": str(10 * LIMIT),
}


@pytest.fixture
def servers(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    """Two processes on one database and one Redis; the limits are the test's ``servers``
    parameter (``USER_LIMIT_ONLY`` unless parametrized)."""
    limits = getattr(request, "param", USER_LIMIT_ONLY)
    with services.postgres_database(migrate=False) as database_url:
        redis_url = services.redis_url(services.INTEGRATION_REDIS_DB)
        prefix = services.unique_prefix()
        env = {
            "SCOREBOARD_DATABASE_URL": database_url,
            "SCOREBOARD_REDIS_URL": redis_url,
            "SCOREBOARD_REDIS_PREFIX": prefix,
            **limits,
        }
        a = ServerProcess(tmp_path / "a", env)
        b = ServerProcess(tmp_path / "b", env)
        try:
            # Started one after the other: both would run the migrations first.
            a.start()
            b.start()
            yield a, b, database_url
        finally:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda s: s.stop(), (a, b)))
            asyncio.run(services.delete_keys(redis_url, prefix))


def assert_the_limit(accepted: int, seconds: float) -> None:
    """Both limits hold "at most LIMIT in any 60 s". A burst answered within 60 s gets exactly
    LIMIT through; one the machine stretched past 60 s may rightly get a few more, as the
    first accepted leave the window (a loaded CI run once took that long: 101)."""
    if seconds < 60:
        assert accepted == LIMIT
    else:
        assert LIMIT <= accepted < 2 * LIMIT, (accepted, seconds)


async def post_spread(
    a: ServerProcess, b: ServerProcess, bodies: list[dict[str, object]]
) -> tuple[list[int], list[dict[str, object]], float]:
    """Post every body at once, alternating between the two processes; the statuses in order,
    the top 10 afterwards, and the seconds the burst took."""
    limits = httpx.Limits(max_connections=50)
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=scaled(60), limits=limits) as to_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=scaled(60), limits=limits) as to_b,
    ):

        async def post(client: httpx.AsyncClient, body: dict[str, object]) -> int:
            return (await client.post("/api/scores/update", json=body)).status_code

        started = time.monotonic()
        statuses = await asyncio.gather(
            *(post(to_a if i % 2 else to_b, body) for i, body in enumerate(bodies))
        )
        seconds = time.monotonic() - started
        top = (await to_b.get("/api/scores/top10")).json()["scores"]
    return list(statuses), top, seconds


def score_rows(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM scores").fetchone() or (0,)
    return int(rows)


async def test_two_processes_sharing_redis_let_no_more_than_the_limit_through(
    servers: tuple[ServerProcess, ServerProcess, str],
) -> None:
    a, b, database_url = servers
    tok = token("alice")
    bodies: list[dict[str, object]] = [
        {"user_id": "alice", "score_delta": 1, "auth_token": tok, "action_id": f"a{i}"}
        for i in range(3 * LIMIT)
    ]
    statuses, top, seconds = await post_spread(a, b, bodies)
    assert set(statuses) == {200, 429}, statuses
    accepted = statuses.count(200)
    assert_the_limit(accepted, seconds)
    assert top[0]["user_id"] == "alice"
    assert top[0]["score"] == accepted
    assert score_rows(database_url) == accepted


@pytest.mark.parametrize("servers", [VELOCITY_ONLY], indirect=True)
async def test_two_processes_share_one_velocity_budget(
    servers: tuple[ServerProcess, ServerProcess, str],
) -> None:
    """The points window is in Redis (``RedisPointsWindow``), not in each process: 300 updates
    of 10 points against 1,000 points let exactly 100 through in all."""
    a, b, database_url = servers
    tok = token("alice")
    bodies: list[dict[str, object]] = [
        {"user_id": "alice", "score_delta": 10, "auth_token": tok, "action_id": f"a{i}"}
        for i in range(3 * LIMIT)
    ]
    statuses, top, seconds = await post_spread(a, b, bodies)
    assert set(statuses) == {200, 429}, statuses
    accepted = statuses.count(200)
    assert_the_limit(accepted, seconds)
    assert (top[0]["user_id"], top[0]["score"]) == ("alice", 10 * accepted)
    assert score_rows(database_url) == accepted


@pytest.mark.parametrize("servers", [VELOCITY_ONLY], indirect=True)
async def test_concurrent_retries_over_two_processes_all_get_the_one_answer(
    servers: tuple[ServerProcess, ServerProcess, str],
) -> None:
    """50 identical requests at once, spread over the processes, against a budget that fits the
    action once: it is applied once and all 50 get its 200, none a 429 for points it does not
    add (the reservation is shared through Redis, the retries replayed by PostgreSQL)."""
    a, b, database_url = servers
    body: dict[str, object] = {
        "user_id": "alice",
        "score_delta": 10 * LIMIT,
        "auth_token": token("alice"),
        "action_id": "quest-1",
    }
    statuses, top, _ = await post_spread(a, b, [body] * 50)
    assert statuses == [200] * 50, statuses
    assert (top[0]["user_id"], top[0]["score"]) == ("alice", 10 * LIMIT)
    assert score_rows(database_url) == 1
