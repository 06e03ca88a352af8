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
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg

from scoreboard.errors import ActionConflict, ScoreOutOfRange, Unavailable
from scoreboard.model import (
    BUCKETS,
    MAX_SCORE,
    Applied,
    HistoryPoint,
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
)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool release hook. asyncpg's default sends ``RESET ALL; UNLISTEN *; ...`` on every
    release, a second round trip per update (about 20% of an update's CPU when measured). Our
    statements change no session state (no SET, LISTEN, advisory lock or open cursor), so there
    is nothing to reset."""
    return None


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

    @staticmethod
    async def _guard(call: Awaitable[T]) -> T:
        try:
            return await call
        except _UNAVAILABLE as exc:
            log.error("postgresql call failed: %s: %s", type(exc).__name__, exc)
            raise Unavailable("the score store is unavailable, try again shortly") from exc

    async def apply(self, update: ScoreUpdate) -> Applied:
        action_id = update.action_id or uuid.uuid4().hex
        try:
            row = await self._guard(
                self.pool.fetchrow(_APPLY, update.user_id, update.delta, action_id, update.username)
            )
        except asyncpg.UniqueViolationError:
            pass  # the event was there already: a retry, or the action_id with another delta
        except asyncpg.CheckViolationError:  # ck_users_score_range (migration 0003)
            raise ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}") from None
        else:
            assert row is not None
            username, score, version, reached = row
            return Applied(UserTotal(update.user_id, username, score, version, reached))
        delta = await self._guard(self.pool.fetchval(_SELECT_ACTION, update.user_id, action_id))
        if delta != update.delta:
            raise ActionConflict("this action_id was already used with a different score_delta")
        user = await self.get_user(update.user_id)
        assert user is not None  # the event's foreign key guarantees the user
        return Applied(user, replayed=True)

    async def get_user(self, user_id: str) -> UserTotal | None:
        row = await self._guard(self.pool.fetchrow(_SELECT_USER, user_id))
        return None if row is None else _total(row)

    async def rank_of(self, total: UserTotal) -> int:
        above = await self._guard(self.pool.fetchval(_COUNT_ABOVE, total.score, total.reached))
        return int(above) + 1

    async def profile(self, user_id: str) -> UserProfile | None:
        row = await self._guard(self.pool.fetchrow(_SELECT_PROFILE, user_id))
        return None if row is None else UserProfile(row[0], row[1], row[2], row[3])

    async def history(
        self,
        user_id: str,
        *,
        since: datetime | None,
        until: datetime | None,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[ScoreEvent]:
        after_at, after_id = after if after is not None else (_MIN_TIME, 0)
        rows = await self._guard(
            self.pool.fetch(
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

    async def history_buckets(
        self,
        user_id: str,
        *,
        bucket: str,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[HistoryPoint]:
        if bucket not in BUCKETS:
            raise ValueError(f"unknown bucket {bucket!r}")
        rows = await self._guard(
            self.pool.fetch(
                _SELECT_BUCKETS, user_id, bucket, since or _MIN_TIME, until or _MAX_TIME, limit
            )
        )
        return [HistoryPoint(r[0].replace(tzinfo=UTC), r[1]) for r in rows]

    async def iter_totals(self) -> AsyncIterator[list[UserTotal]]:
        # Keyset pages rather than one long cursor: no transaction stays open during a rebuild,
        # and a total that changes meanwhile reaches the index through its own versioned write.
        after = ""
        while True:
            rows = await self._guard(self.pool.fetch(_SELECT_TOTALS, after, _CHUNK))
            if not rows:
                return
            yield [_total(row) for row in rows]
            if len(rows) < _CHUNK:
                return
            after = rows[-1][0]
