"""``scoreboard.backup`` on real SQLite files: a backup restores to the same rows and secrets;
a restore re-applies the erasures the backup predates (and only those); a bad file, a newer
schema, or a database open in another process changes nothing. (Under a real server's load, and
the commands as processes: tests/e2e/test_backup.py.)"""

from __future__ import annotations

import hashlib
import io
import json
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scoreboard import applying, backup, migrate
from scoreboard.adapters import sqlite_lock
from scoreboard.adapters.sqlite_store import SqliteScoreStore
from scoreboard.auth.secret import ERASURE_KEY_FILE, SECRET_FILE
from scoreboard.boards import BoardsConfig
from scoreboard.errors import Unavailable
from scoreboard.model import Audit, ScoreUpdate
from scoreboard.moderation import erased_id
from tests.support import migrations
from tests.support.timing import scaled

KEY = b"erasure-key-0123456789-abcdefghijklmnopqrstuvwxyz"
OTHER_KEY = b"another-erasure-key-0123456789-abcdefghijklmnopqrs"
TABLES = ("users", "scores", "totals", "standings", "periods", "board_config", "audit")


@dataclass
class Folder:
    """A data folder as ``serve`` leaves it: the database and the generated secrets."""

    data: Path

    @property
    def database(self) -> Path:
        return self.data / "scoreboard.db"

    def store(self) -> SqliteScoreStore:
        return SqliteScoreStore(self.database)

    def write_secrets(self, erasure_key: bytes = KEY) -> None:
        for name, value in ((SECRET_FILE, b"s" * 48), (ERASURE_KEY_FILE, erasure_key)):
            path = self.data / name
            path.write_bytes(value + b"\n")
            path.chmod(0o600)

    def rows(self, table: str) -> list[tuple[object, ...]]:
        with closing(sqlite3.connect(self.database)) as conn:
            return sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)  # noqa: S608

    def snapshot(self) -> dict[str, object]:
        """The database's rows and every other file by content (what "nothing changed"
        compares; the database by its rows, as a process holding it open keeps a WAL)."""
        files: dict[str, object] = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.data.iterdir())
            if p.is_file() and not p.name.startswith(self.database.name)
        }
        return files | {table: self.rows(table) for table in TABLES}


async def filled(folder: Folder, updates: list[tuple[str, int]]) -> None:
    folder.data.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(f"sqlite:///{folder.database}")
    store = folder.store()
    await store.open()
    try:
        await applying.apply(store, BoardsConfig.default(-1000, 1000, None))
        await store.load_config()
        for user, delta in updates:
            await store.apply(ScoreUpdate(user, delta))
    finally:
        await store.close()


async def erase(folder: Folder, user: str, key: bytes = KEY) -> str:
    store = folder.store()
    await store.open()
    try:
        await store.load_config()
        hashed = erased_id(key, user)
        await store.erase(user, hashed, Audit("ops", "erase", hashed, "asked to", {}))
        return hashed
    finally:
        await store.close()


async def ban(folder: Folder, user: str) -> None:
    """An audit row naming ``user`` (so the test sees it become a hash on erasure)."""
    store = folder.store()
    await store.open()
    try:
        config, _ = await store.load_config()
        assert config is not None
        audit = Audit("ops", "ban", user, "spam", {"user_id": user})
        await store.set_status(user, "banned", config, audit)
    finally:
        await store.close()


@pytest.fixture
async def live(tmp_path: Path) -> Folder:
    """A folder with alice, bob and carol, and its secrets."""
    folder = Folder(tmp_path / "live")
    await filled(folder, [("alice", 5), ("bob", 7), ("carol", 3), ("alice", 2)])
    folder.write_secrets()
    return folder


