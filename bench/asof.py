"""Reading the past (issue 16): the board at an instant ``T``, on SQLite and PostgreSQL,
recounted from the ledger (before) and replayed from a checkpoint (after, migration 0007).

A database of ``--users`` users and ``--events`` ``points`` events spread evenly over 30 days
is written in bulk (the shape the stores write) on the all-time board ``main``, in two steps,
as a keeper running all along would have left it: the events up to the hour ``H`` (three
quarters of the way through) with the standings they make, then a checkpoint taken by the
store's own ``take_checkpoints`` (the keeper's call: its time is printed), then the rest of the
events and the final standings. Then, in this process, through the stores' own adapters (no
HTTP), at ``T`` = ``H`` + 1 min and ``H`` + 59 min (a checkpoint an hour: the longest replay):

- ``top10_checkpoint``: the top 10 at ``T`` from the checkpoint (``--repeat`` times);
- ``user_near_top_checkpoint``: the rank at ``T`` of the 100th user, from the checkpoint;
- ``user_middle_backward`` (issue 16's rank anywhere on the board): the rank of the median user
  at ``T`` = now - 1 h and now - 1 day (now: the last event's time), read backward from the
  present standings (``repeat`` times), checked against a recount of the period up to ``T``;
- ``recount`` (the baseline, measured once in the same run, unless ``--no-recount``): the
  period recounted up to ``T``, which is what every read cost before, and what a read the
  checkpoint cannot answer still costs: ``user_middle_checkpoint``, the rank of the median user.

With the recount, every answer from the checkpoint is checked against it. Targets (issue 16, at 10^6
users and 10^7 events): top 10 at T <= 50 ms, a user's rank at T <= 500 ms.

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
from scoreboard.past import CHECKPOINT_SIZE, Past  # noqa: E402
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


def standings(ledger: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The all-time board's rows the events make: (user, score, rank_score, reached, at)."""
    found: dict[str, tuple[int, int, datetime]] = {}
    for i, user, _, delta, _, at, _ in ledger:
        old = found.get(user)
        found[user] = ((0 if old is None else old[0]) + delta, i, at)
    return [(u, s, -s, r, at) for u, (s, r, at) in found.items()]


async def prepare(store: Any) -> None:
    await store.open()
    await applying.apply(store, CONFIG)
    await store.load_config()
    await store.start_period("main", ALL_TIME)


CONFIG = BoardsConfig.default(-1000, 1000, None)


_STANDING = (
    "INSERT INTO standings (board_id, period_id, user_id, score, rank_score, reached, version,"
    " updated_at, hidden)"
)


def fill_sqlite(
    path: Path,
    people: list[tuple[Any, ...]],
    ledger: list[tuple[Any, ...]],
    rows: list[tuple[Any, ...]],
) -> None:
    """Add ``people`` and the ``ledger``'s events; the standings become ``rows``."""
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
        conn.execute("DELETE FROM standings")
        conn.executemany(
            _STANDING + " VALUES ('main', 'all', ?, ?, ?, ?, 1, ?, 0)",
            ((u, s, k, r, at.strftime(_TEXT)) for u, s, k, r, at in rows),
        )
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("ANALYZE")


def fill_postgres(
    url: str,
    people: list[tuple[Any, ...]],
    ledger: list[tuple[Any, ...]],
    rows: list[tuple[Any, ...]],
) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        if people:
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
        conn.execute("SELECT setval('scores_score_id_seq', %s)", (ledger[-1][0],))
        conn.execute("DELETE FROM standings")
        with conn.cursor().copy(
            "COPY standings (board_id, period_id, user_id, score, rank_score, reached, version,"
            " updated_at, hidden) FROM STDIN"
        ) as copy:
            for u, score, key, reached, at in rows:
                copy.write_row(("main", "all", u, score, key, reached, 1, at, 0))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


async def timed(repeat: int, fn: Callable[[], Awaitable[object]]) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


