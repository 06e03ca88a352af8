"""A manual board's rollover under 1,000 open pages (issue 13): how long the rollover takes, and
how long until its ``PERIOD_STARTED`` reaches every socket.

The board ``season`` (``reset = "manual"``, the service's only board, so also its default) gets
``--users`` users (10^5) in its current season. They are written **through the store's own API**
(``SqliteScoreStore.apply``, the path ``POST /api/scores/update`` commits through, in concurrent
batches that the store's writer groups into transactions), not over HTTP: 10^5 HTTP updates
would take minutes and measure nothing this benchmark is about. That database is made once,
with an admin key (``scoreboard admin-key create``), and copied for every round.

Each round starts ``scoreboard serve`` on its copy (which rebuilds the season's 10^5 entries
into the in-memory index), opens ``--clients`` WebSocket clients on ``/ws/boards/season`` (the
raw-frame clients of ``staleness.py``, in this one asyncio process), waits until each holds the
board's snapshot, then rolls the season over:

- ``http``: ``POST /api/admin/boards/season/rollover`` with the admin key. The rollover's own
  time is that request's round trip (the store's rollover transaction, the index emptied, the
  new period recorded and announced, the audit row).
- ``cli``: ``scoreboard boards rollover season`` in a subprocess, on the database; the serving
  process takes the new season up on its next check (``keeper``, every second). Its time is the
  command's (a Python start-up included).

Before an ``http`` rollover, the same request for a board that does not exist (answered 404)
warms the admin path up, so the figure is not that of the process's first admin request
(``--cold`` leaves it out).

From the moment the request is sent (or the command started), the time until each socket
receives the frame with the new period's ``seq`` (checked to be a ``PERIOD_STARTED``): p50,
p99 and max over the sockets. Every loop is bounded; everything runs on 127.0.0.1 in
temporary folders under ``bench/results/``.

    .venv/bin/python bench/rollover.py                      # about 2 minutes
    .venv/bin/python bench/rollover.py --users 10000 --clients 200 --rounds 1 --cli-rounds 0
    .venv/bin/python bench/rollover.py --json bench/results/rollover.json
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

import machine
import run
import servers
import staleness

BOARD = "season"
BOARDS_TOML = f"""\
[metrics.points]
min_delta = 1
max_delta = 1000
velocity_limit = 1000000000000

[boards.{BOARD}]
title = "Season"
reset = "manual"
"""
perf = time.perf_counter


def environment(database: Path, boards: Path) -> dict[str, str]:
    return {
        "SCOREBOARD_DATABASE_URL": f"sqlite:///{database}",
        "SCOREBOARD_BOARDS": str(boards),
        "SCOREBOARD_DEFAULT_BOARD": BOARD,
        "SCOREBOARD_JWT_SECRET": servers.SECRET,
        "SCOREBOARD_LOG_LEVEL": "warning",
    }


async def seed(database: Path, boards: Path, users: int, batch: int) -> float:
    """``users`` users with one update each, in the board's current season, through the
    store's API; the seconds it took."""
    from scoreboard import applying, migrate
    from scoreboard.adapters.sqlite_store import SqliteScoreStore
    from scoreboard.boards import Metric, load_config
    from scoreboard.model import ScoreUpdate

    migrate.upgrade(f"sqlite:///{database}")
    store = SqliteScoreStore(database)
    await store.open()
    try:
        config = load_config(boards, points_defaults=Metric("points", 1, 1000, None))
        await applying.settle(store, config, may_change=True)
        rng = random.Random(13)
        started = perf()
        for first in range(0, users, batch):
            await asyncio.gather(
                *(
                    store.apply(ScoreUpdate(f"season-u{i:06d}", rng.randint(1, 1000)))
                    for i in range(first, min(users, first + batch))
                )
            )
        return perf() - started
    finally:
        await store.close()


