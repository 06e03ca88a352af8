"""Backup and restore of an embedded deployment (SQLite): ``scoreboard backup FILE`` and
``scoreboard restore FILE``. PostgreSQL has its own tools (``pg_dump``, ``pg_restore``; see
docs/operations.md, "Backup and restore").

**The file** is a POSIX tar archive (readable by ``tar tf``; it may be gzipped afterwards,
restore reads either) holding, in this order:

- ``manifest.json``: ``{"format": "scoreboard-backup", "format_version": 1, "created_at",
  "schema_revision", "scoreboard_version", "files": [{"name", "size", "sha256"}]}``.
  ``created_at`` (UTC, ISO 8601) is when the database snapshot began: every update acknowledged
  before it is in the copy.
- ``scoreboard.db``: the database, a standalone SQLite file (rollback journal, no WAL).
- ``jwt_secret`` and ``erasure_key``: the data folder's generated secrets, when it has them.

It holds secrets: it is written with mode 0600, and should be kept like the data folder.

**The snapshot** is SQLite's online backup API, in steps of :data:`STEP_PAGES` pages, inside
one read transaction held for the whole copy. In WAL mode (the store's) a reader never blocks a
writer, so the server keeps committing throughout (its WAL grows until the copy ends, as a
checkpoint cannot pass a live snapshot). The read transaction is what makes the steps
consistent: without it, every commit by another connection between two steps restarts the copy
from the first page, and under steady load a large copy never finishes.

**Restore** validates everything first (the archive, every checksum, ``PRAGMA integrity_check``,
a schema revision this code knows, then the upgrade to the newest schema on a private copy), so
that a bad file changes nothing. Then, holding the database's lock file exclusively and having
checked that no process has the database open (``adapters.sqlite_lock``), it re-applies the
erasures the backup predates, writes the side files and renames the new database into place,
its last step.

**Erasures survive a restore.** An erasure leaves in the audit a row ``action = "erase"`` whose
target is ``erased:<HMAC-SHA256(erasure key, user id)>`` (``moderation.erased_id``), not the
id. The erasures the backup predates are the ``erase`` rows of the data being replaced that the
backup's audit does not hold (same time, action and target). Every user id in the backup is
hashed with the erasure keys at hand and erased where a hash matches (``erase_rows``, the
store's own definition of an erasure's rows, with the same hash standing in for the id), and
every such ``erase`` row is carried into the restored audit, matched or not, so that restoring
an even older backup later still knows of it. The keys at hand are the replaced data's
(``SCOREBOARD_ERASURE_KEY``, or the data folder's file), which hashed those rows, and the
backup's own; the data folder keeps its erasure key when it has one (the carried rows were
hashed with it) and takes the backup's only when it has none (a lost disk).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from scoreboard import __version__, migrate
from scoreboard.adapters import sqlite_lock
from scoreboard.adapters.sqlite_store import erase_rows
from scoreboard.auth.secret import ERASURE_KEY_FILE, SECRET_FILE
from scoreboard.moderation import erased_id

FORMAT = "scoreboard-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "scoreboard.db"
SIDE_FILES = (SECRET_FILE, ERASURE_KEY_FILE)
STEP_PAGES = 1024
"""Pages copied per step of the online backup (4 MiB with SQLite's default page size)."""
RESTORED_BY = "(restore)"
"""The ``key_name`` of the audit row a restore leaves: no admin key can have this name."""
_CHUNK = 1 << 20


class BackupError(Exception):
    """One line for the command line: what is wrong, and what to do."""


@dataclass(frozen=True, slots=True)
class Manifest:
    created_at: datetime
    schema_revision: str
    scoreboard_version: str
    files: dict[str, tuple[int, str]]
    """Each file's size and SHA-256 (hex), by name."""

    def to_json(self) -> bytes:
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "schema_revision": self.schema_revision,
            "scoreboard_version": self.scoreboard_version,
            "files": [
                {"name": name, "size": size, "sha256": digest}
                for name, (size, digest) in self.files.items()
            ],
        }
        return json.dumps(document, indent=2).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class Restored:
    manifest: Manifest
    erasures_reapplied: int
    """Users of the backup erased again."""
    erasures_carried: int
    """``erase`` rows of the replaced data that the backup predates (each carried over)."""


Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


# -- backup ---------------------------------------------------------------------------------


