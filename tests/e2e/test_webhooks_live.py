"""Webhooks end to end: real server processes, a real receiver on 127.0.0.1
(``tests.support.receiver``), signatures verified with the ``standardwebhooks`` library.

- A server killed with SIGKILL while it sends (the delivery committed, the answer never
  recorded) delivers it after a restart, with the same ``webhook-id``: at least once.
- Two scaled processes (PostgreSQL, Redis) sharing one outbox never both send one delivery:
  every message arrives once, and every event is queued once however many processes know it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Poster
from tests.e2e.test_two_processes import Pair
from tests.support import services
from tests.support.receiver import receiver
from tests.support.server import ServerProcess
from tests.support.timing import async_wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "boards.toml"
FAST = {
    "SCOREBOARD_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "SCOREBOARD_WEBHOOK_RETRY_BASE": "0.1",
    "SCOREBOARD_WEBHOOK_POLL": "0.1",
    "SCOREBOARD_WEBHOOK_LEASE": "2",
}


def admin_key(server: ServerProcess) -> str:
    return server.run("admin-key", "create", "ops").stdout.strip()


async def register(server: ServerProcess, key: str, url: str, events: list[str]) -> Any:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.post(
            "/api/admin/webhooks",
            json={"url": url, "events": events, "boards": ["main"]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200, response.text
        return response.json()


async def deliveries(server: ServerProcess, key: str, webhook_id: str) -> list[Any]:
    found: list[Any] = []
    before = None
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        while True:
            params: dict[str, Any] = {"limit": 100}
            if before is not None:
                params["before"] = before
            response = await client.get(
                f"/api/admin/webhooks/{webhook_id}/deliveries",
                params=params,
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 200, response.text
            page = response.json()
            found += page["deliveries"]
            if page["next"] is None:
                return found
            before = page["next"]


async def test_a_delivery_interrupted_by_sigkill_is_sent_after_the_restart(
    tmp_path: Path,
) -> None:
    with receiver() as hook:
        server = ServerProcess(tmp_path / "server", FAST).start()
        try:
            key = admin_key(server)
            made = await register(server, key, hook.url, ["top.entered"])
            hook.hang.set()  # the first attempt is received, never answered
            poster = Poster(server.base_url)
            await poster.ok("alice", 10)
            await poster.close()

            async def arrived() -> bool:
                return hook.count() >= 1

            await async_wait_until(arrived, 10, "the first attempt")
            first = hook.received[0]
            server.kill()  # committed and sent, the outcome never recorded
            hook.hang.clear()
            server.start()

            async def delivered() -> bool:
                found = await deliveries(server, key, made["id"])
                return found[0]["status"] == "delivered"

            await async_wait_until(delivered, 20, "the delivery after the restart")
            again = hook.received[-1]
            assert again.message_id == first.message_id
            assert again.verify(made["secret"])["data"]["user"]["user_id"] == "alice"
            (delivery,) = await deliveries(server, key, made["id"])
            assert delivery["message_id"] == first.message_id
        finally:
            server.stop()


async def test_a_season_rolled_over_while_no_server_runs_is_delivered_when_one_starts(
    tmp_path: Path,
) -> None:
    """``scoreboard boards rollover`` with every server stopped: the command queues the
    ``period.closed`` event itself, and the next server sends it, once."""
    with receiver() as hook:
        server = ServerProcess(tmp_path / "server", {**FAST, "SCOREBOARD_BOARDS": str(EXAMPLE)})
        server.start()
        try:
            key = admin_key(server)
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                response = await client.post(
                    "/api/admin/webhooks",
                    json={"url": hook.url, "events": ["period.closed"], "boards": ["season"]},
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert response.status_code == 200, response.text
                made = response.json()
            poster = Poster(server.base_url)
            await poster.ok("alice", 10)
            await poster.close()
            server.stop()
            rolled = server.run("boards", "rollover", "season").stdout
            closed = rolled.split("season ")[1].split(" ended")[0]
            assert hook.count() == 0
            server.start()

            async def arrived() -> bool:
                return hook.count() >= 1

            await async_wait_until(arrived, 20, "the period.closed event")
            (got,) = hook.of("period.closed")
            data = got.verify(made["secret"])["data"]
            assert (data["board"], data["period"]) == ("season", closed)
            assert [(r["user_id"], r["score"]) for r in data["top"]] == [("alice", 10)]
            (delivery,) = await deliveries(server, key, made["id"])
            assert delivery["event"] == "period.closed"
        finally:
            server.stop()


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_processes_never_both_send_a_delivery(tmp_path: Path) -> None:
    with receiver() as hook, services.postgres_database(migrate=False) as url:
        pair = Pair(tmp_path, url, FAST)
        try:
            pair.start()
            key = admin_key(pair.a)
            made = await register(pair.a, key, hook.url, ["top.entered", "top.left"])
            posters = [Poster(pair.a.base_url), Poster(pair.b.base_url)]
            try:
                # 60 players, each entering the top 10 as they post, over both processes.
                await asyncio.gather(*(posters[n % 2].ok(f"p{n:02d}", 10 + n) for n in range(60)))
            finally:
                for poster in posters:
                    await poster.close()

            async def settled() -> bool:
                found = await deliveries(pair.b, key, made["id"])
                return bool(found) and all(d["status"] == "delivered" for d in found)

            await async_wait_until(settled, 30, "every delivery")
            found = await deliveries(pair.a, key, made["id"])
            counts = Counter(r.message_id for r in hook.received)
            assert counts
            assert max(counts.values()) == 1, counts.most_common(3)
            assert set(counts) == {d["message_id"] for d in found}
            # Retried attempts are allowed (at least once); a message received twice is not.
            assert all(d["attempts"] >= 1 for d in found)
            for got in hook.received:
                got.verify(made["secret"])
        finally:
            pair.stop()
            pair.delete_keys()
