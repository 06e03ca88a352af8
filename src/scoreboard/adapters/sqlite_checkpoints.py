"""The :class:`~scoreboard.ports.Checkpoints` on SQLite: the checkpoints half of
``SqliteScoreStore`` (migration 0007; the reasoning is ``scoreboard.past.from_checkpoint``'s).

A checkpoint is written on the writer's thread in one ``BEGIN IMMEDIATE`` transaction: no update
commits meanwhile, so the standings it copies count exactly the events through the last event
id, all dated up to the latest ``created_at`` of the metric in the period. A replay is read on
the reader's connection inside one read transaction: WAL gives it one snapshot, so the
checkpoint, the events after it and the users to recount agree with each other.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

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

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # as sqlite_store's: SQLAlchemy's DateTime text on SQLite
_MIN_TIME = "0001-01-01 00:00:00.000000"
_MAX_TIME = "9999-12-31 23:59:59.999999"

# Seal: the users of events committed since the last turn (ids in (mark, newest]) but dated at
# or before a checkpoint's instant that they came after, in that checkpoint's period.
_SEAL = (
    "INSERT OR IGNORE INTO checkpoint_late (checkpoint_id, user_id)"
    " SELECT k.id, s.user_id FROM scores s JOIN checkpoints k ON k.metric = s.metric"
    " AND k.at >= s.created_at WHERE s.score_id > ? AND s.score_id <= ? AND s.score_id > k.through"
    " AND (k.starts_at IS NULL OR s.created_at >= k.starts_at)"
)
_SET_MARK = (
    "INSERT INTO checkpoint_marks (id, through) VALUES (1, ?)"
    " ON CONFLICT (id) DO UPDATE SET through = excluded.through"
)
_NEWEST_AT = (
    "SELECT MAX(created_at) FROM scores WHERE metric = ? AND created_at >= ? AND created_at < ?"
)
_SAME = (
    "SELECT 1 FROM checkpoints WHERE board_id = ? AND period_id = ? AND at = ? AND through = ?"
    " AND audit_mark = ?"
)
_TOP_ROWS = (
    "SELECT user_id, score, rank_score, reached, hidden FROM standings"
    " WHERE board_id = ? AND period_id = ? AND hidden & 2 = 0"
    " ORDER BY rank_score, reached, user_id LIMIT ?"
)
_INSERT = (
    "INSERT INTO checkpoints (board_id, period_id, metric, aggregate, ord, starts_at, at,"
    " through, audit_mark, bound_rank_score, bound_reached, bound_user, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ROW = (
    "INSERT INTO checkpoint_rows (checkpoint_id, user_id, score, rank_score, reached, hidden)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_LATEST = (
    "SELECT id, at, through, audit_mark, bound_rank_score, bound_reached, bound_user"
    " FROM checkpoints WHERE board_id = ? AND period_id = ? AND metric = ? AND aggregate = ?"
    " AND ord = ? AND starts_at IS ? AND at < ? ORDER BY at DESC, id DESC LIMIT 1"
)
_EVENT_COLUMNS = (
    "SELECT s.score_id, s.user_id, s.score_delta, s.source, s.voided_at IS NOT NULL,"
    " u.status = 'active', s.created_at FROM scores s JOIN users u ON u.user_id = s.user_id"
)
_AFTER = (
    _EVENT_COLUMNS + " WHERE s.metric = ? AND s.created_at > ? AND s.created_at < ?"
    " ORDER BY s.score_id"
)
# By event id from the mark (the events since the keeper's last turn), not by the (metric,
# created_at) index, whose range here is the whole period up to the checkpoint.
_LATE_SINCE_MARK = (
    "SELECT DISTINCT user_id FROM scores NOT INDEXED WHERE score_id > ? AND metric = ?"
    " AND created_at <= ? AND created_at >= ?"
)
_OWN = (
    _EVENT_COLUMNS + " WHERE s.user_id = ? AND s.metric = ? AND s.created_at >= ?"
    " AND s.created_at < ? ORDER BY s.score_id"
)
_OWN_MANY = (
    _EVENT_COLUMNS + " WHERE s.user_id IN ({marks}) AND s.metric = ? AND s.created_at >= ?"
    " AND s.created_at < ?"
)
_USERS_PER_READ = 500
"""Users per statement (SQLite allows 32,766 parameters; fewer keep each statement short)."""
_AUDIT_AFTER = (
    "SELECT id, at, key_name, action, target, reason, details FROM audit WHERE id > ? ORDER BY id"
)


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _event(row: tuple[Any, ...]) -> LedgerEvent:
    i, user, delta, source, voided, shown, at = row
    return LedgerEvent(i, user, delta, source, bool(voided), bool(shown), _time(at))


def take(
    conn: sqlite3.Connection, targets: Sequence[tuple[Board, Period]], size: int, now: str
) -> int:
    """:meth:`SqliteCheckpoints.take_checkpoints` on the writer's connection."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT through FROM checkpoint_marks WHERE id = 1").fetchone()
        mark = 0 if row is None else int(row[0])
        newest = int(conn.execute("SELECT COALESCE(MAX(score_id), 0) FROM scores").fetchone()[0])
        if newest > mark:
            if conn.execute("SELECT 1 FROM checkpoints LIMIT 1").fetchone() is not None:
                conn.execute(_SEAL, (mark, newest))
            conn.execute(_SET_MARK, (newest,))
        audit_mark = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM audit").fetchone()[0])
        written = 0
        for board, period in targets:
            start = _MIN_TIME if period.starts_at is None else _text(period.starts_at)
            end = _MAX_TIME if period.ends_at is None else _text(period.ends_at)
            at = conn.execute(_NEWEST_AT, (board.metric, start, end)).fetchone()[0]
            if at is None:
                continue
            same = (board.id, period.id, at, newest, audit_mark)
            if conn.execute(_SAME, same).fetchone() is not None:
                continue  # nothing happened since the last one
            rows = conn.execute(_TOP_ROWS, (board.id, period.id, size)).fetchall()
            last = rows[-1] if len(rows) == size else None
            cursor = conn.execute(
                _INSERT,
                (
                    board.id,
                    period.id,
                    board.metric,
                    board.aggregate,
                    board.order,
                    None if period.starts_at is None else start,
                    at,
                    newest,
                    audit_mark,
                    None if last is None else last[2],
                    None if last is None else last[3],
                    None if last is None else last[0],
                    now,
                ),
            )
            checkpoint = cursor.lastrowid
            conn.executemany(_INSERT_ROW, [(checkpoint, *r) for r in rows])
            written += 1
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return written


