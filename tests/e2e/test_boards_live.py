"""Boards live, over real sockets of a real ``scoreboard serve`` on the example configuration:
one update moves every board of its metric on its own channel, an unknown board is refused
before the WebSocket is accepted, and what an operator does from the command line while the
server runs (a season rollover, a new boards file) reaches the open sockets within seconds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.e2e.conftest import Poster
from tests.e2e.test_cli import assert_one_line_error, run
from tests.support.server import SECRET, ServerProcess
from tests.support.timing import scaled

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "boards.toml"


def start(tmp_path: Path, **env: str) -> ServerProcess:
    settings = {"SCOREBOARD_BOARDS": str(EXAMPLE), **env}
    return ServerProcess(tmp_path / "server", settings).start()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start(tmp_path)
    yield proc
    proc.stop()


def channel(server: ServerProcess, board: str) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/boards/{board}"


async def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    async with asyncio.timeout(scaled(timeout)):
        message: dict[str, Any] = json.loads(await ws.recv())
        return message


async def until_type(ws: ClientConnection, kind: str, timeout: float = 5) -> dict[str, Any]:
    async with asyncio.timeout(scaled(timeout)):
        while True:
            message = await recv(ws, timeout)
            if message["type"] == kind:
                return message


async def drain(ws: ClientConnection, timeout: float = 5) -> None:
    """Read until the socket closes (raising ``ConnectionClosed``)."""
    async with asyncio.timeout(scaled(timeout)):
        while True:
            await ws.recv()


def cli(server: ServerProcess, *args: str) -> str:
    """A ``scoreboard`` command on the running server's database, as an operator runs it."""
    result = run(
        server.data_dir,
        *args,
        database_url=f"sqlite:///{server.database}",
        jwt_secret=SECRET,
        boards=str(EXAMPLE),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_one_update_reaches_the_channel_of_every_board_it_feeds(
    server: ServerProcess,
) -> None:
    poster = Poster(server.base_url)
    sockets = {}
    try:
        for board in ("main", "today", "season", "fastest-lap"):
            sockets[board] = ws = await websockets.connect(channel(server, board))
            snapshot = await recv(ws)
            assert snapshot["type"] == "SNAPSHOT"
            assert snapshot["data"]["board"] == board
            assert snapshot["data"]["rankings"] == []
        answer = await poster.ok("alice", 40)
        for board in ("main", "today", "season"):
            update = await recv(sockets[board])
            assert update["type"] == "SCORE_UPDATE"
            data = update["data"]
            assert (data["board"], data["period"]) == (board, answer["boards"][board]["period"])
            assert [(e["user_id"], e["score"]) for e in data["rankings"]] == [("alice", 40)]
        lap = await poster.ok("alice", 61_000, metric="lap_ms")
        update = await recv(sockets["fastest-lap"])
        assert update["data"]["rankings"][0]["score"] == 61_000
        assert update["data"]["period"] == lap["boards"]["fastest-lap"]["period"]
        # The points boards heard nothing of the lap.
        with pytest.raises(TimeoutError):
            await recv(sockets["main"], timeout=0.3)
    finally:
        for ws in sockets.values():
            await ws.close()
        await poster.close()


@pytest.mark.parametrize("board", ["monthly", "Main"])
async def test_an_unknown_board_is_refused_before_accept(server: ServerProcess, board: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(channel(server, board))
    response = refused.value.response
    assert response.status_code == (404 if board == "monthly" else 400)
    assert json.loads(response.body)["error"] in {"unknown_board", "invalid_board"}


async def test_a_rollover_from_the_command_line_reaches_open_sockets(
    server: ServerProcess,
) -> None:
    poster = Poster(server.base_url)
    try:
        await poster.ok("alice", 10)
        async with websockets.connect(channel(server, "season")) as ws:
            assert (await recv(ws))["data"]["period"] == "1"
            loop = asyncio.get_running_loop()
            out = await loop.run_in_executor(None, cli, server, "boards", "rollover", "season")
            assert "season 2 started" in out
            ended = loop.time()
            started = await until_type(ws, "PERIOD_STARTED", timeout=3)
            # The keeper reads the seasons once a second: within about a second of the commit.
            assert loop.time() - ended < scaled(2.5)
            assert started["data"]["board"] == "season"
            assert (started["data"]["period"], started["data"]["previous"]) == ("2", "1")
            assert started["data"]["rankings"] == []
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            old = (await client.get("/api/boards/season/top10", params={"period": "1"})).json()
            assert [e["score"] for e in old["scores"]] == [10]
            assert (await client.get("/api/boards/season/top10")).json()["scores"] == []
    finally:
        await poster.close()


async def test_the_seed_channel_hears_its_boards_new_period(tmp_path: Path) -> None:
    """``/ws/scoreboard`` is the default board's channel, ``PERIOD_STARTED`` included."""
    server = start(tmp_path, SCOREBOARD_DEFAULT_BOARD="season")
    try:
        async with websockets.connect(server.ws_url) as ws:
            snapshot = await recv(ws)
            assert set(snapshot["data"]) == {"rankings", "seq"}  # the seed's shape
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, cli, server, "boards", "rollover", "season")
            started = await until_type(ws, "PERIOD_STARTED", timeout=3)
            assert started["data"]["board"] == "season"
            assert started["data"]["seq"] > snapshot["data"]["seq"]
    finally:
        server.stop()


async def test_a_new_boards_file_is_taken_up_by_the_running_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    smaller = tmp_path / "smaller.toml"
    text = EXAMPLE.read_text()
    smaller.write_text(
        text[: text.index("[boards.today]")] + "[boards.monthly]\ntitle = 'M'\nreset = 'monthly'\n"
    )
    poster = Poster(server.base_url)
    try:
        await poster.ok("bob", 25)
        async with websockets.connect(channel(server, "today")) as ws:
            await recv(ws)
            loop = asyncio.get_running_loop()
            out = await loop.run_in_executor(None, cli, server, "boards", "apply", str(smaller))
            assert "as version 2" in out
            # The removed board's sockets are told it is gone: 1001, going away.
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await drain(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            listed = [b["id"] for b in (await client.get("/api/boards")).json()["boards"]]
            assert listed == ["main", "monthly", "weekly"]
            assert (await client.get("/api/boards/today/top10")).status_code == 404
            # The new board was filled from the stored events of its period.
            monthly = (await client.get("/api/boards/monthly/top10")).json()
            assert [(e["user_id"], e["score"]) for e in monthly["scores"]] == [("bob", 25)]
    finally:
        await poster.close()


async def test_the_demo_feeds_every_board_of_the_example(server: ServerProcess) -> None:
    loop = asyncio.get_running_loop()
    out = await loop.run_in_executor(
        None,
        lambda: cli(
            server,
            "demo",
            "--url",
            server.base_url,
            "--metric",
            "points",
            "--metric",
            "lap_ms",
            "--rate",
            "60",
            "--duration",
            "2",
            "--users",
            "8",
        ),
    )
    assert "failed" not in out, out
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        for board in ("main", "weekly", "today", "season", "fastest-lap"):
            top = (await client.get(f"/api/boards/{board}/top10")).json()["scores"]
            assert top, board
        laps = (await client.get("/api/boards/fastest-lap/top10")).json()["scores"]
        assert laps == sorted(laps, key=lambda e: e["score"])  # lowest first


def test_the_demo_names_a_metric_the_boards_file_lacks(server: ServerProcess) -> None:
    result = run(
        server.data_dir,
        "demo",
        "--url",
        server.base_url,
        "--metric",
        "coins",
        jwt_secret=SECRET,
        boards=str(EXAMPLE),
    )
    line = assert_one_line_error(result)
    assert "coins" in line
    assert "lap_ms, points" in line
