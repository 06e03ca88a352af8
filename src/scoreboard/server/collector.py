"""The garbage-collector policy of a server that holds thousands of long-lived sockets.

CPython's full (generation 2) collection walks every tracked object. With 1,000 sockets the
heap holds about 290,000 of them, and each full collection paused the event loop for about
200 ms every 4-5 s: the p99 of board staleness (docs/benchmarks.md). Objects that have survived
a while (sockets, the index, the app) are moved to the permanent generation with
``gc.freeze()`` every ``interval`` seconds, so full collections only walk what is new.

The trade-off: a reference cycle among frozen objects is not collected until the next
``unfreeze``. Objects freed by reference counting (nearly all of a closed socket) are freed as
usual; to bound what cycles may hold, every ``thaw_every`` freezes the permanent generation is
thawed and collected once (one pause of the old kind, every few minutes instead of seconds).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)


async def keep_survivors_frozen(interval: float = 10.0, thaw_every: int = 30) -> None:
    gc.freeze()
    rounds = 0
    while True:
        await asyncio.sleep(interval)
        rounds += 1
        if rounds % thaw_every == 0:
            started = time.perf_counter()
            gc.unfreeze()
            found = gc.collect()
            log.info(
                "full garbage collection",
                extra={"objects": found, "ms": round((time.perf_counter() - started) * 1000)},
            )
        gc.freeze()
