"""SIGKILL under load, many times: the figures of docs/reliability.md (not run in CI).

    .venv/bin/python -m bench.kill_loop --mode embedded --kills 25 --acks 500
    .venv/bin/python -m bench.kill_loop --mode scaled --kills 25 --acks 500

The same loop as ``tests/faults/test_kill.py`` (``tests/support/kill_loop.py``), with bigger
counts. Scaled mode uses a private PostgreSQL (initdb in a temporary folder) and Redis, and two
server processes; each kill hits the next one in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.support.kill_loop import KillReport, kill_loop
from tests.support.ledger import read_postgres, read_sqlite
from tests.support.private_services import private_postgres, private_redis
from tests.support.server import ServerProcess


async def embedded(folder: Path, kills: int, acks: int) -> KillReport:
    server = ServerProcess(folder / "s").start()
    try:
        return await kill_loop(
            [server],
            lambda: read_sqlite(server.database),
            kills=kills,
            acks_per_kill=acks,
            sqlite=server.database,
        )
    finally:
        server.stop()


async def scaled(folder: Path, kills: int, acks: int) -> KillReport:
    with private_postgres() as pg, private_redis() as redis:
        url = pg.create_database(f"bench_{uuid.uuid4().hex[:8]}")
        env = {"SCOREBOARD_DATABASE_URL": url, "SCOREBOARD_REDIS_URL": redis.url}
        servers = [ServerProcess(folder / n, env).start() for n in ("a", "b")]
        try:
            return await kill_loop(
                servers, lambda: read_postgres(url), kills=kills, acks_per_kill=acks
            )
        finally:
            for server in servers:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("embedded", "scaled"), default="embedded")
    parser.add_argument("--kills", type=int, default=25)
    parser.add_argument("--acks", type=int, default=500, help="acknowledgements per kill")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="sb-kill-") as tmp:
        run = embedded if args.mode == "embedded" else scaled
        report = asyncio.run(run(Path(tmp), args.kills, args.acks))
    restarts = sorted(report.restart_seconds)
    print(f"commit {commit}, mode {args.mode}")
    print(report.summary())
    print(
        f"restart to first /healthz answer: median {restarts[len(restarts) // 2]:.2f} s,"
        f" max {restarts[-1]:.2f} s"
    )
    raise SystemExit(0 if report.verdict.clean and not report.retry_problems else 1)


if __name__ == "__main__":
    main()
