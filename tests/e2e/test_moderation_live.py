"""Moderation over real sockets: an action answered on one process is on every open page within
moments, on every process in scaled mode; an erased user leaves nothing in PostgreSQL or Redis.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
import websockets
from websockets.asyncio.client import ClientConnection

from tests.e2e.conftest import Poster
from tests.e2e.test_two_processes import Pair
from tests.support import services
from tests.support.server import ServerProcess
from tests.support.timing import scaled
from tests.support.tokens import token

REASON = {"reason": "test"}
SPEED = 0.1
"""After an action's 200, every open page shows it within this many seconds (the issue's
100 ms); measured on the receiving socket, with the test's own scaling on slow machines."""


def create_key(server: ServerProcess, **env: str) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "scoreboard", "admin-key", "create", "e2e"],
        cwd=server.data_dir,
        env={**server.env(), **env},
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=True,
    )
    return made.stdout.strip()


async def board_after(ws: ClientConnection, started: float, within: float) -> dict[str, Any]:
    """The next board message, and that it came within ``within`` s of ``started``."""
    async with asyncio.timeout(scaled(5)):
        message = json.loads(await ws.recv())
    elapsed = time.monotonic() - started
    assert elapsed < scaled(within), f"{elapsed:.3f} s"
    return message


def users(message: dict[str, Any]) -> list[str]:
    return [row["user_id"] for row in message["data"]["rankings"]]


# -- embedded ----------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server")
    proc.data_dir.mkdir(parents=True)
    proc.admin_key = create_key(proc)  # type: ignore[attr-defined]
    proc.start()
    yield proc
    proc.stop()


async def test_a_hide_and_a_void_reach_an_open_page_within_100_ms(server: ServerProcess) -> None:
    poster = Poster(server.base_url)
    admin = httpx.AsyncClient(
        base_url=server.base_url + "/api/admin",
        headers={"Authorization": f"Bearer {server.admin_key}"},  # type: ignore[attr-defined]
    )
    try:
        await poster.ok("cheat", 900)
        await poster.ok("alice", 50)
        async with websockets.connect(server.ws_url) as ws:
            assert users(json.loads(await ws.recv())) == ["cheat", "alice"]
            started = time.monotonic()
            assert (await admin.post("/users/cheat/hide", json=REASON)).status_code == 200
            assert users(await board_after(ws, started, SPEED)) == ["alice"]
            started = time.monotonic()
            assert (await admin.post("/users/cheat/unhide", json=REASON)).status_code == 200
            assert users(await board_after(ws, started, SPEED)) == ["cheat", "alice"]
            events = (await admin.get("/users/cheat/events")).json()["events"]
            started = time.monotonic()
            void = await admin.post(f"/events/{events[0]['event_id']}/void", json=REASON)
            assert void.status_code == 200
            assert users(await board_after(ws, started, SPEED)) == ["alice"]
    finally:
        await poster.close()
        await admin.aclose()


# -- scaled ----------------------------------------------------------------------------------


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    with services.postgres_database(migrate=True) as url:
        servers = Pair(tmp_path, url)
        servers.a.data_dir.mkdir(parents=True)
        servers.key = create_key(servers.a)  # type: ignore[attr-defined]
        try:
            servers.start()
            yield servers
        finally:
            servers.stop()
            servers.delete_keys()


@pytest.fixture
async def clients(pair: Pair) -> AsyncIterator[tuple[Poster, Poster, httpx.AsyncClient]]:
    a, b = Poster(pair.a.base_url), Poster(pair.b.base_url)
    admin = httpx.AsyncClient(
        base_url=pair.a.base_url + "/api/admin",
        headers={"Authorization": f"Bearer {pair.key}"},  # type: ignore[attr-defined]
    )
    yield a, b, admin
    await a.close()
    await b.close()
    await admin.aclose()


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_ban_on_one_process_reaches_the_other_process_page_and_its_updates(
    pair: Pair, clients: tuple[Poster, Poster, httpx.AsyncClient]
) -> None:
    a, b, admin = clients
    await a.ok("cheat", 900)
    await a.ok("alice", 50)
    async with websockets.connect(pair.b.ws_url) as ws:
        assert users(json.loads(await ws.recv())) == ["cheat", "alice"]
        started = time.monotonic()
        assert (await admin.post("/users/cheat/ban", json=REASON)).status_code == 200
        assert users(await board_after(ws, started, SPEED)) == ["alice"]
    refused = await b.update("cheat", 5)
    assert refused.status_code == 403
    assert refused.json()["error"] == "banned"
    assert [row["user_id"] for row in await b.top10()] == ["alice"]
    assert (await admin.post("/users/cheat/unban", json=REASON)).status_code == 200
    assert [row["user_id"] for row in await b.top10()] == ["cheat", "alice"]


@pytest.mark.postgres
@pytest.mark.redis
async def test_an_erased_user_leaves_nothing_in_postgresql_or_redis(
    pair: Pair, clients: tuple[Poster, Poster, httpx.AsyncClient]
) -> None:
    a, b, admin = clients
    named = token("zed-erased", name="Zed Secret")
    body = {"user_id": "zed-erased", "score_delta": 70, "auth_token": named}
    assert (await a.client.post("/api/scores/update", json=body)).status_code == 200
    await b.ok("zed-erased", 5)
    await a.ok("bob", 20)
    events = (await admin.get("/users/zed-erased/events")).json()["events"]
    await admin.post(f"/events/{events[0]['event_id']}/void", json=REASON)
    await admin.post("/users/zed-erased/hide", json=REASON)
    await admin.post("/users/zed-erased/unhide", json=REASON)
    erased = await admin.request("DELETE", "/users/zed-erased", json=REASON)
    assert erased.status_code == 200
    await asyncio.sleep(1.5)  # past the second sweep of the indexes
    with psycopg.connect(pair.database_url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608
                text = " ".join(str(value) for value in row)
                assert "zed-erased" not in text, (table, row)
                assert "Zed Secret" not in text, (table, row)
    client = redis.Redis.from_url(pair.redis_url)
    try:
        for key in client.scan_iter(match=pair.prefix + "*", count=1000):
            assert b"zed-erased" not in key, key
            kind = client.type(key)
            if kind == b"string":
                values = [client.get(key) or b""]
            elif kind == b"hash":
                values = [k + b" " + v for k, v in client.hgetall(key).items()]
            elif kind == b"zset":
                values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
            else:
                values = []
            for value in values:
                assert b"zed-erased" not in value, (key, value)
                assert b"Zed Secret" not in value, (key, value)
    finally:
        client.close()
    assert [row["user_id"] for row in await b.top10()] == ["bob"]
    assert (await b.ok("zed-erased", 3))["new_score"] == 3  # a new user from zero