def test_a_restore_elsewhere_holds_the_same_rows_and_secrets(live: Folder, tmp_path: Path) -> None:
    file = tmp_path / "b.tar"
    made = backup.backup(live.database, live.data, file)
    assert file.stat().st_mode & 0o777 == 0o600  # it holds the secrets
    with tarfile.open(file) as tar:
        assert tar.getnames() == ["manifest.json", "scoreboard.db", SECRET_FILE, ERASURE_KEY_FILE]
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["format"] == "scoreboard-backup"
    assert manifest["format_version"] == 1
    assert manifest["schema_revision"] == migrate.head() == made.schema_revision
    assert {f["name"] for f in manifest["files"]} == {
        "scoreboard.db",
        SECRET_FILE,
        ERASURE_KEY_FILE,
    }

    elsewhere = Folder(tmp_path / "elsewhere")
    done = backup.restore(elsewhere.database, elsewhere.data, file)
    assert (done.erasures_reapplied, done.erasures_carried) == (0, 0)
    for table in TABLES[:-1]:
        assert elsewhere.rows(table) == live.rows(table), table
    assert [row[3] for row in elsewhere.rows("audit")] == ["restore"]  # the restore, recorded
    for name in (SECRET_FILE, ERASURE_KEY_FILE):
        assert (elsewhere.data / name).read_bytes() == (live.data / name).read_bytes()
        assert (elsewhere.data / name).stat().st_mode & 0o777 == 0o600
    with closing(sqlite3.connect(elsewhere.database)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_a_user_erased_after_the_backup_does_not_come_back(
    live: Folder, tmp_path: Path
) -> None:
    await ban(live, "alice")  # before the backup: the backup's audit names alice
    file = tmp_path / "b.tar"
    backup.backup(live.database, live.data, file)
    hashed = await erase(live, "alice")
    await filled(live, [("dave", 4)])  # after the backup, then erased too: nothing to delete
    await erase(live, "dave")

    done = backup.restore(live.database, live.data, file)
    assert (done.erasures_reapplied, done.erasures_carried) == (1, 2)
    for table in ("users", "scores", "totals", "standings"):
        assert not [row for row in live.rows(table) if "alice" in row], table
    assert {row[0] for row in live.rows("users")} == {"bob", "carol"}
    audit = live.rows("audit")
    assert not [row for row in audit if "alice" in repr(row)]
    ban_row = next(row for row in audit if row[3] == "ban")
    assert ban_row[4] == hashed  # the row that named alice now carries the same hash
    assert json.loads(str(ban_row[6])) == {"user_id": hashed}
    erased = sorted(str(row[4]) for row in audit if row[3] == "erase")
    assert erased == sorted([hashed, erased_id(KEY, "dave")])  # both carried over
    assert (live.data / ERASURE_KEY_FILE).read_bytes().strip() == KEY

    # Carried over, the erasures still hold when the same backup is restored once more.
    again = backup.restore(live.database, live.data, file)
    assert (again.erasures_reapplied, again.erasures_carried) == (1, 2)
    assert {row[0] for row in live.rows("users")} == {"bob", "carol"}


async def test_an_erasure_the_backup_holds_is_not_applied_to_the_same_id_come_back(
    live: Folder, tmp_path: Path
) -> None:
    await erase(live, "alice")
    await filled(live, [("alice", 1)])  # the same id later: a new user, in the backup
    file = tmp_path / "b.tar"
    backup.backup(live.database, live.data, file)
    done = backup.restore(live.database, live.data, file)
    assert (done.erasures_reapplied, done.erasures_carried) == (0, 0)
    assert ("alice", "points", 1) in [row[:3] for row in live.rows("totals")]


async def test_erasures_hashed_with_the_folders_key_match_a_backup_with_another(
    live: Folder, tmp_path: Path
) -> None:
    """The folder's key is kept (it hashed the erasures carried over), and both keys are
    tried: a backup from a folder whose key was replaced since still loses the erased user."""
    file = tmp_path / "b.tar"
    backup.backup(live.database, live.data, file)  # with KEY
    live.write_secrets(erasure_key=OTHER_KEY)
    await erase(live, "bob", key=OTHER_KEY)
    done = backup.restore(live.database, live.data, file)
    assert done.erasures_reapplied == 1
    assert {row[0] for row in live.rows("users")} == {"alice", "carol"}
    assert (live.data / ERASURE_KEY_FILE).read_bytes().strip() == OTHER_KEY


async def test_the_erasure_key_setting_hashes_like_the_server_did(
    live: Folder, tmp_path: Path
) -> None:
    file = tmp_path / "b.tar"
    backup.backup(live.database, live.data, file)
    await erase(live, "carol", key=OTHER_KEY)  # SCOREBOARD_ERASURE_KEY=OTHER_KEY on the server
    done = backup.restore(live.database, live.data, file, erasure_key=OTHER_KEY)
    assert done.erasures_reapplied == 1
    assert "carol" not in {row[0] for row in live.rows("users")}


WRITER = """
import sqlite3, sys, time
database, stop = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(database, isolation_level=None)
conn.execute("PRAGMA busy_timeout = 5000")
slowest, deadline = -1.0, time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    started = time.monotonic()
    conn.execute("INSERT INTO filler (pad) VALUES (randomblob(100))")
    if slowest < 0:
        print("committed", flush=True)
    slowest = max(slowest, time.monotonic() - started)
    try:
        open(stop).close()
        break
    except FileNotFoundError:
        pass
print(slowest, flush=True)
"""


def test_the_copy_is_the_database_as_it_began_while_another_process_keeps_committing(
    live: Folder, tmp_path: Path
) -> None:
    """Small steps, and another process committing all along: the copy ends while the writer
    still writes (a stepped copy without one read transaction restarts at every foreign commit
    and ends only when the writes stop), it holds exactly one instant, and the writer was never
    held up for long."""
    with closing(sqlite3.connect(live.database, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE filler (n INTEGER PRIMARY KEY, pad BLOB)")
        conn.execute(
            "INSERT INTO filler (pad) SELECT randomblob(2000) FROM (WITH RECURSIVE r(i) AS"
            " (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 5000) SELECT i FROM r)"
        )
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(live.database), str(stop), str(scaled(120))],
        stdout=subprocess.PIPE,
        text=True,
    )
    at_start: list[int] = []

    def clock() -> datetime:
        at_start.append(_filler(live.database)[1])
        return datetime.now(UTC)

    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "committed"
        started = time.monotonic()
        backup.backup(live.database, live.data, tmp_path / "b.tar", step_pages=8, clock=clock)
        assert writer.poll() is None  # the copy ended while the writes went on
        assert time.monotonic() - started < scaled(30)  # (it takes well under a second)
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=scaled(30))
    restored = Folder(tmp_path / "restored")
    backup.restore(restored.database, restored.data, tmp_path / "b.tar")
    count, last = _filler(restored.database)
    assert count == last  # no gap: one instant
    assert at_start[0] <= count < _filler(live.database)[1]  # and not what came after
    assert float(out.split()[-1]) < scaled(1.0)  # the writer's slowest commit


