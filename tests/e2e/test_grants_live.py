"""Grant mode on a real server: replayed, mismatched and misused tokens reach no page.

A page connected over a real socket sees one SCORE_UPDATE per applied grant: the update after a
burst of refusals and replays carries the very next ``seq``, so none of them changed the board (a
page may skip boards under load, but ``seq`` counts every board change)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from scoreboard.auth.mint import mint
from scoreboard.auth.verify import Grant
from tests.support.server import SECRET, ServerProcess
from tests.support.timing import scaled
from tests.support.tokens import token


@pytest.fixture
def grant_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server", env={"SCOREBOARD_AUTH_MODE": "grant"}).start()
    yield proc
    proc.stop()


def grant(user_id: str, delta: int, act: str) -> str:
    return mint(SECRET.encode(), user_id, ttl=300, grant=Grant(delta, act))


async def test_only_applied_grants_are_broadcast(grant_server: ServerProcess) -> None:
    first = {"user_id": "alice", "score_delta": 5, "auth_token": grant("alice", 5, "q1")}
    refused: list[tuple[int, dict[str, Any]]] = [
        (200, first),  # replays
        (200, {**first, "action_id": "q1"}),
        (401, {**first, "score_delta": 6}),
        (401, {**first, "user_id": "bob"}),
        (401, {**first, "action_id": "q2"}),
        (401, {"user_id": "alice", "score_delta": 5, "auth_token": token("alice")}),
        (409, {"user_id": "alice", "score_delta": 9, "auth_token": grant("alice", 9, "q1")}),
    ]
    second = {"user_id": "bob", "score_delta": 7, "auth_token": grant("bob", 7, "q9")}
    async with (
        httpx.AsyncClient(base_url=grant_server.base_url, timeout=scaled(30)) as client,
        websockets.connect(grant_server.ws_url) as ws,
    ):
        async with asyncio.timeout(scaled(10)):
            snapshot = json.loads(await ws.recv())
            seq = snapshot["data"]["seq"]
            response = await client.post("/api/scores/update", json=first)
            assert response.status_code == 200, response.text
            pushed = json.loads(await ws.recv())
            assert (pushed["type"], pushed["data"]["seq"]) == ("SCORE_UPDATE", seq + 1)
            for status, body in refused:
                response = await client.post("/api/scores/update", json=body)
                assert response.status_code == status, (body, response.text)
            response = await client.post("/api/scores/update", json=second)
            assert response.status_code == 200, response.text
            pushed = json.loads(await ws.recv())
    assert pushed["type"] == "SCORE_UPDATE"
    assert pushed["data"]["seq"] == seq + 2
    assert (pushed["data"]["user_id"], pushed["data"]["new_score"]) == ("bob", 7)
    assert [(e["user_id"], e["score"]) for e in pushed["data"]["rankings"]] == [
        ("bob", 7),
        ("alice", 5),
    ]
