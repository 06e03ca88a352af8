"""Real ``scoreboard serve`` processes over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess
from tests.support.tokens import token


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server").start()
    yield proc
    proc.stop()


class Poster:
    """Posts updates with valid tokens, minting each user's token once."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=30)
        self._tokens: dict[str, str] = {}

    async def update(self, user_id: str, delta: int, **extra: object) -> httpx.Response:
        tok = self._tokens.setdefault(user_id, token(user_id))
        body = {"user_id": user_id, "score_delta": delta, "auth_token": tok, **extra}
        return await self.client.post("/api/scores/update", json=body)

    async def ok(self, user_id: str, delta: int, **extra: object) -> dict[str, object]:
        response = await self.update(user_id, delta, **extra)
        assert response.status_code == 200, response.text
        result: dict[str, object] = response.json()
        return result

    async def top10(self) -> list[dict[str, object]]:
        response = await self.client.get("/api/scores/top10")
        assert response.status_code == 200
        scores: list[dict[str, object]] = response.json()["scores"]
        return scores

    async def close(self) -> None:
        await self.client.aclose()
