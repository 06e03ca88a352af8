"""The :class:`~scoreboard.ports.Checkpoints` on PostgreSQL: the checkpoints half of
``PostgresScoreStore`` (migration 0007; the reasoning is ``scoreboard.past.from_checkpoint``'s).

A checkpoint is written in one transaction that first holds updates off (``LOCK TABLE scores
IN SHARE ROW EXCLUSIVE MODE``, as moderation and a rollover do): the lock waits for every update
in flight, so no event id below the newest one can still commit, and the standings it copies
count exactly the events through that id. It is held for the few statements of the turn (an
index range per board, and the events since the previous turn). A replay reads in one
``REPEATABLE READ`` transaction: one snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from scoreboard.boards import Board
from scoreboard.model import (
    AuditEntry,
    CheckpointRow,
    LedgerEvent,
    Movers,
    Replay,
    RowKey,
    audit_subjects,
)
from scoreboard.periods import Period

T = TypeVar("T")
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

_TAKE_TIMEOUT = 60.0
"""Seconds a keeper's turn may take (the first one looks at every event already stored)."""
_READ_TIMEOUT = 30.0
_HOLD_UPDATES = "LOCK TABLE scores IN SHARE ROW EXCLUSIVE MODE"
_SEAL = (
    "INSERT INTO checkpoint_late (checkpoint_id, user_id)"
    " SELECT DISTINCT k.id, s.user_id FROM scores s JOIN checkpoints k ON k.metric = s.metric"
    " AND k.at >= s.created_at WHERE s.score_id > $1 AND s.score_id <= $2"
    " AND s.score_id > k.through AND (k.starts_at IS NULL OR s.created_at >= k.starts_at)"
    " ON CONFLICT DO NOTHING"
)
_SET_MARK = (
    "INSERT INTO checkpoint_marks (id, through) VALUES (1, $1)"
    " ON CONFLICT (id) DO UPDATE SET through = EXCLUDED.through"
)
_NEWEST_AT = (
    "SELECT MAX(created_at) FROM scores WHERE metric = $1"
    " AND created_at >= COALESCE($2, '-infinity'::timestamptz)"
    " AND created_at < COALESCE($3, 'infinity'::timestamptz)"
)
_SAME = (
    "SELECT 1 FROM checkpoints WHERE board_id = $1 AND period_id = $2 AND at = $3"
    " AND through = $4 AND audit_mark = $5"
)
_TOP_ROWS = (
    "SELECT user_id, score, rank_score, reached, hidden FROM standings"
    " WHERE board_id = $1 AND period_id = $2 AND hidden & 2 = 0"
    " ORDER BY rank_score, reached, user_id LIMIT $3"
)
_INSERT = (
    "INSERT INTO checkpoints (board_id, period_id, metric, aggregate, ord, starts_at, at,"
    " through, audit_mark, bound_rank_score, bound_reached, bound_user, created_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id"
)
_INSERT_ROW = (
    "INSERT INTO checkpoint_rows (checkpoint_id, user_id, score, rank_score, reached, hidden)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
)
_LATEST = (
    "SELECT id, at, through, audit_mark, bound_rank_score, bound_reached, bound_user"
    " FROM checkpoints WHERE board_id = $1 AND period_id = $2 AND metric = $3"
    " AND aggregate = $4 AND ord = $5 AND starts_at IS NOT DISTINCT FROM $6 AND at < $7"
    " ORDER BY at DESC, id DESC LIMIT 1"
)
_EVENT_COLUMNS = (
    "SELECT s.score_id, s.user_id, s.score_delta, s.source, s.voided_at IS NOT NULL,"
    " u.status = 'active', s.created_at FROM scores s JOIN users u ON u.user_id = s.user_id"
)
_AFTER = (
    _EVENT_COLUMNS + " WHERE s.metric = $1 AND s.created_at > $2 AND s.created_at < $3"
    " ORDER BY s.score_id"
)
_LATE_SINCE_MARK = (
    "SELECT DISTINCT user_id FROM scores WHERE score_id > $1 AND metric = $2"
    " AND created_at <= $3 AND created_at >= COALESCE($4, '-infinity'::timestamptz)"
)
_OWN = (
    _EVENT_COLUMNS + " WHERE s.user_id = ANY($1::varchar[]) AND s.metric = $2"
    " AND s.created_at >= COALESCE($3, '-infinity'::timestamptz) AND s.created_at < $4"
    " ORDER BY s.score_id"
)
_AUDIT_AFTER = (
    "SELECT id, at, key_name, action, target, reason, details FROM audit WHERE id > $1 ORDER BY id"
)