def backup(
    database: Path,
    data_dir: Path,
    out: Path,
    *,
    step_pages: int = STEP_PAGES,
    clock: Clock = _now,
) -> Manifest:
    """Write a backup of ``database`` and the data folder's secrets to ``out`` (replaced
    atomically if it exists) while servers keep serving and writing."""
    if not database.is_file():
        raise BackupError(f"there is no database at {database}")
    folder = out.absolute().parent
    if not folder.is_dir():
        raise BackupError(f"there is no folder {folder} to write {out.name} in")
    try:
        hold = sqlite_lock.SharedHold(database)
    except sqlite_lock.DatabaseInUse as exc:
        raise BackupError(str(exc)) from None
    except OSError as exc:
        raise BackupError(f"cannot lock {database}: {exc.strerror or exc}") from None
    try:
        with tempfile.TemporaryDirectory(dir=folder, prefix=f".{out.name}.") as staging:
            copy = Path(staging) / DATABASE
            created_at = _snapshot(database, copy, step_pages, clock)
            contents: dict[str, Path | bytes] = {DATABASE: copy}
            for name in SIDE_FILES:
                with contextlib.suppress(FileNotFoundError):
                    contents[name] = (data_dir / name).read_bytes()
            files = {name: _digest(content) for name, content in contents.items()}
            manifest = Manifest(created_at, _revision(copy), __version__, files)
            archive = Path(staging) / "backup.tar"
            _write_tar(archive, manifest, contents)
            os.replace(archive, out)
            _sync_folder(folder)
    except OSError as exc:
        raise BackupError(f"cannot write {out}: {exc.strerror or exc}") from None
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read {database}: {exc}") from None
    finally:
        hold.release()
    return manifest


def _snapshot(database: Path, copy: Path, step_pages: int, clock: Clock) -> datetime:
    """Copy ``database`` to ``copy`` as of one instant, returned (taken just before it: every
    commit acknowledged before that instant is in the copy)."""
    source = sqlite3.connect(sqlite_lock.uri(database), uri=True, isolation_level=None)
    target = sqlite3.connect(copy, isolation_level=None)
    try:
        source.execute("PRAGMA busy_timeout = 5000")
        source.execute("BEGIN")
        created_at = clock()
        source.execute("SELECT COUNT(*) FROM sqlite_schema").fetchone()  # the snapshot begins
        source.backup(target, pages=step_pages, sleep=0)
        source.execute("COMMIT")
        target.execute("PRAGMA journal_mode = DELETE")  # one file, whole without a -wal
    finally:
        target.close()
        source.close()
    return created_at


def _digest(content: Path | bytes) -> tuple[int, str]:
    digest = hashlib.sha256()
    if isinstance(content, bytes):
        digest.update(content)
        return len(content), digest.hexdigest()
    size = 0
    with content.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _write_tar(archive: Path, manifest: Manifest, contents: dict[str, Path | bytes]) -> None:
    mtime = int(manifest.created_at.timestamp())
    fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, content in {MANIFEST: manifest.to_json(), **contents}.items():
                info = tarfile.TarInfo(name)
                info.mode, info.mtime = 0o600, mtime
                if isinstance(content, bytes):
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
                else:
                    info.size = manifest.files[name][0]
                    with content.open("rb") as data:
                        tar.addfile(info, data)
        f.flush()
        os.fsync(f.fileno())


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; elsewhere a no-op)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading a backup -----------------------------------------------------------------------


def read(file: Path, staging: Path) -> tuple[Manifest, dict[str, Path]]:
    """Extract and check ``file`` into ``staging``: the manifest and each file's path there.
    ``BackupError`` for anything but a whole backup this code can restore."""
    extracted: dict[str, tuple[Path, int, str]] = {}
    try:
        tar = tarfile.open(file, "r:*")  # noqa: SIM115 (closed below; opening has errors of its own)
    except FileNotFoundError:
        raise BackupError(f"there is no file {file}") from None
    except tarfile.TarError:
        raise BackupError(f"{file} is not a Scoreboard backup (not a tar archive)") from None
    except OSError as exc:
        raise BackupError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        with tar:
            for member in tar:
                name = member.name
                if name not in (MANIFEST, DATABASE, *SIDE_FILES) or not member.isfile():
                    raise BackupError(f"{file} is not a Scoreboard backup: it holds {name!r}")
                if name in extracted:
                    raise BackupError(f"{file} is damaged: it holds {name} twice")
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover (a regular file always has data)
                    raise BackupError(f"{file} is damaged: {name} has no data")
                extracted[name] = (staging / name, *_extract(source, staging / name))
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackupError(f"{file} is damaged ({reason})") from None
    except OSError as exc:
        raise BackupError(f"cannot read {file}: {exc.strerror or exc}") from None
    if MANIFEST not in extracted:
        raise BackupError(f"{file} is not a Scoreboard backup: it has no {MANIFEST}")
    manifest = _manifest(file, extracted.pop(MANIFEST)[0].read_bytes())
    if DATABASE not in manifest.files:
        raise BackupError(f"{file} is damaged: its manifest lists no {DATABASE}")
    if set(extracted) != set(manifest.files):
        raise BackupError(
            f"{file} is damaged: it holds {', '.join(sorted(extracted)) or 'nothing'} but its "
            f"manifest lists {', '.join(sorted(manifest.files))}"
        )
    for name, (_, size, digest) in extracted.items():
        if (size, digest) != manifest.files[name]:
            raise BackupError(f"{file} is damaged: {name} does not match its checksum")
    _check_database(file, extracted[DATABASE][0], manifest)
    return manifest, {name: path for name, (path, _, _) in extracted.items()}


