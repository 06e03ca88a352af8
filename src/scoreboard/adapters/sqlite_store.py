"""SQLite score store with group commit (embedded mode).

SQLite allows one writer at a time and each commit costs an fsync, so a commit per request would
cap updates at the disk's fsync rate. Instead every update waits in a queue; one writer thread
takes everything queued, applies it in **one transaction**, commits once, and only then resolves
each waiting request. Under load a commit carries many updates; alone, an update commits at once
(there is no timer). Each client still waits for the commit that holds its own update.

The database runs in WAL mode with ``synchronous=FULL``: a commit is on disk before it is
acknowledged, and readers (a second connection on its own thread) never block the writer.
The schema is created by the Alembic migrations in ``scoreboard/migrations``; this module only
reads and writes rows, through the sqlite3 driver directly, because the ORM's per-statement
overhead would be most of the cost of an update.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from scoreboard.errors import ActionConflict, ScoreOutOfRange, Unavailable
from scoreboard.model import (
    MAX_SCORE,
    Applied,
    HistoryPoint,
    HistoryQuery,
    ScoreEvent,
    ScoreUpdate,
    UserProfile,
    UserTotal,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_BATCH = 512
_CHUNK = 10_000

_SELECT_ACTION = "SELECT score_delta FROM scores WHERE user_id = ? AND action_id = ?"
_SELECT_SCORE = "SELECT score FROM users WHERE user_id = ?"
_INSERT_USER = (
    "INSERT INTO users (user_id, username, score, version, reached_seq, created_at, updated_at)"
    " VALUES (?, ?, 0, 0, 0, ?, ?)"
)
_INSERT_EVENT = (
    "INSERT INTO scores (user_id, score_delta, action_id, created_at, score_after)"
    " VALUES (?, ?, ?, ?, ?)"
)
_ADD_TO_TOTAL = (
    "UPDATE users SET score = score + ?, version = version + 1, reached_seq = ?,"
    " username = COALESCE(?, username), updated_at = ? WHERE user_id = ?"
    " RETURNING username, score, version"
)
_SELECT_USER = "SELECT user_id, username, score, version, reached_seq FROM users WHERE user_id = ?"
# In rank order, so that building a sorted index is linear. NOT INDEXED: walking ix_users_rank
# costs a table lookup per row (8 s for 10^6 users here); scanning and sorting takes 2 s.
_SELECT_TOTALS = (
    "SELECT user_id, username, score, version, reached_seq FROM users NOT INDEXED"
    " ORDER BY score DESC, reached_seq"
)
_COUNT_ABOVE = "SELECT COUNT(*) FROM users WHERE score > ? OR (score = ? AND reached_seq < ?)"
_SELECT_PROFILE = "SELECT user_id, username, score, updated_at FROM users WHERE user_id = ?"
# Ordered by (created_at, score_id): the (user_id, created_at) index ends in the rowid, which is
# score_id, so SQLite reads a page straight off the index.
_SELECT_HISTORY = (
    "SELECT score_id, created_at, score_delta, score_after, action_id FROM scores"
    " WHERE user_id = ? AND created_at >= ? AND created_at < ?"
    " AND (created_at > ? OR (created_at = ? AND score_id > ?))"
    " ORDER BY created_at, score_id LIMIT ?"
)
# SQLite's bare-column rule: with MAX(score_id), score_after comes from that same row, so each
# bucket reports the total after its last event.
_SELECT_BUCKETS = (
    "SELECT substr(created_at, 1, ?) AS bucket, MAX(score_id), score_after FROM scores"
    " WHERE user_id = ? AND created_at >= ? AND created_at < ?"
    " GROUP BY bucket ORDER BY bucket LIMIT ?"
)
_BUCKET_PREFIX = {"hour": 13, "day": 10}
# Bounds in the stored text form. (Not "0000"/"9999": the column has NUMERIC affinity, so SQLite
# would compare a number-like bound as a number, and every text value is greater than a number.)
_MIN_TIME = "0001-01-01 00:00:00.000000"
_MAX_TIME = "9999-12-31 23:59:59.999999"


def sqlite_path(database_url: str) -> Path:
    """The file of a ``sqlite:///PATH`` URL (relative to the working directory)."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or len(database_url) == len(prefix):
        raise ValueError(f"not a sqlite:///PATH URL: {database_url}")
    return Path(database_url[len(prefix) :])