async def measure(store: Any, hour: datetime, repeat: int, recount_too: bool) -> dict[str, Any]:
    """At ``H`` + 1 min and + 59 min: the top 10 and a near-top user's rank from the checkpoint
    (``repeat`` times), and, with ``recount_too``, once recounted (the same answers, checked)
    and a user in the middle of the board (which the checkpoint cannot answer: a recount)."""
    board = CONFIG.boards["main"]
    recount = Past(store, backward=False)
    fast = Past(store, checkpoints=store, backward=False)
    meter = machine.CpuMeter()
    result: dict[str, Any] = {}
    for label, at in (
        ("1min", hour + timedelta(minutes=1)),
        ("59min", hour + timedelta(minutes=59)),
    ):
        found, top = await fast.top(board, at, 100)
        assert found.replayed, "the checkpoint answered"
        near = top[99].user_id
        figures: dict[str, Any] = {
            "top10_checkpoint": await timed(repeat, lambda at=at: fast.top(board, at, 10)),
            "user_near_top_checkpoint": await timed(
                repeat, lambda at=at, u=near: fast.user(board, at, u)
            ),
        }
        if recount_too:
            began = time.perf_counter()
            board_at = await recount.board_at(board, at)
            ranked = board_at.ranked(len(board_at.tallies))
            figures["recount"] = {"median_ms": (time.perf_counter() - began) * 1000}
            expected = [(u, board_at.tallies[u].score) for u in ranked[:100]]
            assert [(e.user_id, e.score) for e in top] == expected, "the recount's top"
            assert (await fast.user(board, at, near))[2] == ranked.index(near) + 1
            middle = ranked[len(ranked) // 2]
            figures["user_middle_checkpoint"] = await timed(
                1, lambda at=at, u=middle: fast.user(board, at, u)
            )
            base = figures["recount"]["median_ms"]
            figures["top10_checkpoint"]["vs_recount"] = (
                figures["top10_checkpoint"]["median_ms"] / base
            )
        result[label] = figures
    result["load"] = meter.stop()
    return result


async def measure_backward(store: Any, repeat: int, recount_too: bool) -> dict[str, Any]:
    """The rank of the median user (of the present standings) at ``T`` = now - 1 h and now -
    1 day, now being the last event's time, read backward from the present standings
    (``repeat`` times); with ``recount_too``, checked against the recount of the period up to
    ``T`` (timed once too)."""
    board = CONFIG.boards["main"]
    now = START + SPAN
    back = Past(store, clock=lambda: now)
    recount = Past(store, backward=False, clock=lambda: now)
    total = await store.count("main", ALL_TIME.id)
    (median,) = await store.page("main", ALL_TIME.id, total // 2, 1)
    meter = machine.CpuMeter()
    result: dict[str, Any] = {}
    for label, at in (("1h", now - timedelta(hours=1)), ("1day", now - timedelta(days=1))):
        found, _, rank = await back.user(board, at, median.user_id)
        assert found.backward, "read backward"
        figures: dict[str, Any] = {
            "user_middle_backward": await timed(
                repeat, lambda at=at: back.user(board, at, median.user_id)
            ),
            "rank": rank,
        }
        if recount_too:
            began = time.perf_counter()
            _, _, expected = await recount.user(board, at, median.user_id)
            figures["recount"] = {"median_ms": (time.perf_counter() - began) * 1000}
            assert rank == expected, (rank, expected)
        result[label] = figures
    result["load"] = meter.stop()
    return result


async def build(
    make: Callable[[], Any],
    fill: Callable[..., None],
    target: Any,
    users: int,
    events: int,
    size: int,
) -> tuple[Any, dict[str, float], datetime]:
    """Fill in two steps around a checkpoint taken at the hour ``H``: the store (open), the
    times, and ``H``."""
    people, ledger = rows(users, events)
    hour = (START + SPAN * 3 / 4).replace(minute=0, second=0, microsecond=0)
    cut = next(n for n, event in enumerate(ledger) if event[5] > hour)
    times = {}
    began = time.perf_counter()
    fill(target, people, ledger[:cut], standings(ledger[:cut]))
    times["fill_s"] = time.perf_counter() - began
    store = make()
    await store.open()
    await store.load_config()
    began = time.perf_counter()
    written = await store.take_checkpoints([(CONFIG.boards["main"], ALL_TIME)], size)
    times["checkpoint_ms"] = (time.perf_counter() - began) * 1000
    assert written == 1
    await store.close()
    began = time.perf_counter()
    fill(target, [], ledger[cut:], standings(ledger))
    times["fill_s"] += time.perf_counter() - began
    store = make()
    await store.open()
    await store.load_config()
    # The keeper's next turn, with nothing to write: it looks at the events since its last one
    # (a quarter of them here; an interval's in service) for any dated before the checkpoint.
    began = time.perf_counter()
    await store.take_checkpoints([], size)
    times["seal_ms"] = (time.perf_counter() - began) * 1000
    return store, times, hour


async def run_sqlite(
    users: int, events: int, repeat: int, recount_too: bool, size: int
) -> dict[str, Any]:
    from scoreboard.adapters.sqlite_store import SqliteScoreStore

    (ROOT / "bench" / "results").mkdir(exist_ok=True)  # git-ignored
    with tempfile.TemporaryDirectory(dir=ROOT / "bench" / "results") as folder:
        path = Path(folder) / "asof.db"
        upgrade(f"sqlite:///{path}")
        store = SqliteScoreStore(path)
        await prepare(store)
        await store.close()
        store, times, hour = await build(
            lambda: SqliteScoreStore(path), fill_sqlite, path, users, events, size
        )
        try:
            figures = await measure(store, hour, repeat, recount_too)
            return {
                **times,
                **figures,
                "backward": await measure_backward(store, repeat, recount_too),
            }
        finally:
            await store.close()


async def run_postgres(
    users: int, events: int, repeat: int, recount_too: bool, size: int
) -> dict[str, Any]:
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
        store, times, hour = await build(
            lambda: PostgresScoreStore(url), fill_postgres, url, users, events, size
        )
        try:
            figures = await measure(store, hour, repeat, recount_too)
            return {
                **times,
                **figures,
                "backward": await measure_backward(store, repeat, recount_too),
            }
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
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=CHECKPOINT_SIZE, help="rows per checkpoint")
    parser.add_argument(
        "--no-recount", action="store_true", help="only the checkpoint's reads (large sizes)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": machine.info(ROOT),
        "quiet_before": machine.wait_quiet(timeout=20.0),
        "users": args.users,
        "events": args.events,
        "rows": args.rows,
    }
    runs = {"sqlite": run_sqlite, "postgres": run_postgres}
    for kind in args.stores.split(","):
        report[kind] = asyncio.run(
            runs[kind](args.users, args.events, args.repeat, not args.no_recount, args.rows)
        )
        figures = report[kind]
        for label in ("1min", "59min"):
            f = figures[label]
            line = (
                f"{kind} at H+{label}: {args.users} users, {args.events} events (filled in"
                f" {figures['fill_s']:.0f} s, checkpoint taken in {figures['checkpoint_ms']:.0f}"
                f" ms): top10 from the checkpoint {f['top10_checkpoint']['median_ms']:.1f} ms,"
                f" rank of the 100th {f['user_near_top_checkpoint']['median_ms']:.1f} ms"
            )
            if "recount" in f:
                line += (
                    f"; recount {f['recount']['median_ms']:.0f} ms, rank of the median user"
                    f" (a recount) {f['user_middle_checkpoint']['median_ms']:.0f} ms"
                )
            print(f"{line}; others used {figures['load']['others_cpus']:.2f} CPUs", flush=True)
        for label in ("1h", "1day"):
            f = figures["backward"][label]
            line = (
                f"{kind} at now-{label}: rank of the median user read backward"
                f" {f['user_middle_backward']['median_ms']:.1f} ms (rank {f['rank']})"
            )
            if "recount" in f:
                line += f"; recount {f['recount']['median_ms']:.0f} ms"
            others = figures["backward"]["load"]["others_cpus"]
            print(f"{line}; others used {others:.2f} CPUs", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report["machine"]))


if __name__ == "__main__":
    main()
