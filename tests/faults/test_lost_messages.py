"""Lost pub/sub messages: a board change whose bus message never arrives still reaches every
process's top 10 and every open socket (as a SNAPSHOT) within about two seconds, because each
process compares its ``seq`` with the shared one every second.

The loss is made deterministic: the test writes a change straight into the shared Redis index,
as a process would, and publishes nothing (as if the message was dropped).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from scoreboard.model import Standing
from tests.support.board_watch import BoardWatcher
from tests.support.private_services import PrivateRedis
from tests.support.server import ServerProcess
from tests.support.timing import async_wait_until, scaled
from tests.support.tokens import token

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

HEAL_WITHIN = 3.0


async def test_a_lost_board_message_is_made_up_for_within_seconds(
    tmp_path: Path, database_url: str, redis_server: PrivateRedis
) -> None:
    import redis.asyncio as aioredis

    from scoreboard.adapters.redis_index import RedisRankIndex

    env = {"SCOREBOARD_DATABASE_URL": database_url, "SCOREBOARD_REDIS_URL": redis_server.url}
    servers = [ServerProcess(tmp_path / n, env).start() for n in ("a", "b")]
    http = httpx.AsyncClient(timeout=scaled(10))
    redis = aioredis.Redis.from_url(redis_server.url)
    watchers = [BoardWatcher(s.ws_url).start() for s in servers]
    try:
        body = {"user_id": "alice", "score_delta": 5, "auth_token": token("alice")}
        response = await http.post(servers[0].base_url + "/api/scores/update", json=body)
        assert response.status_code == 200

        async def everyone_has(expected: list[tuple[str, int]]) -> bool:
            for server in servers:
                scores = (await http.get(server.base_url + "/api/scores/top10")).json()["scores"]
                if [(e["user_id"], e["score"]) for e in scores] != expected:
                    return False
            return all(w.board == expected for w in watchers)

        await async_wait_until(lambda: everyone_has([("alice", 5)]), 5, "alice on every board")
        snapshots = [w.snapshots for w in watchers]

        index = RedisRankIndex(redis)
        moved = await index.apply("all", Standing("mallory", "mallory", 900, 1, 10**12))
        assert moved is not None  # the top changed and the shared seq rose; nobody was told
        lost_at = time.monotonic()
        expected = [("mallory", 900), ("alice", 5)]
        await async_wait_until(lambda: everyone_has(expected), 10, "the lost change everywhere")
        healed = time.monotonic() - lost_at
        assert all(w.seq == moved.seq for w in watchers)
        # Delivered as a fresh SNAPSHOT on the open sockets, not by reconnecting.
        assert [w.snapshots for w in watchers] == [n + 1 for n in snapshots]
        assert all(not w.close_codes for w in watchers)
    finally:
        for watcher in watchers:
            await watcher.stop()
        await redis.aclose()
        await http.aclose()
        for server in servers:
            server.stop()
    print(f"lost message healed on every process and socket in {healed:.2f} s")
    assert healed < scaled(HEAL_WITHIN)