def _event(row: asyncpg.Record) -> LedgerEvent:
    i, user, delta, source, voided, shown, at = row
    return LedgerEvent(i, user, delta, source, bool(voided), bool(shown), at.astimezone(UTC))


async def take(
    c: Connection, targets: Sequence[tuple[Board, Period]], size: int, now: datetime
) -> int:
    """:meth:`PostgresCheckpoints.take_checkpoints` on one connection."""
    written = 0
    async with c.transaction():
        await c.execute(_HOLD_UPDATES)
        mark = await c.fetchval("SELECT through FROM checkpoint_marks WHERE id = 1") or 0
        newest = await c.fetchval("SELECT COALESCE(MAX(score_id), 0) FROM scores")
        if newest > mark:
            if await c.fetchval("SELECT 1 FROM checkpoints LIMIT 1") is not None:
                await c.execute(_SEAL, mark, newest)
            await c.execute(_SET_MARK, newest)
        audit_mark = await c.fetchval("SELECT COALESCE(MAX(id), 0) FROM audit")
        for board, period in targets:
            at = await c.fetchval(_NEWEST_AT, board.metric, period.starts_at, period.ends_at)
            if at is None:
                continue
            if await c.fetchval(_SAME, board.id, period.id, at, newest, audit_mark) is not None:
                continue  # nothing happened since the last one
            rows = await c.fetch(_TOP_ROWS, board.id, period.id, size)
            last = rows[-1] if len(rows) == size else None
            checkpoint = await c.fetchval(
                _INSERT,
                board.id,
                period.id,
                board.metric,
                board.aggregate,
                board.order,
                period.starts_at,
                at,
                newest,
                audit_mark,
                None if last is None else last[2],
                None if last is None else last[3],
                None if last is None else last[0],
                now,
            )
            await c.executemany(_INSERT_ROW, [(checkpoint, *r) for r in rows])
            written += 1
    return written


async def replay(c: Connection, board: Board, period: Period, until: datetime) -> Replay | None:
    """:meth:`PostgresCheckpoints.replay` on one connection, in one snapshot."""
    start = period.starts_at
    async with c.transaction(isolation="repeatable_read", readonly=True):
        found = await c.fetchrow(
            _LATEST, board.id, period.id, board.metric, board.aggregate, board.order, start, until
        )
        if found is None:
            return None
        checkpoint, at, through, audit_mark, bound_score, bound_reached, bound_user = found
        rows = tuple(
            CheckpointRow(*r)
            for r in await c.fetch(
                "SELECT user_id, score, rank_score, reached, hidden FROM checkpoint_rows"
                " WHERE checkpoint_id = $1",
                checkpoint,
            )
        )
        after = tuple(_event(r) for r in await c.fetch(_AFTER, board.metric, at, until))
        mark = max(through, await c.fetchval("SELECT through FROM checkpoint_marks") or 0)
        late = {
            r[0]
            for r in await c.fetch(
                "SELECT user_id FROM checkpoint_late WHERE checkpoint_id = $1", checkpoint
            )
        }
        late.update(r[0] for r in await c.fetch(_LATE_SINCE_MARK, mark, board.metric, at, start))
        audit = tuple(
            AuditEntry(i, t.astimezone(UTC), key, action, target, reason, json.loads(details))
            for i, t, key, action, target, reason, details in await c.fetch(
                _AUDIT_AFTER, audit_mark
            )
        )
        users, events = audit_subjects(audit)
        if events:
            voided = await c.fetch(
                "SELECT user_id FROM scores WHERE score_id = ANY($1::bigint[])", sorted(events)
            )
            users.update(r[0] for r in voided)
        recounted = late | users
        own = tuple(
            _event(r) for r in await c.fetch(_OWN, sorted(recounted), board.metric, start, until)
        )
    bound = None if bound_user is None else (int(bound_score), int(bound_reached), bound_user)
    return Replay(
        at.astimezone(UTC), int(through), bound, rows, after, frozenset(recounted), own, audit
    )


