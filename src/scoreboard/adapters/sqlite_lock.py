"""Who has an embedded database open: what ``scoreboard restore`` asks before it replaces it.

Two signals, because each alone has a gap:

- **The lock file** ``<database>.lock``, beside the database. Every process that opens the
  store (a server, ``scoreboard export``, ``boards``, ``admin-key``, ``backup``) holds a shared
  ``flock`` on it while open; ``restore`` takes it exclusively, without waiting, for its whole
  run. The kernel releases a ``flock`` when its holder exits, even on SIGKILL, so there is no
  stale lock to clean up after a crash; and a store that opens during a restore is refused at
  once instead of reading a file about to be replaced. POSIX only: elsewhere it is skipped.
- **SQLite's own locks.** A process holding the database open in WAL mode (one that does not
  take the lock file: an older release, the ``sqlite3`` shell) keeps a shared lock that an
  ``EXCLUSIVE`` locking-mode transaction cannot get past, so :func:`open_elsewhere` sees it
  through SQLite's public behaviour, without reading its lock bytes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import IO


class DatabaseInUse(Exception):
    """Another process has the database open (or a restore holds it)."""


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


class SharedHold:
    """A shared hold on the lock file, for as long as a store has the database open."""

    def __init__(self, database: Path) -> None:
        self._file: IO[bytes] | None = _locked(lock_path(database), exclusive=False)

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None


@contextlib.contextmanager
def exclusive(database: Path) -> Iterator[None]:
    """The lock file held exclusively for the block; ``DatabaseInUse`` at once (no waiting) if
    any process holds it."""
    held = _locked(lock_path(database), exclusive=True)
    try:
        yield
    finally:
        if held is not None:
            held.close()


def open_elsewhere(database: Path) -> bool:
    """Whether another connection (any process, this one included) has the database open and
    has read it, as every store does at once (it sets WAL mode). ``False`` for no file."""
    if not database.exists():
        return False
    conn = sqlite3.connect(uri(database), uri=True, isolation_level=None, timeout=0)
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        # Locked: someone has it. Anything else (a damaged file) SQLite cannot tell us; the
        # caller's next read of the file reports it.
        return "locked" in str(exc) or "busy" in str(exc)
    finally:
        conn.close()  # the last connection: SQLite checkpoints and removes the WAL
    return False


def uri(database: Path) -> str:
    """The ``file:`` URI opening an existing ``database`` for reading and writing (never
    creating it), whatever characters its path holds."""
    from urllib.parse import quote

    return f"file:{quote(str(database.absolute()))}?mode=rw"


def _locked(path: Path, *, exclusive: bool) -> IO[bytes] | None:
    try:
        import fcntl
    except ImportError:  # not POSIX: the SQLite check alone
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    file = open(path, "ab")  # noqa: SIM115 (kept open: the lock lives as long as the file)
    try:
        fcntl.flock(file.fileno(), (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        if exclusive:
            raise DatabaseInUse(
                f"{path.with_suffix('')} is open in another process (a server, or another "
                "scoreboard command)"
            ) from None
        raise DatabaseInUse(
            f"{path.with_suffix('')} is being restored (scoreboard restore)"
        ) from None
    except OSError:
        file.close()
        raise
    os.set_inheritable(file.fileno(), False)
    return file
