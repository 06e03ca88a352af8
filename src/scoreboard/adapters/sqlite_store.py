"""SQLite score store with group commit (embedded mode).

SQLite allows one writer at a time and each commit costs an fsync, so a commit per request would
cap updates at the disk's fsync rate. Instead every update waits in a queue; one writer thread
takes everything queued, applies it in **one transaction**, commits once, and only then resolves
each waiting request. Under load a commit carries many updates; alone, an update commits at once
(there is no timer). Each client still waits for the commit that holds its own update.

**One update, every board of its metric.** Applying an update inserts the score event, adds it
to the user's running total of that metric (``totals``, which gives the event its
``score_after``), and moves the user's standing on every board the metric feeds, in the period
the event is committed in: ``sum`` adds the delta, ``best`` keeps the better value (an equal one
does not replace it: who reached it first keeps it). All in the batch's one transaction.

**The configuration and the seasons are read inside that transaction.** A batch computes clock
periods from its own ``now`` and reads the current season of every manual board and the applied
configuration's version at its start; ``apply_config`` and ``rollover`` (run by
``scoreboard boards`` in another process, or by this one) are transactions of their own. SQLite
serializes writers, so every event is committed either before a rollover or configuration
change (and counted in the old season, or by the backfill of a new board) or after it (and
counted in the new season, or by the new board): never lost, never in the wrong period. Each
of these transactions reads the clock once it holds the write lock, so commit order is time
order: a season ends after every event counted in it, and its successor starts before them.

The database runs in WAL mode with ``synchronous=FULL``: a commit is on disk before it is
acknowledged, and readers (a second connection on its own thread) never block the writer.
The schema is created by the Alembic migrations in ``scoreboard/migrations``; this module only
reads and writes rows, through the sqlite3 driver directly, because the ORM's per-statement
overhead would be most of the cost of an update.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from scoreboard import periods
from scoreboard.adapters.sqlite_checkpoints import SqliteCheckpoints, drop_checkpoints
from scoreboard.adapters.sqlite_lock import DatabaseInUse, SharedHold
from scoreboard.adapters.sqlite_outbox import SqliteOutbox, enqueue_in, forget_in
from scoreboard.boards import Board, BoardsConfig
from scoreboard.errors import (
    ActionConflict,
    Banned,
    ConfigChanged,
    Conflict,
    NotFound,
    ScoreOutOfRange,
    Unavailable,
)
from scoreboard.model import (
    MAX_SCORE,
    AdminKey,
    Applied,
    Audit,
    AuditEntry,
    BoardStanding,
    Entry,
    EventRecord,
    ExportRow,
    HistoryPoint,
    HistoryQuery,
    LedgerEvent,
    Moderated,
    Moved,
    PeriodSummary,
    RankedEntry,
    ScoreEvent,
    ScoreUpdate,
    Standing,
    StoredRow,
    UserProfile,
    rank_score,
)
from scoreboard.webhooks import Notice

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_BATCH = 512
_CHUNK = 10_000

_SELECT_ACTION = "SELECT score_delta, metric FROM scores WHERE user_id = ? AND action_id = ?"
_SELECT_NAME = "SELECT username FROM users WHERE user_id = ?"
_SELECT_USER = "SELECT username, status, name_locked FROM users WHERE user_id = ?"
_INSERT_USER = (
    "INSERT INTO users (user_id, username, created_at, updated_at, status, name_locked)"
    " VALUES (?, ?, ?, ?, 'active', 0)"
)
_RENAME_USER = "UPDATE users SET username = ?, updated_at = ? WHERE user_id = ?"
_SELECT_TOTAL = "SELECT total FROM totals WHERE user_id = ? AND metric = ?"
_SET_TOTAL = (
    "INSERT INTO totals (user_id, metric, total, last_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (user_id, metric) DO UPDATE SET total = excluded.total,"
    " last_at = excluded.last_at"
)
_INSERT_EVENT = (
    "INSERT INTO scores (user_id, metric, score_delta, action_id, created_at, score_after,"
    " source) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# rank_score is the score as it sorts (negated where higher is better): a sum adds to both, a
# best replaces both when the new rank_score sorts first (an equal one does not: first reached).
# ``hidden`` (see migration 0005): a new row takes the user's bit; an event clears the "all
# voided" bit (2) of a row it lands in, and a best replaces such a row whatever it held.
_ADD_TO_STANDING = (
    "INSERT INTO standings (board_id, period_id, user_id, score, rank_score, reached, version,"
    " updated_at, hidden) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)"
    " ON CONFLICT (board_id, period_id, user_id) DO UPDATE SET score = score + excluded.score,"
    " rank_score = rank_score + excluded.rank_score, reached = excluded.reached,"
    " version = version + 1, updated_at = excluded.updated_at, hidden = hidden & 1"
    " RETURNING score, version, reached, hidden"
)
_BETTER_STANDING = (
    "INSERT INTO standings (board_id, period_id, user_id, score, rank_score, reached, version,"
    " updated_at, hidden) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)"
    " ON CONFLICT (board_id, period_id, user_id) DO UPDATE SET score = excluded.score,"
    " rank_score = excluded.rank_score, reached = excluded.reached, version = version + 1,"
    " updated_at = excluded.updated_at, hidden = standings.hidden & 1"
    " WHERE excluded.rank_score < standings.rank_score OR standings.hidden & 2"
    " RETURNING score, version, reached, hidden"
)
_SELECT_STANDING = (
    "SELECT score, version, reached, hidden FROM standings"
    " WHERE board_id = ? AND period_id = ? AND user_id = ?"
)
_SELECT_ENTRY = (
    "SELECT s.user_id, u.username, s.score, s.version, s.reached, s.updated_at"
    " FROM standings s JOIN users u ON u.user_id = s.user_id"
    " WHERE s.board_id = ? AND s.period_id = ? AND s.user_id = ? AND s.hidden = 0"
)
_SELECT_PAGE = (
    "SELECT s.user_id, u.username, s.score, s.version, s.reached"
    " FROM standings s JOIN users u ON u.user_id = s.user_id"
    " WHERE s.board_id = ? AND s.period_id = ? AND s.hidden = 0"
    " ORDER BY s.rank_score, s.reached, s.user_id LIMIT ? OFFSET ?"
)
# Unordered: a rank index sorts what it loads (a sort beats a table lookup per index entry).
_SELECT_STANDINGS = (
    "SELECT s.user_id, u.username, s.score, s.version, s.reached"
    " FROM standings s JOIN users u ON u.user_id = s.user_id"
    " WHERE s.board_id = ? AND s.period_id = ? AND s.hidden = 0"
)
# Exports: a keyset walk of ix_standings_rank, the time of each row's reaching event beside it.
_SELECT_RANKED = (
    "SELECT s.rank_score, s.reached, s.user_id, u.username, s.score, e.created_at"
    " FROM standings s JOIN users u ON u.user_id = s.user_id"
    " JOIN scores e ON e.score_id = s.reached"
    " WHERE s.board_id = ? AND s.period_id = ? AND s.hidden = 0"
    " AND (s.rank_score, s.reached, s.user_id) > (?, ?, ?)"
    " ORDER BY s.rank_score, s.reached, s.user_id LIMIT ?"
)
_COUNT = "SELECT COUNT(*) FROM standings WHERE board_id = ? AND period_id = ? AND hidden = 0"
_COUNT_AHEAD = (
    "SELECT COUNT(*) FROM standings WHERE board_id = ? AND period_id = ? AND hidden = 0"
    " AND (rank_score < ? OR (rank_score = ? AND reached < ?))"
)
_SELECT_PROFILE = (
    "SELECT user_id, username, created_at, status, name_locked FROM users WHERE user_id = ?"
)
# Ordered by (created_at, score_id): the (user_id, metric, created_at) index ends in the rowid,
# which is score_id, so SQLite reads a page straight off the index.
_SELECT_HISTORY = (
    "SELECT score_id, created_at, score_delta, score_after, action_id FROM scores"
    " WHERE user_id = ? AND metric = ? AND created_at >= ? AND created_at < ?"
    " AND (created_at > ? OR (created_at = ? AND score_id > ?)) AND voided_at IS NULL"
    " ORDER BY created_at, score_id LIMIT ?"
)
# SQLite's bare-column rule: with MAX(score_id), score_after comes from that same row, so each
# bucket reports the total after its last event.
_SELECT_BUCKETS = (
    "SELECT substr(created_at, 1, ?) AS bucket, MAX(score_id), score_after FROM scores"
    " WHERE user_id = ? AND metric = ? AND created_at >= ? AND created_at < ?"
    " AND voided_at IS NULL GROUP BY bucket ORDER BY bucket LIMIT ?"
)
_BUCKET_PREFIX = {"hour": 13, "day": 10}
_SELECT_SEASONS = "SELECT board_id, period_id, starts_at FROM periods WHERE ends_at IS NULL"
_SELECT_PERIOD = "SELECT starts_at, ends_at FROM periods WHERE board_id = ? AND period_id = ?"
_INSERT_PERIOD = (
    "INSERT INTO periods (board_id, period_id, starts_at, ends_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (board_id, period_id) DO NOTHING"
)
_SELECT_CONFIG = "SELECT config, version FROM board_config WHERE id = 1"
# Filling a board's period from stored events (params: board, period, sign, metric, from, to):
# the events that count (not voided; on a best board, not an operator's adjustment). A sum is
# reached by its last event; a best by the first event that reached it. A row the period
# already had is updated with a higher version (a rank index may hold the old one); the rows
# of users with nothing counting are marked empty first (_EMPTY_PERIOD).
_EMPTY_PERIOD = (
    "UPDATE standings SET hidden = hidden | 2, version = version + 1"
    " WHERE board_id = ? AND period_id = ?"
)
_UPSERT_FILLED = (
    " ON CONFLICT (board_id, period_id, user_id) DO UPDATE SET score = excluded.score,"
    " rank_score = excluded.rank_score, reached = excluded.reached,"
    " version = standings.version + 1, updated_at = excluded.updated_at,"
    " hidden = standings.hidden & 1"
)
_FILL_SUM = (
    "INSERT INTO standings (board_id, period_id, user_id, score, rank_score, reached, version,"  # noqa: S608 (constant SQL)
    " updated_at, hidden) SELECT ?, ?, s.user_id, SUM(s.score_delta), ? * SUM(s.score_delta),"
    " MAX(s.score_id), COUNT(*), MAX(s.created_at),"
    " MAX(CASE WHEN u.status = 'active' THEN 0 ELSE 1 END)"
    " FROM scores s JOIN users u ON u.user_id = s.user_id WHERE s.metric = ?"
    " AND s.created_at >= ? AND s.created_at < ? AND s.voided_at IS NULL"
    " GROUP BY s.user_id" + _UPSERT_FILLED
)
_FILL_BEST = {
    order: (
        "INSERT INTO standings (board_id, period_id, user_id, score, rank_score, reached,"  # noqa: S608 (constant SQL)
        " version, updated_at, hidden) SELECT ?, ?, user_id, score_delta, ? * score_delta,"
        " score_id, 1, created_at, hidden FROM (SELECT s.user_id, s.score_delta, s.score_id,"
        " s.created_at, CASE WHEN u.status = 'active' THEN 0 ELSE 1 END AS hidden,"
        f" ROW_NUMBER() OVER (PARTITION BY s.user_id ORDER BY s.score_delta {order}, s.score_id)"
        " AS n FROM scores s JOIN users u ON u.user_id = s.user_id WHERE s.metric = ?"
        " AND s.created_at >= ? AND s.created_at < ? AND s.voided_at IS NULL"
        " AND s.source = 'user') WHERE n = 1" + _UPSERT_FILLED
    )
    for order in ("desc", "asc")
}
_SELECT_CONFIG_VERSION = "SELECT version FROM board_config WHERE id = 1"
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


def _text(moment: datetime) -> str:
    # The text form SQLAlchemy uses for DateTime on SQLite: sortable, UTC.
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _to_text(moment: datetime | None, default: str) -> str:
    return default if moment is None else _text(moment)


def _from_text(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _maybe_time(text: str | None) -> datetime | None:
    return None if text is None else _from_text(text)


def _bucket_start(prefix: str) -> datetime:
    if len(prefix) == _BUCKET_PREFIX["hour"]:
        return datetime.strptime(prefix, "%Y-%m-%d %H").replace(tzinfo=UTC)
    return datetime.strptime(prefix, "%Y-%m-%d").replace(tzinfo=UTC)


class _Feeds:
    """What a configuration asks of the writer: which boards each metric feeds."""

    def __init__(self, config: BoardsConfig | None, version: int) -> None:
        self.config = config
        self.version = version
        self.by_metric: dict[str, tuple[Board, ...]] = {}
        if config is not None:
            for board in config.boards.values():
                self.by_metric.setdefault(board.metric, ())
                self.by_metric[board.metric] += (board,)


class _SqliteAdmin(SqliteOutbox):
    """The :class:`~scoreboard.ports.AdminStore` half of :class:`SqliteScoreStore`: every
    write on the writer's thread, in a transaction of its own between batches."""

    _clock: Callable[[], datetime]

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    def _adjust_in(self, conn: sqlite3.Connection, update: ScoreUpdate, audit: Audit) -> Applied:
        raise NotImplementedError

    def _now(self) -> str:
        return _text(self._clock())

    async def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._write(lambda c: _in_transaction(c, lambda: fn(c)))

    def _audit_in(self, conn: sqlite3.Connection, audit: Audit) -> None:
        _audit(conn, audit, self._now())

    async def events_of(
        self, user_id: str, *, limit: int, before: int | None = None
    ) -> list[EventRecord]:
        args = (user_id, 2**63 - 1 if before is None else before, limit)
        rows = await self._read(lambda c: c.execute(_SELECT_EVENTS_OF, args).fetchall())
        return [_event_record(r) for r in rows]

    async def event(self, event_id: int) -> EventRecord | None:
        row = await self._read(lambda c: c.execute(_SELECT_EVENT, (event_id,)).fetchone())
        return None if row is None else _event_record(row)

    async def standing_of(
        self, board: str, period: str, user_id: str
    ) -> tuple[Standing, bool] | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT u.username, s.score, s.version, s.reached, s.hidden FROM standings s"
                " JOIN users u ON u.user_id = s.user_id"
                " WHERE s.board_id = ? AND s.period_id = ? AND s.user_id = ?",
                (board, period, user_id),
            ).fetchone()
        )
        if row is None or row[4] & 2:
            return None
        return Standing(user_id, row[0], row[1], row[2], row[3]), row[4] == 0

    async def void(
        self,
        event_id: int,
        config: BoardsConfig,
        audit: Audit,
        *,
        restore: bool = False,
        notice: Notice | None = None,
    ) -> Moderated:
        fn = functools.partial(
            _void,
            event_id=event_id,
            config=config,
            audit=audit,
            restore=restore,
            now=self._now(),
            notice=notice,
        )
        return await self._write(lambda c: _in_transaction(c, lambda: fn(c)))

    async def set_status(
        self, user_id: str, status: str, config: BoardsConfig, audit: Audit
    ) -> Moderated:
        fn = functools.partial(
            _set_status, user_id=user_id, status=status, audit=audit, now=self._now()
        )
        return await self._write(lambda c: _in_transaction(c, lambda: fn(c)))

    async def rename(self, user_id: str, username: str | None, audit: Audit) -> Moderated:
        fn = functools.partial(
            _rename, user_id=user_id, username=username, audit=audit, now=self._now()
        )
        return await self._write(lambda c: _in_transaction(c, lambda: fn(c)))

    async def adjust(self, update: ScoreUpdate, audit: Audit) -> Applied:
        return await self._write(lambda c: self._adjust_in(c, update, audit))

    async def erase(self, user_id: str, erased_as: str, audit: Audit) -> list[tuple[str, str]]:
        fn = functools.partial(
            _erase, user_id=user_id, erased_as=erased_as, audit=audit, now=self._now()
        )
        return await self._write(lambda c: _in_transaction(c, lambda: fn(c)))

    # -- verify and repair ------------------------------------------------------------------

    async def ledger(
        self,
        metric: str,
        since: datetime | None,
        until: datetime | None,
        *,
        user_id: str | None = None,
    ) -> AsyncIterator[list[LedgerEvent]]:
        bounds = (_to_text(since, _MIN_TIME), _to_text(until, _MAX_TIME))
        statement, mine = (_LEDGER, ()) if user_id is None else (_LEDGER_OF, (user_id,))
        after = 0
        while True:
            args = (metric, *bounds, after, *mine, _CHUNK)
            rows = await self._read(functools.partial(_fetch_all, statement, args))
            if not rows:
                return
            yield [
                LedgerEvent(i, u, d, src, bool(v), bool(a), _from_text(t))
                for i, u, d, src, v, a, t in rows
            ]
            if len(rows) < _CHUNK:
                return
            after = rows[-1][0]

    async def stored(
        self, board: str, period: str, *, user_id: str | None = None
    ) -> AsyncIterator[list[StoredRow]]:
        statement, mine = (_STORED, ()) if user_id is None else (_STORED_OF, (user_id,))
        after = ""
        while True:
            args = (board, period, after, *mine, _CHUNK)
            rows = await self._read(functools.partial(_fetch_all, statement, args))
            if not rows:
                return
            yield [StoredRow(*row) for row in rows]
            if len(rows) < _CHUNK:
                return
            after = rows[-1][0]

    async def recount(
        self, board: Board, period: str, user_ids: Sequence[str]
    ) -> tuple[Moved, ...]:
        fn = functools.partial(
            _recount, board=board, period=period, user_ids=user_ids, now=self._now()
        )
        return await self._write(lambda c: _in_transaction(c, lambda: fn(c)))

    async def audit_page(self, *, limit: int, before: int | None = None) -> list[AuditEntry]:
        args = (2**63 - 1 if before is None else before, limit)
        rows = await self._read(lambda c: c.execute(_SELECT_AUDIT, args).fetchall())
        return [
            AuditEntry(i, _from_text(at), key, action, target, reason, json.loads(details))
            for i, at, key, action, target, reason, details in rows
        ]

    async def record(self, audit: Audit) -> None:
        now = self._now()
        await self._write(lambda c: _in_transaction(c, lambda: _audit(c, audit, now)))

    async def add_key(self, name: str, key_hash: str) -> None:
        now = self._now()

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO admin_keys (name, key_hash, created_at) VALUES (?, ?, ?)",
                    (name, key_hash, now),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"there is already a key named '{name}'") from None

        await self._write(insert)

    async def keys(self) -> list[AdminKey]:
        rows = await self._read(
            lambda c: c.execute(f"SELECT {_KEY_COLUMNS} FROM admin_keys ORDER BY name").fetchall()  # noqa: S608 (constant SQL)
        )
        return [_key_of(r) for r in rows]

    async def revoke_key(self, name: str) -> bool:
        now = self._now()
        done = await self._write(
            lambda c: (
                c.execute(
                    "UPDATE admin_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                    (now, name),
                ).rowcount
            )
        )
        return bool(done)

    async def key_by_hash(self, key_hash: str) -> AdminKey | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {_KEY_COLUMNS} FROM admin_keys WHERE key_hash = ?",  # noqa: S608
                (key_hash,),
            ).fetchone()
        )
        if row is None:
            return None
        key = _key_of(row)
        now = self._clock()
        if key.last_used_at is None or now - key.last_used_at >= KEY_TOUCH_INTERVAL:
            stamp = _text(now)
            await self._write(
                lambda c: c.execute(
                    "UPDATE admin_keys SET last_used_at = ? WHERE name = ?", (stamp, key.name)
                )
            )
            key = AdminKey(key.name, key.created_at, now, key.revoked_at)
        return replace(key, key_hash=key_hash)


