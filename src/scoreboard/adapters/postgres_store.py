"""PostgreSQL score store (scaled mode): asyncpg, pooled, one statement per update.

An update is **one SQL statement**, so one round trip and one transaction (autocommit). Common
table expressions, in order: the user's row (created, or renamed when the token brings a new
name); the user's running total of the metric, ``INSERT ... ON CONFLICT DO UPDATE SET total =
totals.total + ...`` under the row's lock, which also draws the event's id from the ``scores``
sequence *after* the lock is held, and its time (this process's clock, but never before the
user's previous event of the metric, so one user's events are in time order in commit order);
the score event with that id and the total after it; then one upsert per board the metric
feeds, in the board's current period: a ``sum`` adds the delta, a ``best`` replaces the
standing only when the event sorts first (``rank_score``). Per-user totals, event ids and
standings are therefore serialized by the database in commit order, whichever process sends
them. Foreign keys are checked at the end of the statement, after the user row exists.

**The configuration and the seasons, at commit.** The statement counts the event only if the
applied configuration is still the one this process built it for (a guard on
``board_config.version``), and reads each manual board's current season itself. Applying a
configuration and rolling a season over take ``SHARE ROW EXCLUSIVE`` on ``scores``, which waits
for every update in flight and holds off new ones until they commit; a statement that waited
takes its snapshot after, so it sees the new version (and retries with it) or the new season.
Every event is counted in the configuration and season current at its commit, and its time
lies in that season: a rollover reads the clock once it holds its lock (after every update
that counts in the old season), and an event's time is never before the start of the current
season of a manual board its metric feeds (a statement that waited for the rollover had read
the clock before it).

Idempotency: a repeated ``(user_id, action_id)`` violates the unique constraint, which rolls the
*whole* statement back; a second query then tells a retry (same delta and metric: the current
standings, ``replayed``) from a conflict (``ActionConflict``). A retry landing on another
process is applied once, because the constraint is in the one database.

No group commit here: concurrent statements run on the pool's connections, and PostgreSQL
already shares one WAL flush between commits that arrive together. ``synchronous_commit`` is left
as the server sets it (on by default): a 200 means the update is on disk.

Connection failures become :class:`~scoreboard.errors.Unavailable`. If the connection breaks
after the statement was sent, the outcome is unknown to us; a client that retries with the same
``action_id`` gets it applied exactly once either way.

Every call has a deadline of ``CALL_TIMEOUT`` (1.5 s), waiting for a pool connection and
connecting included: a PostgreSQL that hangs (a network black hole, a frozen server) turns into
a 503 within it instead of requests piling up until TCP gives up. asyncpg's own
``command_timeout`` does not cover waiting for a connection, which is where such requests wait.
A call cancelled by the deadline closes its connection at once (see ``_guard``); the pool opens
new ones when the server answers again. Trade-off: a commit slower than 1.5 s (a
saturated server) is answered 503 although it may still commit; its retry is safe. The command
line's store (``bootstrap.store_of``) is built with ``call_timeout=COMMAND_CALL_TIMEOUT``: an
operator's one command waits out a busy server rather than fail in the 1.5 s a request has.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from scoreboard import periods
from scoreboard.adapters.postgres_checkpoints import PostgresCheckpoints, drop_checkpoints
from scoreboard.adapters.postgres_outbox import PostgresOutbox, enqueue_in, forget_in
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
    BUCKETS,
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
from scoreboard.periods import Period
from scoreboard.webhooks import Notice

log = logging.getLogger(__name__)

T = TypeVar("T")

POOL_MIN = 2
POOL_MAX = 16
_CHUNK = 10_000
_TIMEOUT = 10.0
CALL_TIMEOUT = 1.5
COMMAND_CALL_TIMEOUT = 30.0
_ADMIN_TIMEOUT = 60.0
"""Applying a configuration (filling new boards) and rolling over may take longer."""

_SELECT_ACTION = "SELECT score_delta, metric FROM scores WHERE user_id = $1 AND action_id = $2"
_SELECT_NAME = "SELECT username FROM users WHERE user_id = $1"
_SELECT_STANDING = (
    "SELECT score, version, reached, hidden FROM standings"
    " WHERE board_id = $1 AND period_id = $2 AND user_id = $3"
)
_SELECT_ENTRY = (
    "SELECT s.user_id, u.username, s.score, s.version, s.reached, s.updated_at"
    " FROM standings s JOIN users u ON u.user_id = s.user_id"
    " WHERE s.board_id = $1 AND s.period_id = $2 AND s.user_id = $3 AND s.hidden = 0"
)
_SELECT_PAGE = (
    "SELECT s.user_id, u.username, s.score, s.version, s.reached"
    " FROM standings s JOIN users u ON u.user_id = s.user_id"
    " WHERE s.board_id = $1 AND s.period_id = $2 AND s.hidden = 0"
    " ORDER BY s.rank_score, s.reached, s.user_id LIMIT $3 OFFSET $4"
)
_SELECT_STANDINGS = (
    "SELECT s.user_id, u.username, s.score, s.version, s.reached"
    " FROM standings s JOIN users u ON u.user_id = s.user_id"
    " WHERE s.board_id = $1 AND s.period_id = $2 AND s.user_id > $3 AND s.hidden = 0"
    " ORDER BY s.user_id LIMIT $4"
)
_SELECT_RANKED = (
    "SELECT s.rank_score, s.reached, s.user_id, u.username, s.score, e.created_at"
    " FROM standings s JOIN users u ON u.user_id = s.user_id"
    " JOIN scores e ON e.score_id = s.reached"
    " WHERE s.board_id = $1 AND s.period_id = $2 AND s.hidden = 0"
    " AND (s.rank_score, s.reached, s.user_id) > ($3, $4, $5)"
    " ORDER BY s.rank_score, s.reached, s.user_id LIMIT $6"
)
_COUNT = "SELECT COUNT(*) FROM standings WHERE board_id = $1 AND period_id = $2 AND hidden = 0"
_COUNT_AHEAD = (
    "SELECT COUNT(*) FROM standings WHERE board_id = $1 AND period_id = $2 AND hidden = 0"
    " AND (rank_score < $3 OR (rank_score = $3 AND reached < $4))"
)
_SELECT_PROFILE = (
    "SELECT user_id, username, created_at, status, name_locked FROM users WHERE user_id = $1"
)
_SELECT_HISTORY = """
SELECT score_id, created_at, score_delta, score_after, action_id FROM scores
WHERE user_id = $1 AND metric = $2 AND created_at >= $3 AND created_at < $4
  AND (created_at, score_id) > ($5, $6) AND voided_at IS NULL
ORDER BY created_at, score_id LIMIT $7
"""
# The last event of each bucket (UTC hours or days) carries the score at the end of it.
_SELECT_BUCKETS = """
SELECT DISTINCT ON (bucket) date_trunc($3, created_at AT TIME ZONE 'UTC') AS bucket, score_after
FROM scores WHERE user_id = $1 AND metric = $2 AND created_at >= $4 AND created_at < $5
  AND voided_at IS NULL
