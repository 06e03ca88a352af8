"""``/ws`` over real sockets: a real ``scoreboard serve`` process (our uvicorn protocols, frames
written straight to the socket), and two processes on PostgreSQL and Redis where an update
posted to one moves the views of the other's sockets."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from scoreboard.subscriptions import SUBSCRIPTIONS_MAX
from tests.e2e.conftest import Poster
from tests.e2e.test_boards_live import recv
from tests.e2e.test_two_processes import Pair
from tests.support import services
from tests.support.server import ServerProcess
from tests.support.timing import scaled
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


async def overflow_closes(poster: Poster) -> float:
    response = await poster.client.get("/metrics")
    for line in response.text.splitlines():
        if line.startswith('scoreboard_websocket_closed_total{reason="overflow"}'):
            return float(line.split()[-1])
    raise AssertionError("no overflow counter in /metrics")


async def test_a_socket_that_stops_reading_its_events_is_closed_1013_and_can_resubscribe(
    server: ServerProcess, poster: Poster
) -> None:
    """Over uvicorn's real transport: a ``me`` subscriber that stops reading while it is
    overtaken again and again fills the kernel's buffers, then its event queue (256 events),
    and is closed with 1013; a socket that reads meanwhile gets every event, and the closed
    client subscribes again on a new socket."""
    await poster.ok("me", 1)
    me = token("me")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: stalls fast
    raw.connect(("127.0.0.1", server.port))
    raw.setblocking(False)
    # max_queue=1: the library stops reading the socket once one frame waits unread.
    stalled = await websockets.connect(url(server), sock=raw, max_queue=1)
    watcher = await websockets.connect(url(server))
    try:
        # The stalled socket holds the most subscriptions a socket may (20), all on "me": each
        # overtaking costs it 20 events, so its buffers fill 20 times sooner.
        for n in range(SUBSCRIPTIONS_MAX):
            first = await subscribe(stalled, id=f"m{n}", board="main", view="me", auth_token=me)
            assert rows(first) == [(1, "me", 1)]
        first = await subscribe(watcher, id="m", board="main", view="me", auth_token=me)
        assert rows(first) == [(1, "me", 1)]
        overtaken = 0
        rank = 1  # the watcher's latest word on where "me" stands
        progress = asyncio.Event()

        async def watch() -> None:
            nonlocal overtaken, rank
            async for frame in watcher:
                message = json.loads(frame)
                if message.get("event") == "overtaken":
                    overtaken += 1
                if message.get("type") == "event" and message.get("rank") is not None:
                    rank = message["rank"]
                elif message.get("rows"):
                    rank = message["rows"][0]["rank"]
                progress.set()

        reading = asyncio.create_task(watch())
        posted = 0
        async with asyncio.timeout(scaled(60)):
            while await overflow_closes(poster) == 0:
                assert posted < 20_000, "the stalled socket was never closed"
                # Long ids (their username too): bigger events, fewer updates to fill the
                # buffers (the kernel takes megabytes on loopback whatever the window).
                batch = [poster.ok(f"{posted + i:05d}" + "o" * 59, 2) for i in range(50)]
                await asyncio.gather(*batch)  # each one overtakes "me": one event each
                posted += 50
        print(f"posted {posted} updates before the overflow close")
        assert posted * SUBSCRIPTIONS_MAX >= 256  # at least the queue's worth of events

        # The stalled client reads again: what the kernel held, then the close.
        async def drain() -> None:
            async with asyncio.timeout(scaled(20)):
                while True:
                    await stalled.recv()

        with pytest.raises(websockets.ConnectionClosed) as closed:
            await drain()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013

        # The socket that kept reading stayed open and followed "me" down to the last rank.
        # Its events are not one per update: moves applied concurrently can reach the views
        # out of order, and what the replay cannot explain becomes one rank_changed
        # (subscriptions.me_events).
        async with asyncio.timeout(scaled(20)):
            while rank != posted + 1:
                progress.clear()
                await progress.wait()
        assert not reading.done()  # not closed: it kept up
        assert 0 < overtaken <= posted
        reading.cancel()

        # A new socket subscribes again and sees where "me" stands now.
        async with websockets.connect(url(server)) as again:
            state = await subscribe(again, id="m", board="main", view="me", auth_token=me)
            assert rows(state) == [(posted + 1, "me", 1)]
    finally:
        await stalled.close()
        await watcher.close()


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
