"""SIGKILL mid-load: every acknowledged update survives, none is applied twice, a retry gets
the stored result, the SQLite file stays intact, the service answers again after each restart.

CI runs a few kills per mode (the whole tier must stay within minutes); ``bench/kill_loop.py``
runs the same loop with the counts ``docs/reliability.md`` reports, and its restart times
(median about 1 s, "within 5 s") are the figures: here the suite's other workers share the 2
CPUs, and a restart has been seen to take 6.8 s, so this only bounds it against a hang.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.kill_loop import kill_loop
from tests.support.ledger import read_postgres, read_sqlite
from tests.support.private_services import PrivateRedis
from tests.support.server import ServerProcess
from tests.support.timing import scaled

KILLS = int(os.environ.get("SCOREBOARD_FAULT_KILLS", "4"))
ACKS_PER_KILL = int(os.environ.get("SCOREBOARD_FAULT_ACKS_PER_KILL", "300"))
RESTART_HANG = 20
"""Seconds after which a restart counts as hung (the speed figure is bench/kill_loop.py's)."""


async def test_embedded_sigkill_loses_and_doubles_nothing(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "s").start()
    try:
        report = await kill_loop(
            [server],
            lambda: read_sqlite(server.database),
            kills=KILLS,
            acks_per_kill=ACKS_PER_KILL,
            sqlite=server.database,
        )
    finally:
        server.stop()
    print(report.summary())
    assert report.kills == KILLS
    assert report.verdict.acknowledged >= KILLS * ACKS_PER_KILL
    assert report.verdict.clean, report.verdict
    assert report.integrity_failures == 0
    assert report.retry_problems == []
    assert max(report.restart_seconds) < scaled(RESTART_HANG), report.restart_seconds


@pytest.mark.postgres
@pytest.mark.redis
async def test_scaled_sigkill_of_either_process_loses_and_doubles_nothing(
    tmp_path: Path, database_url: str, redis_server: PrivateRedis
) -> None:
    env = {"SCOREBOARD_DATABASE_URL": database_url, "SCOREBOARD_REDIS_URL": redis_server.url}
    servers = [ServerProcess(tmp_path / "a", env), ServerProcess(tmp_path / "b", env)]
    for server in servers:
        server.start()
    try:
        report = await kill_loop(
            servers,
            lambda: read_postgres(database_url),
            kills=KILLS,
            acks_per_kill=ACKS_PER_KILL,
        )
    finally:
        for server in servers:
            server.stop()
    print(report.summary())
    assert report.kills == KILLS
    assert report.verdict.acknowledged >= KILLS * ACKS_PER_KILL
    assert report.verdict.clean, report.verdict
    assert report.retry_problems == []
    assert max(report.restart_seconds) < scaled(RESTART_HANG), report.restart_seconds