ORDER BY bucket, created_at DESC, score_id DESC LIMIT $6
"""
_SELECT_SEASONS = "SELECT board_id, period_id, starts_at FROM periods WHERE ends_at IS NULL"
_SELECT_PERIOD = "SELECT starts_at, ends_at FROM periods WHERE board_id = $1 AND period_id = $2"
_INSERT_PERIOD = (
    "INSERT INTO periods (board_id, period_id, starts_at, ends_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (board_id, period_id) DO NOTHING"
)
_SELECT_CONFIG = "SELECT config, version FROM board_config WHERE id = 1"
_SELECT_CONFIG_VERSION = "SELECT version FROM board_config WHERE id = 1"
# Held by a configuration change or a rollover: waits for the updates in flight, holds off new
# ones until commit (see the module docstring).
_HOLD_UPDATES = "LOCK TABLE scores IN SHARE ROW EXCLUSIVE MODE"
# Filling a board's period from the events that count (see the SQLite store's fill: the same
# rules): rows the period had are marked empty first, then replaced with higher versions.
_EMPTY_PERIOD = (
    "UPDATE standings SET hidden = hidden | 2, version = version + 1"
    " WHERE board_id = $1 AND period_id = $2"
)
_UPSERT_FILLED = """
ON CONFLICT (board_id, period_id, user_id) DO UPDATE SET score = EXCLUDED.score,
    rank_score = EXCLUDED.rank_score, reached = EXCLUDED.reached,
    version = standings.version + 1, updated_at = EXCLUDED.updated_at,
    hidden = standings.hidden & 1
"""
_FILL_SUM = (
    """
INSERT INTO standings (board_id, period_id, user_id, score, rank_score, reached, version,
                       updated_at, hidden)
SELECT $1, $2, s.user_id, SUM(s.score_delta), $3 * SUM(s.score_delta), MAX(s.score_id),
       COUNT(*), MAX(s.created_at), MAX(CASE WHEN u.status = 'active' THEN 0 ELSE 1 END)
FROM scores s JOIN users u ON u.user_id = s.user_id
WHERE s.metric = $4 AND s.created_at >= $5 AND s.created_at < $6 AND s.voided_at IS NULL
GROUP BY s.user_id"""
    + _UPSERT_FILLED
)
_FILL_BEST = (
    """
INSERT INTO standings (board_id, period_id, user_id, score, rank_score, reached, version,
                       updated_at, hidden)
SELECT DISTINCT ON (s.user_id) $1, $2, s.user_id, s.score_delta, $3 * s.score_delta,
       s.score_id, 1, s.created_at, CASE WHEN u.status = 'active' THEN 0 ELSE 1 END
FROM scores s JOIN users u ON u.user_id = s.user_id
WHERE s.metric = $4 AND s.created_at >= $5 AND s.created_at < $6 AND s.voided_at IS NULL
  AND s.source = 'user'
ORDER BY s.user_id, $3 * s.score_delta, s.score_id"""
    + _UPSERT_FILLED
)
_MIN_TIME = datetime(1, 1, 1, tzinfo=UTC)
_MAX_TIME = datetime(9999, 12, 31, tzinfo=UTC)

# The update statement's fixed part; $1 user, $2 delta, $3 action, $4 name, $5 now, $6 metric,
# $7 configuration version; then the boards' upserts (see _statement). The guard also refuses a
# banned user's update ({ban}; not an operator's adjustment). ``hb``: the user's hidden bit, for
# the standings the event creates (moderation holds updates off while it changes it). {at} is
# the event's time before the user's own order: $5, or no earlier than the start of the manual
# boards' seasons.
_UPDATE_HEAD = """
WITH guard AS (SELECT 1 FROM board_config WHERE id = 1 AND version = $7::integer{ban}),
hb AS (SELECT CASE WHEN status = 'active' THEN 0 ELSE 1 END AS bit FROM users
       WHERE user_id = $1::varchar),
u AS (
    INSERT INTO users AS u (user_id, username, created_at, updated_at)
    SELECT $1::varchar, COALESCE($4::varchar, $1::varchar), $5::timestamptz, $5::timestamptz
    FROM guard
    ON CONFLICT (user_id) DO UPDATE SET username = EXCLUDED.username,
        updated_at = EXCLUDED.updated_at
    WHERE $4::varchar IS NOT NULL AND u.username <> $4::varchar AND NOT u.name_locked
    RETURNING username
),
t AS (
    INSERT INTO totals AS t (user_id, metric, total, last_at)
    SELECT $1::varchar, $6::varchar, $2::bigint, {at} FROM guard
    ON CONFLICT (user_id, metric) DO UPDATE SET total = t.total + EXCLUDED.total,
        last_at = GREATEST(EXCLUDED.last_at, t.last_at + interval '1 microsecond')
    RETURNING total, last_at, nextval('scores_score_id_seq') AS event_id
),
ev AS (
    INSERT INTO scores (score_id, user_id, metric, score_delta, action_id, created_at,
                        score_after, source)
    SELECT event_id, $1, $6, $2, $3, last_at, total, '{source}' FROM t
    RETURNING score_id
)"""
_NOT_BANNED = (
    " AND NOT EXISTS (SELECT 1 FROM users WHERE user_id = $1::varchar AND status = 'banned')"
)
_BIT = "COALESCE((SELECT bit FROM hb), 0)::smallint"
_SUM = """,
s{i} AS (
    INSERT INTO standings AS s (board_id, period_id, user_id, score, rank_score, reached,
                                version, updated_at, hidden)
    SELECT ${b}::varchar, {period}, $1, $2, ${sign}::bigint * $2, event_id, 1, last_at, {bit}
    FROM t
    ON CONFLICT (board_id, period_id, user_id) DO UPDATE SET score = s.score + EXCLUDED.score,
        rank_score = s.rank_score + EXCLUDED.rank_score, reached = EXCLUDED.reached,
        version = s.version + 1, updated_at = EXCLUDED.updated_at, hidden = s.hidden & 1
    RETURNING period_id, score, version, reached, hidden
)"""
_BEST = """,
s{i} AS (
    INSERT INTO standings AS s (board_id, period_id, user_id, score, rank_score, reached,
                                version, updated_at, hidden)
    SELECT ${b}::varchar, {period}, $1, $2, ${sign}::bigint * $2, event_id, 1, last_at, {bit}
    FROM t
    ON CONFLICT (board_id, period_id, user_id) DO UPDATE SET score = EXCLUDED.score,
        rank_score = EXCLUDED.rank_score, reached = EXCLUDED.reached,
        version = s.version + 1, updated_at = EXCLUDED.updated_at, hidden = s.hidden & 1
    WHERE EXCLUDED.rank_score < s.rank_score OR s.hidden & 2 = 2
    RETURNING period_id, score, version, reached, hidden
)"""
_FROM_UPSERT = "(SELECT {column} FROM s{i})"
_SEASON = "(SELECT period_id FROM periods WHERE board_id = ${b}::varchar AND ends_at IS NULL)"
_AFTER_SEASONS = (
    "GREATEST($5::timestamptz, (SELECT MAX(starts_at) FROM periods"
    " WHERE ends_at IS NULL AND board_id IN ({boards})))"
)


def _statement(boards: tuple[Board, ...], *, admin: bool = False) -> str:
    """The update statement for a metric feeding ``boards``: per board ``i`` two parameters,
    its id and its rank sign, and for a clock-reset board a third, its current period.
    ``admin``: an operator's adjustment (recorded as such, applied to a banned user too)."""
    parts = [""]
    manual = []
    selects = [
        "(SELECT score_id FROM ev)",
        "COALESCE((SELECT username FROM u), (SELECT username FROM users WHERE user_id = $1))",
    ]
    n = 8
    for i, board in enumerate(boards):
        b, sign = n, n + 1
        n += 2
        if board.reset == "manual":
            period = _SEASON.format(b=b)
            manual.append(f"${b}::varchar")
        else:
            period = f"${n}::varchar"
            n += 1
        template = _SUM if board.aggregate == "sum" else _BEST
        parts.append(template.format(i=i, b=b, sign=sign, period=period, bit=_BIT))
        selects.append(period)
        columns = ("score", "version", "reached", "hidden")
        selects += [_FROM_UPSERT.format(column=c, i=i) for c in columns]
    at = _AFTER_SEASONS.format(boards=", ".join(manual)) if manual else "$5::timestamptz"
    head = _UPDATE_HEAD.replace("{at}", at).replace("{ban}", "" if admin else _NOT_BANNED)
    parts[0] = head.replace("{source}", "admin" if admin else "user")
    parts.append("\nSELECT " + ", ".join(selects))
    return "".join(parts)


