"""Embedded mode on a full disk or a read-only database file: updates answer 503 with
``Retry-After`` (never 500), reads keep serving, nothing acknowledged is lost and no refused
update is stored, and updates succeed again as soon as the database can write, without a
restart.

Disk full: the database lives on a small tmpfs of its own (``mount -t tmpfs -o size=...``, which
needs root or CAP_SYS_ADMIN); the test fills it with a file and then deletes that file.
Read-only: the database files are made immutable (``chattr +i``) and writable again.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
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


async def refuses_then_heals(
    server: ServerProcess, database: Path, damage: Callable[[], None], repair: Callable[[], None]
) -> dict[str, float]:
    """Under a steady update load: ``damage()``, expect 503s (never 500) while reads keep
    working, ``repair()``, expect updates to succeed again; then check the ledger."""
    ledger = Ledger()
    client = LedgerClient(ledger, [server.base_url])  # a SQLite 503 means nothing changed
    load = UpdateLoad(client, workers=6, users=100_000)
    http = httpx.AsyncClient(timeout=scaled(10))
    figures: dict[str, float] = {}
    try:
        load.start()
        await load.successes_after(time.monotonic(), 10)
        damage()
        damaged_at = time.monotonic()

        async def refused() -> bool:
            return load.statuses[503] >= 20

        await async_wait_until(refused, 20, "updates refused while the database cannot write")
        figures["first_503s_after"] = time.monotonic() - damaged_at
        top = await http.get(server.base_url + "/api/scores/top10")
        assert top.status_code == 200
        repair()
        figures["healed_in"] = await load.successes_after(time.monotonic(), 10)
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
    return figures


async def test_a_full_disk_answers_503_and_heals_without_restart(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", "3m") as disk:
        database = disk / "scoreboard.db"
        env = {"SCOREBOARD_DATABASE_URL": f"sqlite:///{database}"}
        server = ServerProcess(tmp_path / "s", env).start()
        filler = disk / "filler"
        await refuses_then_heals(server, database, lambda: fill(filler), filler.unlink)


def chattr(flag: str, *paths: Path) -> None:
    existing = [str(p) for p in paths if p.exists()]  # a clean shutdown removes the WAL
    if existing:
        subprocess.run(["chattr", flag, *existing], check=True, capture_output=True)


def chattr_works(probe: Path) -> bool:
    probe.write_text("x")
    if shutil.which("chattr") is None:
        return False
    done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, check=False)
    chattr("-i", probe)
    return done.returncode == 0


async def test_a_read_only_database_file_answers_503_and_heals_without_restart(
    tmp_path: Path,
) -> None:
    """``chattr +i`` (immutable) on the database and its WAL: even root, and even through the
    descriptors SQLite already holds, can no longer write them (``chmod`` does not stop root)."""
    if not chattr_works(tmp_path / "probe"):
        unavailable("chattr +i is not available on this filesystem")
    server = ServerProcess(tmp_path / "s").start()
    files = [server.database, server.database.with_name("scoreboard.db-wal")]
    try:
        await refuses_then_heals(
            server, server.database, lambda: chattr("+i", *files), lambda: chattr("-i", *files)
        )
    finally:
        chattr("-i", *files)
