"""``/ws`` over real sockets: a real ``scoreboard serve`` process (our uvicorn protocols, frames
written straight to the socket), and two processes on PostgreSQL and Redis where an update
posted to one moves the views of the other's sockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.e2e.conftest import Poster
from tests.e2e.test_boards_live import recv
from tests.e2e.test_two_processes import Pair
from tests.support import services
from tests.support.server import ServerProcess
from tests.support.tokens import token


def url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/ws"


async def subscribe(ws: ClientConnection, **fields: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "subscribe", **fields}))
    return await recv(ws)


def rows(message: dict[str, Any]) -> list[tuple[int, str, int]]:
    return [(r["rank"], r["user_id"], r["score"]) for r in message["rows"]]


@pytest.fixture
async def poster(server: ServerProcess) -> AsyncIterator[Poster]:
    value = Poster(server.base_url)
    yield value
    await value.close()


async def test_views_over_a_real_server(server: ServerProcess, poster: Poster) -> None:
    for i in range(12):
        await poster.ok(f"u{i:02d}", 120 - 10 * i)  # u00 120 ... u11 10
    async with websockets.connect(url(server)) as ws:
        top = await subscribe(ws, id="t", board="main", view="top", limit=3)
        assert rows(top) == [(1, "u00", 120), (2, "u01", 110), (3, "u02", 100)]
        around = await subscribe(ws, id="a", board="main", view="around", user_id="u08", radius=1)
        assert rows(around) == [(8, "u07", 50), (9, "u08", 40), (10, "u09", 30)]
        me = await subscribe(ws, id="m", board="main", view="me", auth_token=token("u09"))
        assert rows(me) == [(10, "u09", 30)]
        error = await subscribe(ws, id="x", board="nope", view="top")
        assert (error["type"], error["error"]) == ("error", "unknown_board")

        await poster.ok("u11", 35)  # 45: from rank 12 to rank 9, past u08 and u09
        got: dict[str, list[dict[str, Any]]] = {}
        for _ in range(4):  # around's update, me's update, overtaken, left_top
            message = await recv(ws)
            got.setdefault(message["id"], []).append(message)
        assert "t" not in got  # the top 3 did not change
        assert rows(got["a"][0]) == [(9, "u11", 45), (10, "u08", 40), (11, "u09", 30)]
        assert got["a"][0]["seq"] == 2
        me_messages = {m["type"]: m for m in got["m"] if m["type"] == "update"}
        assert rows(me_messages["update"]) == [(11, "u09", 30)]
        events = [m for m in got["m"] if m["type"] == "event"]
        assert [(e["event"], e["rank"]) for e in events] == [("overtaken", 11), ("left_top", 11)]
        assert events[0]["by"] == {"user_id": "u11", "username": "u11", "score": 45}

        await ws.send(json.dumps({"type": "unsubscribe", "id": "a"}))
        await ws.send("not json")
        error = await recv(ws)
        assert (error["id"], error["error"]) == (None, "invalid_json")
        await poster.ok("u00", 1)
        update = await recv(ws)
        assert (update["id"], update["seq"], rows(update)[0]) == ("t", 2, (1, "u00", 121))
    # The old channel is unchanged next to it.
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws/scoreboard") as old:
        assert (await recv(old))["type"] == "SNAPSHOT"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    services.require_postgres()
    services.require_redis()
    with services.postgres_database(migrate=False) as database:
        servers = Pair(tmp_path, database, {})
        try:
            servers.start()
            yield servers
        finally:
            servers.stop()
            servers.delete_keys()


@pytest.mark.postgres
@pytest.mark.redis
async def test_an_update_on_one_process_moves_the_views_on_the_other(pair: Pair) -> None:
    poster = Poster(pair.a.base_url)
    try:
        for i in range(6):
            await poster.ok(f"u{i}", 60 - 10 * i)  # u0 60 ... u5 10
        async with websockets.connect(url(pair.b)) as ws:
            around = await subscribe(
                ws, id="a", board="main", view="around", user_id="u3", radius=1
            )
            assert rows(around) == [(3, "u2", 40), (4, "u3", 30), (5, "u4", 20)]
            me = await subscribe(ws, id="m", board="main", view="me", auth_token=token("u3"))
            assert rows(me) == [(4, "u3", 30)]
            far = await subscribe(ws, id="top", board="main", view="top", limit=1)
            await poster.ok("u5", 25)  # on a: 35, from rank 6 to rank 4, past u3
            got: dict[str, list[dict[str, Any]]] = {}
            for _ in range(3):
                message = await recv(ws)
                got.setdefault(message["id"], []).append(message)
            assert rows(got["a"][0]) == [(4, "u5", 35), (5, "u3", 30), (6, "u4", 20)]
            assert [m["type"] for m in got["m"]] == ["update", "event"]
            assert got["m"][1]["event"] == "overtaken"
            assert got["m"][1]["by"]["user_id"] == "u5"
            assert "top" not in got
            await poster.ok("u5", 100)  # 135: first
            update = await recv(ws)
            while update["id"] != "top":
                update = await recv(ws)
            assert (update["seq"], rows(update)) == (far["seq"] + 1, [(1, "u5", 135)])
    finally:
        await poster.close()