def _filler(database: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(database)) as conn:
        count, last = conn.execute("SELECT COUNT(*), MAX(n) FROM filler").fetchone()
    return count, last


# -- refusals: nothing changed ----------------------------------------------------------------


async def test_restore_is_refused_while_a_store_has_the_database_open(
    live: Folder, tmp_path: Path
) -> None:
    file = tmp_path / "b.tar"
    backup.backup(live.database, live.data, file)
    before = live.snapshot()
    store = live.store()
    await store.open()
    try:
        with pytest.raises(backup.BackupError, match=r"open in another process.*nothing was"):
            backup.restore(live.database, live.data, file)
    finally:
        await store.close()
    assert live.snapshot() == before
    backup.restore(live.database, live.data, file)  # closed: allowed


def test_restore_is_refused_while_a_process_without_the_lock_file_has_it_open(
    live: Folder, tmp_path: Path
) -> None:
    """An older release's server, or the sqlite3 shell: SQLite's own lock tells. Killed, its
    lock goes with it."""
    file = tmp_path / "b.tar"
    backup.backup(live.database, live.data, file)
    before = live.snapshot()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(live.database)!r}, isolation_level=None)\n"
            "c.execute('PRAGMA journal_mode = WAL'); print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(backup.BackupError, match="open in another process"):
            backup.restore(live.database, live.data, file)
        assert live.snapshot() == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=scaled(10))
        assert holder.stdout is not None
        holder.stdout.close()
    backup.restore(live.database, live.data, file)


async def test_a_store_cannot_open_while_a_restore_holds_the_database(live: Folder) -> None:
    with sqlite_lock.exclusive(live.database):
        store = live.store()
        with pytest.raises(Unavailable, match="being restored"):
            await store.open()
        await store.close()
        with pytest.raises(backup.BackupError, match="being restored"):
            backup.backup(live.database, live.data, live.data.parent / "b.tar")


def _repack(file: Path, out: Path, change: dict[str, bytes | None]) -> Path:
    """``file`` with members replaced (or, ``None``, left out), as written by hand."""
    with tarfile.open(file) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
    members.update(change)  # type: ignore[arg-type]
    with tarfile.open(out, "w") as tar:
        for name, data in members.items():
            if data is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def _manifest_with(file: Path, **fields: object) -> bytes:
    with tarfile.open(file) as tar:
        document = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    document.update(fields)
    return json.dumps(document).encode()