def replay(
    conn: sqlite3.Connection, board: Board, period: Period, until: datetime
) -> Replay | None:
    """:meth:`SqliteCheckpoints.replay` on the reader's connection, in one snapshot."""
    start = _MIN_TIME if period.starts_at is None else _text(period.starts_at)
    starts = None if period.starts_at is None else start
    end = _text(until)
    conn.execute("BEGIN")
    try:
        args = (board.id, period.id, board.metric, board.aggregate, board.order, starts, end)
        found = conn.execute(_LATEST, args).fetchone()
        if found is None:
            return None
        checkpoint, at, through, audit_mark, bound_score, bound_reached, bound_user = found
        rows = tuple(
            CheckpointRow(*r)
            for r in conn.execute(
                "SELECT user_id, score, rank_score, reached, hidden FROM checkpoint_rows"
                " WHERE checkpoint_id = ?",
                (checkpoint,),
            ).fetchall()
        )
        after = tuple(_event(r) for r in conn.execute(_AFTER, (board.metric, at, end)).fetchall())
        row = conn.execute("SELECT through FROM checkpoint_marks WHERE id = 1").fetchone()
        mark = max(through, 0 if row is None else int(row[0]))
        late = {
            r[0]
            for r in conn.execute(
                "SELECT user_id FROM checkpoint_late WHERE checkpoint_id = ?", (checkpoint,)
            ).fetchall()
        }
        late.update(
            r[0] for r in conn.execute(_LATE_SINCE_MARK, (mark, board.metric, at, start)).fetchall()
        )
        audit = tuple(
            AuditEntry(i, _time(t), key, action, target, reason, json.loads(details))
            for i, t, key, action, target, reason, details in conn.execute(
                _AUDIT_AFTER, (audit_mark,)
            ).fetchall()
        )
        users, events = audit_subjects(audit)
        for event in sorted(events):
            found = conn.execute("SELECT user_id FROM scores WHERE score_id = ?", (event,))
            users.update(r[0] for r in found.fetchall())
        recounted = late | users
        own: list[LedgerEvent] = []
        for user in sorted(recounted):
            own += (
                _event(r) for r in conn.execute(_OWN, (user, board.metric, start, end)).fetchall()
            )
        own.sort(key=lambda e: e.event_id)
    finally:
        conn.execute("COMMIT")
    bound = None if bound_user is None else (int(bound_score), int(bound_reached), bound_user)
    return Replay(
        _time(at), int(through), bound, rows, after, frozenset(recounted), tuple(own), audit
    )


def drop_checkpoints(conn: sqlite3.Connection, board: str, period: str) -> None:
    """Delete the checkpoints of ``board``'s ``period`` (it was pruned), in the caller's
    transaction."""
    mine = "SELECT id FROM checkpoints WHERE board_id = ? AND period_id = ?"
    for table in ("checkpoint_rows", "checkpoint_late"):
        conn.execute(f"DELETE FROM {table} WHERE checkpoint_id IN ({mine})", (board, period))  # noqa: S608
    conn.execute("DELETE FROM checkpoints WHERE board_id = ? AND period_id = ?", (board, period))


def events_of_users(
    conn: sqlite3.Connection, metric: str, users: Sequence[str], since: str, until: str
) -> list[LedgerEvent]:
    """:meth:`SqliteCheckpoints.events_of_users` on the reader's connection, in one snapshot."""
    found: list[LedgerEvent] = []
    chosen = list(users)
    conn.execute("BEGIN")
    try:
        for first in range(0, len(chosen), _USERS_PER_READ):
            some = chosen[first : first + _USERS_PER_READ]
            marks = ", ".join("?" * len(some))
            statement = _OWN_MANY.format(marks=marks)
            found += (_event(r) for r in conn.execute(statement, (*some, metric, since, until)))
    finally:
        conn.execute("COMMIT")
    found.sort(key=lambda e: e.event_id)
    return found