def _extract(source: IO[bytes], target: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            f.write(chunk)
    return size, digest.hexdigest()


def _manifest(file: Path, raw: bytes) -> Manifest:
    try:
        document = json.loads(raw)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError("not a Scoreboard backup manifest")
        version = document["format_version"]
        if not isinstance(version, int):
            raise ValueError("format_version is not a number")
        if version > FORMAT_VERSION:
            raise BackupError(
                f"{file} was written by a newer Scoreboard (backup format {version}; this one "
                f"reads up to {FORMAT_VERSION}): restore it with that release or a newer one"
            )
        created_at = datetime.fromisoformat(str(document["created_at"]))
        files = {
            str(item["name"]): (int(item["size"]), str(item["sha256"]))
            for item in document["files"]
        }
        return Manifest(
            created_at.astimezone(UTC),
            str(document["schema_revision"]),
            str(document.get("scoreboard_version", "")),
            files,
        )
    except BackupError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{file} is damaged: its manifest cannot be read ({exc})") from None


def _check_database(file: Path, database: Path, manifest: Manifest) -> None:
    try:
        with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as conn:
            check = conn.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise BackupError(f"{file} is damaged: its database fails SQLite's integrity check")
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{file} is damaged: its database cannot be read ({exc})") from None
    revision = _revision(database)
    if revision != manifest.schema_revision:
        raise BackupError(
            f"{file} is damaged: its manifest says schema {manifest.schema_revision}, its "
            f"database is at {revision}"
        )
    if not migrate.is_known(revision):
        raise BackupError(
            f"{file} comes from a newer Scoreboard (schema {revision}; this one knows up to "
            f"{migrate.head()}): restore it with that release or a newer one"
        )


def _revision(database: Path) -> str:
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:
            row = None
    if row is None:
        raise BackupError(f"{database} is not a Scoreboard database (it has no schema revision)")
    return str(row[0])


# -- restore --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Erasure:
    at: str
    key_name: str
    action: str
    target: str
    reason: str | None
    details: str

    @property
    def identity(self) -> tuple[str, str, str]:
        return self.at, self.action, self.target


def restore(
    database: Path,
    data_dir: Path,
    file: Path,
    *,
    erasure_key: bytes | None = None,
    clock: Clock = _now,
) -> Restored:
    """Replace ``database`` and the data folder's secrets with the backup ``file``, erasing
    again every user the replaced data erased after the backup was taken.

    ``erasure_key``: ``SCOREBOARD_ERASURE_KEY`` when set (else the data folder's file is the
    replaced data's key). ``BackupError`` with nothing changed for a bad file, or while any
    process has the database open."""
    made = [p for p in (database.parent, *database.parent.parents) if not p.exists()]
    database.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _restore(database, data_dir, file, erasure_key, clock)
    except BaseException:
        for folder in made:  # a refused restore into a new place leaves no folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _restore(
    database: Path, data_dir: Path, file: Path, erasure_key: bytes | None, clock: Clock
) -> Restored:
    try:
        with tempfile.TemporaryDirectory(dir=database.parent, prefix=".restore-") as staging:
            manifest, files = read(file, Path(staging))
            staged = files[DATABASE]
            try:
                migrate.upgrade(f"sqlite:///{staged}")
            except Exception as exc:  # any failure: the file is refused
                raise BackupError(f"{file}: its database cannot be upgraded ({exc})") from None
            with _alone(database):
                replaced = _erasures(database)
                current = erasure_key or _read_key(data_dir / ERASURE_KEY_FILE)
                backup_key = _read_key(files.get(ERASURE_KEY_FILE))
                keys = [k for k in dict.fromkeys((current, backup_key)) if k]
                reapplied, carried = _reapply(staged, replaced, keys, manifest, file, clock)
                data_dir.mkdir(parents=True, exist_ok=True)
                if SECRET_FILE in files:
                    _install(files[SECRET_FILE], data_dir / SECRET_FILE)
                if ERASURE_KEY_FILE in files and not (data_dir / ERASURE_KEY_FILE).exists():
                    _install(files[ERASURE_KEY_FILE], data_dir / ERASURE_KEY_FILE)
                for suffix in ("-wal", "-shm", "-journal"):  # the replaced database's, if left
                    database.with_name(database.name + suffix).unlink(missing_ok=True)
                os.replace(staged, database)
                _sync_folder(database.parent)
    except OSError as exc:
        raise BackupError(f"restore failed: {exc.strerror or exc}") from None
    return Restored(manifest, reapplied, carried)


