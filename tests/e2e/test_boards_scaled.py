"""Boards in scaled mode: two real server processes on one PostgreSQL database and one Redis,
serving the example boards, act as one set of boards: an update posted to one moves every board
of its metric on the other's channels with the same ``seq``, both answer the same reads, and a
configuration applied from the command line is taken up by both. (Rollovers across processes,
with updates racing them: tests/e2e/test_rollover*.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.e2e.conftest import Poster
from tests.e2e.test_boards_live import EXAMPLE, drain, recv
from tests.e2e.test_cli import run
from tests.e2e.test_two_processes import Pair
from tests.support import services
from tests.support.server import SECRET, ServerProcess
from tests.support.timing import async_wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    with services.postgres_database(migrate=False) as url:
        servers = Pair(tmp_path, url, {"SCOREBOARD_BOARDS": str(EXAMPLE)})
        try:
            servers.start()
            yield servers
        finally:
            servers.stop()
            servers.delete_keys()


@pytest.fixture
async def poster(pair: Pair) -> AsyncIterator[Poster]:
    value = Poster(pair.a.base_url)
    yield value
    await value.close()


def channel(server: ServerProcess, board: str) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/boards/{board}"


async def get(server: ServerProcess, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        return await client.get(path)


async def test_an_update_on_a_moves_every_board_on_b_with_one_seq(
    pair: Pair, poster: Poster
) -> None:
    boards = ("main", "weekly", "today", "season")
    on_a = {b: await websockets.connect(channel(pair.a, b)) for b in boards}
    on_b = {b: await websockets.connect(channel(pair.b, b)) for b in boards}
    try:
        for ws in [*on_a.values(), *on_b.values()]:
            assert (await recv(ws))["type"] == "SNAPSHOT"
        answer = await poster.ok("alice", 40)
        for board in boards:
            seen_a, seen_b = await recv(on_a[board]), await recv(on_b[board])
            assert seen_a == seen_b, board  # the same message, seq included, on both processes
            assert seen_b["data"]["board"] == board
            assert seen_b["data"]["period"] == answer["boards"][board]["period"]
        for path in ["/api/boards", *(f"/api/boards/{b}/top10" for b in boards)]:
            a, b = await get(pair.a, path), await get(pair.b, path)
            assert a.status_code == b.status_code == 200
            assert a.json() == b.json(), path
    finally:
        for ws in [*on_a.values(), *on_b.values()]:
            await ws.close()


async def test_a_configuration_applied_from_the_command_line_reaches_both(
    pair: Pair, poster: Poster, tmp_path: Path
) -> None:
    await poster.ok("bob", 25)
    text = EXAMPLE.read_text()
    smaller = tmp_path / "smaller.toml"
    smaller.write_text(
        text[: text.index("[boards.today]")] + "[boards.monthly]\ntitle = 'M'\nreset = 'monthly'\n"
    )
    async with websockets.connect(channel(pair.b, "today")) as ws:
        await recv(ws)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            None,
            lambda: run(
                tmp_path,
                "boards",
                "apply",
                str(smaller),
                database_url=pair.database_url,
                jwt_secret=SECRET,
            ),
        )
        assert result.returncode == 0, result.stderr
        with pytest.raises(websockets.ConnectionClosed):
            await drain(ws)

    async def both_serve_monthly() -> bool:
        answers = [await get(server, "/api/boards/monthly/top10") for server in (pair.a, pair.b)]
        return all(a.status_code == 200 for a in answers)

    await async_wait_until(both_serve_monthly, 5, "both processes to serve the new board")
    for server in (pair.a, pair.b):
        top = (await get(server, "/api/boards/monthly/top10")).json()["scores"]
        assert [(e["user_id"], e["score"]) for e in top] == [("bob", 25)]
        assert (await get(server, "/api/boards/today")).status_code == 404
    # A process started now with the old file refuses, in one line, and names the command.
    late = run(
        tmp_path,
        "serve",
        "--port",
        "0",
        boards=str(EXAMPLE),
        database_url=pair.database_url,
        redis_url=pair.redis_url,
        redis_prefix=pair.prefix,
        jwt_secret=SECRET,
    )
    assert late.returncode == 2, late.stderr
    assert "scoreboard boards apply FILE" in late.stderr.splitlines()[-1]
