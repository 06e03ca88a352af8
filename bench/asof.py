"""Reading the past (issue 16): the board at an instant ``T``, on SQLite and PostgreSQL.

A database of ``--users`` users and ``--events`` ``points`` events spread evenly over 30 days
is written in bulk (the shape the stores write; the standings are not needed: the past is
recomputed from the events), on the all-time board ``main``. Then, ``--repeat`` times each, in
this process, through the stores' own adapters (no HTTP):

- ``top10``: the top 10 at ``T`` (three quarters of the way through the events);
- ``user``: one user's rank at ``T``;
- ``walk`` (the baseline, measured in the same run): the ledger walk up to ``T`` alone, with
  nothing counted; the ratios say how much of a read is the walk.

Targets (issue 16, at 10^6 users and 10^7 events): top 10 at T <= 50 ms, a user's rank at
T <= 500 ms.

    .venv/bin/python bench/asof.py [--users 100000] [--events 1000000] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import machine  # noqa: E402
from scoreboard import applying  # noqa: E402
from scoreboard.boards import BoardsConfig  # noqa: E402
from scoreboard.migrate import upgrade  # noqa: E402
from scoreboard.past import Past  # noqa: E402
from scoreboard.periods import ALL_TIME  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
START = datetime(2026, 10, 1, tzinfo=UTC)
SPAN = timedelta(days=30)
_TEXT = "%Y-%m-%d %H:%M:%S.%f"


def rows(users: int, events: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Users, and events: event ``i`` by user ``(i * 7919) % users`` at an even step."""
    step = SPAN / events
    people = [(f"u{i:07d}", f"Player {i}", START, START) for i in range(users)]
    totals = [0] * users
    ledger = []
    for i in range(events):
        user = (i * 7919) % users
        delta = 1 + (i * 104729) % 100 - (20 if i % 9 == 0 else 0)
        totals[user] += delta
        ledger.append(
            (i + 1, f"u{user:07d}", "points", delta, f"a{i}", START + step * i, totals[user])
        )
    return people, ledger


async def prepare(store: Any) -> None:
    await store.open()
    await applying.apply(store, CONFIG)
    await store.load_config()
    await store.start_period("main", ALL_TIME)


CONFIG = BoardsConfig.default(-1000, 1000, None)


def fill_sqlite(path: Path, users: int, events: int) -> None:
    people, ledger = rows(users, events)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("PRAGMA synchronous = OFF")
        conn.executemany(
            "INSERT INTO users (user_id, username, created_at, updated_at) VALUES (?, ?, ?, ?)",
            ((u, n, a.strftime(_TEXT), b.strftime(_TEXT)) for u, n, a, b in people),
        )
        conn.executemany(
            "INSERT INTO scores (score_id, user_id, metric, score_delta, action_id, created_at,"
            " score_after) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((i, u, m, d, a, t.strftime(_TEXT), s) for i, u, m, d, a, t, s in ledger),
        )
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("ANALYZE")


def fill_postgres(url: str, users: int, events: int) -> None:
    import psycopg

    people, ledger = rows(users, events)
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(
            "COPY users (user_id, username, created_at, updated_at) FROM STDIN"
        ) as copy:
            for row in people:
                copy.write_row(row)
        with conn.cursor().copy(
            "COPY scores (score_id, user_id, metric, score_delta, action_id, created_at,"
            " score_after) FROM STDIN"
        ) as copy:
            for row in ledger:
                copy.write_row(row)
        conn.execute("SELECT setval('scores_score_id_seq', %s)", (len(ledger),))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


async def timed(repeat: int, fn: Callable[[], Awaitable[object]]) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


async def measure(store: Any, users: int, events: int, repeat: int) -> dict[str, Any]:
    board = CONFIG.boards["main"]
    at = START + SPAN * 3 / 4
    past = Past(store)

    async def walk() -> int:
        count = 0
        async for chunk in store.ledger("points", None, at):
            count += len(chunk)
        return count

    user = f"u{users // 2:07d}"
    meter = machine.CpuMeter()
    result = {
        "walk": await timed(repeat, walk),
        "top10": await timed(repeat, lambda: past.top(board, at, 10)),
        "user": await timed(repeat, lambda: past.user(board, at, user)),
    }
    result["load"] = meter.stop()
    base = result["walk"]["median_ms"]
    for name in ("top10", "user"):
        result[name]["vs_walk"] = result[name]["median_ms"] / base
    return result


async def run_sqlite(users: int, events: int, repeat: int) -> dict[str, Any]:
    from scoreboard.adapters.sqlite_store import SqliteScoreStore

    (ROOT / "bench" / "results").mkdir(exist_ok=True)  # git-ignored
    with tempfile.TemporaryDirectory(dir=ROOT / "bench" / "results") as folder:
        path = Path(folder) / "asof.db"
        upgrade(f"sqlite:///{path}")
        store = SqliteScoreStore(path)
        await prepare(store)
        await store.close()
        began = time.perf_counter()
        fill_sqlite(path, users, events)
        filled = time.perf_counter() - began
        store = SqliteScoreStore(path)
        await store.open()
        await store.load_config()
        try:
            return {"fill_s": filled, **await measure(store, users, events, repeat)}
        finally:
            await store.close()


async def run_postgres(users: int, events: int, repeat: int) -> dict[str, Any]:
    import psycopg

    from scoreboard.adapters.postgres_store import PostgresScoreStore

    name = f"scoreboard_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{POSTGRES}/{name}"
    try:
        upgrade(url)
        store = PostgresScoreStore(url)
        await prepare(store)
        await store.close()
        began = time.perf_counter()
        fill_postgres(url, users, events)
        filled = time.perf_counter() - began
        store = PostgresScoreStore(url)
        await store.open()
        await store.load_config()
        try:
            return {"fill_s": filled, **await measure(store, users, events, repeat)}
        finally:
            await store.close()
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": machine.info(ROOT),
        "quiet_before": machine.wait_quiet(timeout=20.0),
        "users": args.users,
        "events": args.events,
    }
    runs = {"sqlite": run_sqlite, "postgres": run_postgres}
    for kind in args.stores.split(","):
        report[kind] = asyncio.run(runs[kind](args.users, args.events, args.repeat))
        figures = report[kind]
        print(
            f"{kind}: {args.users} users, {args.events} events (filled in {figures['fill_s']:.0f}"
            f" s): walk {figures['walk']['median_ms']:.0f} ms, top10 at T "
            f"{figures['top10']['median_ms']:.0f} ms ({figures['top10']['vs_walk']:.2f}x walk),"
            f" user at T {figures['user']['median_ms']:.0f} ms "
            f"({figures['user']['vs_walk']:.2f}x walk); others used "
            f"{figures['load']['others_cpus']:.2f} CPUs",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report["machine"]))


if __name__ == "__main__":
    main()
