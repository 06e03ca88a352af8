"""Embedded mode on a full disk: updates answer 503 with ``Retry-After`` (never 500), reads keep
serving, nothing acknowledged is lost and no refused update is stored, and updates succeed again
as soon as there is room, without a restart.

The database lives on a small tmpfs of its own (``mount -t tmpfs -o size=...``, which needs root
or CAP_SYS_ADMIN); the test fills it with a file and then deletes that file.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.ledger import Ledger, LedgerClient, integrity_ok, read_sqlite
from tests.support.server import ServerProcess
from tests.support.services import unavailable
from tests.support.timing import async_wait_until, scaled
from tests.support.update_load import UpdateLoad

ANSWER_WITHIN = 2.0


@contextlib.contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the filesystem is full; returns the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as f:
        for _ in range(100_000):
            try:
                written += f.write(chunk) or 0
            except OSError:
                chunk = chunk[: len(chunk) // 2]
                if not chunk:
                    break
    return written


async def test_a_full_disk_answers_503_and_heals_without_restart(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", "3m") as disk:
        database = disk / "scoreboard.db"
        env = {"SCOREBOARD_DATABASE_URL": f"sqlite:///{database}"}
        server = ServerProcess(tmp_path / "s", env).start()
        ledger = Ledger()
        client = LedgerClient(ledger, [server.base_url])  # a SQLite 503 means nothing changed
        load = UpdateLoad(client, workers=6, users=100_000)
        http = httpx.AsyncClient(timeout=scaled(10))
        figures: dict[str, float] = {}
        try:
            load.start()
            await load.successes_after(time.monotonic(), 10)
            filler = disk / "filler"
            fill(filler)
            full_at = time.monotonic()

            async def refused() -> bool:
                return load.statuses[503] >= 20

            await async_wait_until(refused, 20, "updates refused on the full disk")
            figures["first_503s_after"] = time.monotonic() - full_at
            top = await http.get(server.base_url + "/api/scores/top10")
            assert top.status_code == 200
            filler.unlink()
            freed_at = time.monotonic()
            figures["healed_in"] = await load.successes_after(freed_at, 10)
        finally:
            await load.stop()
            log = server.log()
            server.stop()
            await http.aclose()
            await client.close()
        print(f"statuses {dict(load.statuses)}, slowest {load.slowest:.2f} s, {figures}")
        assert set(load.statuses) <= {200, 503}, (load.statuses, log[-3000:])
        assert load.missing_retry_after == 0
        assert load.slowest < scaled(ANSWER_WITHIN)
        assert integrity_ok(database)
        verdict = ledger.check(read_sqlite(database))
        assert verdict.clean, verdict
