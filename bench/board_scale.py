"""How the rank index's cost grows with the board (issue 6).

For 10^4, 10^5 and 10^6 users: the time to rebuild the in-memory index from a SQLite store
(the start-up path, ``ScoreService.rebuild_index``), its memory per user (tracemalloc), and
rank-of-a-user and page-of-100 reads per second. With ``--redis URL`` the same reads are
measured on the Redis index too (each read is one network round trip there).

    .venv/bin/python bench/board_scale.py [--sizes 10000,100000,1000000] [--redis redis://...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import random
import sqlite3
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from scoreboard import migrate
from scoreboard.adapters.memory_bus import MemoryBus
from scoreboard.adapters.memory_index import MemoryRankIndex
from scoreboard.adapters.sqlite_store import SqliteScoreStore
from scoreboard.model import Standing
from scoreboard.ports import RankIndex
from scoreboard.service import ScoreService

READ_SECONDS = 2.0


def fill(database: Path, users: int) -> None:
    """``users`` users with random totals (and one event each), written in bulk."""
    rng = random.Random(users)
    now = "2026-11-27 00:00:00.000000"
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        conn.executemany(
            "INSERT INTO users (user_id, username, score, version, reached_seq, created_at,"
            " updated_at) VALUES (?, ?, ?, 1, ?, ?, ?)",
            (
                (f"user{i}", f"user{i}", rng.randrange(1, 1_000_000), i + 1, now, now)
                for i in range(users)
            ),
        )
        conn.commit()


async def rebuild(database: Path) -> tuple[float, MemoryRankIndex, ScoreService]:
    store = SqliteScoreStore(database)
    await store.open()
    index = MemoryRankIndex()
    service = ScoreService(store, index, MemoryBus(), min_delta=1, max_delta=1000)
    started = time.perf_counter()
    await service.start()
    elapsed = time.perf_counter() - started
    await store.close()
    return elapsed, index, service


async def memory_per_user(users: int) -> float:
    """Everything the index holds per user: its key tuple, dict slot, sorted-list slot, and
    the user's ``Standing`` with its id and name strings (made inside the measurement)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = MemoryRankIndex()
    await index.load(Standing(f"user{i}", f"user{i}", i * 7 % 100_003, 1, i) for i in range(users))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del index
    return (after - before) / users


async def reads_per_second(index: RankIndex, users: int) -> tuple[float, float]:
    rng = random.Random(1)
    count = 0
    deadline = time.perf_counter() + READ_SECONDS
    while time.perf_counter() < deadline:
        for _ in range(100):
            await index.rank(f"user{rng.randrange(users)}")
        count += 100
    ranks = count / READ_SECONDS
    count = 0
    deadline = time.perf_counter() + READ_SECONDS
    while time.perf_counter() < deadline:
        for _ in range(20):
            page = await index.page(rng.randrange(max(1, users - 100)), 100)
            assert len(page) == 100
        count += 20
    return ranks, count / READ_SECONDS


async def redis_reads(url: str, index: MemoryRankIndex, users: int) -> tuple[float, float]:
    from redis.asyncio import Redis

    from scoreboard.adapters.redis_index import RedisRankIndex

    client: Any = Redis.from_url(url)
    redis_index = RedisRankIndex(client, prefix=f"bench:{users}:")
    try:
        await redis_index.clear()
        chunk: list[Standing] = []
        for entry in index._users.values():
            chunk.append(entry)
            if len(chunk) == 10_000:
                await redis_index.load(chunk)
                chunk = []
        await redis_index.load(chunk)
        return await reads_per_second(redis_index, users)
    finally:
        await redis_index.clear()
        await client.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--redis", help="also measure the Redis index at this URL")
    args = parser.parse_args()
    commit = subprocess.run(  # noqa: ASYNC221 (once, before measuring)
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(f"commit {commit}")
    header = "| users | rebuild (s) | bytes/user | rank reads/s | pages of 100/s |"
    if args.redis:
        header += " Redis rank reads/s | Redis pages of 100/s |"
    print(header)
    for users in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            database = Path(folder) / "board.db"
            migrate.upgrade(f"sqlite:///{database}")
            fill(database, users)
            seconds, index, _ = await rebuild(database)
            per_user = await memory_per_user(users)
            ranks, pages = await reads_per_second(index, users)
            row = f"| {users:,} | {seconds:.2f} | {per_user:.0f} | {ranks:,.0f} | {pages:,.0f} |"
            if args.redis:
                r_ranks, r_pages = await redis_reads(args.redis, index, users)
                row += f" {r_ranks:,.0f} | {r_pages:,.0f} |"
            print(row, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