# Reading a period backward from now (``AdminStore.backward``): the users of the events dated
# after the instant (the (metric, created_at) index), their rows, and a count of the shown rows
# before a key (an ix_standings_rank range; ``hidden`` is read from each row).
_MOVED = (
    "SELECT user_id FROM scores WHERE metric = ? AND created_at >= ? AND created_at < ? LIMIT ?"
)
# The movers' own events without their time (which the tally does not need, and whose parsing
# was half the read's time).
_OWN_UNTIMED = (
    "SELECT s.score_id, s.user_id, s.score_delta, s.source, s.voided_at IS NOT NULL,"
    " u.status = 'active' FROM scores s JOIN users u ON u.user_id = s.user_id"
    " WHERE s.user_id IN ({marks}) AND s.metric = ? AND s.created_at >= ? AND s.created_at < ?"
)
_BEFORE = (
    "SELECT COUNT(*) FROM (SELECT 1 FROM scores WHERE metric = ? AND created_at >= ?"
    " AND created_at < ? LIMIT ?)"
)
_ROWS_MANY = (
    "SELECT user_id, rank_score, reached, hidden FROM standings WHERE board_id = ?"
    " AND period_id = ? AND user_id IN ({marks})"
)
_AHEAD = (
    "SELECT COUNT(*) FROM standings WHERE board_id = ? AND period_id = ? AND hidden = 0"
    " AND (rank_score < ? OR (rank_score = ? AND reached < ?))"
)
_MAX_TIME = "9999-12-31 23:59:59.999999"


def backward(
    conn: sqlite3.Connection,
    board: Board,
    period: Period,
    at: datetime,
    user_id: str,
    most: int,
    place: Callable[[Movers], tuple[int, int] | None],
) -> tuple[Movers, int] | None:
    """:meth:`SqliteCheckpoints.backward` on the reader's connection, in one snapshot."""
    start = _MIN_TIME if period.starts_at is None else _text(period.starts_at)
    end = _MAX_TIME if period.ends_at is None else _text(period.ends_at)
    instant = _text(at)
    conn.execute("BEGIN")
    try:
        found = conn.execute(_MOVED, (board.metric, instant, end, most + 1)).fetchall()
        if len(found) > most:
            return None
        (before,) = conn.execute(_BEFORE, (board.metric, start, instant, len(found))).fetchone()
        if before < len(found):
            return None
        users = frozenset(r[0] for r in found)
        asked = sorted(users | {user_id})
        events: list[LedgerEvent] = []
        rows: dict[str, RowKey] = {}
        for first in range(0, len(asked), _USERS_PER_READ):
            some = asked[first : first + _USERS_PER_READ]
            marks = ", ".join("?" * len(some))
            mine = [u for u in some if u in users]
            if mine:
                statement = _OWN_UNTIMED.format(marks=", ".join("?" * len(mine)))
                found_events = conn.execute(statement, (*mine, board.metric, start, instant))
                events += (
                    LedgerEvent(i, u, d, source, bool(v), bool(a))
                    for i, u, d, source, v, a in found_events
                )
            for u, key, reached, hidden in conn.execute(
                _ROWS_MANY.format(marks=marks), (board.id, period.id, *some)
            ):
                rows[u] = RowKey(int(key), int(reached), int(hidden))
        events.sort(key=lambda e: e.event_id)
        movers = Movers(users, tuple(events), rows)
        placed = place(movers)
        if placed is None:
            return movers, 0
        key, reached = placed
        (ahead,) = conn.execute(_AHEAD, (board.id, period.id, key, key, reached)).fetchone()
        return movers, int(ahead)
    finally:
        conn.execute("COMMIT")


class SqliteCheckpoints:
    """Mixed into ``SqliteScoreStore``: its writer and reader connections."""

    _clock: Callable[[], datetime]

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def take_checkpoints(self, boards: Sequence[tuple[Board, Period]], size: int) -> int:
        now = _text(self._clock())
        return await self._write(lambda c: take(c, boards, size, now))

    async def replay(self, board: Board, period: Period, until: datetime) -> Replay | None:
        return await self._read(lambda c: replay(c, board, period, until))

    async def backward(
        self,
        board: Board,
        period: Period,
        at: datetime,
        user_id: str,
        most: int,
        place: Callable[[Movers], tuple[int, int] | None],
    ) -> tuple[Movers, int] | None:
        return await self._read(lambda c: backward(c, board, period, at, user_id, most, place))

    async def events_of_users(
        self, metric: str, users: Sequence[str], since: datetime | None, until: datetime
    ) -> list[LedgerEvent]:
        start = _MIN_TIME if since is None else _text(since)
        end = _text(until)
        return await self._read(lambda c: events_of_users(c, metric, users, start, end))
