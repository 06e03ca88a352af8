"""One factor scales every timeout in the suite (``SCOREBOARD_TEST_TIMEOUT_FACTOR``), so a slow
machine makes tests slower, not flaky. Tests wait on events or poll a condition; never a bare
sleep standing in for an event."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

FACTOR = float(os.environ.get("SCOREBOARD_TEST_TIMEOUT_FACTOR", "1"))


def scaled(seconds: float) -> float:
    return seconds * FACTOR


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout):.1f}s waiting for {what}")
        time.sleep(0.02)


async def async_wait_until(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str
) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout):.1f}s waiting for {what}")
        await asyncio.sleep(0.02)
