"""SIGTERM under load: requests in flight finish (no 5xx), every live socket is closed with
1001 (going away) so its page reconnects elsewhere, nothing acknowledged is lost, and the
process exits within 10 s."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import websockets

from tests.support.ledger import Ledger, LedgerClient, read_sqlite
from tests.support.server import ServerProcess
from tests.support.timing import async_wait_until, scaled
from tests.support.update_load import UpdateLoad

EXIT_WITHIN = 10.0
SOCKETS = 20


async def test_sigterm_finishes_requests_and_says_going_away_to_sockets(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "s").start()
    ledger = Ledger()
    client = LedgerClient(ledger, [server.base_url])
    load = UpdateLoad(client, workers=8, users=8)
    close_codes: list[int | None] = []

    async def watch() -> None:
        async with websockets.connect(server.ws_url) as ws:
            with_snapshot.append(await ws.recv())
            async for _ in ws:
                pass
            close_codes.append(ws.close_code)

    with_snapshot: list[object] = []
    sockets = [asyncio.create_task(watch()) for _ in range(SOCKETS)]
    try:
        await async_wait_until(
            lambda: _true(len(with_snapshot) == SOCKETS), 10, "every socket's SNAPSHOT"
        )
        load.start()
        await load.successes_after(time.monotonic(), 10)
        assert server.proc is not None
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(server.proc.wait, scaled(EXIT_WITHIN))
        except subprocess.TimeoutExpired:
            code = None
        exited_in = time.monotonic() - started
        await asyncio.wait_for(asyncio.gather(*sockets), scaled(5))
    finally:
        await load.stop()
        for task in sockets:
            task.cancel()
        log = server.log()
        server.kill()
        await client.close()
    print(f"exit {code} in {exited_in:.2f} s; statuses {dict(load.statuses)}; codes {close_codes}")
    assert code == -signal.SIGTERM, log[-3000:]
    assert exited_in < scaled(EXIT_WITHIN)
    assert load.statuses[200] > 0
    assert not [s for s in load.statuses if s is not None and s >= 500], load.statuses
    assert close_codes == [1001] * SOCKETS
    verdict = ledger.check(read_sqlite(server.database))
    assert verdict.clean, verdict


async def _true(value: bool) -> bool:
    return value
