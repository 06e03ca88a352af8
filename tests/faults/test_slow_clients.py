"""Slow and stuck WebSocket clients: bounded memory, closed in time, nobody else slowed.

Ten clients complete the handshake and then never read a byte (a small receive buffer makes
them stall quickly); twenty healthy clients read everything. Updates with long names make every
board about 2 KB. Without the per-socket "latest board" slot the server would queue every board
for every stuck client (10 x 3,000 x 2 KB, about 60 MB); with it, each stuck client holds at
most one board and what the transport buffers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import websockets

from tests.e2e.conftest import Poster
from tests.support.server import ServerProcess
from tests.support.timing import async_wait_until, scaled

STUCK = 10
HEALTHY = 20
UPDATES = 3000
SEND_TIMEOUT = 10  # the default: "closed within 10 s"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def stuck_client(port: int) -> socket.socket:
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", port))
    raw.sendall(
        b"GET /ws/scoreboard HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    return raw


async def test_stuck_clients_are_bounded_closed_and_slow_nobody(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "slow",
        env={"SCOREBOARD_MAX_DELTA": "1000000", "SCOREBOARD_WS_SEND_TIMEOUT": str(SEND_TIMEOUT)},
    ).start()
    assert server.proc is not None
    pid = server.proc.pid
    poster = Poster(server.base_url)
    healthy = [await websockets.connect(server.ws_url) for _ in range(HEALTHY)]
    newest: list[int] = [0] * HEALTHY

    async def read(i: int, ws: Any) -> None:
        async for message in ws:
            newest[i] = json.loads(message)["data"]["seq"]

    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(healthy)]
    stuck = [stuck_client(server.port) for _ in range(STUCK)]
    try:
        users = [f"{i:02d}" + "n" * 60 for i in range(12)]  # long ids: ~2 KB boards
        await poster.ok(users[0], 1)
        before = rss_mb(pid)
        lags = []
        for i in range(UPDATES):
            await poster.ok(users[i % 12], 1000 + i)
            if i % 300 == 299:
                # Every healthy client catches up with the newest board promptly, stuck
                # clients or not.
                target = max(newest)
                started = time.monotonic()

                async def caught_up(target: int = target) -> bool:
                    return min(newest) >= target

                await async_wait_until(caught_up, 2, "every healthy client on the newest board")
                lags.append(time.monotonic() - started)
        grown = rss_mb(pid) - before
        closed_line = "could not be written to"

        async def all_stuck_closed() -> bool:
            return server.log().count(closed_line) >= STUCK

        await async_wait_until(all_stuck_closed, SEND_TIMEOUT + 5, "the stuck clients closed")
    finally:
        for raw in stuck:
            raw.close()
        for task in readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in healthy), return_exceptions=True)
        await asyncio.gather(*readers, return_exceptions=True)
        await poster.close()
        server.stop()
    print(f"rss grew {grown:.1f} MB; healthy clients caught up in {max(lags) * 1000:.0f} ms max")
    assert grown < 30, f"server memory grew {grown:.1f} MB with {STUCK} stuck clients"
    assert max(lags) < scaled(1.0)
