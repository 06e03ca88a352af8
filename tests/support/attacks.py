"""Attacks run from a process of their own, so that a test's own event loop (which measures how
the server answers others meanwhile) is not slowed by the attacker's work.

    python -m tests.support.attacks ping-flood WS_URL SECONDS

prints one JSON line: the close code of every socket the attack opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time

import websockets
from websockets.frames import Frame, Opcode

_PINGS = Frame(Opcode.PING, b"p").serialize(mask=True, extensions=[]) * 5000


async def _flood_once(url: str) -> int | None:
    """Open a socket, read its SNAPSHOT, then write pings as fast as possible without reading
    a pong; the close code the server sent (``None``: it kept the socket)."""
    async with websockets.connect(url, open_timeout=10, close_timeout=5) as ws:
        await asyncio.wait_for(ws.recv(), 10)
        with contextlib.suppress(OSError, RuntimeError):
            for _ in range(20):
                if ws.transport.is_closing():
                    break
                ws.transport.write(_PINGS)
                await asyncio.sleep(0)
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            await asyncio.wait_for(ws.wait_closed(), 5)
        return ws.close_code


async def ping_flood(url: str, seconds: float) -> list[int | None]:
    codes = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:  # reconnect and flood again, as an attacker
        codes.append(await _flood_once(url))
    return codes


def main(argv: list[str]) -> None:
    kind, url, seconds = argv
    if kind != "ping-flood":
        raise SystemExit(f"unknown attack {kind!r}")
    print(json.dumps(asyncio.run(ping_flood(url, float(seconds)))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
