"""Scaled mode end to end: two real server processes on one PostgreSQL database and one Redis
act as one scoreboard.

Each test gets a fresh database (migrated by the two servers themselves, starting at the same
moment) and a Redis key prefix of its own in ``FLUSHABLE_REDIS_DB``, the one database these
tests may ``FLUSHDB`` (no other file uses it, and a file's tests run on one worker).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.e2e.conftest import Poster
from tests.support import services
from tests.support.server import ServerProcess
from tests.support.timing import async_wait_until, scaled
from tests.support.tokens import token

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

# Hundreds of updates of one user from one address are the point of these tests.
NO_LIMITS = {
    "SCOREBOARD_RATE_LIMIT_USER": "",
    "SCOREBOARD_RATE_LIMIT_IP": "",
    "SCOREBOARD_VELOCITY_LIMIT": "",
    "SCOREBOARD_WS_MAX_PER_ADDRESS": "",
}


class Pair:
    def __init__(
        self, tmp_path: Path, database_url: str, extra: dict[str, str] | None = None
    ) -> None:
        self.redis_url = services.redis_url(services.FLUSHABLE_REDIS_DB)
        self.prefix = services.unique_prefix()
        env = {
            "SCOREBOARD_DATABASE_URL": database_url,
            "SCOREBOARD_REDIS_URL": self.redis_url,
            "SCOREBOARD_REDIS_PREFIX": self.prefix,
            **NO_LIMITS,
            **(extra or {}),
        }
        self.database_url = database_url
        self.a = ServerProcess(tmp_path / "a", env)
        self.b = ServerProcess(tmp_path / "b", env)

    def start(self) -> None:
        # At the same moment: both run the migrations first, which must take turns.
        with ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(self.a.start), pool.submit(self.b.start)]:
                started.result()

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()

    def flushdb(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            assert client.connection_pool.connection_kwargs["db"] == services.FLUSHABLE_REDIS_DB
            client.flushdb()
        finally:
            client.close()

    def delete_keys(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            keys = list(client.scan_iter(match=self.prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    with services.postgres_database(migrate=False) as url:
        servers = Pair(tmp_path, url)
        try:
            servers.start()
            yield servers
        finally:
            servers.stop()
            servers.delete_keys()


@pytest.fixture
async def posters(pair: Pair) -> AsyncIterator[tuple[Poster, Poster]]:
    a, b = Poster(pair.a.base_url), Poster(pair.b.base_url)
    yield a, b
    await a.close()
    await b.close()


async def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    async with asyncio.timeout(scaled(timeout)):
        message: dict[str, Any] = json.loads(await ws.recv())
        return message


async def top_body(server: ServerProcess) -> bytes:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get("/api/scores/top10")
        assert response.status_code == 200
        return response.content


async def test_an_update_posted_to_a_reaches_a_client_of_b(
    pair: Pair, posters: tuple[Poster, Poster]
) -> None:
    poster_a, _ = posters
    async with websockets.connect(pair.b.ws_url) as ws:
        snapshot = await recv(ws)
        assert snapshot["type"] == "SNAPSHOT"
        await poster_a.ok("alice", 42)
        update = await recv(ws)
    assert update["type"] == "SCORE_UPDATE"
    assert update["data"]["user_id"] == "alice"
    assert update["data"]["new_score"] == 42
    assert update["data"]["seq"] == snapshot["data"]["seq"] + 1
    assert [(e["user_id"], e["score"]) for e in update["data"]["rankings"]] == [("alice", 42)]


async def test_400_concurrent_updates_of_one_user_over_both_sum_exactly(
    pair: Pair, posters: tuple[Poster, Poster]
) -> None:
    results = await asyncio.gather(*(posters[i % 2].ok("hot", 3) for i in range(400)))
    # Every acknowledged total is distinct: no two updates saw the same starting total.
    assert sorted(int(str(r["new_score"])) for r in results) == list(range(3, 1201, 3))
    for poster in posters:
        assert await poster.top10() == [
            {"rank": 1, "user_id": "hot", "username": "hot", "score": 1200}
        ]


async def test_both_processes_serve_identical_boards(
    pair: Pair, posters: tuple[Poster, Poster]
) -> None:
    expected: dict[str, int] = {}
    updates = [(f"p{i % 25:02d}", 1 + (i * 7) % 10) for i in range(300)]
    for user, delta in updates:
        expected[user] = expected.get(user, 0) + delta
    await asyncio.gather(*(posters[i % 2].ok(u, d) for i, (u, d) in enumerate(updates)))
    best = sorted(expected.values(), reverse=True)[:10]

    async def both_final() -> bool:
        tops = [await poster.top10() for poster in posters]
        return all([e["score"] for e in top] == best for top in tops)

    await async_wait_until(both_final, 5, "both processes to serve the final board")
    body_a, body_b = await top_body(pair.a), await top_body(pair.b)
    assert body_a == body_b  # byte for byte, ties included
    async with websockets.connect(pair.a.ws_url) as wa, websockets.connect(pair.b.ws_url) as wb:
        snap_a, snap_b = await recv(wa), await recv(wb)
    assert snap_a == snap_b
    assert [e["score"] for e in snap_a["data"]["rankings"]] == best


async def test_an_action_retried_on_the_other_process_is_applied_once(
    pair: Pair, posters: tuple[Poster, Poster]
) -> None:
    poster_a, poster_b = posters
    first = await poster_a.ok("carol", 10, action_id="order-77")
    again = await poster_b.ok("carol", 10, action_id="order-77")
    assert first["new_score"] == again["new_score"] == 10
    conflict = await poster_b.update("carol", 11, action_id="order-77")
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "action_conflict"
    # Both at once on both processes: still once.
    both = await asyncio.gather(
        poster_a.ok("carol", 5, action_id="order-78"), poster_b.ok("carol", 5, action_id="order-78")
    )
    assert [r["new_score"] for r in both] == [15, 15]
    assert (await poster_a.top10())[0]["score"] == 15


async def test_after_flushdb_and_restart_the_board_is_rebuilt_with_nothing_lost(
    pair: Pair, posters: tuple[Poster, Poster]
) -> None:
    for i in range(40):
        await posters[i % 2].ok(f"r{i:02d}", 10 + i % 13)
    before = await top_body(pair.a)
    pair.stop()
    pair.flushdb()
    pair.start()
    assert await top_body(pair.a) == before
    assert await top_body(pair.b) == before
    moved = await posters[1].ok("r00", 100)
    assert moved["rank"] == 1
    assert (await posters[0].top10())[0]["user_id"] == "r00"


async def test_a_flush_while_running_is_healed_and_live_clients_keep_receiving(
    pair: Pair, posters: tuple[Poster, Poster]
) -> None:
    for i in range(12):  # B's changes: A has seen their seqs only over the bus
        await posters[1].ok(f"w{i:02d}", 10 + i)
    before = await top_body(pair.b)
    async with websockets.connect(pair.b.ws_url) as ws:
        seen = (await recv(ws))["data"]["seq"]
        pair.flushdb()

        async def rebuilt() -> bool:
            return await top_body(pair.a) == before and await posters[0].top10() != []

        await async_wait_until(rebuilt, 10, "the index to be rebuilt from PostgreSQL")
        # A change made on A after the flush reaches B's client: its seq is above what B showed.
        result = await posters[0].ok("w00", 1000)
        assert result["rank"] == 1
        message = await recv(ws)
        while message["data"]["rankings"][0]["user_id"] != "w00":
            message = await recv(ws)
        assert message["data"]["seq"] > seen
        assert message["data"]["rankings"][0]["score"] == 1010


def test_more_than_one_worker_is_refused_without_redis(tmp_path: Path) -> None:
    env = ServerProcess(tmp_path / "x").env()
    done = subprocess.run(
        [sys.executable, "-m", "scoreboard", "serve", "--workers", "2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--workers 2 needs PostgreSQL and Redis" in lines[0]


async def test_serve_with_two_workers_is_one_scoreboard(tmp_path: Path) -> None:
    with services.postgres_database(migrate=False) as url:
        redis_url = services.redis_url(services.FLUSHABLE_REDIS_DB)
        prefix = services.unique_prefix()
        env = {
            "SCOREBOARD_DATABASE_URL": url,
            "SCOREBOARD_REDIS_URL": redis_url,
            "SCOREBOARD_REDIS_PREFIX": prefix,
            **NO_LIMITS,
        }
        server = ServerProcess(tmp_path / "w", env, serve_args=["--workers", "2"]).start()
        try:
            # New connections are spread over the workers by the kernel; each update is its own.
            async def post(i: int) -> int:
                async with httpx.AsyncClient(base_url=server.base_url) as client:
                    body = {"user_id": "solo", "score_delta": 1, "auth_token": token("solo")}
                    response = await client.post("/api/scores/update", json=body)
                    assert response.status_code == 200, response.text
                    return int(response.json()["new_score"])

            scores = await asyncio.gather(*(post(i) for i in range(100)))
            assert sorted(scores) == list(range(1, 101))
            pids = {line for line in server.log().splitlines() if "Started server process" in line}
            assert len(pids) == 2
        finally:
            server.stop()
            await services.delete_keys(redis_url, prefix)