def prepare(folder: Path, users: int, batch: int) -> tuple[Path, Path, str, float]:
    """The template database (seeded, with an admin key), the boards file, the key, and the
    seconds the seeding took."""
    boards = folder / "boards.toml"
    boards.write_text(BOARDS_TOML)
    database = folder / "template.db"
    seconds = uvloop.run(seed(database, boards, users, batch))
    env = {**os.environ, **environment(database, boards), "SCOREBOARD_DATA_DIR": str(folder)}
    key = subprocess.run(
        [str(servers.VENV_BIN / "scoreboard"), "admin-key", "create", "bench-rollover"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    with sqlite3.connect(database) as conn:  # one file to copy
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    count = (
        sqlite3.connect(database)
        .execute("SELECT COUNT(*) FROM standings WHERE board_id = ?", (BOARD,))
        .fetchone()[0]
    )
    if count != users:
        raise RuntimeError(f"seeded {count} standings, wanted {users}")
    return database, boards, key, seconds


async def http_rollover(port: int, key: str, board: str = BOARD) -> tuple[float, int, bytes]:
    """POST the rollover; (send time, status, body)."""
    reader, writer = await asyncio.open_connection(servers.HOST, port)
    body = orjson.dumps({"reason": "bench/rollover.py"})
    try:
        sent = perf()
        writer.write(
            b"POST /api/admin/boards/%s/rollover HTTP/1.1\r\nHost: %s:%d\r\n"
            b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s"
            % (board.encode(), servers.HOST.encode(), port, key.encode(), len(body), body)
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return sent, status, await reader.readexactly(length)
    finally:
        writer.close()


async def cli_rollover(env: dict[str, str]) -> tuple[float, int, bytes]:
    sent = perf()
    process = await asyncio.create_subprocess_exec(
        str(servers.VENV_BIN / "scoreboard"),
        "boards",
        "rollover",
        BOARD,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        out, _ = await process.communicate()
    return sent, process.returncode or 0, out


async def one_round(
    args: argparse.Namespace, server: servers.Server, key: str, env: dict[str, str], via: str
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    known: dict[int, bytes] = {}
    gate = asyncio.Semaphore(50)
    path = f"/ws/boards/{BOARD}"

    async def connect() -> staleness.Client:
        async with gate:
            _, client = await loop.create_connection(
                lambda: staleness.Client(servers.HOST, server.port, path, known),
                servers.HOST,
                server.port,
            )
            await client.open
            return client

    async with asyncio.timeout(120):
        clients = list(await asyncio.gather(*(connect() for _ in range(args.clients))))
    try:
        async with asyncio.timeout(60):  # every socket holds the snapshot
            while any(not c.seqs for c in clients):  # noqa: ASYNC110 (polling the clients)
                await asyncio.sleep(0.05)
        before = max(c.last_seq for c in clients)
        if via == "http" and args.warm:
            # The same route for a board that does not exist: the admin gate, the key lookup
            # and the route's validation run once, so the rollover is not the process's first
            # admin request. Nothing is rolled over (404).
            _, status, answer = await http_rollover(server.port, key, "no-such-board")
            if status != 404:
                raise RuntimeError(f"warm-up: expected 404, got {status} {answer[:200]!r}")
        await asyncio.sleep(0.5)
        quiet = await asyncio.to_thread(machine.wait_quiet, timeout=args.quiet_wait)
        meter = machine.CpuMeter(server.process.pid)
        if via == "http":
            sent, status, answer = await http_rollover(server.port, key)
        else:
            sent, status, answer = await cli_rollover(env)
        answered = perf()
        if status not in (200, 0):
            raise RuntimeError(f"rollover failed: {status} {answer[:300]!r}")
        delays: list[float] = []
        async with asyncio.timeout(60):
            while True:
                delays = []
                for c in clients:
                    i = bisect.bisect_right(c.seqs, before)
                    if i < len(c.seqs):
                        delays.append(c.times[i] - sent)
                if len(delays) == len(clients):
                    break
                await asyncio.sleep(0.01)
        cpu = meter.stop()
        started_seq = min(s for s in known if s > before)
        message = orjson.loads(known[started_seq])
        if message["type"] != "PERIOD_STARTED":
            raise RuntimeError(f"the frame after the rollover is a {message['type']}")
        delays.sort()
        first_ms = delays[0] * 1000
        return {
            "via": via,
            "clients": len(clients),
            "rollover_ms": (answered - sent) * 1000,
            "first_ms": first_ms,
            "p50_ms": staleness._quantile(delays, 0.5) * 1000,
            "p99_ms": staleness._quantile(delays, 0.99) * 1000,
            "max_ms": delays[-1] * 1000,
            "spread_ms": (delays[-1] - delays[0]) * 1000,
            "period": message["data"]["period"],
            "previous": message["data"]["previous"],
            "server_cpus": cpu["server_cpus"],
            "client_cpus": cpu["loadgen_cpus"],
            "others_cpus": cpu["others_cpus"],
            "others_before": quiet,
            "window_s": cpu["wall"],
        }
    finally:
        for c in clients:
            if c.transport is not None:
                c.transport.close()


def rounds(args: argparse.Namespace, folder: Path) -> tuple[float, list[dict[str, Any]]]:
    print(f"seeding {args.users:,} users through SqliteScoreStore.apply ...", flush=True)
    template, boards, key, seed_seconds = prepare(folder, args.users, args.batch)
    print(f"seeded in {seed_seconds:.1f} s", flush=True)
    plan = ["http"] * args.rounds + ["cli"] * args.cli_rounds
    results = []
    for number, via in enumerate(plan, 1):
        database = folder / f"round{number}.db"
        shutil.copy(template, database)
        env = environment(database, boards)
        started = perf()
        with servers.service(
            cpu=args.server_cpu, name=f"rollover{number}", ready_timeout=180, **env
        ) as server:
            ready = perf() - started
            full_env = {**os.environ, **env, "SCOREBOARD_DATA_DIR": str(folder)}
            result = uvloop.run(one_round(args, server, key, full_env, via))
        result["server_ready_s"] = ready
        results.append(result)
        print(
            f"round {number} ({via}): rollover {result['rollover_ms']:.1f} ms; PERIOD_STARTED "
            f"on {result['clients']} sockets: first {result['first_ms']:.1f} ms, p50 "
            f"{result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max "
            f"{result['max_ms']:.1f} ms; CPUs: server {result['server_cpus']:.2f}, clients "
            f"{result['client_cpus']:.2f}, others {result['others_cpus']:.2f} "
            f"(period {result['previous']} -> {result['period']}; server up in {ready:.1f} s)",
            flush=True,
        )
        os.unlink(database)
    return seed_seconds, results


def report(info: dict[str, str], args: argparse.Namespace, saved: dict[str, Any]) -> str:
    lines = [
        f"date {info['date']}, commit {info['commit']}",
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, "
        f"Linux {info['kernel']}, Python {info['python']}",
        f"{args.users:,} users on the closing season (seeded through the store in "
        f"{saved['seed_seconds']:.1f} s), {args.clients:,} sockets on /ws/boards/{BOARD}; "
        f"server on CPU {args.server_cpu}, clients on CPU {args.client_cpu}",
        "",
        "| round | rollover took | PERIOD_STARTED: first | p50 | p99 | max | "
        "CPUs: server, clients, others |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for number, r in enumerate(saved["rounds"], 1):
        lines.append(
            f"| {number} ({r['via']}) | {r['rollover_ms']:.1f} ms | {r['first_ms']:.1f} ms | "
            f"{r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['max_ms']:.1f} ms | "
            f"{r['server_cpus']:.2f}, {r['client_cpus']:.2f}, {r['others_cpus']:.2f} |"
        )
    lines.append(
        "\nTimes from sending the rollover (http) or starting the command (cli); the CPU "
        "figures cover that moment to the last socket's PERIOD_STARTED."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="rollovers over HTTP")
    parser.add_argument("--cli-rounds", type=int, default=1, help="rollovers with the CLI")
    parser.add_argument("--batch", type=int, default=2000, help="concurrent store writes")
    parser.add_argument(
        "--cold",
        dest="warm",
        action="store_false",
        help="no warm-up admin request (the rollover is the process's first admin request)",
    )
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--quiet-wait", type=float, default=20)
    parser.add_argument("--rev", default="HEAD", help="a commit, or 'worktree'")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--report", type=Path, help="only print the report of a --json file")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        print(report(saved["machine"], argparse.Namespace(**saved["settings"]), saved))
        return
    if (os.cpu_count() or 1) < 2:
        args.server_cpu = args.client_cpu = None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.clients * 2 + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    info = machine.info(servers.ROOT)
    started = time.monotonic()
    servers.RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-rollover-", dir=servers.RESULTS) as name:
        folder = Path(name)
        if args.rev != "worktree":
            info["commit"] = run.export_src(args.rev, folder)
            # This process imports the store too (the seeding): the same src/ as the servers.
            sys.path.insert(0, str(folder / "src"))
        if args.client_cpu is not None:
            os.sched_setaffinity(0, {args.client_cpu})
        print(f"commit {info['commit']}, {info['date']}", flush=True)
        seed_seconds, results = rounds(args, folder)
    saved = {
        "machine": info,
        "settings": vars(args) | {"json": None, "report": None},
        "seed_seconds": seed_seconds,
        "rounds": results,
    }
    print(f"\n{report(info, args, saved)}\n\n(total {time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(saved, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
