"""SIGKILL under load, again and again, and count: the driver of ``tests/faults/test_kill.py``
and ``bench/kill_loop.py``.

One round: workers post updates (several per user, concurrently, each with its own
``action_id``) to every server; once the round has ``acks_per_kill`` acknowledgements one server
gets SIGKILL; every worker stops at its first unanswered request; the server is started again
(timed: the service must answer within 5 s); for SQLite ``PRAGMA integrity_check`` runs; then
every unanswered update is retried with its ``action_id`` and must get the stored result
(:func:`settle_unknowns`). After the last round the ledger is checked against the store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ledger import (
    Ledger,
    LedgerClient,
    StoreContents,
    Verdict,
    integrity_ok,
    settle_unknowns,
)
from tests.support.server import ServerProcess
from tests.support.timing import scaled


@dataclass
class KillReport:
    kills: int = 0
    verdict: Verdict = field(default_factory=Verdict)
    unanswered: int = 0
    """Requests in flight at a kill (then settled by retrying them)."""
    committed_unanswered: int = 0
    """Of those, how many the store had committed (the retry then added nothing)."""
    restart_seconds: list[float] = field(default_factory=list)
    integrity_failures: int = 0
    retry_problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        v = self.verdict
        worst = max(self.restart_seconds, default=0.0)
        return (
            f"{self.kills} kills, {v.acknowledged} acknowledged updates checked, {v.lost} lost,"
            f" {v.duplicates} duplicated, {v.phantoms} phantoms, {self.unanswered} unanswered at"
            f" a kill ({self.committed_unanswered} of them had been committed), slowest restart"
            f" {worst:.2f} s, integrity failures {self.integrity_failures},"
            f" retry problems {len(self.retry_problems)}"
        )


async def kill_loop(
    servers: list[ServerProcess],
    read_store: Callable[[], StoreContents],
    *,
    kills: int,
    acks_per_kill: int,
    workers: int = 16,
    users: int = 8,
    sqlite: Path | None = None,
) -> KillReport:
    ledger = Ledger()
    client = LedgerClient(ledger, [s.base_url for s in servers], timeout=scaled(10))
    report = KillReport()
    try:
        for round_ in range(kills):
            await _one_round(client, servers, round_, acks_per_kill, workers, users, report)
            if sqlite is not None and not integrity_ok(sqlite):
                report.integrity_failures += 1
            report.unanswered += len(ledger.unknown())
            problems, committed = await settle_unknowns(client, read_store())
            report.retry_problems += problems
            report.committed_unanswered += committed
    finally:
        await client.close()
    # Every unanswered update was settled by its retry, so the check is exact.
    report.verdict = ledger.check(read_store())
    return report


async def _one_round(
    client: LedgerClient,
    servers: list[ServerProcess],
    round_: int,
    acks_per_kill: int,
    workers: int,
    users: int,
    report: KillReport,
) -> None:
    acked = 0
    enough = asyncio.Event()
    stop = False

    async def work(worker: int) -> None:
        nonlocal acked
        user = f"u{worker % users}"
        for i in range(1_000_000):
            if stop:
                return
            response = await client.post(
                user, 1 + (worker + i) % 7, f"r{round_}-w{worker}-{i}", server=worker
            )
            if response is None:
                return  # its server is gone
            if response.status_code == 200:
                acked += 1
                if acked >= acks_per_kill:
                    enough.set()

    tasks = [asyncio.create_task(work(w)) for w in range(workers)]
    try:
        await asyncio.wait_for(enough.wait(), scaled(60))
        victim = servers[round_ % len(servers)]
        victim.kill()
        report.kills += 1
        # Survivors (other servers) go on for a moment; then everyone stops.
        stop = True
        await asyncio.wait_for(asyncio.gather(*tasks), scaled(30))
    finally:
        stop = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    started = time.monotonic()
    await asyncio.to_thread(victim.start)
    report.restart_seconds.append(time.monotonic() - started)