@contextlib.contextmanager
def _alone(database: Path) -> Iterator[None]:
    try:
        with sqlite_lock.exclusive(database):
            if sqlite_lock.open_elsewhere(database):
                raise sqlite_lock.DatabaseInUse(f"{database} is open in another process")
            yield
    except sqlite_lock.DatabaseInUse as exc:
        raise BackupError(
            f"{exc}: stop every server (and scoreboard command) using it, then restore; "
            "nothing was changed"
        ) from None


def _erasures(database: Path) -> list[_Erasure]:
    """The ``erase`` rows of the audit of ``database`` (none without one). ``BackupError``
    when it cannot be read: its erasures could not be carried over, and the operator decides."""
    if not database.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(sqlite_lock.uri(database), uri=True)) as conn:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_schema")}
            if "audit" not in tables:  # a schema before the audit (0005): no erasures
                return []
            rows = conn.execute(
                "SELECT at, key_name, action, target, reason, details FROM audit"
                " WHERE action = 'erase' ORDER BY id"
            ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise BackupError(
            f"the database being replaced, {database}, cannot be read ({exc}), so the users it "
            "erased cannot be erased again from the backup; nothing was changed. Move it away "
            "to restore without them"
        ) from None
    return [_Erasure(*row) for row in rows]


def _read_key(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes().strip() or None
    except FileNotFoundError:
        return None


def _reapply(
    staged: Path,
    replaced: list[_Erasure],
    keys: list[bytes],
    manifest: Manifest,
    file: Path,
    clock: Clock,
) -> tuple[int, int]:
    """Erase in ``staged`` the users that the ``replaced`` rows the backup predates stand for,
    carry those rows over, and record the restore; (users erased, rows carried)."""
    with contextlib.closing(sqlite3.connect(staged, isolation_level=None)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            held = {
                tuple(row)
                for row in conn.execute(
                    "SELECT at, action, target FROM audit WHERE action = 'erase'"
                )
            }
            later = [row for row in replaced if row.identity not in held]
            hashes = {row.target for row in later}
            reapplied = 0
            if hashes:
                for (user_id,) in conn.execute("SELECT user_id FROM users").fetchall():
                    erased_as = next(
                        (h for key in keys if (h := erased_id(key, user_id)) in hashes), None
                    )
                    if erased_as is not None:
                        erase_rows(conn, user_id, erased_as)
                        reapplied += 1
            insert = (
                "INSERT INTO audit (at, key_name, action, target, reason, details)"
                " VALUES (?, ?, ?, ?, ?, ?)"
            )
            for row in later:
                conn.execute(
                    insert,
                    (row.at, row.key_name, row.action, row.target, row.reason, row.details),
                )
            details: dict[str, Any] = {
                "file": file.name,
                "created_at": manifest.created_at.isoformat(),
                "erasures_reapplied": reapplied,
                "erasures_carried": len(later),
            }
            conn.execute(
                insert,
                (
                    clock().astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
                    RESTORED_BY,
                    "restore",
                    "backup",
                    None,
                    json.dumps(details, sort_keys=True, separators=(",", ":")),
                ),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return reapplied, len(later)


def _install(source: Path, target: Path) -> None:
    """``source``'s bytes as ``target``, mode 0600, replaced atomically."""
    temporary = target.with_name(f".{target.name}.restore")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(source.read_bytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, target)
