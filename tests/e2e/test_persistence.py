"""Durability: what got a 200 is in the database, across restarts and SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import httpx

from tests.e2e.conftest import Poster
from tests.support.server import ServerProcess


def totals(database: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        return dict(
            conn.execute(
                "SELECT user_id, score FROM standings WHERE board_id = 'main' AND period_id = 'all'"
            ).fetchall()
        )


def event_sums(database: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        rows = conn.execute("SELECT user_id, SUM(score_delta) FROM scores GROUP BY user_id")
        return dict(rows.fetchall())


async def test_scores_survive_a_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "s").start()
    poster = Poster(server.base_url)
    try:
        await poster.ok("alice", 5)
        await poster.ok("bob", 9)
        await poster.ok("alice", 1, action_id="once")
        before = await poster.top10()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says so.
        assert server.stop() == -15
        assert "Application shutdown complete" in server.log()
        server.start()
        assert await poster.top10() == before
        # The rebuilt index still knows the action: a retry adds nothing.
        assert (await poster.ok("alice", 1, action_id="once"))["new_score"] == 6
        assert (await poster.ok("alice", 1))["new_score"] == 7
    finally:
        await poster.close()
        server.stop()


async def test_every_acknowledged_update_survives_sigkill(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "k").start()
    poster = Poster(server.base_url)
    acked: dict[str, int] = {}
    unknown: dict[str, int] = {}
    midway = asyncio.Event()

    async def stream(worker: int) -> None:
        for i in range(10_000):
            user = f"w{worker}"
            try:
                response = await poster.update(user, 1 + i % 7, action_id=f"{worker}-{i}")
            except httpx.HTTPError:
                unknown[user] = unknown.get(user, 0) + 1 + i % 7
                return  # the server is gone
            if response.status_code != 200:
                return
            acked[user] = acked.get(user, 0) + 1 + i % 7
            if sum(acked.values()) >= 3_000:
                midway.set()

    try:
        tasks = [asyncio.create_task(stream(w)) for w in range(16)]
        await midway.wait()  # kill it in the middle of the stream
        server.kill()
        await asyncio.gather(*tasks)
        server.start()
        stored = totals(server.database)
        for user, amount in acked.items():
            assert amount <= stored[user] <= amount + unknown.get(user, 0), user
        assert stored == event_sums(server.database)  # totals agree with the events
        with contextlib.closing(sqlite3.connect(server.database)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        top = {e["user_id"]: e["score"] for e in await poster.top10()}
        assert top == {u: s for u, s in stored.items() if u in top}
    finally:
        await poster.close()
        server.stop()


async def test_a_client_leaving_mid_body_changes_nothing_and_is_no_error(
    server: ServerProcess,
) -> None:
    import socket

    raw = socket.create_connection(("127.0.0.1", server.port))
    raw.sendall(
        b"POST /api/scores/update HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 500\r\n\r\n{"user_id": "alice", "score'
    )
    raw.close()  # gone before the rest of the body
    poster = Poster(server.base_url)
    try:
        await poster.ok("bob", 1)  # the server carries on
        assert [e["user_id"] for e in await poster.top10()] == ["bob"]
    finally:
        await poster.close()
    assert "Traceback" not in server.log()
    assert "unexpected" not in server.log()
