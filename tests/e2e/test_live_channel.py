"""The live channel over a real server socket."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.e2e.conftest import Poster
from tests.support.server import ServerProcess
from tests.support.timing import scaled


@pytest.fixture
async def poster(server: ServerProcess) -> AsyncIterator[Poster]:
    p = Poster(server.base_url)
    yield p
    await p.close()


async def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    async with asyncio.timeout(scaled(timeout)):
        message: dict[str, Any] = json.loads(await ws.recv())
        return message


def board(message: dict[str, Any]) -> list[tuple[str, int]]:
    return [(e["user_id"], e["score"]) for e in message["data"]["rankings"]]


async def test_snapshot_on_connect_equals_the_top10(server: ServerProcess, poster: Poster) -> None:
    await poster.ok("alice", 5)
    await poster.ok("bob", 7)
    async with websockets.connect(server.ws_url) as ws:
        snapshot = await recv(ws)
    assert snapshot["type"] == "SNAPSHOT"
    assert snapshot["data"]["rankings"] == await poster.top10()
    assert board(snapshot) == [("bob", 7), ("alice", 5)]


async def test_update_is_pushed_with_the_next_seq(server: ServerProcess, poster: Poster) -> None:
    async with websockets.connect(server.ws_url) as ws:
        snapshot = await recv(ws)
        await poster.ok("alice", 5)
        update = await recv(ws)
    assert update["type"] == "SCORE_UPDATE"
    assert update["data"]["seq"] == snapshot["data"]["seq"] + 1
    assert (update["data"]["user_id"], update["data"]["new_score"]) == ("alice", 5)
    assert update["data"]["rankings"] == await poster.top10()


async def test_seq_rises_by_one_per_board_change(server: ServerProcess, poster: Poster) -> None:
    async with websockets.connect(server.ws_url) as ws:
        first = (await recv(ws))["data"]["seq"]
        for i in range(20):
            await poster.ok(f"user{i % 4}", i + 1)
        seqs = [(await recv(ws))["data"]["seq"] for _ in range(20)]
    assert seqs == list(range(first + 1, first + 21))


async def test_300_clients_all_receive_one_update(server: ServerProcess, poster: Poster) -> None:
    clients = [await websockets.connect(server.ws_url) for _ in range(300)]
    try:
        snapshots = await asyncio.gather(*(recv(ws) for ws in clients))
        assert {s["type"] for s in snapshots} == {"SNAPSHOT"}
        await poster.ok("alice", 42)
        updates = await asyncio.gather(*(recv(ws, timeout=10) for ws in clients))
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))
    assert all(board(u) == [("alice", 42)] for u in updates)
    assert len({u["data"]["seq"] for u in updates}) == 1


async def _final_board(ws: ClientConnection, final_seq: int) -> dict[str, Any]:
    message = await recv(ws)
    while message["data"]["seq"] < final_seq:
        message = await recv(ws)
    return message


async def test_a_burst_ends_with_the_final_board_for_every_client(
    server: ServerProcess, poster: Poster
) -> None:
    clients = [await websockets.connect(server.ws_url) for _ in range(20)]
    try:
        for ws in clients:
            await recv(ws)
        results = await asyncio.gather(*(poster.ok(f"u{i % 30}", 1 + i % 50) for i in range(300)))
        assert len(results) == 300
        top = await poster.top10()
        # The last SCORE_UPDATE a client gets must be the board the API serves now.
        async with websockets.connect(server.ws_url) as probe:
            final_seq = (await recv(probe))["data"]["seq"]
        finals = await asyncio.gather(*(_final_board(ws, final_seq) for ws in clients))
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))
    assert all(f["data"]["rankings"] == top for f in finals)


async def test_a_client_sending_garbage_does_not_affect_others(
    server: ServerProcess, poster: Poster
) -> None:
    async with (
        websockets.connect(server.ws_url) as rude,
        websockets.connect(server.ws_url) as polite,
    ):
        await recv(rude)
        await recv(polite)
        for junk in ("hello", "{not json", b"\x00\xff" * 100, json.dumps({"type": "SNAPSHOT"})):
            await rude.send(junk)
        await poster.ok("alice", 3)
        assert board(await recv(polite)) == [("alice", 3)]
        assert board(await recv(rude)) == [("alice", 3)]  # ignored, not disconnected


async def test_oversized_client_frame_closes_that_socket_with_1009(
    server: ServerProcess, poster: Poster
) -> None:
    async with (
        websockets.connect(server.ws_url, max_size=None) as big,
        websockets.connect(server.ws_url) as other,
    ):
        await recv(big)
        await recv(other)
        await big.send("x" * 5000)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv(big)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        await poster.ok("alice", 1)
        assert board(await recv(other)) == [("alice", 1)]


async def test_updates_outside_the_top_10_send_nothing(
    server: ServerProcess, poster: Poster
) -> None:
    for i in range(10):
        await poster.ok(f"top{i}", 100 + i)
    async with websockets.connect(server.ws_url) as ws:
        seq = (await recv(ws))["data"]["seq"]
        low = await poster.ok("minnow", 1)
        assert low["rank"] == 11
        await poster.ok("top0", 50)  # moves top0 from 10th to 1st: a change
        message = await recv(ws)
    # The first message after the snapshot is the top0 change, not anything for minnow.
    assert message["data"]["user_id"] == "top0"
    assert message["data"]["seq"] == seq + 1


async def test_a_client_that_cannot_be_written_to_is_closed_and_others_keep_up(
    tmp_path: Path,
) -> None:
    server = ServerProcess(
        tmp_path / "slow",
        env={"SCOREBOARD_WS_SEND_TIMEOUT": "1", "SCOREBOARD_MAX_DELTA": "1000000"},
    ).start()
    poster = Poster(server.base_url)
    stuck = _handshake(server.port, receive_buffer=4096)  # ...which then never reads
    try:
        async with websockets.connect(server.ws_url) as healthy:
            await recv(healthy)
            name = "n" * 120  # long names make each board message about 2 KB
            users = [f"{i:02d}" + name[:60] for i in range(12)]
            closed_line = "could not be written to"
            for i in range(20_000):
                if closed_line in server.log():
                    break
                await poster.ok(users[i % 12], 1000 + i)
            assert closed_line in server.log(), "the stuck socket was never closed"
            # The healthy client still gets boards promptly after the stuck one is gone.
            await poster.ok("fresh", 999_999)
            message = await recv(healthy)
            while message["data"]["user_id"] != "fresh":
                message = await recv(healthy)
    finally:
        stuck.close()
        await poster.close()
        server.stop()


def _handshake(port: int, receive_buffer: int | None = None) -> socket.socket:
    """A raw WebSocket client: completes the handshake, then does nothing by itself (it
    answers no ping), unlike a library client. A small ``receive_buffer`` (set before
    connecting, so the TCP window is small too) makes a client that never reads stall fast."""
    raw = socket.socket()
    if receive_buffer is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    raw.connect(("127.0.0.1", port))
    raw.sendall(
        b"GET /ws/scoreboard HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    return raw


async def test_a_peer_that_answers_no_ping_is_dropped(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "ping", env={"SCOREBOARD_WS_PING_INTERVAL": "0.5"}).start()
    raw = _handshake(server.port)
    try:
        raw.settimeout(scaled(10))
        received = b""
        # Read until the server ends the connection: the handshake answer, the snapshot, a
        # ping (opcode 0x89) that we leave unanswered, then a close (0x88) and EOF.
        while chunk := await asyncio.to_thread(raw.recv, 65536):
            received += chunk
        assert b"101 Switching Protocols" in received
        assert b"\x89" in received
        assert b"\x88" in received
    finally:
        raw.close()
        server.stop()
