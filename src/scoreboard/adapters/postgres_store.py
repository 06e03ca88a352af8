"""PostgreSQL score store (scaled mode): asyncpg, pooled, one statement per update.

An update is **one SQL statement**, so one round trip and one transaction (autocommit). A CTE
upserts the user: ``INSERT ... ON CONFLICT (user_id) DO UPDATE SET score = users.score + ...``
creates the user or adds the delta under the row lock, and takes the event's id from the
``scores`` sequence *inside* the ``SET``, that is after the lock is held; the outer statement then
inserts the score event with that id and the total after it (``score_after``). Per-user totals,
versions, event ids and timestamps are therefore serialized by the database in commit order,
whichever process sends them. The foreign key from ``scores`` to ``users`` is checked at the end
of the statement, after the user row exists.

Idempotency: a repeated ``(user_id, action_id)`` violates the unique constraint, which rolls the
*whole* statement back, user row included; a second query then tells a retry (same delta: return
the current total, ``replayed``) from a conflict (``ActionConflict``). A retry landing on another
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
saturated server) is answered 503 although it may still commit; its retry is safe.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from scoreboard.errors import ActionConflict, ScoreOutOfRange, Unavailable
from scoreboard.model import (
    BUCKETS,
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

POOL_MIN = 2
POOL_MAX = 16
_CHUNK = 10_000
_TIMEOUT = 10.0
CALL_TIMEOUT = 1.5

# ``scores_score_id_seq`` is the sequence of the BIGSERIAL ``scores.score_id`` (migration 0001).
_APPLY = """
WITH total AS (
    INSERT INTO users AS u (user_id, username, score, version, reached_seq, created_at, updated_at)
    VALUES ($1::varchar, COALESCE($4::varchar, $1::varchar), $2::integer, 1,
            nextval('scores_score_id_seq'), clock_timestamp(), clock_timestamp())
    ON CONFLICT (user_id) DO UPDATE SET
        score = u.score + EXCLUDED.score,
        version = u.version + 1,
        reached_seq = nextval('scores_score_id_seq'),
        username = COALESCE($4, u.username),
        updated_at = clock_timestamp()
    RETURNING username, score, version, reached_seq, updated_at
), event AS (
    INSERT INTO scores (score_id, user_id, score_delta, action_id, created_at, score_after)
    SELECT reached_seq, $1, $2, $3, updated_at, score FROM total
    RETURNING score_id
)
SELECT username, score, version, reached_seq FROM total, event
"""
_SELECT_ACTION = "SELECT score_delta FROM scores WHERE user_id = $1 AND action_id = $2"
_SELECT_USER = "SELECT user_id, username, score, version, reached_seq FROM users WHERE user_id = $1"
_COUNT_ABOVE = "SELECT COUNT(*) FROM users WHERE score > $1 OR (score = $1 AND reached_seq < $2)"
_SELECT_PROFILE = "SELECT user_id, username, score, updated_at FROM users WHERE user_id = $1"
_SELECT_HISTORY = """
SELECT score_id, created_at, score_delta, score_after, action_id FROM scores
WHERE user_id = $1 AND created_at >= $2 AND created_at < $3 AND (created_at, score_id) > ($4, $5)
ORDER BY created_at, score_id LIMIT $6
"""
# The last event of each bucket (UTC hours or days) carries the score at the end of it.
_SELECT_BUCKETS = """
SELECT DISTINCT ON (bucket) date_trunc($2, created_at AT TIME ZONE 'UTC') AS bucket, score_after
FROM scores WHERE user_id = $1 AND created_at >= $3 AND created_at < $4
ORDER BY bucket, created_at DESC, score_id DESC LIMIT $5
"""
_MIN_TIME = datetime.min.replace(tzinfo=UTC)
_MAX_TIME = datetime.max.replace(tzinfo=UTC)
_SELECT_TOTALS = (
    "SELECT user_id, username, score, version, reached_seq FROM users"
    " WHERE user_id > $1 ORDER BY user_id LIMIT $2"
)

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


async def _fetch_totals(
    connection: PoolConnectionProxy[asyncpg.Record], *, after: str
) -> list[asyncpg.Record]:
    return await connection.fetch(_SELECT_TOTALS, after, _CHUNK)


def _total(row: asyncpg.Record) -> UserTotal:
    return UserTotal(row[0], row[1], row[2], row[3], row[4])


class PostgresScoreStore:
    """``dsn`` is our ``postgresql://USER@HOST:PORT/DB`` URL, which asyncpg takes as it is."""

    def __init__(self, dsn: str, *, min_size: int = POOL_MIN, max_size: int = POOL_MAX) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None

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

    async def _guard(self, use: Callable[[PoolConnectionProxy[asyncpg.Record]], Awaitable[T]]) -> T:
        """Run ``use`` on a pool connection within ``CALL_TIMEOUT``; connection failures and
        the deadline become ``Unavailable``.

        When the deadline cancels a statement, the connection is closed on the spot:
        asyncpg would otherwise send a cancel request on a *new* connection and make the
        release wait for it, which hangs exactly when the server does."""
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                connection = await self.pool.acquire()
                try:
                    return await use(connection)
                except (asyncio.CancelledError, asyncpg.InternalClientError):
                    connection.terminate()  # never hand a broken connection to the next call
                    raise
                finally:
                    await self.pool.release(connection)
        except _UNAVAILABLE as exc:
            log.error("postgresql call failed: %s: %s", type(exc).__name__, exc)
            raise Unavailable("the score store is unavailable, try again shortly") from exc

    async def apply(self, update: ScoreUpdate) -> Applied:
        action_id = update.action_id or uuid.uuid4().hex
        try:
            row = await self._guard(
                lambda c: c.fetchrow(
                    _APPLY, update.user_id, update.delta, action_id, update.username
                )
            )
        except asyncpg.UniqueViolationError:
            pass  # the event was there already: a retry, or the action_id with another delta
        except asyncpg.CheckViolationError:  # ck_users_score_range (migration 0003)
            raise ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}") from None
        else:
            assert row is not None
            username, score, version, reached = row
            return Applied(UserTotal(update.user_id, username, score, version, reached))
        delta = await self._guard(lambda c: c.fetchval(_SELECT_ACTION, update.user_id, action_id))
        if delta != update.delta:
            raise ActionConflict("this action_id was already used with a different score_delta")
        user = await self.get_user(update.user_id)
        assert user is not None  # the event's foreign key guarantees the user
        return Applied(user, replayed=True)

    async def action_delta(self, user_id: str, action_id: str) -> int | None:
        delta = await self._guard(lambda c: c.fetchval(_SELECT_ACTION, user_id, action_id))
        return None if delta is None else int(delta)

    async def get_user(self, user_id: str) -> UserTotal | None:
        row = await self._guard(lambda c: c.fetchrow(_SELECT_USER, user_id))
        return None if row is None else _total(row)

    async def rank_of(self, total: UserTotal) -> int:
        above = await self._guard(lambda c: c.fetchval(_COUNT_ABOVE, total.score, total.reached))
        return int(above) + 1

    async def profile(self, user_id: str) -> UserProfile | None:
        row = await self._guard(lambda c: c.fetchrow(_SELECT_PROFILE, user_id))
        return None if row is None else UserProfile(row[0], row[1], row[2], row[3])

    async def history(self, q: HistoryQuery) -> list[ScoreEvent]:
        user_id, since, until, after, limit = q.user_id, q.since, q.until, q.after, q.limit
        after_at, after_id = after if after is not None else (_MIN_TIME, 0)
        rows = await self._guard(
            lambda c: c.fetch(
                _SELECT_HISTORY,
                user_id,
                since or _MIN_TIME,
                until or _MAX_TIME,
                after_at,
                after_id,
                limit,
            )
        )
        return [ScoreEvent(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def history_buckets(self, q: HistoryQuery) -> list[HistoryPoint]:
        user_id, since, until, limit = q.user_id, q.since, q.until, q.limit
        bucket = q.bucket or "day"
        if bucket not in BUCKETS:
            raise ValueError(f"unknown bucket {bucket!r}")
        rows = await self._guard(
            lambda c: c.fetch(
                _SELECT_BUCKETS, user_id, bucket, since or _MIN_TIME, until or _MAX_TIME, limit
            )
        )
        return [HistoryPoint(r[0].replace(tzinfo=UTC), r[1]) for r in rows]

    async def iter_totals(self) -> AsyncIterator[list[UserTotal]]:
        # Keyset pages rather than one long cursor: no transaction stays open during a rebuild,
        # and a total that changes meanwhile reaches the index through its own versioned write.
        after = ""
        while True:
            rows = await self._guard(functools.partial(_fetch_totals, after=after))
            if not rows:
                return
            yield [_total(row) for row in rows]
            if len(rows) < _CHUNK:
                return
            after = rows[-1][0]
