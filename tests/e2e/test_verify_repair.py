"""``scoreboard verify`` and ``repair`` next to a running server, as an operator meets them:
derived state broken behind the server's back (a wrong total in the standings table, a row
that still counts a voided event, a missing or stale Redis member), found line by line with
exit 1, repaired while serving, and public reads right afterwards; and the background check's
metric rising on a broken row.

Embedded: SQLite in a temporary folder. Scaled: PostgreSQL and Redis (a database and a key
prefix of their own).
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Poster
from tests.e2e.test_two_processes import NO_LIMITS
from tests.support import services
from tests.support.server import ServerProcess
from tests.support.timing import async_wait_until, scaled


def scoreboard(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m scoreboard ARGS`` on the server's data and settings, whatever its status."""
    return subprocess.run(
        [sys.executable, "-m", "scoreboard", *args],
        env=server.env(),
        cwd=server.data_dir,
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )


async def top10(server: ServerProcess) -> list[tuple[str, int]]:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get("/api/scores/top10")
    assert response.status_code == 200
    return [(row["user_id"], row["score"]) for row in response.json()["scores"]]


async def board_page(server: ServerProcess) -> list[tuple[str, int]]:
    """``GET /api/scores``: read from the rank index (the top 10 is the live board's)."""
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get("/api/scores", params={"limit": 100})
    assert response.status_code == 200
    return [(row["user_id"], row["score"]) for row in response.json()["scores"]]


async def metric(server: ServerProcess, name: str) -> float:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


# -- embedded ---------------------------------------------------------------------------------


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "server", {"SCOREBOARD_CONSISTENCY_SAMPLE": "0"}).start()
    yield server
    server.stop()


@pytest.fixture
async def poster(embedded: ServerProcess) -> AsyncIterator[Poster]:
    value = Poster(embedded.base_url)
    yield value
    await value.close()


def execute(server: ServerProcess, statement: str, *args: object) -> None:
    with closing(sqlite3.connect(server.database)) as conn, conn:
        conn.execute(statement, args)


def event_ids(server: ServerProcess, user: str) -> list[int]:
    with closing(sqlite3.connect(server.database)) as conn:
        rows = conn.execute(
            "SELECT score_id FROM scores WHERE user_id = ? ORDER BY score_id", (user,)
        ).fetchall()
    return [row[0] for row in rows]


async def test_verify_passes_on_a_healthy_embedded_board(
    embedded: ServerProcess, poster: Poster
) -> None:
    for user, delta in (("ann", 30), ("bob", 50)):
        await poster.ok(user, delta)
    done = scoreboard(embedded, "verify")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["consistent: 1 boards, 1 periods, 2 standings, 2 events"]