class SqliteScoreStore(_SqliteAdmin, SqliteCheckpoints):
    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = _MAX_BATCH,
        on_commit: Callable[[int], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``on_commit(n)`` is called (on the writer thread) after each commit of ``n``
        updates: an optional observer, for metrics. ``clock``: the commit time of a batch (the
        events' ``created_at`` and the period they count in)."""
        self.path = path
        self.max_batch = max_batch
        self._on_commit = on_commit
        self._clock = clock
        self._pending: list[tuple[ScoreUpdate, asyncio.Future[Applied]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._feeds = _Feeds(None, 0)
        self._known_periods: set[tuple[str, str]] = set()
        self._hold: SharedHold | None = None

    async def open(self) -> None:
        """``Unavailable`` while ``scoreboard restore`` replaces the database: the store holds
        the lock file beside it (``sqlite_lock``) from here to :meth:`close`."""
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time, and
        # apply() would need it for every update.
        self._loop = asyncio.get_running_loop()
        try:
            self._hold = SharedHold(self.path)
        except DatabaseInUse as exc:
            raise Unavailable(str(exc)) from None
        self._wconn = await self._run(self._writer, functools.partial(_connect, self.path))
        self._rconn = await self._run(self._reader, functools.partial(_connect, self.path))

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        for executor, conn in ((self._writer, self._wconn), (self._reader, self._rconn)):
            if conn is not None:
                await self._run(executor, conn.close)
            executor.shutdown(wait=True)
        self._wconn = self._rconn = None
        if self._hold is not None:
            self._hold.release()
            self._hold = None

    async def _run(self, executor: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        loop = self._loop or asyncio.get_running_loop()
        return await loop.run_in_executor(executor, fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on the writer's connection, on the writer's thread (so between batches)."""
        conn = self._wconn
        if conn is None:
            raise Unavailable("the store is not open")
        try:
            return await self._run(self._writer, functools.partial(fn, conn))
        except sqlite3.OperationalError as exc:
            log.error("sqlite commit failed: %s", exc)
            raise Unavailable("the score store is unavailable, try again shortly") from exc

    # -- the board configuration ------------------------------------------------------------

    async def load_config(self) -> tuple[BoardsConfig | None, int]:
        """The applied configuration and its version (``None``, 0: none applied yet); the
        store applies updates with it from now on."""
        return await self._write(self._load_config)

    def _load_config(self, conn: sqlite3.Connection) -> tuple[BoardsConfig | None, int]:
        row = conn.execute(_SELECT_CONFIG).fetchone()
        config = None if row is None else BoardsConfig.from_json(row[0])
        version = 0 if row is None else int(row[1])
        self._feeds = _Feeds(config, version)
        return config, version

    async def config_version(self) -> int:
        row = await self._read(lambda c: c.execute(_SELECT_CONFIG_VERSION).fetchone())
        return 0 if row is None else int(row[0])

    async def apply_config(
        self, config: BoardsConfig, *, expected_version: int, fill: Sequence[str]
    ) -> int:
        """Store ``config`` as the applied configuration unless another was applied since
        ``expected_version`` (``ConfigChanged``), and fill the boards ``fill`` names (new ones)
        from the stored events of their current period, in one transaction. The new version."""
        return await self._write(
            functools.partial(
                _apply_config,
                config=config,
                expected=expected_version,
                fill=fill,
                clock=self._clock,
            )
        )

    # -- manual seasons ---------------------------------------------------------------------

    async def rollover(self, board: Board) -> tuple[periods.Period, periods.Period]:
        """End the current season of the manual ``board`` now and start the next one:
        ``(closed, opened)``. One transaction, serialized with every batch."""
        return await self._write(functools.partial(_rollover, board=board, clock=self._clock))

    async def seasons(self) -> dict[str, periods.Period]:
        """Every manual board's current season (the open period of each board that has one)."""
        rows = await self._read(lambda c: c.execute(_SELECT_SEASONS).fetchall())
        return {b: periods.Period(p, _maybe_time(s), None) for b, p, s in rows}

    async def start_period(self, board: str, period: periods.Period) -> None:
        """Record that ``board`` has ``period`` (idempotent)."""
        if (board, period.id) in self._known_periods:
            return
        args = (board, period.id, _maybe_text(period.starts_at), _maybe_text(period.ends_at))

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(_INSERT_PERIOD, args)

        await self._write(insert)
        self._known_periods.add((board, period.id))

    async def prune(self, board: str, keep: int) -> list[str]:
        """Delete the standings and records of ``board``'s closed periods beyond the newest
        ``keep`` (its archives); the ids deleted. Events stay: they are the ledger."""
        return await self._write(
            functools.partial(_prune, board=board, keep=keep, clock=self._clock)
        )

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
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = self._clock()  # holding the write lock: commit order is time order
            batch = self._batch(conn, now)
            # Ids for updates that came without an action_id: 128 random bits each, drawn in one
            # system call per batch (uuid4() per update was about 9 µs of an update here).
            fresh = os.urandom(16 * len(updates)).hex()
            outcomes = [
                _apply_one(conn, batch, update, fresh[32 * i : 32 * i + 32])
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
            outcomes = [self._apply_alone(conn, update) for update in updates]
        if self._on_commit is not None:
            try:
                self._on_commit(len(updates))
            except Exception:  # an observer must never fail a commit that happened
                log.exception("commit observer failed")
        return outcomes

    def _batch(self, conn: sqlite3.Connection, now: datetime) -> _Batch:
        """What a batch needs, read inside its transaction: the configuration (reloaded when
        another process applied a new one), each board's current period, the time."""
        row = conn.execute(_SELECT_CONFIG_VERSION).fetchone()
        if (0 if row is None else int(row[0])) != self._feeds.version:
            self._load_config(conn)
        seasons = {b: p for b, p, _ in conn.execute(_SELECT_SEASONS).fetchall()}
        batch = _Batch(self._feeds, now, seasons)
        for board_id, period_id, period in batch.new_periods(self._known_periods):
            conn.execute(
                _INSERT_PERIOD,
                (board_id, period_id, _maybe_text(period.starts_at), _maybe_text(period.ends_at)),
            )
            self._known_periods.add((board_id, period_id))
        return batch

    def _apply_alone(self, conn: sqlite3.Connection, update: ScoreUpdate) -> Applied | Exception:
        """One update in a transaction of its own; any failure is this update's answer."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            batch = self._batch(conn, self._clock())
            outcome = _apply_one(conn, batch, update, os.urandom(16).hex())
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError) and "CHECK" in str(exc):
                return ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}")
            if isinstance(exc, sqlite3.Error):
                log.error("sqlite commit failed: %s", exc)
                return Unavailable("the score store is unavailable, try again shortly")
            log.exception("update of %s failed", update.user_id)
            return exc
        return outcome

    def _adjust_in(self, conn: sqlite3.Connection, update: ScoreUpdate, audit: Audit) -> Applied:
        """An operator's event, alone in a transaction with its audit row."""

        def apply() -> Applied:
            now = self._clock()  # holding the write lock, like a batch
            outcome = _apply_one(conn, self._batch(conn, now), update, os.urandom(16).hex())
            if isinstance(outcome, Exception):
                raise outcome
            if not outcome.replayed:
                _audit(conn, audit, _text(now))
            return outcome

        try:
            return _in_transaction(conn, apply)
        except sqlite3.IntegrityError as exc:
            if "CHECK" in str(exc):
                raise ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}") from None
            raise

    # -- reads ------------------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._rconn
        if conn is None:
            raise Unavailable("the store is not open")
        try:
            return await self._run(self._reader, functools.partial(fn, conn))
        except sqlite3.Error as exc:
            raise Unavailable("the score store is unavailable") from exc

    async def action_delta(self, user_id: str, action_id: str) -> int | None:
        args = (user_id, action_id)
        row = await self._read(lambda c: c.execute(_SELECT_ACTION, args).fetchone())
        return None if row is None else int(row[0])

    async def profile(self, user_id: str) -> UserProfile | None:
        row = await self._read(lambda c: c.execute(_SELECT_PROFILE, (user_id,)).fetchone())
        if row is None:
            return None
        return UserProfile(row[0], row[1], _from_text(row[2]), row[3], bool(row[4]))

    async def entry(self, board: str, period: str, user_id: str) -> Entry | None:
        args = (board, period, user_id)
        row = await self._read(lambda c: c.execute(_SELECT_ENTRY, args).fetchone())
        return None if row is None else Entry(Standing(*row[:5]), _from_text(row[5]))

    async def rank_of(self, board: str, period: str, order: str, standing: Standing) -> int:
        key = rank_score(standing.score, order)
        args = (board, period, key, key, standing.reached)
        (ahead,) = await self._read(lambda c: c.execute(_COUNT_AHEAD, args).fetchone())
        return int(ahead) + 1

    async def page(self, board: str, period: str, offset: int, limit: int) -> list[Standing]:
        args = (board, period, limit, offset)
        rows = await self._read(lambda c: c.execute(_SELECT_PAGE, args).fetchall())
        return [Standing(*row) for row in rows]

    async def count(self, board: str, period: str) -> int:
        (n,) = await self._read(lambda c: c.execute(_COUNT, (board, period)).fetchone())
        return int(n)

    async def period(self, board: str, period_id: str) -> periods.Period | None:
        args = (board, period_id)
        row = await self._read(lambda c: c.execute(_SELECT_PERIOD, args).fetchone())
        if row is None:
            return None
        return periods.Period(period_id, _maybe_time(row[0]), _maybe_time(row[1]))

    async def periods(
        self, board: str, *, limit: int, before: str | None = None
    ) -> list[PeriodSummary]:
        """``board``'s periods, newest first (by start; ``all`` has none and is the only
        one), after the period ``before`` (a page's end), with their entries and leader."""
        return await self._read(
            functools.partial(_periods, board=board, limit=limit, before=before)
        )

    async def has_data(self, board: str) -> bool:
        row = await self._read(
            lambda c: c.execute(
                "SELECT 1 FROM standings WHERE board_id = ? LIMIT 1", (board,)
            ).fetchone()
        )
        return row is not None

    async def history(self, q: HistoryQuery) -> list[ScoreEvent]:
        after_at = _to_text(q.after[0], _MIN_TIME) if q.after else _MIN_TIME
        after_id = q.after[1] if q.after else 0
        args = (
            q.user_id,
            q.metric,
            _to_text(q.since, _MIN_TIME),
            _to_text(q.until, _MAX_TIME),
            after_at,
            after_at,
            after_id,
            q.limit,
        )
        rows = await self._read(lambda c: c.execute(_SELECT_HISTORY, args).fetchall())
        return [
            ScoreEvent(event_id, _from_text(at), delta, score, action_id)
            for event_id, at, delta, score, action_id in rows
        ]

    async def history_buckets(self, q: HistoryQuery) -> list[HistoryPoint]:
        prefix = _BUCKET_PREFIX[q.bucket or "day"]
        args = (
            prefix,
            q.user_id,
            q.metric,
            _to_text(q.since, _MIN_TIME),
            _to_text(q.until, _MAX_TIME),
            q.limit,
        )
        rows = await self._read(lambda c: c.execute(_SELECT_BUCKETS, args).fetchall())
        return [HistoryPoint(_bucket_start(b), score) for b, _, score in rows]

    async def iter_ranked(
        self, board: str, period: str, *, chunk: int = 5000
    ) -> AsyncIterator[list[ExportRow]]:
        after: tuple[int, int, str] = (-(2**63), -1, "")
        rank = 0
        while True:
            rows = await self._read(
                functools.partial(_fetch_all, _SELECT_RANKED, (board, period, *after, chunk))
            )
            if not rows:
                return
            out = []
            for _, _, user_id, username, score, at in rows:
                rank += 1
                out.append(ExportRow(rank, user_id, username, score, _from_text(at)))
            yield out
            last = rows[-1]
            after = (last[0], last[1], last[2])
            if len(rows) < chunk:
                return

    async def iter_standings(self, board: str, period: str) -> AsyncIterator[list[Standing]]:
        """Every standing of ``board`` in ``period``, in chunks, in no order (for a rebuild)."""
        conn = self._rconn
        if conn is None:
            raise Unavailable("the store is not open")
        cursor = await self._run(
            self._reader, lambda: conn.execute(_SELECT_STANDINGS, (board, period))
        )
        try:
            while rows := await self._run(self._reader, lambda: cursor.fetchmany(_CHUNK)):
                yield [Standing(*row) for row in rows]
        finally:
            await self._run(self._reader, cursor.close)


def _fetch_all(
    statement: str, args: tuple[object, ...], conn: sqlite3.Connection
) -> list[tuple[Any, ...]]:
    return conn.execute(statement, args).fetchall()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def _maybe_text(moment: datetime | None) -> str | None:
    return None if moment is None else _text(moment)


class _Batch:
    """One batch's view: the boards each metric feeds, and each board's current period."""

    __slots__ = ("feeds", "now", "now_text", "periods")

    def __init__(self, feeds: _Feeds, now: datetime, seasons: dict[str, str]) -> None:
        self.feeds = feeds
        self.now = now
        self.now_text = _text(now)
        self.periods: dict[str, tuple[str, periods.Period]] = {}
        for boards in feeds.by_metric.values():
            for board in boards:
                if board.reset == "manual":
                    season = seasons.get(board.id)
                    if season is not None:
                        self.periods[board.id] = (season, periods.Period(season, None, None))
                else:
                    period = periods.period_at(board.reset, board.timezone, now)
                    self.periods[board.id] = (period.id, period)

    def new_periods(self, known: set[tuple[str, str]]) -> list[tuple[str, str, periods.Period]]:
        """The clock periods of this batch not yet recorded by this process (a manual
        board's seasons are recorded when they start)."""
        return [
            (board_id, period_id, period)
            for board_id, (period_id, period) in self.periods.items()
            if (board_id, period_id) not in known and not period.id.isdigit()
        ]


def _apply_one(
    conn: sqlite3.Connection, batch: _Batch, update: ScoreUpdate, fresh_id: str
) -> Applied | Exception:
    """``fresh_id``: the action id to record when the update has none."""
    user_id, delta, metric = update.user_id, update.delta, update.metric
    admin = update.source == "admin"
    boards = batch.feeds.by_metric.get(metric, ())
    if admin:  # an operator's adjustment counts on sums only
        boards = tuple(b for b in boards if b.aggregate == "sum")
    user = conn.execute(_SELECT_USER, (user_id,)).fetchone()
    if user is not None and user[1] == "banned" and not admin:
        return Banned("this user is banned: their updates are refused")
    action_id = update.action_id
    if action_id is not None:
        row = conn.execute(_SELECT_ACTION, (user_id, action_id)).fetchone()
        if row is not None:
            if row[0] != delta or row[1] != metric:
                return ActionConflict(
                    "this action_id was already used with a different score_delta or metric"
                )
            return _replayed(conn, batch, user_id, boards)
    else:
        action_id = fresh_id
    # Refusals (above, and the range check here) are decided before anything is written,
    # so a refused update leaves nothing behind in the batch's transaction.
    row = conn.execute(_SELECT_TOTAL, (user_id, metric)).fetchone()
    total = (row[0] if row else 0) + delta
    if not -MAX_SCORE <= total <= MAX_SCORE:
        return ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}")
    now = batch.now_text
    if user is None:
        username = update.username or user_id
        conn.execute(_INSERT_USER, (user_id, username, now, now))
        bit = 0
    else:
        username = user[0]
        bit = 0 if user[1] == "active" else 1
        wanted = update.username
        if wanted is not None and wanted != username and not user[2] and not admin:
            username = wanted
            conn.execute(_RENAME_USER, (username, now, user_id))
    event_id = conn.execute(
        _INSERT_EVENT, (user_id, metric, delta, action_id, now, total, update.source)
    ).lastrowid
    assert event_id is not None
    conn.execute(_SET_TOTAL, (user_id, metric, total, now))
    standings = []
    for board in boards:
        current = batch.periods.get(board.id)
        if current is None:  # a manual board without a season yet: nothing to count in
            continue
        period_id = current[0]
        key = rank_score(delta, board.order)
        args = (board.id, period_id, user_id, delta, key, event_id, now, bit)
        if board.aggregate == "sum":
            row = conn.execute(_ADD_TO_STANDING, args).fetchone()
            changed = True
        else:
            row = conn.execute(_BETTER_STANDING, args).fetchone()
            changed = row is not None
            if row is None:
                row = conn.execute(_SELECT_STANDING, (board.id, period_id, user_id)).fetchone()
        standing = Standing(user_id, username, row[0], row[1], row[2])
        standings.append(BoardStanding(board.id, period_id, standing, changed, row[3] == 0))
    return Applied(user_id, username, tuple(standings))


def _replayed(
    conn: sqlite3.Connection, batch: _Batch, user_id: str, boards: tuple[Board, ...]
) -> Applied:
    """A retry of an applied action: the user's current standings, nothing added."""
    (username,) = conn.execute(_SELECT_NAME, (user_id,)).fetchone()
    standings = []
    for board in boards:
        current = batch.periods.get(board.id)
        if current is None:
            continue
        row = conn.execute(_SELECT_STANDING, (board.id, current[0], user_id)).fetchone()
        standing = None
        if row is not None and not row[3] & 2:
            standing = Standing(user_id, username, row[0], row[1], row[2])
        shown = row is not None and row[3] == 0
        standings.append(BoardStanding(board.id, current[0], standing, False, shown))
    return Applied(user_id, username, tuple(standings), replayed=True)


def _apply_config(
    conn: sqlite3.Connection,
    *,
    config: BoardsConfig,
    expected: int,
    fill: Sequence[str],
    clock: Callable[[], datetime],
) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        now = clock()  # holding the write lock: commit order is time order
        row = conn.execute(_SELECT_CONFIG_VERSION).fetchone()
        version = 0 if row is None else int(row[0])
        if version != expected:
            raise ConfigChanged(f"the configuration is at version {version}, not {expected}")
        for board_id in fill:
            board = config.boards[board_id]
            if board.reset == "manual":
                # A manual board's seasons are stored: its open one, or a first one from now.
                row = conn.execute(
                    "SELECT period_id, starts_at FROM periods WHERE board_id = ?"
                    " AND ends_at IS NULL",
                    (board_id,),
                ).fetchone()
                if row is None:
                    conn.execute(_INSERT_PERIOD, (board_id, "1", _text(now), None))
                    row = ("1", _text(now))
                period, bounds = row[0], (row[1] or _MIN_TIME, _MAX_TIME)
            else:
                current = periods.period_at(board.reset, board.timezone, now)
                period = current.id
                starts, ends = _maybe_text(current.starts_at), _maybe_text(current.ends_at)
                conn.execute(_INSERT_PERIOD, (board_id, period, starts, ends))
                bounds = (starts or _MIN_TIME, ends or _MAX_TIME)
            _fill(conn, board, period, bounds)
        conn.execute(
            "INSERT INTO board_config (id, config, version, applied_at) VALUES (1, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET config = excluded.config,"
            " version = excluded.version, applied_at = excluded.applied_at",
            (config.to_json(), version + 1, _text(now)),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return version + 1


def _fill(conn: sqlite3.Connection, board: Board, period: str, bounds: tuple[str, str]) -> None:
    """``board``'s standings in ``period`` from the stored events in ``bounds``, replacing what
    it had (a board added back after a while away missed the events meanwhile), with versions
    that only rise."""
    conn.execute(_EMPTY_PERIOD, (board.id, period))
    sign = -1 if board.order == "desc" else 1
    select = _FILL_SUM if board.aggregate == "sum" else _FILL_BEST[board.order]
    conn.execute(select, (board.id, period, sign, board.metric, *bounds))


def _rollover(
    conn: sqlite3.Connection, *, board: Board, clock: Callable[[], datetime]
) -> tuple[periods.Period, periods.Period]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        now = clock()  # holding the write lock: commit order is time order
        row = conn.execute(
            "SELECT period_id, starts_at FROM periods WHERE board_id = ? AND ends_at IS NULL",
            (board.id,),
        ).fetchone()
        if row is None:
            current = periods.Period("1", now, None)
            conn.execute(_INSERT_PERIOD, (board.id, "1", _text(now), None))
        else:
            current = periods.Period(row[0], _maybe_time(row[1]), None)
        # Strictly after the last event committed: an event is counted in the season whose
        # time span holds it, also when looked up later (a void recomputes that season).
        last = conn.execute(
            "SELECT created_at FROM scores ORDER BY score_id DESC LIMIT 1"
        ).fetchone()
        if last is not None:
            now = max(now, _from_text(last[0]) + timedelta(microseconds=1))
        closed, opened = periods.rollover(current, now)
        conn.execute(
            "UPDATE periods SET ends_at = ? WHERE board_id = ? AND period_id = ?",
            (_text(now), board.id, closed.id),
        )
        conn.execute(_INSERT_PERIOD, (board.id, opened.id, _text(now), None))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return closed, opened


def _prune(
    conn: sqlite3.Connection, *, board: str, keep: int, clock: Callable[[], datetime]
) -> list[str]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        now = clock()  # holding the write lock: commit order is time order
        doomed = [
            row[0]
            for row in conn.execute(
                "SELECT period_id FROM periods WHERE board_id = ? AND ends_at IS NOT NULL"
                " AND ends_at <= ? ORDER BY starts_at DESC LIMIT -1 OFFSET ?",
                (board, _text(now), keep),
            ).fetchall()
        ]
        for period in doomed:
            conn.execute(
                "DELETE FROM standings WHERE board_id = ? AND period_id = ?", (board, period)
            )
            conn.execute(
                "DELETE FROM periods WHERE board_id = ? AND period_id = ?", (board, period)
            )
            drop_checkpoints(conn, board, period)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return doomed


def _periods(
    conn: sqlite3.Connection, *, board: str, limit: int, before: str | None
) -> list[PeriodSummary]:
    if before is None:
        rows = conn.execute(
            "SELECT period_id, starts_at, ends_at FROM periods WHERE board_id = ?"
            " ORDER BY starts_at DESC LIMIT ?",
            (board, limit),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT period_id, starts_at, ends_at FROM periods WHERE board_id = ?"
            " AND starts_at < (SELECT starts_at FROM periods WHERE board_id = ? AND period_id = ?)"
            " ORDER BY starts_at DESC LIMIT ?",
            (board, board, before, limit),
        ).fetchall()
    out = []
    for period_id, starts, ends in rows:
        (entries,) = conn.execute(_COUNT, (board, period_id)).fetchone()
        first = conn.execute(_SELECT_PAGE, (board, period_id, 1, 0)).fetchone()
        leader = None if first is None else RankedEntry(1, first[0], first[1], first[2])
        out.append(
            PeriodSummary(
                board, period_id, _maybe_time(starts), _maybe_time(ends), int(entries), leader
            )
        )
    return out


# -- operators (AdminStore) ------------------------------------------------------------------

_EVENT_COLUMNS = "score_id, user_id, metric, score_delta, action_id, source, created_at, voided_at"
_SELECT_EVENT = f"SELECT {_EVENT_COLUMNS} FROM scores WHERE score_id = ?"  # noqa: S608 (constant SQL)
_SELECT_EVENTS_OF = (
    f"SELECT {_EVENT_COLUMNS} FROM scores WHERE user_id = ? AND score_id < ?"  # noqa: S608 (constant SQL)
    " ORDER BY score_id DESC LIMIT ?"
)
_INSERT_AUDIT = (
    "INSERT INTO audit (at, key_name, action, target, reason, details) VALUES (?, ?, ?, ?, ?, ?)"
)
_SELECT_AUDIT = (
    "SELECT id, at, key_name, action, target, reason, details FROM audit WHERE id < ?"
    " ORDER BY id DESC LIMIT ?"
)
_KEY_COLUMNS = "name, created_at, last_used_at, revoked_at"
_RESCORE = (
    "SELECT score_id, score_delta, score_after FROM scores WHERE user_id = ? AND metric = ?"
    " AND voided_at IS NULL ORDER BY created_at, score_id"
)
_COUNTED_SUM = (
    "SELECT SUM(score_delta), MAX(score_id), MAX(created_at) FROM scores WHERE user_id = ?"
    " AND metric = ? AND voided_at IS NULL AND created_at >= ? AND created_at < ?"
)
_COUNTED_BEST = {
    order: (
        "SELECT score_delta, score_id, created_at FROM scores WHERE user_id = ? AND metric = ?"  # noqa: S608 (constant SQL)
        " AND voided_at IS NULL AND source = 'user' AND created_at >= ? AND created_at < ?"
        f" ORDER BY score_delta {order}, score_id LIMIT 1"
    )
    for order in ("desc", "asc")
}
_SET_STANDING = (
    "INSERT INTO standings (board_id, period_id, user_id, score, rank_score, reached, version,"
    " updated_at, hidden) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)"
    " ON CONFLICT (board_id, period_id, user_id) DO UPDATE SET score = excluded.score,"
    " rank_score = excluded.rank_score, reached = excluded.reached,"
    " version = standings.version + 1, updated_at = excluded.updated_at,"
    " hidden = standings.hidden & 1 RETURNING version, hidden"
)
_EMPTY_STANDING = (
    "UPDATE standings SET score = 0, rank_score = 0, reached = 0, version = version + 1,"
    " updated_at = ?, hidden = hidden | 2 WHERE board_id = ? AND period_id = ? AND user_id = ?"
    " RETURNING version, hidden"
)
# Every standing of a user, with a new version (``?``: the user's hidden bit, or -1 to keep it).
# Its time stays the time of the events that made it: an operator's action is not one of them.
_REVERSION = (
    "UPDATE standings SET version = version + 1,"
    " hidden = CASE WHEN ? < 0 THEN hidden ELSE (hidden & 2) | ? END WHERE user_id = ?"
    " RETURNING board_id, period_id, score, version, reached, hidden"
)
KEY_TOUCH_INTERVAL = timedelta(minutes=1)


def _details(details: dict[str, object] | None) -> str:
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"))


def _audit(conn: sqlite3.Connection, audit: Audit, now: str) -> None:
    conn.execute(
        _INSERT_AUDIT,
        (now, audit.key, audit.action, audit.target, audit.reason, _details(audit.details)),
    )


def _event_record(row: tuple[Any, ...]) -> EventRecord:
    event_id, user_id, metric, delta, action_id, source, at, voided = row
    return EventRecord(
        event_id, user_id, metric, delta, action_id, source, _from_text(at), voided is not None
    )


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _period_of_event(
    conn: sqlite3.Connection, board: Board, at: str
) -> tuple[str, tuple[str, str]] | None:
    """The recorded period of ``board`` that holds the instant ``at`` (stored text), with its
    bounds; ``None`` when it was deleted by ``keep`` (or precedes a manual board's seasons)."""
    if board.reset == "manual":
        row = conn.execute(
            "SELECT period_id, starts_at, ends_at FROM periods WHERE board_id = ?"
            " AND starts_at <= ? AND (ends_at IS NULL OR ends_at > ?)",
            (board.id, at, at),
        ).fetchone()
    else:
        period = periods.period_at(board.reset, board.timezone, _from_text(at))
        row = conn.execute(
            "SELECT period_id, starts_at, ends_at FROM periods WHERE board_id = ?"
            " AND period_id = ?",
            (board.id, period.id),
        ).fetchone()
    if row is None:
        return None
    return row[0], (row[1] or _MIN_TIME, row[2] or _MAX_TIME)


def _recompute(
    conn: sqlite3.Connection,
    board: Board,
    period: str,
    bounds: tuple[str, str],
    user_id: str,
    now: str,
) -> Moved | None:
    """The user's standing on ``board`` in ``period`` again, from the events that count."""
    args = (user_id, board.metric, *bounds)
    if board.aggregate == "sum":
        score, reached, at = conn.execute(_COUNTED_SUM, args).fetchone()
    else:
        best = conn.execute(_COUNTED_BEST[board.order], args).fetchone()
        score, reached, at = (None, None, None) if best is None else best
    if reached is None:  # nothing counts: the row (if any) stays, not shown
        row = conn.execute(_EMPTY_STANDING, (now, board.id, period, user_id)).fetchone()
        if row is None:
            return None
        return Moved(board.id, period, user_id, None, row[0])
    (status, username) = conn.execute(
        "SELECT status, username FROM users WHERE user_id = ?", (user_id,)
    ).fetchone()
    bit = 0 if status == "active" else 1
    key = rank_score(score, board.order)
    version, hidden = conn.execute(
        _SET_STANDING, (board.id, period, user_id, score, key, reached, at, bit)
    ).fetchone()
    shown = Standing(user_id, username, score, version, reached) if hidden == 0 else None
    return Moved(board.id, period, user_id, shown, version)


def _rescore(conn: sqlite3.Connection, user_id: str, metric: str) -> None:
    """The total after each counting event of the user's metric, and their total, again."""
    total, changed = 0, []
    for event_id, delta, after in conn.execute(_RESCORE, (user_id, metric)).fetchall():
        total += delta
        if after != total:
            changed.append((total, event_id))
    conn.executemany("UPDATE scores SET score_after = ? WHERE score_id = ?", changed)
    conn.execute(
        "UPDATE totals SET total = ? WHERE user_id = ? AND metric = ?", (total, user_id, metric)
    )


def _void(
    conn: sqlite3.Connection,
    *,
    event_id: int,
    config: BoardsConfig,
    audit: Audit,
    restore: bool,
    now: str,
    notice: Notice | None = None,
) -> Moderated:
    row = conn.execute(_SELECT_EVENT, (event_id,)).fetchone()
    if row is None:
        raise NotFound(f"there is no event {event_id}", code="unknown_event")
    event = _event_record(row)
    if event.voided != restore:
        return Moderated(False)
    if restore:
        (total,) = conn.execute(_SELECT_TOTAL, (event.user_id, event.metric)).fetchone()
        if abs(total + event.delta) > MAX_SCORE:
            raise ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}")
    conn.execute(
        "UPDATE scores SET voided_at = ? WHERE score_id = ?",
        (None if restore else now, event_id),
    )
    _rescore(conn, event.user_id, event.metric)
    moved = []
    for board in config.boards.values():
        if board.metric != event.metric:
            continue
        found = _period_of_event(conn, board, row[6])
        if found is not None:
            done = _recompute(conn, board, found[0], found[1], event.user_id, now)
            if done is not None:
                moved.append(done)
    _audit(conn, audit, now)
    if notice is not None:
        enqueue_in(conn, notice, _from_text(now))
    return Moderated(True, tuple(moved))


# Verify and repair (scoreboard.consistency): keyset walks of the ledger (by event id) and of a
# period's rows (by user id), and a recount that sets the row's hidden bit from the user's
# status (a repair must not trust the row's own bit, which is what may be wrong).
# The walk is by event id: ``+s.metric`` keeps SQLite from taking the (metric, created_at)
# index instead, which would sort the whole span again for every chunk of the walk.
_LEDGER_COLUMNS = (
    "SELECT s.score_id, s.user_id, s.score_delta, s.source, s.voided_at IS NOT NULL,"
    " u.status = 'active', s.created_at FROM scores s JOIN users u ON u.user_id = s.user_id"
    " WHERE +s.metric = ? AND s.created_at >= ? AND s.created_at < ? AND s.score_id > ?"
)
_LEDGER = _LEDGER_COLUMNS + " ORDER BY s.score_id LIMIT ?"
_LEDGER_OF = _LEDGER_COLUMNS + " AND s.user_id = ? ORDER BY s.score_id LIMIT ?"
_STORED_COLUMNS = (
    "SELECT s.user_id, u.username, s.score, s.rank_score, s.reached, s.version, s.hidden"
    " FROM standings s JOIN users u ON u.user_id = s.user_id"
    " WHERE s.board_id = ? AND s.period_id = ? AND s.user_id > ?"
)
_STORED = _STORED_COLUMNS + " ORDER BY s.user_id LIMIT ?"
_STORED_OF = _STORED_COLUMNS + " AND s.user_id = ? ORDER BY s.user_id LIMIT ?"
_RECOUNT_STANDING = (
    "INSERT INTO standings (board_id, period_id, user_id, score, rank_score, reached, version,"
    " updated_at, hidden) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)"
    " ON CONFLICT (board_id, period_id, user_id) DO UPDATE SET score = excluded.score,"
    " rank_score = excluded.rank_score, reached = excluded.reached,"
    " version = standings.version + 1, updated_at = excluded.updated_at,"
    " hidden = excluded.hidden RETURNING version"
)
_RECOUNT_EMPTY = (
    "UPDATE standings SET score = 0, rank_score = 0, reached = 0, version = version + 1,"
    " updated_at = ?, hidden = ? | 2 WHERE board_id = ? AND period_id = ? AND user_id = ?"
    " RETURNING version"
)


def _recount(
    conn: sqlite3.Connection, *, board: Board, period: str, user_ids: Sequence[str], now: str
) -> tuple[Moved, ...]:
    row = conn.execute(_SELECT_PERIOD, (board.id, period)).fetchone()
    if row is None:
        raise NotFound(f"board '{board.id}' has no period '{period}'", code="unknown_period")
    bounds = (row[0] or _MIN_TIME, row[1] or _MAX_TIME)
    moved = []
    for user_id in dict.fromkeys(user_ids):
        user = conn.execute(_SELECT_USER, (user_id,)).fetchone()
        if user is None:
            continue
        username, bit = user[0], 0 if user[1] == "active" else 1
        args = (user_id, board.metric, *bounds)
        if board.aggregate == "sum":
            score, reached, _ = conn.execute(_COUNTED_SUM, args).fetchone()
        else:
            best = conn.execute(_COUNTED_BEST[board.order], args).fetchone()
            score, reached = (None, None) if best is None else best[:2]
        if reached is None:
            done = conn.execute(_RECOUNT_EMPTY, (now, bit, board.id, period, user_id)).fetchone()
            if done is not None:
                moved.append(Moved(board.id, period, user_id, None, done[0]))
            continue
        key = rank_score(score, board.order)
        (version,) = conn.execute(
            _RECOUNT_STANDING, (board.id, period, user_id, score, key, reached, now, bit)
        ).fetchone()
        shown = Standing(user_id, username, score, version, reached) if bit == 0 else None
        moved.append(Moved(board.id, period, user_id, shown, version))
    return tuple(moved)


def _reversion(conn: sqlite3.Connection, user_id: str, bit: int) -> tuple[Moved, ...]:
    (username,) = conn.execute(_SELECT_NAME, (user_id,)).fetchone()
    moved = []
    for board, period, score, version, reached, hidden in conn.execute(
        _REVERSION, (bit, bit, user_id)
    ).fetchall():
        shown = Standing(user_id, username, score, version, reached) if hidden == 0 else None
        moved.append(Moved(board, period, user_id, shown, version))
    return tuple(moved)


def _user_row(conn: sqlite3.Connection, user_id: str) -> tuple[Any, ...]:
    row = conn.execute(_SELECT_USER, (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"there is no user '{user_id}'", code="unknown_user")
    return tuple(row)


def _set_status(
    conn: sqlite3.Connection, *, user_id: str, status: str, audit: Audit, now: str
) -> Moderated:
    _, old, _ = _user_row(conn, user_id)
    if old == status:
        return Moderated(False)
    conn.execute(
        "UPDATE users SET status = ?, updated_at = ? WHERE user_id = ?", (status, now, user_id)
    )
    moved: tuple[Moved, ...] = ()
    if (old == "active") != (status == "active"):
        moved = _reversion(conn, user_id, 0 if status == "active" else 1)
    _audit(conn, audit, now)
    return Moderated(True, moved)


def _rename(
    conn: sqlite3.Connection, *, user_id: str, username: str | None, audit: Audit, now: str
) -> Moderated:
    name, _, locked = _user_row(conn, user_id)
    if username is None:
        if not locked:
            return Moderated(False)
        conn.execute("UPDATE users SET name_locked = 0 WHERE user_id = ?", (user_id,))
        _audit(conn, audit, now)
        return Moderated(True)
    if name == username and locked:
        return Moderated(False)
    conn.execute(
        "UPDATE users SET username = ?, name_locked = 1, updated_at = ? WHERE user_id = ?",
        (username, now, user_id),
    )
    moved = _reversion(conn, user_id, -1)
    _audit(conn, audit, now)
    return Moderated(True, moved)


def _erase(
    conn: sqlite3.Connection, *, user_id: str, erased_as: str, audit: Audit, now: str
) -> list[tuple[str, str]]:
    _user_row(conn, user_id)
    pairs = erase_rows(conn, user_id, erased_as)
    _audit(conn, audit, now)
    return pairs


def erase_rows(conn: sqlite3.Connection, user_id: str, erased_as: str) -> list[tuple[str, str]]:
    """Delete every row of ``user_id`` and put ``erased_as`` for their id in the audit, in the
    caller's transaction; the ``(board, period)`` pairs they stood in. The one definition of an
    erasure's rows: the admin API's erase and ``scoreboard restore``'s re-application both run
    it."""
    pairs = [
        (b, p)
        for b, p in conn.execute(
            "SELECT board_id, period_id FROM standings WHERE user_id = ?", (user_id,)
        ).fetchall()
    ]
    tables = ("standings", "checkpoint_rows", "checkpoint_late", "totals", "scores", "users")
    for table in tables:
        conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))  # noqa: S608
    # A checkpoint's bound keeps its place without the id: no two users share (score, event).
    conn.execute("UPDATE checkpoints SET bound_user = '' WHERE bound_user = ?", (user_id,))
    forget_in(conn, user_id)
    quoted, replacement = json.dumps(user_id), json.dumps(erased_as)
    conn.execute(
        "UPDATE audit SET target = CASE WHEN target = ? THEN ? ELSE target END,"
        " details = REPLACE(details, ?, ?) WHERE target = ? OR instr(details, ?) > 0",
        (user_id, erased_as, quoted, replacement, user_id, quoted),
    )
    return pairs


def _key_of(row: tuple[Any, ...]) -> AdminKey:
    return AdminKey(row[0], _from_text(row[1]), _maybe_time(row[2]), _maybe_time(row[3]))