def _database_at(file: Path, tmp_path: Path, revision: str) -> bytes:
    """The backup's database with its schema revision set to ``revision``."""
    with tarfile.open(file) as tar:
        data = tar.extractfile("scoreboard.db").read()  # type: ignore[union-attr]
    path = tmp_path / "newer.db"
    path.write_bytes(data)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    return path.read_bytes()


BAD_FILES = {
    "not a tar": "not a Scoreboard backup \\(not a tar archive\\)",
    "truncated": "damaged",
    "a byte flipped in the database": "scoreboard.db does not match its checksum",
    "no manifest": "has no manifest.json",
    "a member too many": "holds 'extra'",
    "a newer format": "newer Scoreboard \\(backup format 2",
    "a newer schema": "newer Scoreboard \\(schema 9999; this one knows up to",
    "a damaged database with a matching checksum": "its database",
}


@pytest.mark.parametrize("case", BAD_FILES)
async def test_a_bad_file_is_refused_and_nothing_changes(
    live: Folder, tmp_path: Path, case: str
) -> None:
    good = tmp_path / "good.tar"
    backup.backup(live.database, live.data, good)
    raw = good.read_bytes()
    bad = tmp_path / "bad.tar"
    if case == "not a tar":
        bad.write_bytes(b"hello, I am not a backup\n" * 100)
    elif case == "truncated":
        bad.write_bytes(raw[: len(raw) // 2])
    elif case == "a byte flipped in the database":
        at = raw.index(b"SQLite format 3") + 5000
        bad.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :])
    elif case == "no manifest":
        _repack(good, bad, {"manifest.json": None})
    elif case == "a member too many":
        _repack(good, bad, {"extra": b"x"})
    elif case == "a newer format":
        _repack(good, bad, {"manifest.json": _manifest_with(good, format_version=2)})
    else:
        if case == "a newer schema":
            database = _database_at(good, tmp_path, "9999")
            fields: dict[str, object] = {"schema_revision": "9999"}
        else:
            database = b"SQLite format 3\x00" + b"\x13" * 8000
            fields = {}
        files = [
            {"name": "scoreboard.db", "size": len(database), "sha256": _sha(database)}
            if f["name"] == "scoreboard.db"
            else f
            for f in json.loads(_manifest_with(good))["files"]
        ]
        fields["files"] = files
        _repack(
            good, bad, {"scoreboard.db": database, "manifest.json": _manifest_with(good, **fields)}
        )
    before = live.snapshot()
    with pytest.raises(backup.BackupError, match=BAD_FILES[case]):
        backup.restore(live.database, live.data, bad)
    assert live.snapshot() == before
    assert sorted(p.name for p in live.data.iterdir() if p.name.startswith(".")) == []


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_a_backup_of_an_older_schema_is_upgraded_on_restore(
    tmp_path: Path,
) -> None:
    old = Folder(tmp_path / "old")
    old.data.mkdir()
    migrations.upgrade(f"sqlite:///{old.database}", "0004")
    file = tmp_path / "b.tar"
    assert backup.backup(old.database, old.data, file).schema_revision == "0004"
    target = Folder(tmp_path / "new")
    backup.restore(target.database, target.data, file)
    with closing(sqlite3.connect(target.database)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            migrate.head(),
        )
    assert not (target.data / SECRET_FILE).exists()  # the old folder had none


def test_a_bad_file_restored_into_a_new_place_leaves_no_folder_behind(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"nope")
    target = Folder(tmp_path / "new" / "data")
    with pytest.raises(backup.BackupError, match="not a tar archive"):
        backup.restore(target.database, target.data, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar"]


def test_a_replaced_database_that_cannot_be_read_is_not_replaced_blindly(
    live: Folder, tmp_path: Path
) -> None:
    """Its erasures could not be carried over: the operator moves it away, knowingly."""
    file = tmp_path / "b.tar"
    backup.backup(live.database, live.data, file)
    live.database.write_bytes(b"\x00" * 4096)
    with pytest.raises(backup.BackupError, match=r"cannot be read.*Move it away"):
        backup.restore(live.database, live.data, file)
    assert live.database.read_bytes() == b"\x00" * 4096
    live.database.rename(tmp_path / "damaged.db")
    assert backup.restore(live.database, live.data, file).erasures_carried == 0
    assert {row[0] for row in live.rows("users")} == {"alice", "bob", "carol"}