async def test_embedded_breakage_is_found_then_repaired_while_serving(
    embedded: ServerProcess, poster: Poster
) -> None:
    for user, delta in (("ann", 30), ("bob", 50), ("cid", 40), ("cid", 5)):
        await poster.ok(user, delta)
    (ann,) = event_ids(embedded, "ann")
    first, last = event_ids(embedded, "cid")
    # A wrong total in the standings table, and a row that still counts a voided event.
    execute(
        embedded,
        "UPDATE standings SET score = 999, rank_score = -999 WHERE user_id = 'ann'",
    )
    execute(
        embedded,
        "UPDATE scores SET voided_at = '2026-01-01 00:00:00.000000' WHERE score_id = ?",
        last,
    )
    # The wrong total reaches the server's index with ann's next update (and her answer).
    assert (await poster.ok("ann", 1))["new_score"] == 1000

    found = scoreboard(embedded, "verify")
    assert found.returncode == 1, found.stderr
    (ann_now,) = event_ids(embedded, "ann")[1:]
    assert found.stdout.splitlines() == [
        f'board=main period=all user=ann store=standings expected="31 by event {ann_now}"'
        f' found="1000 by event {ann_now}"',
        f'board=main period=all user=cid store=standings expected="40 by event {first}"'
        f' found="45 by event {last}"',
        "2 differences in 1 boards, 1 periods, 3 standings, 5 events",
    ]
    assert ann

    repaired = scoreboard(embedded, "repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    lines = repaired.stdout.splitlines()
    assert lines[0].startswith("repaired: board=main period=all user=ann store=standings")
    assert lines[-2:] == [
        "repaired 2 standings",
        "consistent: 1 boards, 1 periods, 3 standings, 5 events",
    ]
    # The running server takes the repair up into its own index (from the audit).
    want = [("bob", 50), ("cid", 40), ("ann", 31)]
    await async_wait_until(lambda: _is(embedded, want), 10, "the repair taken up")
    assert scoreboard(embedded, "verify").returncode == 0
    # And updates go on from the repaired rows.
    assert (await poster.ok("ann", 9))["new_score"] == 40


async def _is(server: ServerProcess, want: list[tuple[str, int]]) -> bool:
    return await top10(server) == want


async def test_a_repair_while_updates_arrive_loses_nothing(
    embedded: ServerProcess, poster: Poster
) -> None:
    """Every row is broken; updates keep arriving for those users while ``verify`` and then
    ``repair`` run: verify reports only the broken rows (nothing in flight), repair fixes them,
    and every total is the sum of the user's acknowledged updates."""
    users = [f"p{n}" for n in range(20)]
    acknowledged = dict.fromkeys(users, 0)
    for user in users:
        await poster.ok(user, 10)
        acknowledged[user] += 10
    execute(embedded, "UPDATE standings SET score = 3, rank_score = -3")
    stop = asyncio.Event()

    async def load() -> int:
        n = 0
        while not stop.is_set():
            user = users[n % len(users)]
            await poster.ok(user, 1)
            acknowledged[user] += 1
            n += 1
        return n

    writer = asyncio.create_task(load())
    try:
        found = await asyncio.to_thread(scoreboard, embedded, "verify")
        assert found.returncode == 1
        flagged = {line.split()[2] for line in found.stdout.splitlines()[:-1]}
        assert flagged == {f"user={u}" for u in users}
        assert all("store=standings" in line for line in found.stdout.splitlines()[:-1])
        before = sum(acknowledged.values())
        repaired = await asyncio.to_thread(scoreboard, embedded, "repair")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert sum(acknowledged.values()) > before  # updates went on during the repair
    finally:
        stop.set()
        updates = await writer
    assert updates > 0
    assert scoreboard(embedded, "verify").returncode == 0
    await async_wait_until(
        lambda: _scores_are(embedded, acknowledged), 10, "every total right on the server"
    )


async def _scores_are(server: ServerProcess, want: dict[str, int]) -> bool:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get("/api/scores", params={"limit": 100})
    return {r["user_id"]: r["score"] for r in response.json()["scores"]} == want


async def test_a_verify_of_an_unknown_board_is_one_line(embedded: ServerProcess) -> None:
    done = scoreboard(embedded, "verify", "--board", "nope")
    assert done.returncode == 2
    assert done.stderr.strip() == "scoreboard: error: there is no board 'nope' (boards: main)"


async def test_the_background_check_counts_a_broken_row(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "s", {"SCOREBOARD_CONSISTENCY_SAMPLE": "600"}).start()
    poster = Poster(server.base_url)
    try:
        await poster.ok("ann", 30)
        assert await metric(server, "scoreboard_consistency_errors_total") == 0
        execute(server, "UPDATE standings SET score = 7, rank_score = -7 WHERE user_id = 'ann'")

        async def counted() -> bool:
            return await metric(server, "scoreboard_consistency_errors_total") >= 1

        await async_wait_until(counted, 15, "a difference counted")
        assert "derived state differs from the events" in server.log()
    finally:
        await poster.close()
        server.stop()


# -- scaled -----------------------------------------------------------------------------------


@pytest.fixture
def scaled_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with services.postgres_database(migrate=False) as url:
        redis_url = services.redis_url(services.INTEGRATION_REDIS_DB)
        prefix = services.unique_prefix()
        env = {
            "SCOREBOARD_DATABASE_URL": url,
            "SCOREBOARD_REDIS_URL": redis_url,
            "SCOREBOARD_REDIS_PREFIX": prefix,
            "SCOREBOARD_CONSISTENCY_SAMPLE": "0",
            **NO_LIMITS,
        }
        server = ServerProcess(tmp_path / "scaled", env).start()
        try:
            yield server
        finally:
            server.stop()
            _delete_keys(redis_url, prefix)


def _delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.mark.postgres
@pytest.mark.redis
async def test_scaled_breakage_is_found_then_repaired_while_serving(
    scaled_server: ServerProcess,
) -> None:
    import asyncpg
    import redis

    env = scaled_server.env()
    poster = Poster(scaled_server.base_url)
    try:
        for user, delta in (("ann", 30), ("bob", 50), ("cid", 40), ("dan", 20)):
            await poster.ok(user, delta)
    finally:
        await poster.close()
    assert await top10(scaled_server) == [("bob", 50), ("cid", 40), ("ann", 30), ("dan", 20)]
    # A wrong total in the standings table; a missing and a stale member in Redis.
    conn = await asyncpg.connect(env["SCOREBOARD_DATABASE_URL"])
    try:
        await conn.execute(
            "UPDATE standings SET score = 999, rank_score = -999 WHERE user_id = 'ann'"
        )
        ids = dict(await conn.fetch("SELECT user_id, score_id FROM scores"))
    finally:
        await conn.close()
    client = redis.Redis.from_url(env["SCOREBOARD_REDIS_URL"])
    base = env["SCOREBOARD_REDIS_PREFIX"] + "{main}:all:"
    try:
        client.zrem(base + "z", client.hget(base + "members", "bob"))
        client.zadd(base + "z", {client.hget(base + "members", "dan"): -70})
    finally:
        client.close()
    assert await board_page(scaled_server) == [("dan", 70), ("cid", 40), ("ann", 30)]

    found = scoreboard(scaled_server, "verify")
    assert found.returncode == 1, found.stderr
    assert found.stdout.splitlines() == [
        f'board=main period=all user=ann store=standings expected="30 by event {ids["ann"]}"'
        f' found="999 by event {ids["ann"]}"',
        'board=main period=all user=bob store=index expected="50 as bob" found="absent"',
        'board=main period=all user=dan store=index expected="20 as dan" found="70 as dan"',
        "3 differences in 1 boards, 1 periods, 4 standings, 4 events",
    ]

    repaired = scoreboard(scaled_server, "repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert repaired.stdout.splitlines()[-2:] == [
        "repaired 3 standings",
        "consistent: 1 boards, 1 periods, 4 standings, 4 events",
    ]
    want = [("bob", 50), ("cid", 40), ("ann", 30), ("dan", 20)]
    assert await board_page(scaled_server) == want
    assert await top10(scaled_server) == want