_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def _now() -> str:
    # The text form SQLAlchemy uses for DateTime on SQLite: sortable, UTC.
    return datetime.now(UTC).strftime(_TIME_FORMAT)


def _to_text(moment: datetime | None, default: str) -> str:
    if moment is None:
        return default
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _from_text(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _bucket_start(prefix: str) -> datetime:
    if len(prefix) == _BUCKET_PREFIX["hour"]:
        return datetime.strptime(prefix, "%Y-%m-%d %H").replace(tzinfo=UTC)
    return datetime.strptime(prefix, "%Y-%m-%d").replace(tzinfo=UTC)


class SqliteScoreStore:
    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = _MAX_BATCH,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        """``on_commit(n)`` is called (on the writer thread) after each commit of ``n``
        updates: an optional observer, for metrics."""
        self.path = path
        self.max_batch = max_batch
        self._on_commit = on_commit
        self._pending: list[tuple[ScoreUpdate, asyncio.Future[Applied]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time, and
        # apply() would need it for every update.
        self._loop = asyncio.get_running_loop()
        self._wconn = await self._run(self._writer, self._connect)
        self._rconn = await self._run(self._reader, self._connect)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        for executor, conn in ((self._writer, self._wconn), (self._reader, self._rconn)):
            if conn is not None:
                await self._run(executor, conn.close)
            executor.shutdown(wait=True)
        self._wconn = self._rconn = None

    async def _run(self, executor: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        loop = self._loop or asyncio.get_running_loop()
        return await loop.run_in_executor(executor, fn)

    # -- writes -----------------------------------------------------------------------------

    async def apply(self, update: ScoreUpdate) -> Applied:
        loop = self._loop
        if self._wconn is None or loop is None:
            raise Unavailable("the store is not open")
        future: asyncio.Future[Applied] = loop.create_future()
        self._pending.append((update, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            updates = [update for update, _ in batch]
            try:
                outcomes = await self._run(
                    self._writer, functools.partial(self._apply_batch, updates)
                )
            except Exception as exc:  # nothing of the batch was committed
                if isinstance(exc, sqlite3.Error):
                    log.error("sqlite commit failed: %s", exc)
                    error: Exception = Unavailable(
                        "the score store is unavailable, try again shortly"
                    )
                else:
                    log.exception("unexpected failure of a commit")
                    error = exc
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # the request went away; its update is committed anyway
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _apply_batch(self, updates: list[ScoreUpdate]) -> list[Applied | Exception]:
        conn = self._wconn
        assert conn is not None
        now = _now()
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Ids for updates that came without an action_id: 128 random bits each, drawn in one
            # system call per batch (uuid4() per update was about 9 µs of an update here).
            fresh = os.urandom(16 * len(updates)).hex()
            outcomes = [
                self._apply_one(conn, update, now, fresh[32 * i : 32 * i + 32])
                for i, update in enumerate(updates)
            ]
            conn.execute("COMMIT")
        except sqlite3.OperationalError:  # the database itself failed: the batch fails
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        except Exception:
            # One update failed for a reason of its own (the rare path): undo the batch and
            # apply each update in a transaction of its own, so that only that one fails.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [self._apply_alone(conn, update, now) for update in updates]
        if self._on_commit is not None:
            try:
                self._on_commit(len(updates))
            except Exception:  # an observer must never fail a commit that happened
                log.exception("commit observer failed")
        return outcomes

    @classmethod
    def _apply_alone(
        cls, conn: sqlite3.Connection, update: ScoreUpdate, now: str
    ) -> Applied | Exception:
        """One update in a transaction of its own; any failure is this update's answer."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            outcome = cls._apply_one(conn, update, now, os.urandom(16).hex())
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                log.error("sqlite commit failed: %s", exc)
                return Unavailable("the score store is unavailable, try again shortly")
            log.exception("update of %s failed", update.user_id)
            return exc
        return outcome

    @staticmethod
    def _apply_one(
        conn: sqlite3.Connection, update: ScoreUpdate, now: str, fresh_id: str
    ) -> Applied | Exception:
        """``fresh_id``: the action id to record when the update has none."""
        action_id = update.action_id
        if action_id is not None:
            row = conn.execute(_SELECT_ACTION, (update.user_id, action_id)).fetchone()
            if row is not None:
                if row[0] != update.delta:
                    return ActionConflict(
                        "this action_id was already used with a different score_delta"
                    )
                user = conn.execute(_SELECT_USER, (update.user_id,)).fetchone()
                return Applied(UserTotal(*user), replayed=True)
        else:
            action_id = fresh_id
        # Refusals (above, and the range check here) are decided before anything is written,
        # so a refused update leaves nothing behind in the batch's transaction.
        row = conn.execute(_SELECT_SCORE, (update.user_id,)).fetchone()
        score_after = (row[0] if row else 0) + update.delta
        if not -MAX_SCORE <= score_after <= MAX_SCORE:
            return ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}")
        if row is None:
            conn.execute(
                _INSERT_USER, (update.user_id, update.username or update.user_id, now, now)
            )
        # One writer at a time (SQLite): the total read above is the one the UPDATE adds to.
        event_id = conn.execute(
            _INSERT_EVENT, (update.user_id, update.delta, action_id, now, score_after)
        ).lastrowid
        username, score, version = conn.execute(
            _ADD_TO_TOTAL, (update.delta, event_id, update.username, now, update.user_id)
        ).fetchone()
        assert event_id is not None
        return Applied(UserTotal(update.user_id, username, score, version, event_id))

    # -- reads ------------------------------------------------------------------------------

    async def action_delta(self, user_id: str, action_id: str) -> int | None:
        args = (user_id, action_id)
        row = await self._read(lambda c: c.execute(_SELECT_ACTION, args).fetchone())
        return None if row is None else int(row[0])

    async def get_user(self, user_id: str) -> UserTotal | None:
        row = await self._read(lambda c: c.execute(_SELECT_USER, (user_id,)).fetchone())
        return None if row is None else UserTotal(*row)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._rconn
        if conn is None:
            raise Unavailable("the store is not open")
        try:
            return await self._run(self._reader, functools.partial(fn, conn))
        except sqlite3.Error as exc:
            raise Unavailable("the score store is unavailable") from exc

    async def rank_of(self, total: UserTotal) -> int:
        args = (total.score, total.score, total.reached)
        (above,) = await self._read(lambda c: c.execute(_COUNT_ABOVE, args).fetchone())
        return int(above) + 1

    async def profile(self, user_id: str) -> UserProfile | None:
        row = await self._read(lambda c: c.execute(_SELECT_PROFILE, (user_id,)).fetchone())
        if row is None:
            return None
        return UserProfile(row[0], row[1], row[2], _from_text(row[3]))

    async def history(self, q: HistoryQuery) -> list[ScoreEvent]:
        user_id, since, until, after, limit = q.user_id, q.since, q.until, q.after, q.limit
        after_at = _to_text(after[0], _MIN_TIME) if after else _MIN_TIME
        after_id = after[1] if after else 0
        args = (
            user_id,
            _to_text(since, _MIN_TIME),
            _to_text(until, _MAX_TIME),
            after_at,
            after_at,
            after_id,
            limit,
        )
        rows = await self._read(lambda c: c.execute(_SELECT_HISTORY, args).fetchall())
        return [
            ScoreEvent(event_id, _from_text(at), delta, score, action_id)
            for event_id, at, delta, score, action_id in rows
        ]

    async def history_buckets(self, q: HistoryQuery) -> list[HistoryPoint]:
        user_id, since, until, limit = q.user_id, q.since, q.until, q.limit
        bucket = q.bucket or "day"
        prefix = _BUCKET_PREFIX[bucket]
        args = (prefix, user_id, _to_text(since, _MIN_TIME), _to_text(until, _MAX_TIME), limit)
        rows = await self._read(lambda c: c.execute(_SELECT_BUCKETS, args).fetchall())
        return [HistoryPoint(_bucket_start(b), score) for b, _, score in rows]

    async def iter_totals(self) -> AsyncIterator[list[UserTotal]]:
        conn = self._rconn
        if conn is None:
            raise Unavailable("the store is not open")
        cursor = await self._run(self._reader, lambda: conn.execute(_SELECT_TOTALS))
        try:
            while rows := await self._run(self._reader, lambda: cursor.fetchmany(_CHUNK)):
                yield [UserTotal(*row) for row in rows]
        finally:
            await self._run(self._reader, cursor.close)
