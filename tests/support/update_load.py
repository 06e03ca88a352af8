"""Updates posted steadily by a few workers while a fault test breaks something; every
answer's status and time is kept, and every update goes to the test's ledger."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

from tests.support.ledger import LedgerClient
from tests.support.timing import async_wait_until, scaled


class UpdateLoad:
    """Workers posting updates until stopped; every answer's status and time is kept."""

    def __init__(self, client: LedgerClient, workers: int = 6, users: int = 4) -> None:
        self.client = client
        self.workers = workers
        self.users = users
        self.statuses: Counter[int | None] = Counter()
        self.slowest = 0.0
        self.missing_retry_after = 0
        self.last_ok = 0.0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(w)) for w in range(self.workers)]

    async def _work(self, worker: int) -> None:
        for i in range(100_000):
            if self._stop.is_set():
                return
            started = time.monotonic()
            response = await self.client.post(
                f"u{(worker + i * self.workers) % self.users}",
                1 + (i * 7 + worker) % 50,
                f"w{worker}-{i}",
                server=worker,
            )
            self.slowest = max(self.slowest, time.monotonic() - started)
            status = None if response is None else response.status_code
            self.statuses[status] += 1
            if status == 200:
                self.last_ok = time.monotonic()
            else:
                if status == 503 and "retry-after" not in response.headers:  # type: ignore[union-attr]
                    self.missing_retry_after += 1
                # a client honouring Retry-After would wait a second; a tenth keeps it brisk
                # (and one that got no answer does not hammer a server that is gone)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.1)

    async def successes_after(self, moment: float, timeout: float) -> float:
        """Wait for an update acknowledged after ``moment``; seconds from ``moment``."""

        async def resumed() -> bool:
            return self.last_ok > moment

        await async_wait_until(resumed, timeout, "updates to succeed again")
        return self.last_ok - moment

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), scaled(30))
