"""A live-channel client that keeps the newest board it was sent, for convergence checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import websockets


class BoardWatcher:
    """Follows ``/ws/scoreboard`` and reconnects when the socket closes; ``board`` is the newest
    ``[(user_id, score), ...]`` received, ``seq`` its sequence number, ``gaps`` how often a
    ``SCORE_UPDATE`` skipped numbers."""

    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self.board: list[tuple[str, int]] = []
        self.seq = -1
        self.gaps = 0
        self.snapshots = 0
        self.close_codes: list[int | None] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> BoardWatcher:
        self._task = asyncio.create_task(self._follow())
        return self

    async def _follow(self) -> None:
        while True:
            try:
                async with websockets.connect(self.ws_url, open_timeout=5) as ws:
                    async for raw in ws:
                        self._take(json.loads(raw))
                    self.close_codes.append(ws.close_code)
            except (OSError, websockets.WebSocketException, TimeoutError):
                pass
            await asyncio.sleep(0.1)  # reconnect

    def _take(self, message: dict[str, Any]) -> None:
        data = message["data"]
        if message["type"] == "SNAPSHOT":
            self.snapshots += 1
        elif data["seq"] > self.seq + 1 and self.seq >= 0:
            self.gaps += 1
        self.seq = data["seq"]
        self.board = [(e["user_id"], e["score"]) for e in data["rankings"]]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