async def drop_checkpoints(c: Connection, board: str, periods: Sequence[str]) -> None:
    """Delete the checkpoints of ``board``'s ``periods`` (they were pruned), in the caller's
    transaction."""
    mine = "SELECT id FROM checkpoints WHERE board_id = $1 AND period_id = ANY($2)"
    for table in ("checkpoint_rows", "checkpoint_late"):
        await c.execute(f"DELETE FROM {table} WHERE checkpoint_id IN ({mine})", board, periods)  # noqa: S608
    await c.execute(
        "DELETE FROM checkpoints WHERE board_id = $1 AND period_id = ANY($2)", board, periods
    )


# Reading a period backward from now (``AdminStore.backward``): the users of the events dated
# after the instant (the (metric, created_at) index), their rows, and a count of the shown rows
# before a key (an ix_standings_rank range; ``hidden`` is read from each row).
_MOVED = (
    "SELECT user_id FROM scores WHERE metric = $1 AND created_at >= $2"
    " AND created_at < COALESCE($3, 'infinity'::timestamptz) LIMIT $4"
)
_BEFORE = (
    "SELECT COUNT(*) FROM (SELECT 1 FROM scores WHERE metric = $1"
    " AND created_at >= COALESCE($2, '-infinity'::timestamptz) AND created_at < $3 LIMIT $4) s"
)
_ROWS_OF = (
    "SELECT user_id, rank_score, reached, hidden FROM standings WHERE board_id = $1"
    " AND period_id = $2 AND user_id = ANY($3::varchar[])"
)
_AHEAD = (
    "SELECT COUNT(*) FROM standings WHERE board_id = $1 AND period_id = $2 AND hidden = 0"
    " AND (rank_score < $3 OR (rank_score = $3 AND reached < $4))"
)


async def backward(
    c: Connection,
    board: Board,
    period: Period,
    at: datetime,
    user_id: str,
    most: int,
    place: Callable[[Movers], tuple[int, int] | None],
) -> tuple[Movers, int] | None:
    """:meth:`PostgresCheckpoints.backward` on one connection, in one snapshot."""
    async with c.transaction(isolation="repeatable_read", readonly=True):
        found = await c.fetch(_MOVED, board.metric, at, period.ends_at, most + 1)
        if len(found) > most:
            return None
        before = await c.fetchval(_BEFORE, board.metric, period.starts_at, at, len(found))
        if before < len(found):
            return None
        users = frozenset(r[0] for r in found)
        events = tuple(
            _event(r)
            for r in await c.fetch(_OWN, sorted(users), board.metric, period.starts_at, at)
        )
        rows = {
            r[0]: RowKey(int(r[1]), int(r[2]), int(r[3]))
            for r in await c.fetch(_ROWS_OF, board.id, period.id, sorted(users | {user_id}))
        }
        movers = Movers(users, events, rows)
        placed = place(movers)
        if placed is None:
            return movers, 0
        ahead = await c.fetchval(_AHEAD, board.id, period.id, placed[0], placed[1])
        return movers, int(ahead)


class PostgresCheckpoints:
    """Mixed into ``PostgresScoreStore``: its pool, through its guard."""

    _clock: Callable[[], datetime]

    async def _guard(
        self, use: Callable[[Connection], Awaitable[T]], *, deadline: float = _READ_TIMEOUT
    ) -> T:
        raise NotImplementedError

    async def take_checkpoints(self, boards: Sequence[tuple[Board, Period]], size: int) -> int:
        now = self._clock()
        return await self._guard(lambda c: take(c, boards, size, now), deadline=_TAKE_TIMEOUT)

    async def replay(self, board: Board, period: Period, until: datetime) -> Replay | None:
        return await self._guard(lambda c: replay(c, board, period, until), deadline=_READ_TIMEOUT)

    async def backward(
        self,
        board: Board,
        period: Period,
        at: datetime,
        user_id: str,
        most: int,
        place: Callable[[Movers], tuple[int, int] | None],
    ) -> tuple[Movers, int] | None:
        return await self._guard(
            lambda c: backward(c, board, period, at, user_id, most, place),
            deadline=_READ_TIMEOUT,
        )

    async def events_of_users(
        self, metric: str, users: Sequence[str], since: datetime | None, until: datetime
    ) -> list[LedgerEvent]:
        async def read(c: Connection) -> list[LedgerEvent]:
            rows = await c.fetch(_OWN, list(users), metric, since, until)
            return [_event(r) for r in rows]

        return await self._guard(read, deadline=_READ_TIMEOUT)