# What a lost or refused connection looks like from asyncpg; anything else is a bug (500).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
    # A connection whose session the server ended while it sat idle in the pool (an admin's
    # pg_terminate_backend) can fail the next statement with this before anything is sent.
    asyncpg.InternalClientError,
)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool release hook. asyncpg's default sends ``RESET ALL; UNLISTEN *; ...`` on every
    release, a second round trip per update (about 20% of an update's CPU when measured). Our
    statements change no session state (no SET, LISTEN, advisory lock or open cursor), so there
    is nothing to reset."""
    return None


async def _fetchrow(
    statement: str, params: Sequence[object], connection: PoolConnectionProxy[asyncpg.Record]
) -> asyncpg.Record | None:
    return await connection.fetchrow(statement, *params)


async def _fetch(
    statement: str, params: Sequence[object], connection: PoolConnectionProxy[asyncpg.Record]
) -> list[asyncpg.Record]:
    return await connection.fetch(statement, *params)


def _standing(row: asyncpg.Record) -> Standing:
    return Standing(row[0], row[1], row[2], row[3], row[4])


def _time(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def _closed(connection: PoolConnectionProxy[asyncpg.Record]) -> bool:
    """Whether ``connection`` is closed. A connection that closes (terminated at the deadline,
    or by the server) detaches its proxy and goes back to the pool by itself, after which
    every method of the proxy, ``is_closed`` included, raises ``InterfaceError``."""
    try:
        return connection.is_closed()
    except asyncpg.InterfaceError:
        return True


class PostgresScoreStore(PostgresCheckpoints, PostgresOutbox):
    """``dsn`` is our ``postgresql://USER@HOST:PORT/DB`` URL, which asyncpg takes as it is."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = POOL_MIN,
        max_size: int = POOL_MAX,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        """``clock``: an update's commit time (its ``created_at`` and the period it counts in;
        this process's clock, so that the two always agree). ``call_timeout``: the deadline of
        each call (see the module docstring)."""
        self.dsn = dsn
        self.call_timeout = call_timeout
        self.min_size = min_size
        self.max_size = max_size
        self._clock = clock
        self._pool: asyncpg.Pool | None = None
        self._config: BoardsConfig | None = None
        self._version = 0
        self._feeds: dict[tuple[str, str], tuple[tuple[Board, ...], str]] = {}
        """By (metric, source): the boards an event feeds and the statement that applies it."""
        self._known_periods: set[tuple[str, str]] = set()
        self._releasing: set[asyncio.Task[None]] = set()
        """Terminated connections on their way back to the pool (see ``_guard``)."""

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self.min_size,
                max_size=self.max_size,
                command_timeout=_TIMEOUT,
                timeout=_TIMEOUT,
                reset=_keep_session,
            )
        except _UNAVAILABLE as exc:
            raise Unavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise Unavailable("the store is not open")
        return self._pool

    async def _guard(
        self,
        use: Callable[[PoolConnectionProxy[asyncpg.Record]], Awaitable[T]],
        *,
        deadline: float | None = None,
    ) -> T:
        """Run ``use`` on a pool connection within ``deadline`` (``call_timeout`` if None);
        connection failures and the deadline become ``Unavailable``.

        At the deadline the connection is closed as well as the call cancelled, and a closed
        or cancelled connection goes back to the pool in the background. Cancelling alone is
        delivered once, and what runs after it can wait on the hung server with no deadline
        at all: a transaction block's ROLLBACK, or asyncpg's release, which waits for the
        cancel request it sends on a *new* connection (up to ``command_timeout``). Both hung
        an update for 10 s under a black hole before this."""
        loop = asyncio.get_running_loop()
        try:
            limit = self.call_timeout if deadline is None else max(deadline, self.call_timeout)
            async with asyncio.timeout(limit) as scope:
                connection = await self.pool.acquire()
                cut = loop.call_at(scope.when() or loop.time(), connection.terminate)
                try:
                    result = await use(connection)
                except BaseException as exc:
                    cut.cancel()
                    if _closed(connection) or isinstance(
                        exc, (asyncio.CancelledError, asyncpg.InternalClientError)
                    ):
                        with contextlib.suppress(asyncpg.InterfaceError):
                            connection.terminate()  # never hand a broken connection on
                        self._release_later(connection)
                    else:
                        await self.pool.release(connection)
                    raise
                cut.cancel()
                await self.pool.release(connection)
                return result
        except _UNAVAILABLE as exc:
            log.error("postgresql call failed: %s: %s", type(exc).__name__, exc)
            raise Unavailable("the score store is unavailable, try again shortly") from exc

    def _release_later(self, connection: PoolConnectionProxy[asyncpg.Record]) -> None:
        async def release() -> None:
            try:
                await self.pool.release(connection)
            except Exception as exc:  # the pool closed meanwhile: nothing left to give back
                log.debug("releasing a terminated connection failed: %s", exc)

        task = asyncio.get_running_loop().create_task(release())
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    # -- the board configuration ------------------------------------------------------------

    async def load_config(self) -> tuple[BoardsConfig | None, int]:
        row = await self._guard(lambda c: c.fetchrow(_SELECT_CONFIG))
        config = None if row is None else BoardsConfig.from_json(row[0])
        version = 0 if row is None else int(row[1])
        feeds: dict[tuple[str, str], tuple[tuple[Board, ...], str]] = {}
        if config is not None:
            for metric in config.metrics:
                boards = tuple(b for b in config.boards.values() if b.metric == metric)
                feeds[(metric, "user")] = (boards, _statement(boards))
                sums = tuple(b for b in boards if b.aggregate == "sum")  # an adjustment's
                feeds[(metric, "admin")] = (sums, _statement(sums, admin=True))
        self._config, self._version, self._feeds = config, version, feeds
        return config, version

    async def config_version(self) -> int:
        version = await self._guard(lambda c: c.fetchval(_SELECT_CONFIG_VERSION))
        return 0 if version is None else int(version)

    async def apply_config(
        self, config: BoardsConfig, *, expected_version: int, fill: Sequence[str]
    ) -> int:
        async def apply(connection: PoolConnectionProxy[asyncpg.Record]) -> int:
            async with connection.transaction():
                await connection.execute(_HOLD_UPDATES)
                now = self._clock()  # as in rollover: after the updates counted without it
                version = await connection.fetchval(_SELECT_CONFIG_VERSION) or 0
                if version != expected_version:
                    raise ConfigChanged(
                        f"the configuration is at version {version}, not {expected_version}"
                    )
                for board_id in fill:
                    await _fill(connection, config.boards[board_id], now)
                await connection.execute(
                    "INSERT INTO board_config (id, config, version, applied_at)"
                    " VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET"
                    " config = EXCLUDED.config, version = EXCLUDED.version,"
                    " applied_at = EXCLUDED.applied_at",
                    config.to_json(),
                    version + 1,
                    now,
                )
                return int(version) + 1

        return await self._guard(apply, deadline=_ADMIN_TIMEOUT)

    # -- manual seasons and periods ---------------------------------------------------------

    async def seasons(self) -> dict[str, Period]:
        rows = await self._guard(lambda c: c.fetch(_SELECT_SEASONS))
        return {r[0]: Period(r[1], _time(r[2]), None) for r in rows}

    async def rollover(self, board: Board) -> tuple[Period, Period]:
        async def roll(connection: PoolConnectionProxy[asyncpg.Record]) -> tuple[Period, Period]:
            async with connection.transaction():
                await connection.execute(_HOLD_UPDATES)
                # Read once every update counting in the closing season has committed.
                now = self._clock()
                row = await connection.fetchrow(
                    "SELECT period_id, starts_at FROM periods WHERE board_id = $1"
                    " AND ends_at IS NULL",
                    board.id,
                )
                if row is None:
                    current = Period(periods.FIRST_SEASON, now, None)
                    await connection.execute(_INSERT_PERIOD, board.id, current.id, now, None)
                else:
                    current = Period(row[0], _time(row[1]), None)
                # Strictly after the last event committed (updates are held off): an event is
                # counted in the season whose time span holds it, also when looked up later.
                last = await connection.fetchval("SELECT MAX(last_at) FROM totals")
                at = now if last is None else max(now, last + timedelta(microseconds=1))
                closed, opened = periods.rollover(current, at)
                await connection.execute(
                    "UPDATE periods SET ends_at = $3 WHERE board_id = $1 AND period_id = $2",
                    board.id,
                    closed.id,
                    at,
                )
                await connection.execute(_INSERT_PERIOD, board.id, opened.id, at, None)
                return closed, opened

        return await self._guard(roll, deadline=_ADMIN_TIMEOUT)

    async def start_period(self, board: str, period: Period) -> None:
        if (board, period.id) in self._known_periods:
            return
        await self._guard(
            lambda c: c.execute(_INSERT_PERIOD, board, period.id, period.starts_at, period.ends_at)
        )
        self._known_periods.add((board, period.id))

    async def period(self, board: str, period_id: str) -> Period | None:
        row = await self._guard(lambda c: c.fetchrow(_SELECT_PERIOD, board, period_id))
        return None if row is None else Period(period_id, _time(row[0]), _time(row[1]))

    async def periods(
        self, board: str, *, limit: int, before: str | None = None
    ) -> list[PeriodSummary]:
        async def read(connection: PoolConnectionProxy[asyncpg.Record]) -> list[PeriodSummary]:
            if before is None:
                rows = await connection.fetch(
                    "SELECT period_id, starts_at, ends_at FROM periods WHERE board_id = $1"
                    " ORDER BY starts_at DESC NULLS LAST LIMIT $2",
                    board,
                    limit,
                )
            else:
                rows = await connection.fetch(
                    "SELECT period_id, starts_at, ends_at FROM periods WHERE board_id = $1"
                    " AND starts_at < (SELECT starts_at FROM periods WHERE board_id = $1"
                    " AND period_id = $2) ORDER BY starts_at DESC LIMIT $3",
                    board,
                    before,
                    limit,
                )
            out = []
            for period_id, starts, ends in rows:
                entries = await connection.fetchval(_COUNT, board, period_id)
                first = await connection.fetchrow(_SELECT_PAGE, board, period_id, 1, 0)
                leader = None if first is None else RankedEntry(1, first[0], first[1], first[2])
                out.append(
                    PeriodSummary(
                        board, period_id, _time(starts), _time(ends), int(entries), leader
                    )
                )
            return out

        return await self._guard(read)

    async def prune(self, board: str, keep: int) -> list[str]:
        now = self._clock()

        async def prune(connection: PoolConnectionProxy[asyncpg.Record]) -> list[str]:
            async with connection.transaction():
                rows = await connection.fetch(
                    "SELECT period_id FROM periods WHERE board_id = $1 AND ends_at IS NOT NULL"
                    " AND ends_at <= $2 ORDER BY starts_at DESC OFFSET $3",
                    board,
                    now,
                    keep,
                )
                doomed = [r[0] for r in rows]
                await connection.execute(
                    "DELETE FROM standings WHERE board_id = $1 AND period_id = ANY($2)",
                    board,
                    doomed,
                )
                await connection.execute(
                    "DELETE FROM periods WHERE board_id = $1 AND period_id = ANY($2)",
                    board,
                    doomed,
                )
                await drop_checkpoints(connection, board, doomed)
                return doomed

        return await self._guard(prune, deadline=_ADMIN_TIMEOUT)

    # -- updates ----------------------------------------------------------------------------

    def _params(
        self, update: ScoreUpdate, action_id: str, now: datetime, boards: tuple[Board, ...]
    ) -> list[object]:
        params: list[object] = [
            update.user_id,
            update.delta,
            action_id,
            update.username,
            now,
            update.metric,
            self._version,
        ]
        for board in boards:
            params += [board.id, -1 if board.order == "desc" else 1]
            if board.reset != "manual":
                params.append(periods.period_at(board.reset, board.timezone, now).id)
        return params

    async def apply(self, update: ScoreUpdate) -> Applied:
        action_id = update.action_id or uuid.uuid4().hex
        for _ in range(3):  # a configuration applied meanwhile: once more with it
            boards, statement = self._feeds.get((update.metric, update.source), ((), ""))
            if not statement:
                boards, statement = (), _statement((), admin=update.source == "admin")
            now = self._clock()
            for board in boards:  # a period seen first: recorded before anything counts in it
                if board.reset != "manual":
                    await self.start_period(
                        board.id, periods.period_at(board.reset, board.timezone, now)
                    )
            params = self._params(update, action_id, now, boards)
            try:
                row = await self._guard(functools.partial(_fetchrow, statement, params))
            except asyncpg.UniqueViolationError:
                break  # the event was there already: a retry, or the action with another delta
            except asyncpg.CheckViolationError:  # ck_totals_range, ck_standings_range
                raise ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}") from None
            assert row is not None
            if row[0] is None:  # the guard: another configuration is applied, or a ban
                if await self._banned(update.user_id):
                    raise Banned("this user is banned: their updates are refused")
                await self.load_config()
                continue
            return await self._applied(update, row, boards)
        else:
            raise Unavailable("the boards configuration keeps changing; try again")
        found = await self._guard(lambda c: c.fetchrow(_SELECT_ACTION, update.user_id, action_id))
        if found is None or found[0] != update.delta or found[1] != update.metric:
            raise ActionConflict(
                "this action_id was already used with a different score_delta or metric"
            )
        if update.source != "admin" and await self._banned(update.user_id):
            raise Banned("this user is banned: their updates are refused")
        return await self._replayed(update.user_id, update.metric, update.source)

    async def _banned(self, user_id: str) -> bool:
        status = await self._guard(
            lambda c: c.fetchval("SELECT status FROM users WHERE user_id = $1", user_id)
        )
        return bool(status == "banned")

    async def _applied(
        self, update: ScoreUpdate, row: asyncpg.Record, boards: tuple[Board, ...]
    ) -> Applied:
        username = row[1]
        if username is None:
            # The user row was created by a statement that committed after this one's snapshot
            # (two first updates of one user at once): read it now.
            username = await self._guard(lambda c: c.fetchval(_SELECT_NAME, update.user_id))
        moved = []
        for i, board in enumerate(boards):
            period, score, version, reached, hidden = row[2 + 5 * i : 7 + 5 * i]
            if score is None:  # a best board the event did not better: as it stands
                current = await self._guard(
                    functools.partial(
                        _fetchrow, _SELECT_STANDING, [board.id, period, update.user_id]
                    )
                )
                assert current is not None
                score, version, reached, hidden = current
                changed = False
            else:
                changed = True
            standing = Standing(update.user_id, username, score, version, reached)
            moved.append(BoardStanding(board.id, period, standing, changed, hidden == 0))
        return Applied(update.user_id, username, tuple(moved))

    async def _replayed(self, user_id: str, metric: str, source: str) -> Applied:
        boards, _ = self._feeds.get((metric, source), ((), ""))
        now = self._clock()
        seasons = await self.seasons() if any(b.reset == "manual" for b in boards) else {}

        async def read(connection: PoolConnectionProxy[asyncpg.Record]) -> Applied:
            username = await connection.fetchval(_SELECT_NAME, user_id)
            moved = []
            for board in boards:
                if board.reset == "manual":
                    season = seasons.get(board.id)
                    if season is None:
                        continue
                    period = season.id
                else:
                    period = periods.period_at(board.reset, board.timezone, now).id
                row = await connection.fetchrow(_SELECT_STANDING, board.id, period, user_id)
                standing = None
                if row is not None and not row[3] & 2:
                    standing = Standing(user_id, username, *row[:3])
                shown = row is not None and row[3] == 0
                moved.append(BoardStanding(board.id, period, standing, False, shown))
            return Applied(user_id, username, tuple(moved), replayed=True)

        return await self._guard(read)

    async def action_delta(self, user_id: str, action_id: str) -> int | None:
        row = await self._guard(lambda c: c.fetchrow(_SELECT_ACTION, user_id, action_id))
        return None if row is None else int(row[0])

    async def profile(self, user_id: str) -> UserProfile | None:
        row = await self._guard(lambda c: c.fetchrow(_SELECT_PROFILE, user_id))
        if row is None:
            return None
        return UserProfile(row[0], row[1], row[2].astimezone(UTC), row[3], bool(row[4]))

    # -- standings --------------------------------------------------------------------------

    async def entry(self, board: str, period: str, user_id: str) -> Entry | None:
        row = await self._guard(lambda c: c.fetchrow(_SELECT_ENTRY, board, period, user_id))
        return None if row is None else Entry(_standing(row), row[5].astimezone(UTC))

    async def rank_of(self, board: str, period: str, order: str, standing: Standing) -> int:
        key = rank_score(standing.score, order)
        above = await self._guard(
            lambda c: c.fetchval(_COUNT_AHEAD, board, period, key, standing.reached)
        )
        return int(above) + 1

    async def page(self, board: str, period: str, offset: int, limit: int) -> list[Standing]:
        rows = await self._guard(lambda c: c.fetch(_SELECT_PAGE, board, period, limit, offset))
        return [_standing(r) for r in rows]

    async def count(self, board: str, period: str) -> int:
        return int(await self._guard(lambda c: c.fetchval(_COUNT, board, period)))

    async def has_data(self, board: str) -> bool:
        row = await self._guard(
            lambda c: c.fetchrow("SELECT 1 FROM standings WHERE board_id = $1 LIMIT 1", board)
        )
        return row is not None

    async def iter_ranked(
        self, board: str, period: str, *, chunk: int = 5000
    ) -> AsyncIterator[list[ExportRow]]:
        after: tuple[int, int, str] = (-(2**63), -1, "")
        rank = 0
        while True:
            rows = await self._guard(
                functools.partial(_fetch, _SELECT_RANKED, [board, period, *after, chunk])
            )
            if not rows:
                return
            out = []
            for row in rows:
                rank += 1
                out.append(ExportRow(rank, row[2], row[3], row[4], row[5].astimezone(UTC)))
            yield out
            after = (rows[-1][0], rows[-1][1], rows[-1][2])
            if len(rows) < chunk:
                return

    async def iter_standings(self, board: str, period: str) -> AsyncIterator[list[Standing]]:
        # Keyset pages rather than one long cursor: no transaction stays open during a rebuild,
        # and a standing that changes meanwhile reaches the index through its own versioned
        # write.
        after = ""
        while True:
            rows = await self._guard(
                functools.partial(_fetch, _SELECT_STANDINGS, [board, period, after, _CHUNK])
            )
            if not rows:
                return
            yield [_standing(row) for row in rows]
            if len(rows) < _CHUNK:
                return
            after = rows[-1][0]

    # -- history ----------------------------------------------------------------------------

    async def history(self, q: HistoryQuery) -> list[ScoreEvent]:
        after_at, after_id = q.after if q.after is not None else (_MIN_TIME, 0)
        rows = await self._guard(
            lambda c: c.fetch(
                _SELECT_HISTORY,
                q.user_id,
                q.metric,
                q.since or _MIN_TIME,
                q.until or _MAX_TIME,
                after_at,
                after_id,
                q.limit,
            )
        )
        return [ScoreEvent(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def history_buckets(self, q: HistoryQuery) -> list[HistoryPoint]:
        bucket = q.bucket or "day"
        if bucket not in BUCKETS:
            raise ValueError(f"unknown bucket {bucket!r}")
        rows = await self._guard(
            lambda c: c.fetch(
                _SELECT_BUCKETS,
                q.user_id,
                q.metric,
                bucket,
                q.since or _MIN_TIME,
                q.until or _MAX_TIME,
                q.limit,
            )
        )
        return [HistoryPoint(r[0].replace(tzinfo=UTC), r[1]) for r in rows]

    # -- operators (AdminStore) -------------------------------------------------------------
    # Each action is one transaction that first holds updates off (_HOLD_UPDATES, as a
    # configuration change does): an update of the user waits for it, and sees its result.

    async def _admin(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        async def run(connection: Connection) -> T:
            async with connection.transaction():
                await connection.execute(_HOLD_UPDATES)
                return await fn(connection)

        return await self._guard(run, deadline=_ADMIN_TIMEOUT)

    async def events_of(
        self, user_id: str, *, limit: int, before: int | None = None
    ) -> list[EventRecord]:
        rows = await self._guard(
            lambda c: c.fetch(
                _SELECT_EVENTS_OF, user_id, 2**63 - 1 if before is None else before, limit
            )
        )
        return [_event_record(r) for r in rows]

    async def event(self, event_id: int) -> EventRecord | None:
        row = await self._guard(lambda c: c.fetchrow(_SELECT_EVENT, event_id))
        return None if row is None else _event_record(row)

    async def standing_of(
        self, board: str, period: str, user_id: str
    ) -> tuple[Standing, bool] | None:
        row = await self._guard(
            lambda c: c.fetchrow(
                "SELECT u.username, s.score, s.version, s.reached, s.hidden FROM standings s"
                " JOIN users u ON u.user_id = s.user_id"
                " WHERE s.board_id = $1 AND s.period_id = $2 AND s.user_id = $3",
                board,
                period,
                user_id,
            )
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
        now = self._clock()

        async def void(c: Connection) -> Moderated:
            row = await c.fetchrow(_SELECT_EVENT + " FOR UPDATE", event_id)
            if row is None:
                raise NotFound(f"there is no event {event_id}", code="unknown_event")
            event = _event_record(row)
            if event.voided != restore:
                return Moderated(False)
            if restore:
                total = await c.fetchval(_SELECT_TOTAL, event.user_id, event.metric)
                if abs(total + event.delta) > MAX_SCORE:
                    raise ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}")
            await c.execute(
                "UPDATE scores SET voided_at = $2 WHERE score_id = $1",
                event_id,
                None if restore else now,
            )
            await _rescore(c, event.user_id, event.metric)
            moved = []
            for board in config.boards.values():
                if board.metric != event.metric:
                    continue
                found = await _period_of_event(c, board, event.at)
                if found is not None:
                    done = await _recompute(c, board, *found, event.user_id, now)
                    if done is not None:
                        moved.append(done)
            await _audit(c, audit, now)
            if notice is not None:
                await enqueue_in(c, notice, now)
            return Moderated(True, tuple(moved))

        return await self._admin(void)

    async def set_status(
        self, user_id: str, status: str, config: BoardsConfig, audit: Audit
    ) -> Moderated:
        now = self._clock()

        async def set_status(c: Connection) -> Moderated:
            _, old, _ = await _user_row(c, user_id)
            if old == status:
                return Moderated(False)
            await c.execute(
                "UPDATE users SET status = $2, updated_at = $3 WHERE user_id = $1",
                user_id,
                status,
                now,
            )
            moved: tuple[Moved, ...] = ()
            if (old == "active") != (status == "active"):
                moved = await _reversion(c, user_id, 0 if status == "active" else 1)
            await _audit(c, audit, now)
            return Moderated(True, moved)

        return await self._admin(set_status)

    async def rename(self, user_id: str, username: str | None, audit: Audit) -> Moderated:
        now = self._clock()

        async def rename(c: Connection) -> Moderated:
            name, _, locked = await _user_row(c, user_id)
            if username is None:
                if not locked:
                    return Moderated(False)
                await c.execute("UPDATE users SET name_locked = false WHERE user_id = $1", user_id)
                await _audit(c, audit, now)
                return Moderated(True)
            if name == username and locked:
                return Moderated(False)
            await c.execute(
                "UPDATE users SET username = $2, name_locked = true, updated_at = $3"
                " WHERE user_id = $1",
                user_id,
                username,
                now,
            )
            moved = await _reversion(c, user_id, -1)
            await _audit(c, audit, now)
            return Moderated(True, moved)

        return await self._admin(rename)

    async def adjust(self, update: ScoreUpdate, audit: Audit) -> Applied:
        """The adjustment's statement, then its audit row; the audit's insert keyed on the
        event's action, so a retried adjustment is recorded once."""
        applied = await self.apply(replace(update, source="admin"))
        if not applied.replayed:
            await self._guard(lambda c: _audit(c, audit, self._clock()))
        return applied

    async def erase(self, user_id: str, erased_as: str, audit: Audit) -> list[tuple[str, str]]:
        now = self._clock()

        async def erase(c: Connection) -> list[tuple[str, str]]:
            await _user_row(c, user_id)
            rows = await c.fetch(
                "SELECT board_id, period_id FROM standings WHERE user_id = $1", user_id
            )
            tables = ("standings", "checkpoint_rows", "checkpoint_late", "totals", "scores")
            for table in (*tables, "users"):
                await c.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)  # noqa: S608
            # A checkpoint's bound keeps its place without the id (see sqlite_store.erase_rows).
            await c.execute("UPDATE checkpoints SET bound_user = '' WHERE bound_user = $1", user_id)
            await forget_in(c, user_id)
            quoted, replacement = json.dumps(user_id), json.dumps(erased_as)
            await c.execute(
                "UPDATE audit SET target = CASE WHEN target = $1 THEN $2 ELSE target END,"
                " details = REPLACE(details, $3, $4)"
                " WHERE target = $1 OR strpos(details, $3) > 0",
                user_id,
                erased_as,
                quoted,
                replacement,
            )
            await _audit(c, audit, now)
            return [(r[0], r[1]) for r in rows]

        return await self._admin(erase)

    # -- verify and repair ------------------------------------------------------------------

    async def ledger(
        self,
        metric: str,
        since: datetime | None,
        until: datetime | None,
        *,
        user_id: str | None = None,
    ) -> AsyncIterator[list[LedgerEvent]]:
        statement = _LEDGER if user_id is None else _LEDGER_OF
        mine = [] if user_id is None else [user_id]
        after = 0
        while True:
            args = [metric, since or _MIN_TIME, until or _MAX_TIME, after, _CHUNK, *mine]
            rows = await self._guard(functools.partial(_fetch, statement, args))
            if not rows:
                return
            yield [LedgerEvent(*row) for row in rows]
            if len(rows) < _CHUNK:
                return
            after = rows[-1][0]

    async def stored(
        self, board: str, period: str, *, user_id: str | None = None
    ) -> AsyncIterator[list[StoredRow]]:
        statement = _STORED if user_id is None else _STORED_OF
        mine = [] if user_id is None else [user_id]
        after = ""
        while True:
            args = [board, period, after, _CHUNK, *mine]
            rows = await self._guard(functools.partial(_fetch, statement, args))
            if not rows:
                return
            yield [StoredRow(*row) for row in rows]
            if len(rows) < _CHUNK:
                return
            after = rows[-1][0]

    async def recount(
        self, board: Board, period: str, user_ids: Sequence[str]
    ) -> tuple[Moved, ...]:
        now = self._clock()

        async def recount(c: Connection) -> tuple[Moved, ...]:
            row = await c.fetchrow(_SELECT_PERIOD, board.id, period)
            if row is None:
                raise NotFound(
                    f"board '{board.id}' has no period '{period}'", code="unknown_period"
                )
            since, until = row[0] or _MIN_TIME, row[1] or _MAX_TIME
            moved = []
            for user_id in dict.fromkeys(user_ids):
                done = await _recount(c, board, period, since, until, user_id, now)
                if done is not None:
                    moved.append(done)
            return tuple(moved)

        return await self._admin(recount)

    async def audit_page(self, *, limit: int, before: int | None = None) -> list[AuditEntry]:
        rows = await self._guard(
            lambda c: c.fetch(_SELECT_AUDIT, 2**63 - 1 if before is None else before, limit)
        )
        return [
            AuditEntry(r[0], r[1].astimezone(UTC), r[2], r[3], r[4], r[5], json.loads(r[6]))
            for r in rows
        ]

    async def record(self, audit: Audit) -> None:
        now = self._clock()
        await self._guard(lambda c: _audit(c, audit, now))

    async def _audit_in(self, c: Connection, audit: Audit) -> None:
        await _audit(c, audit, self._clock())

    async def add_key(self, name: str, key_hash: str) -> None:
        now = self._clock()
        try:
            await self._guard(
                lambda c: c.execute(
                    "INSERT INTO admin_keys (name, key_hash, created_at) VALUES ($1, $2, $3)",
                    name,
                    key_hash,
                    now,
                )
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"there is already a key named '{name}'") from None

    async def keys(self) -> list[AdminKey]:
        rows = await self._guard(lambda c: c.fetch(_SELECT_KEYS + " ORDER BY name"))
        return [_key_of(r) for r in rows]

    async def revoke_key(self, name: str) -> bool:
        now = self._clock()
        done = await self._guard(
            lambda c: c.execute(
                "UPDATE admin_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                name,
                now,
            )
        )
        return done.endswith(" 1")

    async def key_by_hash(self, key_hash: str) -> AdminKey | None:
        row = await self._guard(
            lambda c: c.fetchrow(_SELECT_KEYS + " WHERE key_hash = $1", key_hash)
        )
        if row is None:
            return None
        key = _key_of(row)
        now = self._clock()
        if key.last_used_at is None or now - key.last_used_at >= KEY_TOUCH_INTERVAL:
            await self._guard(
                lambda c: c.execute(
                    "UPDATE admin_keys SET last_used_at = $2 WHERE name = $1", key.name, now
                )
            )
            key = AdminKey(key.name, key.created_at, now, key.revoked_at)
        return replace(key, key_hash=key_hash)


Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
_EVENT_COLUMNS = "score_id, user_id, metric, score_delta, action_id, source, created_at, voided_at"
_SELECT_EVENT = f"SELECT {_EVENT_COLUMNS} FROM scores WHERE score_id = $1"  # noqa: S608
_SELECT_EVENTS_OF = (
    f"SELECT {_EVENT_COLUMNS} FROM scores WHERE user_id = $1 AND score_id < $2"  # noqa: S608
    " ORDER BY score_id DESC LIMIT $3"
)
_SELECT_TOTAL = "SELECT COALESCE((SELECT total FROM totals WHERE user_id = $1 AND metric = $2), 0)"
_INSERT_AUDIT = (
    "INSERT INTO audit (at, key_name, action, target, reason, details)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
)
_SELECT_AUDIT = (
    "SELECT id, at, key_name, action, target, reason, details FROM audit WHERE id < $1"
    " ORDER BY id DESC LIMIT $2"
)
_SELECT_KEYS = "SELECT name, created_at, last_used_at, revoked_at FROM admin_keys"
_RESCORE = (
    "SELECT score_id, score_delta, score_after FROM scores WHERE user_id = $1 AND metric = $2"
    " AND voided_at IS NULL ORDER BY created_at, score_id"
)
_COUNTED_SUM = (
    "SELECT SUM(score_delta), MAX(score_id), MAX(created_at) FROM scores WHERE user_id = $1"
    " AND metric = $2"
    " AND voided_at IS NULL AND created_at >= $3 AND created_at < $4"
)
_COUNTED_BEST = {
    order: (
        "SELECT score_delta, score_id, created_at FROM scores WHERE user_id = $1"  # noqa: S608
        " AND metric = $2"
        " AND voided_at IS NULL AND source = 'user' AND created_at >= $3 AND created_at < $4"
        f" ORDER BY score_delta {order}, score_id LIMIT 1"
    )
    for order in ("desc", "asc")
}
_SET_STANDING = """
INSERT INTO standings AS s (board_id, period_id, user_id, score, rank_score, reached, version,
                            updated_at, hidden)
VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)
ON CONFLICT (board_id, period_id, user_id) DO UPDATE SET score = EXCLUDED.score,
    rank_score = EXCLUDED.rank_score, reached = EXCLUDED.reached, version = s.version + 1,
    updated_at = EXCLUDED.updated_at, hidden = s.hidden & 1
RETURNING version, hidden
"""
_EMPTY_STANDING = (
    "UPDATE standings SET score = 0, rank_score = 0, reached = 0, version = version + 1,"
    " updated_at = $1, hidden = hidden | 2 WHERE board_id = $2 AND period_id = $3"
    " AND user_id = $4 RETURNING version, hidden"
)
# Every standing of a user, with a new version ($1: the user's hidden bit, or -1 to keep it).
# Its time stays the time of the events that made it: an operator's action is not one of them.
_REVERSION = (
    "UPDATE standings SET version = version + 1,"
    " hidden = CASE WHEN $1::integer < 0 THEN hidden ELSE (hidden & 2) | $1::integer END"
    " WHERE user_id = $2 RETURNING board_id, period_id, score, version, reached, hidden"
)
KEY_TOUCH_INTERVAL = timedelta(minutes=1)


def _event_record(row: asyncpg.Record) -> EventRecord:
    return EventRecord(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6].astimezone(UTC), row[7] is not None
    )


def _key_of(row: asyncpg.Record) -> AdminKey:
    return AdminKey(row[0], row[1].astimezone(UTC), _time(row[2]), _time(row[3]))


async def _audit(c: Connection, audit: Audit, now: datetime) -> None:
    details = json.dumps(audit.details or {}, sort_keys=True, separators=(",", ":"))
    await c.execute(
        _INSERT_AUDIT, now, audit.key, audit.action, audit.target, audit.reason, details
    )


async def _user_row(c: Connection, user_id: str) -> tuple[str, str, bool]:
    row = await c.fetchrow(
        "SELECT username, status, name_locked FROM users WHERE user_id = $1 FOR UPDATE", user_id
    )
    if row is None:
        raise NotFound(f"there is no user '{user_id}'", code="unknown_user")
    return row[0], row[1], bool(row[2])


async def _period_of_event(
    c: Connection, board: Board, at: datetime
) -> tuple[str, datetime, datetime] | None:
    if board.reset == "manual":
        row = await c.fetchrow(
            "SELECT period_id, starts_at, ends_at FROM periods WHERE board_id = $1"
            " AND starts_at <= $2 AND (ends_at IS NULL OR ends_at > $2)",
            board.id,
            at,
        )
    else:
        period = periods.period_at(board.reset, board.timezone, at)
        row = await c.fetchrow(
            "SELECT period_id, starts_at, ends_at FROM periods WHERE board_id = $1"
            " AND period_id = $2",
            board.id,
            period.id,
        )
    if row is None:
        return None
    return row[0], row[1] or _MIN_TIME, row[2] or _MAX_TIME


async def _recompute(
    c: Connection,
    board: Board,
    period: str,
    since: datetime,
    until: datetime,
    user_id: str,
    now: datetime,
) -> Moved | None:
    args = (user_id, board.metric, since, until)
    if board.aggregate == "sum":
        counted = await c.fetchrow(_COUNTED_SUM, *args)
        assert counted is not None
        score, reached, at = counted[0], counted[1], counted[2]
    else:
        best = await c.fetchrow(_COUNTED_BEST[board.order], *args)
        score, reached, at = (None, None, None) if best is None else (best[0], best[1], best[2])
    if reached is None:
        row = await c.fetchrow(_EMPTY_STANDING, now, board.id, period, user_id)
        return None if row is None else Moved(board.id, period, user_id, None, row[0])
    username, status, _ = await _user_row(c, user_id)
    bit = 0 if status == "active" else 1
    key = rank_score(score, board.order)
    row = await c.fetchrow(_SET_STANDING, board.id, period, user_id, score, key, reached, at, bit)
    assert row is not None
    version, hidden = row[0], row[1]
    shown = Standing(user_id, username, score, version, reached) if hidden == 0 else None
    return Moved(board.id, period, user_id, shown, version)


# Verify and repair (scoreboard.consistency): see the SQLite store's statements of the same
# names; the recount sets the row's hidden bit from the user's status.
_LEDGER_COLUMNS = (
    "SELECT s.score_id, s.user_id, s.score_delta, s.source, s.voided_at IS NOT NULL,"
    " u.status = 'active', s.created_at FROM scores s JOIN users u ON u.user_id = s.user_id"
    " WHERE s.metric = $1 AND s.created_at >= $2 AND s.created_at < $3 AND s.score_id > $4"
)
_LEDGER = _LEDGER_COLUMNS + " ORDER BY s.score_id LIMIT $5"
_LEDGER_OF = _LEDGER_COLUMNS + " AND s.user_id = $6 ORDER BY s.score_id LIMIT $5"
_STORED_COLUMNS = (
    "SELECT s.user_id, u.username, s.score, s.rank_score, s.reached, s.version, s.hidden"
    " FROM standings s JOIN users u ON u.user_id = s.user_id"
    " WHERE s.board_id = $1 AND s.period_id = $2 AND s.user_id > $3"
)
_STORED = _STORED_COLUMNS + " ORDER BY s.user_id LIMIT $4"
_STORED_OF = _STORED_COLUMNS + " AND s.user_id = $5 ORDER BY s.user_id LIMIT $4"
_RECOUNT_STANDING = """
INSERT INTO standings AS s (board_id, period_id, user_id, score, rank_score, reached, version,
                            updated_at, hidden)
VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)
ON CONFLICT (board_id, period_id, user_id) DO UPDATE SET score = EXCLUDED.score,
    rank_score = EXCLUDED.rank_score, reached = EXCLUDED.reached, version = s.version + 1,
    updated_at = EXCLUDED.updated_at, hidden = EXCLUDED.hidden
RETURNING version
"""
_RECOUNT_EMPTY = (
    "UPDATE standings SET score = 0, rank_score = 0, reached = 0, version = version + 1,"
    " updated_at = $1, hidden = $2::smallint | 2 WHERE board_id = $3 AND period_id = $4"
    " AND user_id = $5 RETURNING version"
)


async def _recount(
    c: Connection,
    board: Board,
    period: str,
    since: datetime,
    until: datetime,
    user_id: str,
    now: datetime,
) -> Moved | None:
    user = await c.fetchrow("SELECT username, status FROM users WHERE user_id = $1", user_id)
    if user is None:
        return None
    username, bit = user[0], 0 if user[1] == "active" else 1
    args = (user_id, board.metric, since, until)
    if board.aggregate == "sum":
        counted = await c.fetchrow(_COUNTED_SUM, *args)
        assert counted is not None
        score, reached = counted[0], counted[1]
    else:
        best = await c.fetchrow(_COUNTED_BEST[board.order], *args)
        score, reached = (None, None) if best is None else (best[0], best[1])
    if reached is None:
        version = await c.fetchval(_RECOUNT_EMPTY, now, bit, board.id, period, user_id)
        return None if version is None else Moved(board.id, period, user_id, None, version)
    key = rank_score(score, board.order)
    version = await c.fetchval(
        _RECOUNT_STANDING, board.id, period, user_id, score, key, reached, now, bit
    )
    shown = Standing(user_id, username, score, version, reached) if bit == 0 else None
    return Moved(board.id, period, user_id, shown, version)


async def _rescore(c: Connection, user_id: str, metric: str) -> None:
    total, changed = 0, []
    for event_id, delta, after in await c.fetch(_RESCORE, user_id, metric):
        total += delta
        if after != total:
            changed.append((total, event_id))
    await c.executemany("UPDATE scores SET score_after = $1 WHERE score_id = $2", changed)
    await c.execute(
        "UPDATE totals SET total = $1 WHERE user_id = $2 AND metric = $3", total, user_id, metric
    )


async def _reversion(c: Connection, user_id: str, bit: int) -> tuple[Moved, ...]:
    username = await c.fetchval(_SELECT_NAME, user_id)
    moved = []
    for board, period, score, version, reached, hidden in await c.fetch(_REVERSION, bit, user_id):
        shown = Standing(user_id, username, score, version, reached) if hidden == 0 else None
        moved.append(Moved(board, period, user_id, shown, version))
    return tuple(moved)


async def _fill(
    connection: PoolConnectionProxy[asyncpg.Record], board: Board, now: datetime
) -> None:
    """A board's standings in its current period, from the stored events (a board added, or
    added back)."""
    if board.reset == "manual":
        row = await connection.fetchrow(
            "SELECT period_id, starts_at FROM periods WHERE board_id = $1 AND ends_at IS NULL",
            board.id,
        )
        if row is None:
            await connection.execute(_INSERT_PERIOD, board.id, periods.FIRST_SEASON, now, None)
            period, since = periods.FIRST_SEASON, now
        else:
            period, since = row[0], row[1] or _MIN_TIME
        until = _MAX_TIME
    else:
        current = periods.period_at(board.reset, board.timezone, now)
        await connection.execute(
            _INSERT_PERIOD, board.id, current.id, current.starts_at, current.ends_at
        )
        period, since, until = (
            current.id,
            current.starts_at or _MIN_TIME,
            current.ends_at or _MAX_TIME,
        )
    # Replacing whatever the period held (a board added back after a while away missed the
    # events meanwhile), with versions that only rise.
    await connection.execute(_EMPTY_PERIOD, board.id, period)
    sign = -1 if board.order == "desc" else 1
    statement = _FILL_SUM if board.aggregate == "sum" else _FILL_BEST
    await connection.execute(statement, board.id, period, sign, board.metric, since, until)
